"""Floor 2: readers of labelled datasets, caption pairs and manifests, and the synthetic generator."""
