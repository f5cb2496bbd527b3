import hashlib
import json

from clipseek.data.synthetic import (
    COLOURS,
    HELD_OUT,
    SHAPES,
    generate,
    plan,
    vocabulary,
)


def digest(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*.png")):
        h.update(p.read_bytes())
    return h.hexdigest()


def test_deterministic_and_complete(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    generate(a, n=1200, seed=3)
    generate(b, n=1200, seed=3, workers=2)  # drawn in two processes: the same pixels
    assert digest(a) == digest(b)
    rows = [json.loads(l) for l in (a / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 1200 and len(SHAPES) >= 6 and len(COLOURS) >= 8
    for r in rows:
        assert (a / r["image"]).is_file()
        assert r["colour"] in r["caption"] or r["shape"] in r["caption"]
        assert r["image"].startswith(f"{r['split']}/{r['colour']} {r['shape']}/")
    split_rows = sum(len((a / f"{s}.jsonl").read_text().splitlines()) for s in ("train", "val", "test"))
    assert split_rows == 1200


def test_held_out_pairs_never_in_train():
    samples = plan(5000, seed=0)
    held = set(HELD_OUT)
    assert not [s for s in samples if s.split == "train" and (s.colour, s.shape) in held]
    test_labels = {(s.colour, s.shape) for s in samples if s.split == "test"}
    assert held <= test_labels
    train = [s for s in samples if s.split == "train"]
    assert {s.colour for s in train} == set(COLOURS) and {s.shape for s in train} == set(SHAPES)
    assert len({s.caption for s in samples}) > 50  # varied captions


def test_vocabulary_covers_captions():
    from clipseek.core.prompts import words_of

    captions = [s.caption for s in plan(500)]
    assert set(words_of(captions)) <= set(vocabulary())
