"""The evaluate stage as a Hydra app: `python pipelines/evaluate.py [overrides]` (see pipelines/_app.py)."""

import _app
from lmforge.stages import evaluate

if __name__ == "__main__":
    _app.run(evaluate.run)
