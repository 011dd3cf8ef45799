"""Data: corpus sources, the built-in world, the corpus index, tokenizers, token files, data-file readers."""
