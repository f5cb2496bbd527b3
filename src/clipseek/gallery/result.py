"""What a search gives back: `SearchResult`, one image (or video) of the gallery with its score."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SearchResult:
    id: int
    path: str
    score: float      # cosine similarity between the query and the image
    width: int
    height: int
    relevance: float | None = None  # 0: the query's median over the gallery, 1: its best match
    #                                 (None: undefined, a gallery too small: gallery.query)
    relevant: bool = False          # relevance >= query.RELEVANT_AT
    kind: str = "photo"             # "photo" or "video"
    time_s: float | None = None     # a video: the time of its best moment (its score is that moment's)
    moments: tuple[tuple[float, float], ...] = ()  # a video: its best moments, (time_s, score), best first

    def to_dict(self) -> dict:
        return {"id": self.id, "path": self.path, "score": round(self.score, 6),
                "width": self.width, "height": self.height,
                "relevance": None if self.relevance is None else round(self.relevance, 4),
                "relevant": self.relevant, "kind": self.kind,
                "time_s": None if self.time_s is None else round(self.time_s, 3),
                "moments": [{"time_s": round(t, 3), "score": round(s, 6)} for t, s in self.moments]}
