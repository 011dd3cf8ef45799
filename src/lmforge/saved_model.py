"""A saved model directory — the one format every stage, serving, export and the tests write and
read, never a pickle:

    lmforge.json        this schema (`SavedModel`): what the weights are and where they came from
    model.safetensors   the weights (the backbone's under `backbone.`, a task head's beside them)
    tokenizer.json, tokenizer_config.json, special_tokens_map.json

The manifest is named so it never collides with a Hugging Face `config.json` (an exported model
directory has that one; see `lmforge.export`). `version` says which schema wrote it; a manifest
from a newer lmforge is refused rather than misread.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Optional

import torch

from lmforge.errors import DataError, first_line
from lmforge.fileio import read_json, write_json

MANIFEST = "lmforge.json"
WEIGHTS = "model.safetensors"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
VERSION = 1
KINDS = ("language_model", "task_model")
REMAKE = "re-run the stage that wrote it"  # what mends a damaged model directory


@dataclass
class SavedModel:
    kind: str  # language_model (the pretrain stage's) | task_model (a fine-tune's)
    backbone: dict  # arch + the backbone's settings, derived ones included: `models.build_backbone(backbone)`
    objective: str  # how the backbone was pretrained: clm | mlm
    model: dict = field(default_factory=dict)  # the `model` config section it was built from (for the record)
    weights_digest: str = ""  # sha256 of model.safetensors, set by `save`
    # -- task models -------------------------------------------------------------------------------
    task: Optional[str] = None  # the task's name (conf/task/<name>.yaml)
    family: Optional[str] = None  # its family (lmforge.tasks)
    task_config: Optional[dict] = None  # the family's settings it was trained with
    head: Optional[dict] = None  # what the family's head needs besides weights (labels, pooling, …)
    init: Optional[str] = None  # pretrained | scratch
    pretrained_digest: Optional[str] = None  # weights_digest of the pretrained model it was built from
    lmforge_version: str = ""
    version: int = VERSION

    def save(
        self,
        directory: str | Path,
        state: dict[str, torch.Tensor],
        tokenizer_dir: str | Path,
        max_len: int | None = None,
    ) -> "SavedModel":
        """Write weights, manifest and tokenizer into `directory` (callers make it atomic); returns
        the manifest as written (with its weights digest)."""
        from safetensors.torch import save_file

        from lmforge import __version__

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors, seen = {}, set()
        for k, v in state.items():
            v = v.detach().to("cpu").contiguous()
            # tied weights (e.g. a Hugging Face LM head) share storage, which safetensors refuses: copy
            if v.numel() and v.untyped_storage().data_ptr() in seen:
                v = v.clone()
            seen.add(v.untyped_storage().data_ptr())
            tensors[k] = v
        save_file(tensors, str(directory / WEIGHTS), metadata={"format": "pt"})
        self.weights_digest = file_digest(directory / WEIGHTS)
        self.lmforge_version = __version__
        write_json(directory / MANIFEST, asdict(self))
        copy_tokenizer(tokenizer_dir, directory, max_len)
        return self

    @classmethod
    def load(cls, directory: str | Path) -> "SavedModel":
        """The manifest of a model directory (weights are read by `weights`)."""
        directory = Path(directory)
        path = directory / MANIFEST
        if not directory.is_dir():
            raise DataError(f"{directory}: no model directory there; run the stage that makes it")
        if not path.is_file():
            hint = (
                "a Hugging Face directory: fine-tune it as model=hf model.pretrained=<it>"
                if (directory / "config.json").is_file()
                else REMAKE
            )
            raise DataError(f"{directory}: not an lmforge model directory (no {MANIFEST}); {hint}")
        try:
            data = read_json(path)
        except DataError as e:
            raise DataError(f"{e}: {REMAKE}") from None
        if not isinstance(data, dict):
            raise DataError(f"{path}: not a model manifest (a JSON object); {REMAKE}")
        version = data.get("version")
        if not isinstance(version, int) or version > VERSION:
            raise DataError(
                f"{path}: manifest version {version!r}; this lmforge reads version {VERSION} "
                "(written by a newer lmforge? upgrade it)"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown or data.get("kind") not in KINDS or not isinstance(data.get("backbone"), dict):
            raise DataError(
                f"{path}: not a valid model manifest (kind {data.get('kind')!r}, unknown keys {unknown}); {REMAKE}"
            )
        if not (directory / WEIGHTS).is_file():
            raise DataError(f"{directory / WEIGHTS} is missing: the model directory is incomplete; {REMAKE}")
        return cls(**data)

    def weights(self, directory: str | Path) -> dict[str, torch.Tensor]:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(directory) / WEIGHTS
        if not path.is_file():
            raise DataError(f"{path} is missing: the model directory is incomplete; {REMAKE}")
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise DataError(
                f"{path}: not a readable safetensors file ({first_line(e)}); the file is damaged or truncated: {REMAKE}"
            ) from None


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def copy_tokenizer(src: str | Path, dst: str | Path, max_len: int | None = None) -> None:
    """The tokenizer files of `src` into `dst`, with `model_max_length` set when given."""
    import json

    src, dst = Path(src), Path(dst)
    for name in TOKENIZER_FILES:
        if (src / name).is_file() and (src / name).resolve() != (dst / name).resolve():
            shutil.copy2(src / name, dst / name)
    cfg_path = dst / "tokenizer_config.json"
    if max_len is not None and cfg_path.is_file():
        data = json.loads(cfg_path.read_text(encoding="utf-8"))
        data["model_max_length"] = int(max_len)
        cfg_path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
