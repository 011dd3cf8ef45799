"""The report stage as a Hydra app: `python pipelines/report.py [overrides]` (see pipelines/_app.py)."""

import _app
from lmforge.stages import report

if __name__ == "__main__":
    _app.run(report.run)
