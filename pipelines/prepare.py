"""The prepare stage as a Hydra app: `python pipelines/prepare.py [overrides]` (see pipelines/_app.py)."""

import _app
from lmforge.stages import prepare

if __name__ == "__main__":
    _app.run(prepare.run)
