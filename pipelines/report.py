"""The report stage as a Hydra app: `python pipelines/report.py [overrides]` (see pipelines/_app.py)."""

import _app


def report(cfg):
    from lmforge.stages import report as stage  # after the command line checks out: a typo answers before torch loads

    return stage.run(cfg)


if __name__ == "__main__":
    _app.run(report)
