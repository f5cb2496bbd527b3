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
