"""The prepare stage as a Hydra app: `python pipelines/prepare.py [overrides]` (see pipelines/_app.py)."""

import _app


def prepare(cfg):
    from lmforge.stages import prepare as stage  # after the command line checks out: a typo answers before torch loads

    return stage.run(cfg)


if __name__ == "__main__":
    _app.run(prepare)
