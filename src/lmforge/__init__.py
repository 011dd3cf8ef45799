"""lmforge: pretrain, fine-tune and evaluate language models as a reproducible pipeline."""

__version__ = "0.1.0"
