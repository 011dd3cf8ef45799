"""The evaluate stage as a Hydra app: `python pipelines/evaluate.py [overrides]` (see pipelines/_app.py)."""

import _app


def evaluate(cfg):
    from lmforge.stages import evaluate as stage  # after the command line checks out: a typo answers before torch loads

    return stage.run(cfg)


if __name__ == "__main__":
    _app.run(evaluate)
