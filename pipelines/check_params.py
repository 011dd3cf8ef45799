"""The `conf` stage of dvc.yaml, which every other stage follows: params.yaml must be conf/ as it is
now composed. `dvc repro` never recomposes params.yaml, so after an edit to conf/ it stops here, in
one line naming the command that recomposes it, before any stage runs on the old values. When
params.yaml is current it writes the same bytes to artifacts/conf-checked every time, so nothing
downstream re-runs for it."""

import sys

from lmforge.config import check_composed_from, project_root
from lmforge.errors import LmforgeError
from lmforge.fileio import read_yaml, write_text

if __name__ == "__main__":
    root = project_root()
    try:
        params = read_yaml(root / "params.yaml")
        check_composed_from(params if isinstance(params, dict) else {}, root / "params.yaml", root / "conf")
    except LmforgeError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    write_text(root / "artifacts" / "conf-checked", "params.yaml is conf/ composed\n")
