"""Compare the runs of a Hydra sweep, or a set of DVC experiments, without the dashboard: a
markdown table (one row per run: the params that differ between the runs, the metric) and a bar
chart of the metric.

    python -m lmforge.compare                       # the latest sweep in the MLflow store
    python -m lmforge.compare --sweep <run id>      # a given sweep (its parent run)
    python -m lmforge.compare --exps                # every DVC experiment (`dvc exp show`)
    python -m lmforge.compare --exps exp-a exp-b --metric tasks.topic.pretrained.accuracy
    python -m lmforge.compare --metric final/best_val_score,final/trainable_params,final/peak_memory_mb
    python -m lmforge.compare --seeds               # experiments that differ by seed: mean ± std, and
                                                    # which pretrained-vs-scratch gaps beat the spread

Writes `<out>/compare.md` and `<out>/compare.png` (default out: reports/compare/) and prints
the table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from lmforge.config import flatten
from lmforge.report.compare import write
from lmforge.track.store import run_rows

DEFAULT_EXP_METRIC = "pretrain.val_loss"


# -- MLflow sweeps -----------------------------------------------------------------------------------
def sweep_runs(tracking_uri: str, experiment: str, sweep: str | None):
    """(parent, children) of a sweep: the given parent run id, else the latest sweep."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise SystemExit(f"no MLflow experiment {experiment!r} at {tracking_uri}")
    if sweep:
        parent = client.get_run(sweep)
    else:
        found = client.search_runs(
            [exp.experiment_id],
            filter_string="tags.`lmforge.kind` = 'sweep'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not found:
            raise SystemExit(f"no sweep in {tracking_uri}: run one with `python pipelines/<stage>.py -m ...`")
        parent = found[0]
    children = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'", max_results=10000
    )
    return client, parent, children


# -- DVC experiments ---------------------------------------------------------------------------------
def _data(entry: dict, kind: str) -> dict:
    files = (entry.get("data") or {}).get(kind) or {}
    out: dict = {}
    for name, content in files.items():
        out.update(flatten((content or {}).get("data") or {}))
    if kind == "params":  # compared as MLflow shows them: strings
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in out.items()}
    return {k: v for k, v in out.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}


def exp_rows(root: Path, names: list[str] | None = None) -> list[dict]:
    """Rows of `dvc exp show --json` (the workspace, the baseline and every experiment)."""
    out = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "show", "--json"], cwd=root, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(f"dvc exp show failed: {out.stderr.strip()}")
    rows = []
    for baseline in json.loads(out.stdout or "[]"):
        # an experiment still queued or running shows its baseline's metrics: its status says so
        entries = [(baseline, "")] + [
            (rev, ((exp.get("executor") or {}).get("state") or "").replace("success", ""))
            for exp in baseline.get("experiments") or []
            for rev in exp.get("revs", [])[:1]
        ]
        for e, status in entries:
            rev = e.get("rev") or ""
            name = e.get("name") or (rev if rev == "workspace" else rev[:7])
            if e is baseline and rev != "workspace":
                name = f"{name} (baseline)"
            rows.append({"name": name, "status": status, "params": _data(e, "params"), "metrics": _data(e, "metrics")})
    if names:
        rows = [r for r in rows if r["name"] in names]
    return [r for r in rows if r["metrics"] or r["params"]]


def main(argv: list[str] | None = None) -> int:
    from lmforge.config import project_root

    ap = argparse.ArgumentParser(prog="python -m lmforge.compare", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sweep", nargs="?", const="", default=None, help="a sweep's parent run id (default: latest)")
    ap.add_argument("--exps", nargs="*", default=None, help="DVC experiments to compare (default: all)")
    ap.add_argument(
        "--seeds",
        nargs="*",
        default=None,
        help="DVC experiments that differ by seed (default: all): mean ± std per task and system",
    )
    ap.add_argument("--metric", default=None, help="metric to rank by (several: comma-separated, ranked by the first)")
    ap.add_argument("--tracking-uri", default=None, help="default: sqlite:///<root>/mlflow.db")
    ap.add_argument("--experiment", default="lmforge")
    ap.add_argument("--out", type=Path, default=None, help="default: <root>/reports/compare")
    args = ap.parse_args(argv)
    root = project_root()
    out = args.out or root / "reports" / "compare"
    if args.seeds is not None:
        from lmforge.report.seeds import aggregate, markdown

        # finished experiments only: not the workspace or a commit, whose metrics may predate its params
        rows = exp_rows(root, args.seeds or None)
        groups = aggregate([r for r in rows if r["name"] != "workspace" and "(" not in r["name"] and not r["status"]])
        if not groups:
            raise SystemExit(
                "no DVC experiments with task metrics and a seed: run some first, e.g. `make seeds` "
                "(fine-tune seeds) or `dvc exp run --temp -S seed=<n>` once per seed (the whole pipeline)"
            )
        out.mkdir(parents=True, exist_ok=True)
        md = markdown(groups)
        (out / "seeds.md").write_text(md)
        print(md)
        print(f"written to {out}/seeds.md")
        return 0
    if args.exps is not None:
        rows = exp_rows(root, args.exps or None)
        md = write(rows, args.metric or DEFAULT_EXP_METRIC, out, "DVC experiments")
    else:
        uri = args.tracking_uri or f"sqlite:///{root}/mlflow.db"
        client, parent, children = sweep_runs(uri, args.experiment, args.sweep or None)
        metric = args.metric or ("objective" if parent.data.tags.get("lmforge.sweep.optimized_metric") else None)
        md = write(run_rows(children), metric, out, f"Comparison: {parent.info.run_name}")
    print(md)
    print(f"written to {out}/compare.md" + (" and compare.png" if (out / "compare.png").exists() else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
