#!/usr/bin/env python
"""Time `make test` on fresh clones of this checkout's HEAD and of a reference commit, one after the
other on the same machine, with the line coverage of `src/` each suite reaches.

    git clone <repo> <tmp>/<side>/lmforge        (HEAD, then --against; <tmp>/<side>/shared -> ../shared)
    make test VENV=<venv> -o <venv>/.dev-installed   (the existing venv: install time is not measured)

Each side's `make test` is what that commit's README asks of a contributor (HEAD: lint, then one
pytest worker per core; an older commit: whatever its Makefile says). Wall time and CPU time (user +
system of every process the suite started) come from the process tree; the tests counted from
pytest's last line. Both clones sit beside the same `shared` folder, so both run the tests that
need `../shared`.

`--coverage` adds pytest-cov to both suites (`--cov`, coverage.py's `patch = subprocess`, so the stage
processes that tests start are measured too) and reports the share of `src/lmforge`'s lines run;
coverage slows a suite, so its times are then the suite's under coverage (run without it for the
times alone). Targets (issue #20): HEAD's wall and CPU time <= 0.5x the reference's, its coverage
not lower.

    python benchmarks/suite_time.py                        # HEAD against d3cde62
    python benchmarks/suite_time.py --coverage             # with the coverage of both: 68 min on 2 AVX2 cores
    python benchmarks/suite_time.py --quick                # two small test files on each side
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from harness import ROOT, Parser, checked, logs_beside, report, run, run_logged, scratch, stage_env

SUMMARY_RE = re.compile(r"=+ (.*\d+ (?:passed|failed).*) in ([\d.]+)s")


def counts(output: str) -> tuple[dict[str, int], float | None]:
    """pytest's last line as {"passed": n, "failed": n, ...} and its own seconds."""
    found = SUMMARY_RE.findall(output)
    if not found:
        return {}, None
    line, seconds = found[-1]
    return {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", line)}, float(seconds)


def coverage_config(side_dir: Path) -> Path:
    rc = side_dir / "coveragerc"
    rc.write_text(
        f"[run]\nsource_pkgs = lmforge\nparallel = true\npatch = subprocess\ndata_file = {side_dir / '.coverage'}\n"
    )
    return rc


def side(args, base: Path, name: str, rev: str, logs: Path) -> dict:
    """Clone `rev` into base/name/lmforge beside base/name/shared and run its `make test`."""
    side_dir = base / name
    clone = side_dir / "lmforge"
    side_dir.mkdir(parents=True)
    if args.shared.is_dir():
        (side_dir / "shared").symlink_to(args.shared.resolve())
    checked(run(["git", "clone", "--quiet", "--no-checkout", str(args.repo), str(clone)]), "git clone")
    checked(run(["git", "-C", str(clone), "checkout", "--quiet", rev]), f"git checkout {rev}")
    head = run(["git", "-C", str(clone), "log", "-1", "--format=%h %s"]).output.strip()
    print(f"[{name}] {head[:100]}", flush=True)

    venv = args.venv.resolve()
    env = stage_env(clone / "src") | {"PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    env |= {"CI": None, "PYTEST_ADDOPTS": None}
    pytest_args = list(args.tests)
    cov_json = side_dir / "coverage.json"
    if args.coverage:
        pytest_args += ["--cov", f"--cov-config={coverage_config(side_dir)}", f"--cov-report=json:{cov_json}"]
    make = ["make", f"VENV={venv}", "-o", str(venv / ".installed"), "-o", str(venv / ".dev-installed")]
    make += ["test", f"PYTEST_ARGS={' '.join(pytest_args)}"]
    timed = run_logged(f"{name}_make_test", make, logs, cwd=clone, env=env, timeout=args.timeout, echo=args.echo)
    tests, pytest_s = counts(timed.output)
    result = {
        "rev": head, "rc": timed.returncode, "timed_out": timed.timed_out, "wall_s": timed.wall_s,
        "cpu_s": timed.cpu_s, "pytest_s": pytest_s, "tests": tests,
    }  # fmt: skip
    if args.coverage and cov_json.exists():
        totals = json.loads(cov_json.read_text())["totals"]
        result["coverage"] = {k: totals[k] for k in ("percent_covered", "covered_lines", "num_statements")}
    return result


def rows_of(result: dict) -> list[tuple[str, str]]:
    rows = []
    for name in ("head", "reference"):
        s = result[name]
        tests = ", ".join(f"{n} {word}" for word, n in s["tests"].items()) or f"rc {s['rc']}"
        cov = f", coverage {s['coverage']['percent_covered']:.1f} %" if "coverage" in s else ""
        rows.append((f"{name} ({s['rev'][:40]})", f"{s['wall_s']:.0f} s wall, {s['cpu_s']:.0f} s CPU, {tests}{cov}"))
    for key, ratio in result["ratios"].items():
        rows.append((key, f"{ratio:.2f}"))
    return rows


def main(argv=None) -> bool:
    p = Parser(__doc__, "suite_time", workdir="where to clone", quick={"tests": ["tests/test_config.py"]})
    p.add_argument("--against", default="d3cde62", help="the reference commit (default: d3cde62, issue #20's)")
    p.add_argument("--repo", type=Path, default=ROOT, help="repository to clone (default: this checkout)")
    p.add_argument("--venv", type=Path, default=ROOT / ".venv", help="existing virtual environment to reuse (VENV=)")
    p.add_argument("--shared", type=Path, default=ROOT.parent / "shared", help="the shared folder put beside both")
    p.add_argument("--coverage", action="store_true", help="measure src/'s line coverage too (pytest-cov)")
    p.add_argument("--tests", nargs="*", default=[], help="pytest arguments, e.g. test files (default: the suite)")
    p.add_argument("--timeout", type=float, default=5400.0, help="seconds allowed for each side's make test")
    p.add_argument("--quiet", dest="echo", action="store_false", help="do not echo the suites' output")
    args = p.parse_args(argv)
    if not (args.venv / "bin" / "python").exists():
        sys.exit(f"--venv {args.venv} has no bin/python (make dev there first)")
    logs = logs_beside(args.out)
    result: dict = {"benchmark": "suite_time", "config": vars(args)}
    with scratch(args.workdir, args.keep) as base:
        result["head"] = side(args, base, "head", "HEAD", logs)
        args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")  # HEAD's, should the other not end
        result["reference"] = side(args, base, "reference", args.against, logs)
    head, ref = result["head"], result["reference"]
    result["ratios"] = {"wall, head over reference": head["wall_s"] / ref["wall_s"]}
    result["ratios"]["CPU, head over reference"] = head["cpu_s"] / ref["cpu_s"]
    if "coverage" in head and "coverage" in ref:
        result["coverage_points_head_minus_reference"] = (
            head["coverage"]["percent_covered"] - ref["coverage"]["percent_covered"]
        )
    result["ok"] = head["rc"] == 0 and ref["rc"] == 0
    report("suite_time", rows_of(result) + [("both suites passed", str(result["ok"]))], result, args.out)
    return result["ok"]


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
