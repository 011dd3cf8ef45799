"""The finetune stage as a Hydra app: `python pipelines/finetune.py [overrides]` (see pipelines/_app.py)."""

import _app


def finetune(cfg):
    from lmforge.stages import finetune as stage  # after the command line checks out: a typo answers before torch loads

    return stage.run(cfg)


if __name__ == "__main__":
    _app.run(finetune)
