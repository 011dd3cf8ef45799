"""A seventh task family and a new backbone, each one module (this file) plus one config file,
run through the real stages: prepare → pretrain (the toy backbone) → finetune → evaluate → report.

`same_topic` is a text-pair family: two news stories of the built-in world, labelled `same` or
`different` topic; its world maker, head, metric, baseline and report text live here and nowhere
else. `toy` is a backbone that reads left to right: a token embedding and a running mean of it."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from conftest import compose
from torch import nn

from lmforge.data.world import Made, WorldTask
from lmforge.data.world.entities import TOPICS
from lmforge.data.world.stories import story
from lmforge.data.world.text import render_sentences
from lmforge.errors import ConfigError
from lmforge.models import Backbone, BackboneConfig, Capabilities
from lmforge.models import register as register_backbone
from lmforge.models.heads import linear_head, masked_mean
from lmforge.saved_model import SavedModel
from lmforge.schema import setting
from lmforge.tasks import register
from lmforge.tasks.base import Family, TaskConfig, Validation, loader

# -- the family --------------------------------------------------------------------------------


@dataclass
class SameTopicConfig(TaskConfig):
    max_story_tokens: int = setting(40, gt=0)  # of each story, before `<sep>`


def _pair(rng, ctx, label, i) -> Made:
    a = rng.choice(sorted(TOPICS))
    b = a if label == "same" else rng.choice(sorted(set(TOPICS) - {a}))
    first, second = (render_sentences(story(rng, ctx.w, t)[0]) for t in (a, b))
    return Made({"first": first, "second": second, "label": label}, first + "\n" + second, docs=(first, second))


class PairClassifier(nn.Module):
    def __init__(self, backbone: nn.Module, n_labels: int):
        super().__init__()
        self.backbone = backbone
        self.head = linear_head(backbone.cfg.d_model, n_labels)

    def forward(self, ids, attention_mask):
        return self.head(masked_mean(self.backbone(ids, attention_mask), attention_mask))


@register("same_topic")
class SameTopic(Family):
    config_class = SameTopicConfig
    fields = {"first": str, "second": str, "label": str}
    metrics = ("accuracy",)
    scale = 1
    world_tasks = {"same_topic": WorldTask(_pair, classes=("different", "same"), labels=("different", "same"))}
    description = {
        "model": "first <sep> second, mean-pooled → linear",
        "metric": "accuracy",
        "baseline": "always 'different'",
    }

    def head_config(self, splits, labels, backbone):
        return {"labels": list(labels)}

    def build(self, backbone, head):
        return PairClassifier(backbone, len(head["labels"]))

    def features(self, records, tok, head, train):
        from lmforge.data.tokenizer import special_ids

        sep, n = special_ids(tok)["sep"], self.config.max_story_tokens
        out = []
        for r in records:
            ids = tok.encode(r["first"]).ids[:n] + [sep] + tok.encode(r["second"]).ids[:n]
            out.append(
                {
                    "input_ids": ids,
                    "attention_mask": [1] * len(ids),
                    "label": head["labels"].index(r.get("label", head["labels"][0])),
                }
            )
        return out

    def loss(self, model, batch):
        return F.cross_entropy(model(batch["input_ids"], batch["attention_mask"]).float(), batch["label"])

    def val_step(self, model, batch, head):
        logits = model(batch["input_ids"], batch["attention_mask"]).float()
        hits = int((logits.argmax(-1) == batch["label"]).sum())
        return Validation(F.cross_entropy(logits, batch["label"]), len(logits), hits, len(logits))

    @torch.no_grad()
    def predict(self, model, records, tok, head):
        from lmforge.data.tokenizer import special_ids

        model.eval()
        feats = self.features(records, tok, head, train=False)
        batches = loader(feats, 16, special_ids(tok)["pad"], shuffle=False)
        return [
            head["labels"][i] for b in batches for i in model(b["input_ids"], b["attention_mask"]).argmax(-1).tolist()
        ]

    def scores(self, predictions, records, head):
        return {"accuracy": sum(p == r["label"] for p, r in zip(predictions, records)) / len(records)}

    def baseline(self, train, test, head, seed):
        return ["different"] * len(test)

    def outcomes(self, records, predictions):
        return [(r["label"], p) for r, p in zip(records, predictions)]


TASK_YAML = """\
same_topic:
  family: same_topic
  data: {source: builtin, world_task: null, n_train: 64, n_validation: 32, n_test: 32, max_train: null}
  max_length: 96
  batch_size: 16
  lr: 0.003
  weight_decay: 0.0
  max_epochs: 2
  warmup_ratio: 0.1
  patience: 2
  dropout: 0.0
  n_predictions: 5
  max_story_tokens: 40
