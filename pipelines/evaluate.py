"""The evaluate stage as a Hydra app: `python pipelines/evaluate.py [overrides]`."""

import hydra
from omegaconf import DictConfig

import _app
from lmforge.stages import evaluate


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> dict:
    return _app.main(evaluate.run, cfg)


if __name__ == "__main__":
    main()
