"""The finetune stage as a Hydra app: `python pipelines/finetune.py [overrides]`."""

import hydra
from omegaconf import DictConfig

import _app
from lmforge.stages import finetune


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> dict:
    return _app.main(finetune.run, cfg)


if __name__ == "__main__":
    main()
