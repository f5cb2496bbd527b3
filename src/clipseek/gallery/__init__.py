"""Floor 5: a searchable gallery: SQLite store (truth), FAISS index (cache), folder sync, thumbnails."""
