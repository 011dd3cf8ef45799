"""evaluate@<task>: test-split metrics of every fine-tuned init beside the family's trivial
baseline, plot data for `dvc plots` (a confusion matrix, and each system's primary score), and a
sample of predictions. Works for every task family (`lmforge.tasks`)."""

from __future__ import annotations

from omegaconf import DictConfig

from lmforge.data.tokenizer import load_tokenizer
from lmforge.errors import DataError
from lmforge.fileio import write_json, write_jsonl, write_text
from lmforge.stages.common import INITS, log, stage
from lmforge.tasks import check_config, family, load_model, load_splits


def _csv_cell(x: str) -> str:
    return '"' + x.replace('"', '""') + '"' if any(c in x for c in ',"\n') else x


def run(cfg: DictConfig) -> dict:
    task = cfg.task
    check_config(task, cfg.model.max_len)
    fam = family(task.family)
    with stage(cfg, f"evaluate/{task.name}", tags={"lmforge.task": task.name}) as run:
        p = run.paths
        splits, _, skipped = load_splits(task, p.tasks, cfg.seed)
        test = splits["test"]
        inits = [i for i in INITS if (p.finetuned(task.name, i) / "model").is_dir()]
        if not inits:
            raise DataError(f"no fine-tuned model under {p.finetune / task.name}: run finetune first")

        primary = fam.primary(task)
        results: dict = {"task": task.name, "family": fam.name, "metric": primary, "scale": fam.scales[primary],
                         "scales": dict(fam.scales), "n_test": len(test), "skipped": skipped}
        predictions: dict[str, list] = {}
        meta: dict = {}
        for init in inits:
            model_dir = p.finetuned(task.name, init) / "model"
            model, _, mcfg = load_model(model_dir)
            meta = mcfg.get("meta") or {"labels": mcfg.get("labels")}
            tok = load_tokenizer(model_dir)
            predictions[init] = fam.predict(model, test, tok, meta, task)
            results[init] = fam.scores(predictions[init], test, meta)
        predictions["baseline"] = fam.baseline(splits["train"], test, meta, task, cfg.seed)
        results["baseline"] = fam.scores(predictions["baseline"], test, meta)
        results["wall_s"] = run.elapsed()
        write_json(p.reports / "metrics" / f"{task.name}.json", results)

        for init in inits:
            pairs = fam.outcomes(test, predictions[init])
            write_text(p.reports / "plots" / "confusion" / f"{task.name}-{init}.csv",
                       "actual,predicted\n" + "".join(f"{_csv_cell(a)},{_csv_cell(b)}\n" for a, b in pairs))
        write_text(p.reports / "plots" / "scores" / f"{task.name}.csv",
                   "system,score\n" + "".join(f"{who},{results[who][primary]:.4f}\n"
                                                   for who in (*inits, "baseline")))
        sample = [fam.show(r, {who: predictions[who][i] for who in predictions})
                  for i, r in enumerate(test[: task.n_predictions])]
        write_jsonl(p.reports / "predictions" / f"{task.name}.jsonl", sample)

        run.log_metrics({f"{who}/{k}": v for who in (*inits, "baseline") for k, v in results[who].items()})
        run.log_artifact(p.reports / "predictions" / f"{task.name}.jsonl", "predictions")
        log.info("evaluate %s: %s", task.name,
                 ", ".join(f"{who} {primary} {results[who][primary]:.3f}" for who in (*inits, "baseline")))
    return results
