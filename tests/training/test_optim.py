"""Param groups, the warm-up + cosine schedule, the optimizer step, the ramp, frozen towers."""

import math

import pytest

from clipseek.errors import UsageError
from clipseek.training.optim import (
    adamw,
    freeze,
    lr_schedule,
    optimizer_step,
    param_groups,
    ramp,
    warmup_cosine,
)


def test_schedule_warms_up_linearly_then_decays_to_zero():
    f = warmup_cosine(4, 12)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(8) == pytest.approx(0.5) and f(12) == pytest.approx(0.0) and f(50) == pytest.approx(0.0)
    assert ramp(0.2, 0.8, 0, 4) == 0.2 and ramp(0.2, 0.8, 3, 4) == pytest.approx(0.8)


def test_groups_step_and_freeze_on_a_clip(tiny_ckpt):
    import torch
    from transformers import CLIPModel

    model = CLIPModel.from_pretrained(tiny_ckpt)
    freeze(model, "text")
    groups = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decay, no_decay = ({names[id(p)] for p in g["params"]} for g in groups)
    assert groups[0]["weight_decay"] == 0.1 and groups[1]["weight_decay"] == 0.0
    assert "logit_scale" in no_decay and not any(n.startswith("text_model") for n in decay | no_decay)
    assert all(model.get_parameter(n).ndim >= 2 for n in decay)
    opt = adamw(groups, 1e-3)
    sched = lr_schedule(opt, 2, 10)
    assert sched.get_last_lr()[0] == pytest.approx(0.5e-3)
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    model.logit_scale.grad = torch.zeros(())
    optimizer_step(model, opt, sched)
    assert model.logit_scale.item() == pytest.approx(math.log(100))  # clamped to a temperature of 100
    assert sched.get_last_lr()[0] == pytest.approx(1e-3)
    with pytest.raises(UsageError, match="--freeze must be"):
        freeze(model, "both")
