"""Resolve pretrained weights to local files. Nothing is ever downloaded.

Order: the ``lift_resolve_weights`` hook (first non-None wins), then ``$LIFT_WEIGHTS_DIR``,
then ``~/.cache/lift/weights``, then torch hub's checkpoint cache (``$TORCH_HOME``), where
torchvision and piq would have put the file had they been allowed to download it.
"""

from __future__ import annotations

import os
from pathlib import Path

WEIGHTS_ENV = "LIFT_WEIGHTS_DIR"


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights are not available locally."""


def search_dirs() -> list[Path]:
    """Directories searched for a weights file, in order."""
    dirs: list[Path] = []
    if os.environ.get(WEIGHTS_ENV):
        dirs.append(Path(os.environ[WEIGHTS_ENV]).expanduser())
    dirs.append(Path("~/.cache/lift/weights").expanduser())
    import torch.hub

    dirs.append(Path(torch.hub.get_dir()) / "checkpoints")
    return dirs


def resolve_weights(name: str, kind: str, *, hint: str = "") -> Path:
    """Return a local path for weights file ``name`` needed by a ``kind`` component.

    Raises WeightsNotFoundError naming the file, every place searched, and ``hint``
    (e.g. where the original file comes from).
    """
    from lift.registry import get_plugin_manager

    found = get_plugin_manager().hook.lift_resolve_weights(name=name, kind=kind)
    if found is not None:
        path = Path(found)
        if not path.is_file():
            raise WeightsNotFoundError(
                f"a lift_resolve_weights hook returned {path} for {name!r} ({kind}), "
                "but no such file exists"
            )
        return path
    searched = search_dirs()
    for directory in searched:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    places = "\n  ".join(str(d / name) for d in searched)
    raise WeightsNotFoundError(
        f"pretrained weights {name!r} for the {kind} are not available offline. Place the file "
        f"at one of:\n  {places}\n(or set ${WEIGHTS_ENV} to a folder holding it). {hint}".rstrip()
    )
