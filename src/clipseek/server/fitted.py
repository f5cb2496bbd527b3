"""`serve --examples DIR` / `serve --classifier FILE`: one more route, `POST /api/classify/examples`,
that classifies an uploaded image with a classifier taught by example pictures (`clipseek.fewshot`).

Kept apart from the other routes: `create_app` calls `add_fitted_routes` only when a classifier is
given. The upload is checked as every upload (`checks.decode_upload`), the image is encoded on the
service's model thread, and the classifier (fitted with the server's own model, checked at start)
does the rest in numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, List, Optional, Union

from fastapi import FastAPI, File, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from clipseek.server.checks import Limits, decode_upload
from clipseek.server.schema import Prediction, errors

if TYPE_CHECKING:
    from clipseek.fewshot.classifier import FewShotClassifier
    from clipseek.model.base import Encoder
    from clipseek.server.service import GalleryService

ClassifierSpec = Union["FewShotClassifier", Callable[["Encoder"], "FewShotClassifier"]]


class ExampleClassification(BaseModel):
    classes: List[str]
    method: str
    scoring: str
    predictions: List[Prediction]
    set: Optional[List[str]] = None          # the conformal set (with the classifier's coverage)
    coverage: Optional[float] = None
    unusual: Optional[bool] = None           # unlike the examples (with a false-alarm rate)
    anomaly: Optional[float] = None
    false_alarm: Optional[float] = None


def resolve(svc: GalleryService, spec: ClassifierSpec) -> FewShotClassifier:
    """The classifier (a callable gets the server's encoder, on the model thread), checked against
    the server's model: a file fitted with another model stops the server at start, in one line."""
    clf = svc._run(spec, svc.encoder) if callable(spec) else spec
    clf.check_model(svc.encoder.fingerprint)
    return clf


def example_doc(clf: FewShotClassifier, vector) -> dict:
    from clipseek.core.scores import top_k

    out = clf.predict(vector)
    doc = {"classes": list(clf.classes), "method": clf.method, "scoring": "softmax",
           "predictions": [{"label": l, "score": round(p, 6)} for l, p in top_k(out.probs, clf.classes,
                                                                                 len(clf.classes))[0]],
           "set": None, "coverage": None, "unusual": None, "anomaly": None, "false_alarm": None}
    if out.sets is not None:
        doc.update(set=[clf.classes[j] for j in out.sets[0]], coverage=clf.conformal.coverage)
    if out.unusual is not None:
        doc.update(unusual=bool(out.unusual[0]), anomaly=round(float(out.anomaly[0]), 6),
                   false_alarm=clf.anomaly.false_alarm)
    return doc


def add_fitted_routes(app: FastAPI, svc: GalleryService, spec: ClassifierSpec, limits: Limits,
                      guard: tuple[int, ...]) -> None:
    clf = resolve(svc, spec)

    def classify(data: bytes, name: str) -> dict:
        img = decode_upload(limits, data, name)
        return example_doc(clf, svc._run(lambda: svc.encoder.encode_images([img])))

    @app.post("/api/classify/examples", tags=["classify"], summary="Classify by the example pictures "
              "the server was started with", responses={200: {"model": ExampleClassification},
                                                         **errors(400, 413, 422, guard=guard)})
    async def classify_examples(file: UploadFile = File(..., description="The image to classify.")):
        data = await file.read(limits.max_upload_bytes + 1)
        return await run_in_threadpool(classify, data, file.filename or "")
