"""Search over a gallery's vectors: the FAISS index (a cache of the store: `vector_index`, its kinds and files) and
the filter columns held in memory (`facets`)."""
