"""Load G_phone's weights from the prior stage's Lightning checkpoint into a generator.

The prior stage's module holds ``generator`` and its EMA copy ``generator_ema``; its
checkpoint's ``state_dict`` therefore has keys ``generator.*`` and ``generator_ema.*``. The
architecture comes from the config (the same ``generator`` block as the prior config), the
values from the checkpoint, so a mismatch is an error that names the differing keys.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def generator_state_dict(checkpoint: str | Path, ema: bool) -> dict[str, torch.Tensor]:
    """The generator's state dict from a prior-stage checkpoint (``ema``: the EMA copy).

    A plain state dict file (no ``state_dict`` key, no prefix) is accepted as well.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"generator checkpoint {path} does not exist")
    # PriorModule keeps networks out of its hyperparameters, so no pickled objects are needed.
    data = torch.load(path, map_location="cpu", weights_only=True)
    state = data.get("state_dict", data) if isinstance(data, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds neither a Lightning checkpoint nor a state dict")
    prefix = "generator_ema." if ema else "generator."
    picked = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if picked:
        return picked
    if "state_dict" not in data:
        return state  # a bare generator state dict
    prefixes = sorted({k.split(".", 1)[0] for k in state})
    raise KeyError(f"{path} has no '{prefix}*' weights (top-level modules: {prefixes})"
                   + ("; set ema: false to use the raw generator" if ema else ""))


def load_generator_weights(generator: nn.Module, checkpoint: str | Path, ema: bool) -> nn.Module:
    """Load the checkpoint's (EMA) generator weights into ``generator`` in place; return it."""
    state = generator_state_dict(checkpoint, ema)
    missing, unexpected = generator.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise KeyError(
            f"generator checkpoint {checkpoint} does not fit the configured generator: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected "
            f"{unexpected[:5]}{'...' if len(unexpected) > 5 else ''}; the invert config's "
            f"generator block must match the prior config's"
        )
    return generator


def load_prefixed_weights(module: nn.Module, checkpoint: str | Path, prefix: str) -> nn.Module:
    """Load the ``<prefix>.*`` weights of a Lightning checkpoint (e.g. ``discriminator``)."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    data = torch.load(path, map_location="cpu", weights_only=True)
    state = data.get("state_dict", data) if isinstance(data, dict) else {}
    picked = {k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")}
    if not picked:
        prefixes = sorted({k.split(".", 1)[0] for k in state})
        raise KeyError(f"{path} has no '{prefix}.*' weights (top-level modules: {prefixes})")
    missing, unexpected = module.load_state_dict(picked, strict=False)
    if missing or unexpected:
        raise KeyError(f"checkpoint {path}: '{prefix}.*' does not fit the configured network: "
                       f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    return module
