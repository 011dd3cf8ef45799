"""The prepare stage as a Hydra app: `python pipelines/prepare.py [overrides]`."""

import hydra
from omegaconf import DictConfig

import _app
from lmforge.stages import prepare


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> dict:
    return _app.main(prepare.run, cfg)


if __name__ == "__main__":
    main()
