"""What every stage app shares: `python pipelines/<stage>.py [overrides]` as a Hydra app, with
lmforge's logging, one-line errors and sweep handling.

Bad input ends the process with exit status 2 and one line naming the key, file or line and what
would work — a command-line override that does not compose (checked before Hydra starts the app),
and any `LmforgeError` a stage raises. `LMFORGE_DEBUG=1` (or Hydra's `HYDRA_FULL_ERROR=1`) shows
the traceback instead. In a sweep (`-m`), a failed job is recorded and the sweep goes on. SIGTERM
and SIGINT stop a stage (`lmforge.interrupt`: training checkpoints where it stands) with one line
saying how to resume and exit status 128 + the signal.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Callable

import hydra
from omegaconf import DictConfig

import lmforge.host  # noqa: F401  (starts measuring the machine's load while the app loads)
from lmforge.config import (  # the schema and resolvers, registered with Hydra on import
    check_composed,
    check_map_overrides,
    composition_error,
)
from lmforge.errors import LmforgeError, storage_fault
from lmforge.interrupt import Interrupted, chain_requeue, hand_over, install
from lmforge.track.run import in_multirun, run_job

CONF = Path(__file__).resolve().parent.parent / "conf"


# what libraries print that says nothing to a user of a stage, filtered where it comes from: a
# logger's message, or a warning's text and module (every other warning still shows)
QUIET_LOGS = {
    "lightning.pytorch.utilities.rank_zero": (
        "💡 Tip:",
        "GPU available:",
        "TPU available:",
        "HPU available:",
        "Using bfloat16 Automatic Mixed Precision",
    ),
    "lightning.fabric.utilities.rank_zero": ("💡 Tip:",),
    "lightning.pytorch.trainer.connectors.signal_connector": ("[rank: 0] Received SIGTERM",),  # lmforge says it
    "mlflow.store.db.utils": ("Creating initial MLflow database tables", "Updating database tables"),
    # a file `datasets` cannot parse: it logs, then raises what lmforge reports in its one line
    "datasets.packaged_modules.json.json": (
        "Failed to load JSON from file",
        "Failed to read file",
        "Failed to convert pandas DataFrame",
    ),
    "datasets.packaged_modules.csv.csv": ("Failed to read file",),
}
QUIET_WARNINGS = (  # (message regex, module regex); MLflow's model-logging advice: track/registry.py
    (r".*isinstance\(treespec, LeafSpec\)", r"lightning\.pytorch\.utilities\._pytree"),
    # a resumed stage says where it resumes; a fine-tune resumed mid-epoch goes on where it stood
    # (train.tasks.EpochPosition), which Lightning cannot see
    (r"You're resuming from a checkpoint that ended before the epoch ended", r"lightning\.pytorch\.loops"),
    (r"Checkpoint directory .* exists and is not empty", r"lightning\.pytorch\.callbacks\.model_checkpoint"),
)


def quiet_libraries() -> None:
    for name, starts in QUIET_LOGS.items():
        logging.getLogger(name).addFilter(lambda r, starts=starts: not str(r.msg).lstrip().startswith(starts))
    for message, module in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message, module=module)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _debug() -> bool:
    return os.environ.get("LMFORGE_DEBUG") == "1" or os.environ.get("HYDRA_FULL_ERROR") == "1"


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def check_command_line(argv: list[str]) -> None:
    """Compose the config the command line asks for (as Hydra is about to) and check it, so that an
    override that does not compose fails in one line instead of Hydra's multi-line report, and a
    bad value fails before the stage imports torch (`model` and `task` the stage checks itself)."""
    from hydra import compose, initialize_config_dir

    from lmforge.compat import hydra_args_parser

    args, _ = hydra_args_parser().parse_known_args(argv)
    if args.multirun or args.help or args.hydra_help or args.cfg or args.info or args.shell_completion:
        return  # Hydra's own modes: let it report
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose(config_name=args.config_name or "config", overrides=args.overrides)
    except Exception as e:
        if _debug():
            raise
        _fail(composition_error(e))
    try:
        check_map_overrides(args.overrides, cfg)
        check_composed(cfg)
    except LmforgeError as e:
        _fail(str(e))


def with_override(argv: list[str], override: str) -> list[str]:
    """`argv` with `override` added beside the overrides it has (Hydra's parser takes one run of them:
    `a=1 --cfg job b=2` is refused), or at the end when it has none."""
    from lmforge.compat import hydra_args_parser

    given = set(hydra_args_parser().parse_known_args(argv)[0].overrides)
    last = max((i for i, arg in enumerate(argv) if arg in given), default=len(argv) - 1)
    return [*argv[: last + 1], override, *argv[last + 1 :]]


def _stopped(stage: str, e: Interrupted) -> None:
    where = e.where or "(no output is left half-written)"
    print(
        f"{stage}: stopped by {signal.Signals(e.signum).name} {where}; run the same command to resume", file=sys.stderr
    )
    hand_over(e.signum)  # a SLURM job's preemption: submitit requeues it (and exits)
    sys.exit(e.exit_status)


def run(stage: Callable[[DictConfig], dict]) -> None:
    """Run `stage` as this script's Hydra app: a function named after its stage module
    (`lmforge.stages.<name>`) that imports it when called, once the command line has checked out."""
    quiet_libraries()
    install()
    if not _debug():
        check_command_line(sys.argv[1:])
    # Hydra names the job after the file of the function it runs (this one): name it after the stage
    sys.argv[1:] = with_override(sys.argv[1:], f"hydra.job.name={Path(sys.argv[0]).stem}")

    @hydra.main(version_base="1.3", config_path=str(CONF), config_name="config")
    def main(cfg: DictConfig) -> dict:
        logging.getLogger("lmforge").setLevel(logging.INFO)
        chain_requeue()  # (in a SLURM launcher's job, this runs in the job's own process)
        try:
            if in_multirun():  # a failed job is recorded (with the sections its stage declares) and the
                # sweep goes on; returns the optimized metric when cfg.optimized_metric is set
                return run_job(importlib.import_module(f"lmforge.stages.{stage.__name__}").run, cfg)
            return stage(cfg)
        except Interrupted as e:
            _stopped(stage.__name__, e)
        except LmforgeError as e:
            if _debug():
                raise
            _fail(str(e))
        except OSError as e:  # a full disk, a forbidden folder met where lmforge did not open the file
            if _debug() or (fault := storage_fault(e)) is None:
                raise
            _fail(str(fault))

    main()
