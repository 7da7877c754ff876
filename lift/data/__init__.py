"""Texture data: file I/O, folder and synthetic sources, the dataset and the DataModule.

Names are imported on first use (PEP 562), so ``import lift.data`` stays light for the
``lift data`` commands and does not pull in Lightning or the synthetic generator.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TextureError": "lift.data.io",
    "read_texture": "lift.data.io",
    "write_texture": "lift.data.io",
    "texture_info": "lift.data.io",
    "TextureSource": "lift.data.sources",
    "SyntheticSource": "lift.data.sources",
    "SPLITS": "lift.data.sources",
    "SPLIT_KEYS": "lift.data.sources",
    "FolderSource": "lift.data.folder",
    "check_folder": "lift.data.folder",
    "TextureDataset": "lift.data.dataset",
    "TextureDataModule": "lift.data.datamodule",
    "collate_textures": "lift.data.datamodule",
    "TranslationDataModule": "lift.data.translation",
    "flatten_translation_batch": "lift.data.translation",
    "write_synthetic_benchmark": "lift.data.writer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lift.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
