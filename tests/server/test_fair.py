"""A large classify request does not hold the model thread: searches queued meanwhile run between its
slices (issue 16: one 20,000-prompt request blocked every search for ~2.9 s)."""

import io
import threading
import time

import clipseek
from clipseek.server.fair import Classifiers
from clipseek.server.service import GalleryService
from helpers import FakeEncoder, make_image


class SlowText(FakeEncoder):
    """Text encoding at a steady 0.25 ms per prompt, like a small model on a busy CPU."""

    def encode_texts(self, texts, batch_size=256):
        time.sleep(0.00025 * len(texts))
        return super().encode_texts(texts, batch_size)


def test_searches_run_between_the_slices_of_a_large_classify(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(8):
        make_image(i).save(root / f"p{i}.png")
    enc = SlowText()
    with clipseek.Gallery(str(tmp_path / "g.db"), enc) as g:
        g.index([str(root)])
    svc = GalleryService(str(tmp_path / "g.db"), enc)
    buf = io.BytesIO()
    make_image(1).save(buf, "PNG")
    labels = [f"label {i}" for i in range(1000)]
    templates = [f"a {{}} number {j}" for j in range(16)]  # 16,000 prompts: ~4 s of text encoding
    done = {}

    def classify():
        t0 = time.perf_counter()
        done["result"] = svc.classify(buf.getvalue(), labels, templates)
        done["seconds"] = time.perf_counter() - t0

    worker = threading.Thread(target=classify)
    worker.start()
    time.sleep(0.3)
    waits = []
    while worker.is_alive():
        t0 = time.perf_counter()
        assert len(svc.search_text("a red car", 3)["results"]) == 3
        waits.append(time.perf_counter() - t0)
        time.sleep(0.05)
    worker.join()
    svc.close()
    assert done["seconds"] > 3 and len(done["result"]["predictions"]) == 1000
    assert len(waits) >= 10 and max(waits) < 0.5, waits  # before: one wait of the whole request


def test_the_slice_adapts_to_the_model_speed():
    calls = []

    def run(fn, *args):
        calls.append(len(args[0]))
        return fn(*args)

    c = Classifiers(run, lambda texts: time.sleep(0.001 * len(texts)) or FakeEncoder().encode_texts(texts))
    w = c.get([f"l{i}" for i in range(100)], ["a {}", "the {}"])
    assert w.shape == (100, 32) and sum(calls) == 200 and len(calls) > 3
    assert 20 <= c.slice <= 80  # ~0.05 s at 1 ms per prompt
    assert c.get([f"l{i}" for i in range(100)], ["a {}", "the {}"]) is w and sum(calls) == 200  # cached
