"""Error bars over seeds: experiments equal but for their seed aggregate into mean ± std per task
and system, and a pretrained-vs-scratch difference is marked only when larger than the spread."""

from __future__ import annotations

import pytest

from lmforge.report.seeds import aggregate, markdown


def row(seed: int, pretrained: float, scratch: float, lr: str = "0.002") -> dict:
    return {
        "name": f"exp-{seed}",
        "params": {"seed": str(seed), "optim.lr": lr, "conf_digest": f"d{seed}"},
        "metrics": {
            "tasks.topic.metric": "accuracy",
            "tasks.topic.pretrained.accuracy": pretrained,
            "tasks.topic.scratch.accuracy": scratch,
            "tasks.topic.baseline.accuracy": 0.2,
            "tasks.qa.metric": "f1",
            "tasks.qa.pretrained.f1": 40.0 + seed,
            "tasks.qa.scratch.f1": 39.0 + seed,
            "pretrain.val_loss": 2.0,
        },
    }


def test_mean_std_and_which_differences_are_clear():
    (group,) = aggregate([row(1, 0.90, 0.60), row(2, 0.94, 0.64), row(3, 0.92, 0.62)])
    assert group["seeds"] == ["1", "2", "3"]
    topic = group["tasks"]["topic"]
    assert topic["metric"] == "accuracy"
    assert topic["pretrained"] == pytest.approx((0.92, 0.02, 3))
    assert topic["baseline"] == pytest.approx((0.2, 0.0, 3))
    assert topic["clear"] is True  # 0.30 apart, spreads 0.02 + 0.02
    qa = group["tasks"]["qa"]
    assert qa["pretrained"][0] - qa["scratch"][0] == pytest.approx(1.0)
    assert qa["clear"] is False  # 1 point apart, spreads 1 + 1
    md = markdown([group])
    assert "| topic | accuracy | 0.920 ± 0.020 | 0.620 ± 0.020 | 0.200 ± 0.000 | +0.300 **clear** |" in md
    assert "+1.000 within the spread" in md


def test_fine_tune_seeds_on_one_pretrained_model_are_one_group():
    rows = [row(1234, p, s) for p, s in ((0.90, 0.60), (0.94, 0.64), (0.92, 0.62))]
    for r, ft in zip(rows, (1, 2, 3)):
        r["params"]["finetune_seed"] = str(ft)
    (group,) = aggregate(rows)
    assert group["seeds"] == ["1", "2", "3"] and group["tasks"]["topic"]["pretrained"][2] == 3
    assert "## fine-tune seeds 1, 2, 3 (pretraining seed 1234)" in markdown([group])
    # a whole-pipeline grid (finetune_seed null) names its seeds as such
    (whole,) = aggregate(
        [{**row(s, 0.9, 0.6), "params": {**row(s, 0.9, 0.6)["params"], "finetune_seed": "null"}} for s in (1, 2)]
    )
    assert whole["seeds"] == ["1", "2"] and "## seeds 1, 2" in markdown([whole])


def test_configurations_are_kept_apart_and_one_seed_is_never_clear():
    groups = aggregate([row(1, 0.9, 0.6), row(2, 0.9, 0.6, lr="0.004"), {"name": "x", "params": {}, "metrics": {}}])
    assert sorted(len(g["seeds"]) for g in groups) == [1, 1]
    assert all(g["tasks"]["topic"]["clear"] is False for g in groups)
    md = markdown(groups[:1])
    assert "| topic | accuracy | 0.900 | 0.600 | 0.200 | +0.300 (one seed) |" in md
    assert "0.900 ±" not in md and "within the spread" not in md and "cannot be judged" in md