"""

# -- the backbone --------------------------------------------------------------------------------


@dataclass
class ToyConfig(BackboneConfig):
    d_model: int = setting(32, gt=0)
    n_layers: int = setting(1, gt=0)


@register_backbone("toy")
class Toy(Backbone):
    """Token embedding → `n_layers` mixes of the running mean over the positions so far (left to
    right) → tied head."""

    config_class = ToyConfig

    @classmethod
    def capabilities(cls, config):
        return Capabilities(causal=True, bidirectional=False, generation="recompute")

    def __init__(self, cfg: ToyConfig):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        nn.init.normal_(self.wte.weight, std=0.02)
        self.mix = nn.ModuleList(nn.Linear(cfg.d_model, cfg.d_model) for _ in range(cfg.n_layers))

    def forward(self, ids, attention_mask=None):
        x = self.wte(ids)
        steps = torch.arange(1, ids.shape[1] + 1, device=ids.device)[None, :, None]
        for mix in self.mix:
            x = x + torch.tanh(mix(x.cumsum(1) / steps))
        return x

    def lm_logits(self, hidden):
        return F.linear(hidden, self.wte.weight)


MODEL_YAML = "name: toy\narch: toy\nd_model: 32\nn_layers: 1\nmax_len: 192\ndropout: 0.0\n"

# -- the run ---------------------------------------------------------------------------------------


def overrides(root) -> list[str]:
    return [
        f"hydra.searchpath=[file://{root / 'extra_conf'}]",
        "experiment=smoke",
        "model=toy",
        "task=[same_topic,topic]",
        "tracking=none",
        "progress=false",
        "trainer.precision=32-true",
    ]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from lmforge.stages import evaluate, finetune, prepare, pretrain, report

    root = tmp_path_factory.mktemp("plugins")
    conf = root / "extra_conf"
    (conf / "task").mkdir(parents=True)
    (conf / "model").mkdir()
    (conf / "task" / "same_topic.yaml").write_text(TASK_YAML)  # the family's one config file
    (conf / "model" / "toy.yaml").write_text(MODEL_YAML)  # the backbone's one config file
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is faster
    try:
        out = {
            name: stage.run(compose(overrides(root), root=root))
            for name, stage in (
                ("prepare", prepare),
                ("pretrain", pretrain),
                ("finetune", finetune),
                ("evaluate", evaluate),
                ("report", report),
            )
        }
    finally:
        torch.set_num_threads(threads)  # what later tests' in-process runs expect
    return root, out


def test_the_new_family_and_backbone_run_through_every_stage(run):
    root, out = run
    assert out["pretrain"]["arch"] == "toy" and out["pretrain"]["steps"] == 20
    saved = SavedModel.load(root / "artifacts/finetune/same_topic/pretrained/model")
    assert (saved.family, saved.backbone["arch"], saved.head["labels"]) == ("same_topic", "toy", ["different", "same"])
    assert set(out["finetune"]) == {"same_topic", "topic"} and set(out["finetune"]["same_topic"]) == {
        "pretrained",
        "scratch",
    }
    metrics = json.loads((root / "reports/metrics/same_topic.json").read_text())
    assert metrics["metric"] == "accuracy" and metrics["inits"] == ["pretrained", "scratch"]
    assert metrics["baseline"]["accuracy"] == pytest.approx(0.5)  # always 'different', on a balanced test split
    assert 0 <= metrics["pretrained"]["accuracy"] <= 1 and metrics["n_test"] == 32
    summary = json.loads((root / "reports/metrics.json").read_text())
    assert set(summary["tasks"]) == {"same_topic", "topic"}
    assert (
        "| same_topic | same_topic | first <sep> second, mean-pooled → linear | accuracy | always 'different' |"
        in (root / "reports/report.md").read_text()
    )


def test_freezing_the_embeddings_of_a_backbone_that_names_none_is_refused(run):
    from lmforge.stages import finetune

    root, _ = run
    cfg = compose([*overrides(root), "task=[topic]", "task.topic.freeze_embeddings=true"], root=root)
    with pytest.raises(ConfigError, match=r"task\.topic\.freeze_embeddings: backbone 'toy' names no token embeddings"):
        finetune.run(cfg)


def test_the_family_s_world_task_is_balanced_and_leak_free(run):
    from lmforge.data.corpus_index import CorpusIndex
    from lmforge.data.world import make_splits

    root, _ = run
    index = CorpusIndex(root / "artifacts/prepare/index")
    splits = make_splits(
        "same_topic", SameTopic.world_tasks["same_topic"], 1234, {"train": 64, "validation": 32, "test": 32}, index
    )
    assert Counter(r["label"] for r in splits["test"]) == {"same": 16, "different": 16}
    assert not any(
        index.has_document(r["first"]) or index.has_document(r["second"]) for s in splits.values() for r in s
    )
    keys = [r["first"] + "\n" + r["second"] for s in splits.values() for r in s]
    assert len(keys) == len(set(keys))
