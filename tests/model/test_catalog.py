"""The recommended-checkpoints catalog: sourced accuracies, measured speeds, picks, cache detection."""

import json
from importlib import resources
from pathlib import Path

import pytest

from clipseek.model.catalog import CPU_FLOOR, is_cached, load_catalog, markdown_table

MODELS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "commands" / "models.md"


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_every_accuracy_names_its_source(catalog):
    assert len(catalog.entries) >= 15
    for e in catalog.entries:
        if e.imagenet_top1 is None:
            assert e.top1_source.startswith("not verified"), e.hub_id
        else:
            assert 50 < e.imagenet_top1 < 90 and "openclip_results.csv" in e.top1_source, e.hub_id
    assert "open_clip" in catalog.source_url


def test_entries_are_loadable_names_with_sound_fields(catalog):
    raw = json.loads(resources.files("clipseek").joinpath("model/catalog.json").read_text("utf-8"))
    for e, _ in zip(catalog.entries, raw["models"]):
        assert e.arch in raw["archs"]
        assert e.hub_id.startswith("hf-hub:") == (e.format == "open_clip")
        assert e.hub_id.removeprefix("hf-hub:").count("/") == 1
        assert e.scoring == ("sigmoid" if "siglip" in e.arch else "softmax")
    assert len({e.hub_id for e in catalog.entries}) == len(catalog.entries)


def test_speeds_were_measured_here_against_the_baseline(catalog):
    assert catalog.speed.get("machine") and catalog.speed.get("measured") and catalog.speed.get("method")
    base = next(e for e in catalog.entries if e.hub_id == "openai/clip-vit-base-patch32")
    assert base.relative_speed == pytest.approx(1.0, abs=0.1)
    for e in catalog.entries:
        assert e.relative_speed is not None and e.params_m is not None, e.hub_id
    by_arch = {e.arch: e for e in catalog.entries}
    assert by_arch["clip-b16-224"].relative_speed < by_arch["clip-b32-224"].relative_speed
    assert by_arch["clip-bigg14-224"].params_m > 2000 and by_arch["clip-b32-224"].params_m < 200


def test_picks(catalog):
    """The picks, read off catalog.json by hand (an independent reference, not the code's own rule):
    fastest: the two B/32 LAION/DataComp rows tie at 1.039, the tie goes to the more accurate DataComp one;
    best on CPU (speed >= 0.25): DFN2B B/16 at 76.24 beats SigLIP base 76.04 and the i18n one 75.13;
    best overall: DFN5B H/14-378 at 84.37; multilingual: SigLIP i18n (SigLIP 2 has no verified top-1)."""
    assert CPU_FLOOR == 0.25
    assert {k: e.hub_id for k, e in catalog.picks().items()} == {
        "fastest": "hf-hub:laion/CLIP-ViT-B-32-DataComp.XL-s13B-b90K",
        "best_on_cpu": "hf-hub:apple/DFN2B-CLIP-ViT-B-16",
        "best_overall": "hf-hub:apple/DFN5B-CLIP-ViT-H-14-378",
        "multilingual": "google/siglip-base-patch16-256-multilingual",
    }


def test_cache_detection(tmp_path):
    snap = tmp_path / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (snap / "open_clip_config.json").write_text("{}")
    assert not is_cached("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", tmp_path)  # no weights yet
    (snap / "open_clip_model.safetensors").write_bytes(b"x")
    assert is_cached("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", tmp_path)
    assert is_cached("laion/CLIP-ViT-B-32-laion2B-s34B-b79K", tmp_path)
    assert not is_cached("openai/clip-vit-base-patch32", tmp_path)


def test_models_page_has_the_same_table(catalog):
    """docs/commands/models.md holds the catalog's table (src/clipseek/model/catalog.json) as it is now."""
    assert markdown_table(catalog) in MODELS_PAGE.read_text("utf-8")
