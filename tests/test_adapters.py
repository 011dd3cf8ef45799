"""Fine-tuning methods (`task.<t>.method`): LoRA's layer against a dense reference computed here,
merged weights that compute what the adapted model computed, the head alone for `frozen`, settings
a backbone cannot take refused in one line — and every built-in task fine-tuned with LoRA through
the stages at smoke size, saved merged, evaluated as any task model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import compose

from lmforge.errors import ConfigError
from lmforge.models.adapters import add_lora, freeze, merge_lora
from lmforge.models.lstm import LSTM, LSTMConfig
from lmforge.models.transformer import Transformer, TransformerConfig

TASKS = ["topic", "sentiment", "ner", "qa", "summarization", "translation"]


def tiny() -> Transformer:
    torch.manual_seed(0)
    return Transformer(TransformerConfig(vocab_size=50, d_model=16, n_layers=2, n_heads=2, d_ff=32, max_len=12))


def test_a_lora_layer_computes_the_dense_low_rank_update():
    model = tiny()
    x = torch.randint(0, 50, (3, 10))
    before = model(x)
    adapted = add_lora(model, rank=4, alpha=8.0, dropout=0.0, targets=[], key="task.t")
    assert adapted == [f"h.{i}.attn.{n}" for i in range(2) for n in ("c_attn", "c_proj")]
    assert torch.equal(model(x), before)  # B starts at zero: the adapted model starts as the base
    layer = model.h[0].attn.c_attn
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    with torch.no_grad():
        b.normal_()
    h = torch.randn(5, 16)
    base = layer.get_base_layer()
    dense = h @ base.weight.T + base.bias + (8.0 / 4) * (h @ a.T @ b.T)  # W x + b + (alpha / r) B A x
    torch.testing.assert_close(layer(h), dense)


@pytest.mark.parametrize("dropout, dtype", [(0.0, torch.float32), (0.2, torch.float32), (0.0, torch.bfloat16)])
def test_the_in_place_lora_layer_computes_what_pefts_own_layer_does(dropout, dtype):
    """add_lora's layer (adapters added in place) against peft's stock layer on the same weights:
    the same outputs and the same gradients, in training (dropout drawn alike) and under autocast."""
    from peft import LoraConfig
    from peft.functional import inject_adapter_in_model

    from lmforge.models.lora_linear import InPlaceLoraLinear

    ours, stock = tiny(), tiny()
    add_lora(ours, rank=4, alpha=8.0, dropout=dropout, targets=["c_attn", "c_fc"], key="task.t")
    config = LoraConfig(r=4, lora_alpha=8.0, lora_dropout=dropout, target_modules=["c_attn", "c_fc"])
    inject_adapter_in_model(config, stock)
    assert type(ours.h[0].mlp.c_fc) is InPlaceLoraLinear and type(stock.h[0].mlp.c_fc) is not InPlaceLoraLinear
    with torch.no_grad():
        for p in ours.parameters():
            p.normal_(0, 0.3)  # lora_B too: a zero B would hide its half of the update
    stock.load_state_dict(ours.state_dict())
    x = torch.randint(0, 50, (3, 10))
    outputs = []
    for model in (ours, stock):
        model.train()
        torch.manual_seed(1)
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            out = model(x)
        out.float().square().mean().backward()
        outputs.append(out)
    tol = {"rtol": 2e-2, "atol": 2e-2} if dtype == torch.bfloat16 else {"rtol": 1e-5, "atol": 1e-6}
    torch.testing.assert_close(outputs[0], outputs[1], **tol)
    grads = [{n: p.grad for n, p in m.named_parameters() if p.requires_grad} for m in (ours, stock)]
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) == 8  # A and B of 2 layers x 2 blocks
    for name, grad in grads[0].items():
        torch.testing.assert_close(grad, grads[1][name], **tol, msg=name)


def test_merged_weights_compute_what_the_adapted_model_computed():
    model = tiny()
    add_lora(model, rank=4, alpha=8.0, dropout=0.0, targets=["c_fc"], key="task.t")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in n and ".mlp.c_fc." in n for n in trainable)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_()
    x = torch.randint(0, 50, (2, 12))
    adapted = model(x)
    assert merge_lora(model) == 2
    assert set(model.state_dict()) == set(tiny().state_dict())  # a plain model's keys: saved as any other
    torch.testing.assert_close(model(x), adapted, rtol=1e-5, atol=1e-5)


def test_frozen_trains_nothing_of_the_backbone():
    model = tiny()
    freeze(model)
    assert not any(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize(
    "make, targets, says",
    [
        (lambda: LSTM(LSTMConfig(vocab_size=50, d_model=16, n_layers=1)), [], "task.t.lora_targets"),
        (
            tiny,
            ["q_proj"],
            "['q_proj'] name no linear layer of backbone 'transformer' (its linear layers end in: c_attn",
        ),
    ],
)
def test_settings_a_backbone_cannot_take_are_refused(make, targets, says):
    with pytest.raises(ConfigError) as caught:
        add_lora(make(), rank=4, alpha=8.0, dropout=0.0, targets=targets, key="task.t")
    assert says in str(caught.value) and "\n" not in str(caught.value)


@pytest.fixture(scope="module")
def lora_project(tmp_path_factory) -> tuple[Path, dict]:
    from lmforge.stages import evaluate, finetune, prepare, pretrain, report

    root = tmp_path_factory.mktemp("lora")
    args = [
        "experiment=smoke",
        "tracking=none",
        "progress=false",
        "trainer.max_steps=20",
        "max_task_records=24",
        "inits=[pretrained]",
        f"task=[{','.join(TASKS)}]",
        *(f"task.{t}.{k}" for t in TASKS for k in ("method=lora", "max_epochs=1", "lora_rank=2")),
    ]
    prepare.run(compose(args, root=root))
    pretrain.run(compose(args, root=root))
    summaries = finetune.run(compose(args, root=root))
    evaluate.run(compose(args, root=root))
    report.run(compose(args, root=root))
    return root, summaries


@pytest.mark.parametrize("task", TASKS)
def test_every_built_in_task_fine_tunes_with_lora_and_is_saved_merged(lora_project, task):
    from safetensors.torch import load_file

    root, summaries = lora_project
    summary = summaries[task]["pretrained"]
    assert summary["method"] == "lora"
    assert 0 < summary["trainable_params"] < 0.25 * summary["total_params"], summary
    model = root / "artifacts" / "finetune" / task / "pretrained" / "model"
    weights = load_file(str(model / "model.safetensors"))
    assert not any("lora" in k for k in weights)
    assert sum(t.numel() for t in weights.values()) == summary["total_params"]
    saved = json.loads((model / "lmforge.json").read_text())
    assert saved["task_config"]["method"] == "lora"
    metrics = json.loads((root / "reports" / "metrics" / f"{task}.json").read_text())
    assert metrics  # scored by evaluate like any task model
    share = f"{summary['trainable_params']:,} of {summary['total_params']:,} "
    share += f"({100 * summary['trainable_params'] / summary['total_params']:.2f} %)"
    row = f"| {task} | pretrained | lora | {share} | {summary['saved_mb']} |"
    assert row in (root / "reports" / "report.md").read_text()  # the report's method table
    measured = json.loads((root / "reports" / "runtime" / "finetune" / task / "pretrained.json").read_text())
    assert measured["peak_memory_mb"] == summary["peak_memory_mb"] and measured["wall_s"] > 0
    row += f" {measured['peak_memory_mb']} | {measured['wall_s']:.1f} |"
    assert row in (root / "reports" / "runtime.md").read_text()  # beside what it cost on this machine


def test_the_comparison_table_shows_each_methods_cost_beside_its_score():
    from lmforge.report.compare import table

    rows = [
        {
            "name": m,
            "params": {"task.topic.method": m, "seed": "1"},
            "metrics": {"final/best_val_score": s, "final/trainable_params": n},
        }
        for m, s, n in [("frozen", 0.5, 645), ("full", 0.9, 1_300_000), ("lora", 0.8, 9_000)]
    ]
    md = table(rows, "final/best_val_score,final/trainable_params", "methods")
    assert "| run | status | task.topic.method | final/best_val_score | final/trainable_params |" in md
    body = [line for line in md.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [line.split(" | ")[0] for line in body] == ["| frozen", "| lora", "| full"]  # ranked by the first metric
    assert body[2].endswith("| 0.9 | 1300000 |")
