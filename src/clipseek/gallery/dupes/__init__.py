"""Duplicates in a gallery: perceptual hashes (`phash`), CLIP-cosine pairs (`similar`), groups and keepers
(`groups`)."""
