"""The OpenAPI schema tells the truth: property-based requests (schemathesis) against the app in
process get no 5xx, and every response's status, content type, headers and body match the schema."""

import pytest

from helpers import FakeEncoder, make_image

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

import clipseek  # noqa: E402
from clipseek.server import create_app  # noqa: E402

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance, negative_data_rejection, unsupported_method]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("schema") / "photos"
    root.mkdir()
    for i in range(6):
        make_image(i, (40 + 4 * i, 32)).save(root / f"p{i}.png")
    make_image(9, (30, 30)).save(root / "scan.tif")
    db = str(root.parent / "g.db")
    enc = FakeEncoder()
    with clipseek.Gallery(db, enc) as g:
        g.index([str(root)])
    app = create_app(db, enc, allowed_hosts=["testserver"])  # the Host schemathesis' ASGI client sends
    yield app
    app.state.service.close()


@pytest.fixture(scope="module")
def api(app):
    async def without_lifespan(scope, receive, send):
        """schemathesis runs the ASGI lifespan around every call, and the app's shutdown closes its
        model thread: answer startup/shutdown here; the fixture closes the service at the end."""
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            return await send({"type": "lifespan.shutdown.complete"})
        return await app(scope, receive, send)

    return schemathesis.openapi.from_asgi("/openapi.json", without_lifespan)


def operations(api):
    return [r.ok() for r in api.get_all_operations()]


def fuzz(op, mode: str) -> str | None:
    """25 generated requests (hypothesis, derandomized) to one operation; the failure found, if any."""
    @given(case=op.as_strategy(generation_mode=schemathesis.GenerationMode(mode)))
    @settings(max_examples=25, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def run(case):
        case.call_and_validate(checks=CHECKS)

    try:
        run()
    except Unsatisfiable:  # negative mode on an operation without parameters: nothing to break
        return None
    except BaseException as e:  # a FailureGroup is a BaseExceptionGroup
        if isinstance(e, KeyboardInterrupt):
            raise
        return f"{op.label} ({mode}): {e}"
    return None


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_the_api_matches_its_schema(api, mode):
    """Bounded: 25 examples per operation and mode. (schemathesis' pytest plugin does not run under
    this pytest, so hypothesis drives each operation's strategy directly.)"""
    failures = [f for op in operations(api) if (f := fuzz(op, mode))]
    assert not failures, "\n\n".join(failures)


def test_image_endpoints_answer_images_as_documented(api):
    """Generated ids almost never exist: ask for every real one (a PNG, and a TIFF sent as JPEG)."""
    ops = {op.label: op for op in operations(api)}
    for label in ("GET /api/images/{image_id}", "GET /api/thumbs/{image_id}"):
        for image_id in range(1, 9):  # 7 images, and one id past the end
            case = ops[label].Case(path_parameters={"image_id": image_id})
            response = case.call_and_validate(checks=CHECKS)
            assert response.status_code == (200 if image_id <= 7 else 404)
