"""The pretrain stage as a Hydra app: `python pipelines/pretrain.py [overrides]` (see pipelines/_app.py)."""

import _app
from lmforge.stages import pretrain

if __name__ == "__main__":
    _app.run(pretrain.run)
