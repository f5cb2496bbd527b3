import json

import numpy as np
import pytest

from clipseek.core.prompts import (
    build_classifier,
    builtin_templates,
    check_template,
    load_templates,
    parse_labels,
    render,
    resolve_templates,
    split_labels,
)
from clipseek.errors import UsageError


def test_imagenet_templates_are_80_distinct():
    t = builtin_templates("imagenet")
    assert len(t) == 80 and len(set(t)) == 80 and all(x.count("{}") == 1 for x in t)


def test_ensemble_is_renormalised_mean_of_unit_prompt_vectors(encoder):
    labels, templates = ["cat", "dog", "red house"], ["a photo of a {}.", "a {}", "the small {}."]
    got = build_classifier(encoder, labels, templates)
    for i, label in enumerate(labels):  # reference: one prompt at a time
        vecs = np.stack([encoder.encode_texts([t.format(label)], batch_size=1)[0] for t in templates])
        ref = vecs.mean(0)
        assert np.allclose(got[i], ref / np.linalg.norm(ref), atol=1e-5)


class CountingEncoder:
    dim = 4

    def __init__(self):
        self.calls = []

    def encode_texts(self, texts, batch_size=256):
        self.calls.append(len(texts))
        rng = np.random.RandomState(len(texts))
        v = rng.randn(len(texts), self.dim).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_prompts_are_encoded_once_in_batches():
    enc = CountingEncoder()
    labels = [f"class {i}" for i in range(1000)]
    w = build_classifier(enc, labels, builtin_templates("imagenet"))
    assert w.shape == (1000, 4) and enc.calls == [80_000]  # one call; the encoder batches inside


def test_template_files(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("# mine\na {} photo\n\nart of {}\n")
    assert load_templates(str(f)) == ["a {} photo", "art of {}"]
    j = tmp_path / "t.json"
    j.write_text('["x {}", "y {}"]')
    assert load_templates(str(j)) == ["x {}", "y {}"]
    bad = tmp_path / "bad.txt"
    bad.write_text("no placeholder\n")
    with pytest.raises(UsageError, match="exactly one"):
        load_templates(str(bad))
    with pytest.raises(UsageError, match="unknown template set"):
        load_templates("cifar")


def test_labels_parsing(tmp_path):
    assert parse_labels(" cat, dog ,,bird") == ["cat", "dog", "bird"]
    f = tmp_path / "l.txt"
    f.write_text("cat\n# comment\n\nhot dog\n")
    assert parse_labels(labels_file=str(f)) == ["cat", "hot dog"]
    for bad in ["", ",,", "cat,cat"]:
        with pytest.raises(UsageError):
            parse_labels(bad)
    with pytest.raises(UsageError):
        resolve_templates("a {}", "imagenet")


def test_one_label_splitter_for_commas_and_new_lines(tmp_path):
    assert split_labels("cat, dog\nred car\r\nbird,\n") == ["cat", "dog", "red car", "bird"]
    assert split_labels(["cat,dog", "bird\nfish", " "]) == ["cat", "dog", "bird", "fish"]  # repeated fields
    assert parse_labels("cat\ndog, bird") == ["cat", "dog", "bird"]                   # --labels: the same rule
    f = tmp_path / "l.txt"
    f.write_text("cat\nhot dog, chili\n")
    assert parse_labels(labels_file=str(f)) == ["cat", "hot dog, chili"]        # a file: one label per line


@pytest.mark.parametrize("bad,why", [
    ("a {x} {}", "not '{x}'"), ("{0} {}", "not '{0}'"), ("{}{", "Single '{'"), ("a } {}", "Single '}'"),
    ("{} and {}", "2 '{}' fields"), ("no label", "no '{}'"), ("{{}}", "no '{}'"), ("a {!r}", "not '{!r}'"),
    ("a {:>10}", "not '{:>10}'"),
])
def test_templates_with_other_fields_or_stray_braces_are_refused_by_name(bad, why, tmp_path):
    with pytest.raises(UsageError) as e:
        check_template(bad)
    assert repr(bad) in str(e.value) and why in str(e.value)
    with pytest.raises(UsageError, match="bad template"):
        resolve_templates(bad)
    with pytest.raises(UsageError, match="bad template"):  # the library checks too
        build_classifier(CountingEncoder(), ["cat"], ["a {}", bad])
    f = tmp_path / "t.txt"
    f.write_text(f"a {{}}\n# note\n{bad}\n")
    with pytest.raises(UsageError, match=r"t.txt: line 3: bad template"):
        load_templates(str(f))
    j = tmp_path / "t.json"
    j.write_text(json.dumps({"templates": ["x {}", bad]}))
    with pytest.raises(UsageError, match=r"t.json: item 2: bad template"):
        load_templates(str(j))


def test_literal_braces_and_callables_are_fine():
    assert check_template("{{set}} of {}") == "{{set}} of {}"
    assert render("{{set}} of {}", "cats") == "{set} of cats"
    assert build_classifier(CountingEncoder(), ["cat"], [lambda l: f"{{{l}}}"]).shape == (1, 4)


def test_a_template_file_that_is_not_json_or_not_a_list_is_one_error(tmp_path):
    j = tmp_path / "t.json"
    j.write_text("{oops")
    with pytest.raises(UsageError, match="not valid JSON"):
        load_templates(str(j))
    j.write_text('{"templates": "a {}"}')
    with pytest.raises(UsageError, match="expected a JSON list"):
        load_templates(str(j))
