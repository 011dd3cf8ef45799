"""The pretrain stage as a Hydra app: `python pipelines/pretrain.py [overrides]` (see pipelines/_app.py)."""

import _app


def pretrain(cfg):
    from lmforge.stages import pretrain as stage  # after the command line checks out: a typo answers before torch loads

    return stage.run(cfg)


if __name__ == "__main__":
    _app.run(pretrain)
