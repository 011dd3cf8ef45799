"""The finetune stage as a Hydra app: `python pipelines/finetune.py [overrides]` (see pipelines/_app.py)."""

import _app
from lmforge.stages import finetune

if __name__ == "__main__":
    _app.run(finetune.run)
