"""lmforge's check of params.yaml, loaded by DVC when it composes conf/pipeline.yaml (`dvc exp run`;
.dvc/config: `hydra.plugins_path = .`). Hydra imports the modules of `hydra_plugins`; importing
this one registers the resolver of params.yaml's `conf_digest`, which checks the whole composition
before any stage runs, and has DVC print a composition error in one line (see lmforge/params.py)."""

from lmforge.params import register_resolvers

register_resolvers()
