"""Floor 4: a searchable gallery: SQLite store (truth), FAISS index (cache), folder sync, thumbnails."""
