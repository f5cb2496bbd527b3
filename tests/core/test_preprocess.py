"""Preprocessing choices the library validates itself (the CLI only passes them on)."""

from types import SimpleNamespace

import pytest

from clipseek.core.preprocess import FRAMINGS, PreprocessCfg, check_framing
from clipseek.errors import UsageError


def Proc():  # the attributes of a transformers CLIP image processor that PreprocessCfg reads
    return SimpleNamespace(size={"shortest_edge": 32}, do_center_crop=True,
                           crop_size={"height": 32, "width": 32}, do_normalize=True,
                           image_mean=(0.5, 0.5, 0.5), image_std=(0.5, 0.5, 0.5), rescale_factor=1 / 255)


def test_framing_is_checked_with_a_usage_error():
    assert [check_framing(f) for f in FRAMINGS] == list(FRAMINGS)
    assert PreprocessCfg.from_processor(Proc(), "pad").framing == "pad"
    for bad in ("zoom", "Center", ""):
        with pytest.raises(UsageError, match="--crop must be one of center, pad"):
            PreprocessCfg.from_processor(Proc(), bad)


def test_load_model_refuses_a_bad_framing_before_reading_the_checkpoint(tmp_path):
    from clipseek.model.loader import load_model

    with pytest.raises(UsageError, match="--crop"):  # not "model directory not found": checked first
        load_model(str(tmp_path / "no-such-model"), framing="zoom")


@pytest.mark.parametrize("which", ["tiny", "bundled"])
def test_from_config_reads_the_saved_json_as_from_processor_reads_the_processor(which, tiny_ckpt):
    import json
    from pathlib import Path

    from transformers import AutoImageProcessor

    from clipseek.model.loader import BUNDLED_MODELS

    folder = Path(tiny_ckpt if which == "tiny" else BUNDLED_MODELS["clipseek-demo"])
    files = [f for f in ("preprocessor_config.json", "processor_config.json") if (folder / f).is_file()]
    assert files
    proc = AutoImageProcessor.from_pretrained(str(folder))
    for framing in ("center", "pad"):
        want = PreprocessCfg.from_processor(proc, framing)
        for f in files:
            assert PreprocessCfg.from_config(json.loads((folder / f).read_text()), framing) == want
        assert PreprocessCfg.from_config(proc.to_dict(), framing) == want  # what an export writes


def test_from_config_fills_missing_keys_with_the_processor_defaults():
    sparse = {"image_processor_type": "CLIPImageProcessorFast", "size": {"shortest_edge": 32},
              "crop_size": {"height": 32, "width": 32}}
    cfg = PreprocessCfg.from_config(sparse)
    assert (cfg.size, cfg.crop, cfg.resample, cfg.rescale) == (32, (32, 32), 3, 1 / 255)
    assert cfg.mean == (0.48145466, 0.4578275, 0.40821073)
    assert PreprocessCfg.from_config({"image_processor_type": "SiglipImageProcessor"}).size == (224, 224)
    with pytest.raises(ValueError, match="unsupported image processor"):
        PreprocessCfg.from_config({"image_processor_type": "DetrImageProcessor"})
