"""evaluate@<task>: test-split metrics of each fine-tuned init (`cfg.inits`) beside the family's
trivial baseline, the contamination of the task's evaluation splits by the pretraining corpus,
plot data for `dvc plots` (a confusion matrix, each system's primary score) and a sample of
predictions. Works for every task family (`lmforge.tasks`).

Evaluate scores only models that belong to this run: each fine-tuned directory must have been
built from the current pretrained model (its weights digest) with the task's current training
settings; a missing or foreign model is an error that says which command makes it. Settings read
only at evaluation (beam size, n-best, …) may differ: they are the point of re-evaluating.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from lmforge.config import task_seed
from lmforge.data.corpus_index import CorpusIndex
from lmforge.data.tokenizer import load_tokenizer
from lmforge.errors import DataError
from lmforge.fileio import write_json, write_jsonl, write_text
from lmforge.saved_model import SavedModel
from lmforge.stages.common import StageContext, log, stage, task_names
from lmforge.tasks import configure, configure_all, load_task_model
from lmforge.tasks.base import training_settings
from lmforge.tasks.splits import load_splits

PARAMS = ("seed", "finetune_seed", "max_task_records", "task")


def _csv_cell(x: str) -> str:
    return '"' + x.replace('"', '""') + '"' if any(c in x for c in ',"\n') else x


def models(ctx: StageContext, family) -> dict:
    """{init: (model, saved)} of the inits to score, each checked to belong to this run."""
    paths, task = ctx.paths, family.task
    pretrained = SavedModel.load(paths.pretrained_model)
    make = f"`python pipelines/finetune.py task={task}` (or `dvc repro finetune@{task}`)"
    out = {}
    for init in ctx.cfg.inits:
        model_dir = paths.finetuned(task, init) / "model"
        if not model_dir.is_dir():
            raise DataError(f"{model_dir}: no fine-tuned {init} model of task {task!r}: run {make}")
        model, trained, saved = load_task_model(model_dir)
        why = None
        if saved.task != task or saved.init != init:
            why = f"it is the {saved.init} model of task {saved.task!r}"
        elif saved.pretrained_digest != pretrained.weights_digest:
            why = (
                f"it was fine-tuned from another pretrained model (digest {saved.pretrained_digest}, the current "
                f"{paths.pretrained_model} is {pretrained.weights_digest})"
            )
        elif training_settings(trained.config) != training_settings(family.config):
            now, then = training_settings(family.config), training_settings(trained.config)
            keys = sorted(k for k in {*now, *then} if now.get(k) != then.get(k))
            why = f"it was fine-tuned with other settings ({', '.join(f'task.{task}.{k}' for k in keys)})"
        if why:
            raise DataError(f"{model_dir}: {why}; re-run {make}")
        out[init] = (model, saved)
    return out


def run(cfg: DictConfig) -> dict:
    tasks = task_names(cfg)
    if not cfg.get("params_file"):  # every task's settings before the first one's work (DVC runs one task)
        configure_all(cfg.task, tasks)
    return {task: evaluate(cfg, task) for task in tasks}


def evaluate(cfg: DictConfig, task: str) -> dict:
    one = OmegaConf.merge(cfg, {"only_task": task})
    with stage(one, f"evaluate/{task}", PARAMS, tags={"lmforge.task": task}) as ctx:
        paths = ctx.paths
        family = configure(task, ctx.cfg.task[task])
        ctx.record(f"task.{task}", family.config)
        splits = load_splits(
            family, task_seed(ctx.cfg), ctx.cfg.max_task_records, paths.corpus_index, paths.root, ctx.cfg.seed
        )
        test = splits["test"]
        scored = models(ctx, family)
        ctx.run.begin()  # the inputs checked out: the work (and its MLflow run) begins

        results: dict = {
            "task": task,
            "family": family.name,
            "metric": family.primary,
            "scale": family.scale,
            "description": family.description,
            "inits": list(scored),
            "n_test": len(test),
            "skipped": splits.skipped,
        }
        predictions: dict[str, list] = {}
        head: dict = {}
        for init, (model, saved) in scored.items():
            head = saved.head or {}
            tok = load_tokenizer(paths.finetuned(task, init) / "model")
            predictions[init] = family.predict(model, test, tok, head)
            results[init] = family.scores(predictions[init], test, head)
        predictions["baseline"] = family.baseline(splits["train"], test, head, task_seed(ctx.cfg))
        results["baseline"] = family.scores(predictions["baseline"], test, head)
        index = CorpusIndex(paths.corpus_index)
        results["contamination"] = {
            split: index.overlap(family.document(r) for r in splits[split]) for split in ("validation", "test")
        }
        systems = (*scored, "baseline")
        write_json(paths.reports / "metrics" / f"{task}.json", results)
        for init in scored:
            pairs = family.outcomes(test, predictions[init])
            write_text(
                paths.reports / "plots" / "confusion" / f"{task}-{init}.csv",
                "actual,predicted\n" + "".join(f"{_csv_cell(a)},{_csv_cell(b)}\n" for a, b in pairs),
            )
        write_text(
            paths.reports / "plots" / "scores" / f"{task}.csv",
            "system,score\n" + "".join(f"{who},{results[who][family.primary]:.4f}\n" for who in systems),
        )
        sample = [
            family.show(r, {who: predictions[who][i] for who in predictions})
            for i, r in enumerate(test[: family.config.n_predictions])
        ]
        write_jsonl(paths.reports / "predictions" / f"{task}.jsonl", sample)

        ctx.run.log_metrics({f"{who}/{k}": v for who in systems for k, v in results[who].items()})
        ctx.run.log_artifact(paths.reports / "predictions" / f"{task}.jsonl", "predictions")
        ctx.record_runtime(f"evaluate/{task}")
        log.info(
            "evaluate %s (inits %s): %s",
            task,
            ", ".join(scored),
            ", ".join(f"{who} {family.primary} {results[who][family.primary]:.3f}" for who in systems),
        )
    return results
