"""The README cannot drift from the code: every ```bash block of it carries a test annotation,

    <!-- test: run -->       run as typed (after the set-up, with the environment activated) in a
                             copy of the smoke pipeline's repo, i.e. at smoke size; an
                             `<!-- expect: regex -->` after the block must match its output
    <!-- test: compose -->   each command is checked without running it: stage apps and
                             `dvc exp run -S` compose (sweeps expanded, params.yaml's own check
                             included), `make` targets dry-run, other commands' subcommands exist
    <!-- test: skip: why --> not run here, and why (another test covers it)

and this test carries them out."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, copy_repo, run_in
from servers import env

README = (ROOT / "README.md").read_text()
BLOCK = re.compile(
    r"(?:<!-- test: (?P<how>[a-z]+)(?::\s*(?P<why>.*?))? -->\n)?```bash\n(?P<body>.*?)```\n"
    r"(?:<!-- expect: (?P<expect>.*?) -->\n)?",
    re.S,
)


def blocks() -> list[dict]:
    return [m.groupdict() | {"line": README[: m.start()].count("\n") + 1} for m in BLOCK.finditer(README)]


def commands(body: str) -> list[str]:
    """The command lines of a block: continuations joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", body)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(shlex.join(shlex.split(line, comments=True)))
    return out


def test_every_bash_block_says_how_it_is_tested():
    found = blocks()
    assert len(found) >= 15
    unmarked = [b["line"] for b in found if b["how"] not in ("run", "compose", "skip")]
    assert not unmarked, f"README bash blocks without a test annotation, at lines {unmarked}"
    assert all(b["why"] for b in found if b["how"] == "skip"), "a skipped block says why"


# -- compose -------------------------------------------------------------------------------------------
def compose_stage(args: list[str]) -> None:
    from hydra import compose, initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    import lmforge.config  # noqa: F401
    from lmforge.compat import hydra_args_parser

    parsed = hydra_args_parser().parse_args(args)
    overrides = OverridesParser.create().parse_overrides(parsed.overrides)
    jobs = [[o.input_line for o in overrides]]
    if parsed.multirun:  # the sweep's jobs, as Hydra's basic sweeper expands them (Optuna's spaces stay whole)
        sweeps = [
            o for o in overrides if o.is_sweep_override() and not o.is_interval_sweep() and "tag(" not in o.input_line
        ]
        plain = [o for o in overrides if o not in sweeps and not o.is_sweep_override()]
        jobs = (
            [
                [o.input_line for o in plain] + job
                for batch in BasicSweeper.split_arguments(sweeps, None)
                for job in batch
            ]
            if sweeps
            else [[o.input_line for o in plain]]
        )
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        for job in jobs:
            compose(config_name=parsed.config_name or "config", overrides=job, return_hydra_config=True)


def compose_params(sets: list[str], tmp_path: Path) -> None:
    """What `dvc exp run -S ...` composes (DVC's own composition and lmforge's check), every job of a grid."""
    from dvc.utils.hydra import get_hydra_sweeps

    from lmforge.compat import dvc_compose_params

    for job in get_hydra_sweeps({"params.yaml": sets}) if sets else [{"params.yaml": []}]:
        dvc_compose_params(tmp_path / "params.yaml", ROOT / "conf", "params", ROOT, job["params.yaml"])


def check_command(cmd: str, tmp_path: Path) -> None:
    words = shlex.split(cmd)
    while words and re.match(r"^[A-Z_]+=", words[0]):  # VAR=value prefixes
        words = words[1:]
    if words[0] == "python" and words[1].startswith("pipelines/"):
        compose_stage(words[2:])
    elif words[:3] == ["dvc", "exp", "run"]:
        sets = [words[i + 1] for i, w in enumerate(words) if w == "-S"]
        compose_params(sets, tmp_path)
    elif words[0] == "make":
        out = subprocess.run(["make", "-n", *words[1:]], cwd=ROOT, capture_output=True, text=True, env=env())
        assert out.returncode == 0, f"{cmd}: {out.stderr}"
    elif words[0] in ("dvc", "mlflow") or words[:2] == ["python", "-m"]:
        base = [sys.executable, "-m", words[2]] if words[0] == "python" else [words[0], *words[1:3]]
        sub = base if words[0] == "python" else [w for w in base if not w.startswith(("-", "/", "s3:", "ssh:"))]
        out = subprocess.run([*sub, "--help"], cwd=ROOT, capture_output=True, text=True, env=env())
        assert out.returncode == 0, f"{cmd}: {out.stderr[-500:]}"
    else:
        raise AssertionError(f"README compose block: no check for {cmd!r}")


@pytest.mark.parametrize("block", [b for b in blocks() if b["how"] == "compose"], ids=lambda b: f"line{b['line']}")
def test_compose_blocks(block, tmp_path):
    for cmd in commands(block["body"]):
        check_command(cmd, tmp_path)


# -- run -----------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("block", [b for b in blocks() if b["how"] == "run"], ids=lambda b: f"line{b['line']}")
def test_run_blocks(block, smoke_pipeline, tmp_path):
    repo = copy_repo(smoke_pipeline[0], tmp_path / "repo")
    (repo / ".venv").symlink_to(Path(sys.executable).parent.parent)  # `source .venv/bin/activate`, as typed
    out = run_in(["bash", "-e", "-c", block["body"]], repo)
    if block["expect"]:
        assert re.search(block["expect"], out.stdout + out.stderr), (block["expect"], out.stdout[-2000:])


def test_the_results_table_is_the_committed_baseline():
    """The README's line of the default run's scores (pretrained) says what reports/metrics.json holds."""
    import json

    tasks = json.loads((ROOT / "reports/metrics.json").read_text())["tasks"]
    assert set(tasks) == {"topic", "sentiment", "ner", "qa", "summarization", "translation"}
    for task, result in tasks.items():
        digits = 3 if result["scale"] == 1 else 2
        assert f"{task} {result['pretrained'][result['metric']]:.{digits}f}" in README, task
