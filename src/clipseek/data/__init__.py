"""Floor 3: readers of labelled datasets, caption pairs and manifests, and the synthetic generator."""
