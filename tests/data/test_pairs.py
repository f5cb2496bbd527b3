"""Training pairs: caption manifests (JSONL and CSV, one record reader with the eval manifests) and
labelled folders."""

import json

import pytest
from PIL import Image

from clipseek.data.pairs import load_pairs, read_caption_manifest, read_labelled_folder
from clipseek.errors import UsageError


def test_manifest_bad_lines(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"image": "ok.png", "caption": "a red circle"}) + "\n" +
                 json.dumps({"image": "gone.png", "caption": "a blue star"}) + "\n")
    pairs = read_caption_manifest(m)
    assert pairs.paths == [str(tmp_path / "ok.png")] and len(pairs.skipped) == 1
    m.write_text(m.read_text() + "{not json\n")
    with pytest.raises(UsageError, match=r"m.jsonl:3: malformed"):
        read_caption_manifest(m)
    m.write_text('["ok.png", "a caption"]\n')
    with pytest.raises(UsageError, match=r"m.jsonl:1: expected a JSON object"):
        read_caption_manifest(m)
    m.write_text(json.dumps({"image": "ok.png"}) + "\n")
    with pytest.raises(UsageError, match=r"m.jsonl:1: needs an image path"):
        read_caption_manifest(m)


def test_group_by_needs_the_field(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"image": "ok.png", "caption": "x", "colour": "red"}) + "\n")
    assert read_caption_manifest(m, group_by="colour").groups == ["red"]
    with pytest.raises(UsageError, match="no field 'shape'"):
        read_caption_manifest(m, group_by="shape")


def test_csv_manifest_reads_like_jsonl_with_splits_labels_and_fields(tmp_path):
    for name in ("a.png", "b.png", "c.png"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    (tmp_path / "m.csv").write_text("image,caption,label,split,colour\n"
                                    "a.png,a red car,,train,red\n"
                                    "b.png,,dog,train,blue\n"
                                    "c.png,a green tree,,test,green\n"
                                    "gone.png,a cat,,,grey\n")
    pairs = load_pairs(str(tmp_path / "m.csv"), split="train", group_by="colour", positives=("colour",))
    assert pairs.paths == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    assert pairs.captions == ["a red car", "a photo of a dog."]  # an empty caption falls back to the label
    assert pairs.groups == ["red", "blue"] and pairs.attrs == {"colour": ["red", "blue"]}
    assert pairs.skipped == [(str(tmp_path / "gone.png"), "missing image file")]  # no split: every split
    (tmp_path / "bad.csv").write_text("image,caption\na.png,x,extra\n")
    with pytest.raises(UsageError, match=r"bad.csv:2: malformed row"):
        load_pairs(str(tmp_path / "bad.csv"))


def test_split_filter_and_no_usable_pairs(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"image": "a.png", "caption": "x", "split": "test"}) + "\n")
    assert read_caption_manifest(m, split="test").paths == [str(tmp_path / "a.png")]
    with pytest.raises(UsageError, match="no usable image-caption pairs in split 'train'"):
        read_caption_manifest(m, split="train")
    with pytest.raises(UsageError, match="manifest not found"):
        read_caption_manifest(tmp_path / "nope.jsonl")
    with pytest.raises(UsageError, match="JSONL or CSV manifest or a folder"):
        load_pairs(str(tmp_path / "a.png"))


def test_labelled_folder_captions_are_seeded_and_carry_the_label(tmp_path):
    for c in ("cat", "dog"):
        (tmp_path / "d" / c).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (8, 8)).save(tmp_path / "d" / c / f"{i}.png")
    templates = ("a photo of a {}.", "a {}.", "art of a {}.")
    a = read_labelled_folder(tmp_path / "d", templates, seed=3)
    assert a.captions == read_labelled_folder(tmp_path / "d", templates, seed=3).captions
    assert a.attrs["label"] == ["cat"] * 6 + ["dog"] * 6
    assert all(cap in {t.format(lab) for t in templates} for cap, lab in zip(a.captions, a.attrs["label"]))
    with pytest.raises(UsageError, match="labelled folder has only the field 'label'"):
        load_pairs(str(tmp_path / "d"), positives=("colour",))
    assert load_pairs(str(tmp_path / "d"), positives=("label",)).attrs["label"][0] == "cat"
