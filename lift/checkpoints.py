"""Reading the stages' checkpoints: weights, and the components they were trained with.

A stage module records the specs (:mod:`lift.spec`) of the components it trains under
``checkpoint["lift_components"]`` (e.g. the prior stage: ``generator`` and
``discriminator``), beside Lightning's ``state_dict``. A downstream stage names only the
checkpoint file: :func:`build_from_checkpoint` rebuilds the architecture from the spec and
loads the weights of a state-dict prefix into it. Everything here loads with
``torch.load(weights_only=True)``: a checkpoint cannot run code.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lift.spec import SpecError, build

COMPONENTS_KEY = "lift_components"


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, or lacks what a stage needs from it."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's dict, loaded without unpickling code; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, random bytes, pickled code: all refused here
        raise CheckpointError(f"checkpoint {path} {_load_failure(path, err)}") from err
    if not isinstance(data, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(data).__name__}, not a dict")
    return data


def _load_failure(path: Path, err: Exception) -> str:
    """What is wrong with a checkpoint ``torch.load(weights_only=True)`` refused, in words."""
    text = str(err)
    if m := re.search(r"Unsupported global: GLOBAL ([\w.]+)", text):
        return (f"is refused: it holds a pickled {m.group(1)}, which loading with "
                "weights_only=True never runs (a checkpoint must hold only tensors and plain "
                "data; one carrying code is never executed)")
    if path.stat().st_size == 0:
        return "is empty (zero bytes)"
    if "central directory" in text or "PytorchStreamReader" in text or "zip archive" in text:
        return ("is truncated or corrupt (its zip archive is incomplete); rewrite it or use "
                "another checkpoint")
    with open(path, "rb") as fh:
        head = fh.read(2)
    if head[:1] == b"\x80" and ("Unsupported operand" in text or "Weights only" in text):
        return (f"is refused: a bare pickle (protocol {head[1]}), not a torch checkpoint; it "
                "was not unpickled, so nothing in it ran")
    if isinstance(err, (pickle.UnpicklingError, EOFError, UnicodeDecodeError)) or \
            "load key" in text or "Unsupported operand" in text:
        return "is not a torch checkpoint (its bytes are neither a zip archive nor a pickle)"
    first = text.strip().splitlines()[0][:200] if text.strip() else ""
    return f"cannot be read safely: {type(err).__name__}: {first}"


def state_with_prefix(data: dict[str, Any], prefix: str, path: str | Path) -> dict[str, Any]:
    """``<prefix>.*`` entries of a checkpoint's state dict, prefix removed."""
    state = data.get("state_dict", data)
    picked = {k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")}
    if not picked:
        prefixes = sorted({k.split(".", 1)[0] for k in state})
        raise CheckpointError(f"checkpoint {path} has no '{prefix}.*' weights (top-level "
                              f"modules: {prefixes})")
    return picked


def load_weights(module: nn.Module, path: str | Path, prefix: str,
                 data: dict[str, Any] | None = None) -> nn.Module:
    """Load ``<prefix>.*`` of checkpoint ``path`` into ``module`` (strict); return it.

    Submodules the component rebuilds itself (``rebuilt_modules()``, e.g. a translator's frozen
    G_phone) are left out of stage checkpoints; their keys may be missing."""
    data = read_checkpoint(path) if data is None else data
    rebuilt = tuple(f"{m}." for m in getattr(module, "rebuilt_modules", lambda: ())())
    if not [k for k in module.state_dict() if not k.startswith(rebuilt or ("\0",))]:
        return module  # nothing to load (a parameter-free component, e.g. PhoneTexture)
    missing, unexpected = module.load_state_dict(state_with_prefix(data, prefix, path),
                                                 strict=False)
    missing = [k for k in missing if not k.startswith(rebuilt)] if rebuilt else missing
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {path}: '{prefix}.*' does not fit {type(module).__name__}: missing "
            f"{missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected "
            f"{unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
    return module


def component_spec(path: str | Path, name: str,
                   data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The spec of component ``name`` recorded in checkpoint ``path``."""
    data = read_checkpoint(path) if data is None else data
    specs = data.get(COMPONENTS_KEY) or {}
    if name not in specs:
        raise CheckpointError(
            f"checkpoint {path} records no '{name}' component (it records {sorted(specs)}): "
            "another stage's checkpoint, or not written by a lift stage of this version")
    return specs[name]


def build_from_checkpoint(path: str | Path, name: str, prefix: str | None = None,
                          **overrides: Any) -> nn.Module:
    """Rebuild component ``name`` from checkpoint ``path`` and load its ``prefix`` weights
    (default: ``name``); ``overrides`` replace recorded top-level constructor arguments (e.g.
    a translator's ``eval_banks``; component values may be given as specs)."""
    data = read_checkpoint(path)
    try:
        module = build(component_spec(path, name, data), where=f"{path}: {name}", **overrides)
    except SpecError as err:
        raise CheckpointError(str(err)) from err
    return load_weights(module, path, prefix or name, data)


def load_prior(path: str | Path, ema: bool = True) -> tuple[nn.Module, nn.Module]:
    """(G_phone, D_phone) of a prior-stage checkpoint; ``ema``: G's EMA weights."""
    generator = build_from_checkpoint(path, "generator",
                                      "generator_ema" if ema else "generator")
    return generator, build_from_checkpoint(path, "discriminator")
