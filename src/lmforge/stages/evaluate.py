"""evaluate@<task>: test-split metrics of every fine-tuned init beside the trivial baseline,
confusion data for `dvc plots`, and a sample of predictions."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from lmforge.data.tokenizer import load_tokenizer, special_ids
from lmforge.errors import DataError
from lmforge.fileio import write_json, write_jsonl, write_text
from lmforge.models.io import load_classifier
from lmforge.stages.common import log, stage
from lmforge.stages.finetune import task_labels
from lmforge.tasks import classification as task_lib

INITS = ("pretrained", "scratch")


def run(cfg: DictConfig) -> dict:
    task = cfg.task
    with stage(cfg, f"evaluate/{task.name}", tags={"lmforge.task": task.name}) as run:
        p = run.paths
        splits = task_lib.read_splits(p.tasks / task.name)
        labels = task_labels(p.tasks / task.name, splits)
        label2id = {name: i for i, name in enumerate(labels)}
        test = splits["test"]
        golds = torch.tensor([label2id[r["label"]] for r in test])
        inits = [i for i in INITS if (p.finetuned(task.name, i) / "model").is_dir()]
        if not inits:
            raise DataError(f"no fine-tuned model under {p.finetune / task.name}: run finetune first")

        results: dict = {"task": task.name, "metric": task_lib.PRIMARY_METRIC, "n_test": len(test)}
        predictions: dict[str, list[str]] = {}
        for init in inits:
            model, mcfg = load_classifier(p.finetuned(task.name, init) / "model")
            tok = load_tokenizer(p.finetuned(task.name, init) / "model")
            encoded = task_lib.encode(test, tok, label2id, mcfg["max_length"])
            preds = task_lib.predict(model, encoded, task.batch_size, special_ids(tok)["pad"])
            results[init] = task_lib.scores(preds, golds, len(labels))
            predictions[init] = [labels[i] for i in preds.tolist()]
            write_text(p.reports / "plots" / "confusion" / f"{task.name}-{init}.csv",
                       "actual,predicted\n" + "".join(f"{r['label']},{y}\n" for r, y in zip(test, predictions[init])))

        base = task_lib.majority_baseline(splits["train"], len(test))
        results["baseline"] = task_lib.scores(torch.tensor([label2id[y] for y in base]), golds, len(labels))
        results["wall_s"] = run.elapsed()
        write_json(p.reports / "metrics" / f"{task.name}.json", results)
        sample = [
            {"text": r["text"], "label": r["label"], **{init: predictions[init][i] for init in inits}}
            for i, r in enumerate(test[: task.n_predictions])
        ]
        write_jsonl(p.reports / "predictions" / f"{task.name}.jsonl", sample)

        run.log_metrics({f"{who}/{k}": v for who in (*inits, "baseline") for k, v in results[who].items()})
        run.log_artifact(p.reports / "predictions" / f"{task.name}.jsonl", "predictions")
        log.info("evaluate %s: %s", task.name,
                 ", ".join(f"{who} {results[who][results['metric']]:.3f}" for who in (*inits, "baseline")))
    return results
