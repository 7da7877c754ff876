"""ArcFace (Deng et al. 2019): insightface arcface_torch's iresnet, from a user-given checkpoint.

Input as in arcface_torch's evaluation: 112x112 RGB face chips, ``(x - 0.5) / 0.5`` in [-1, 1];
output: the 512-d embedding (not normalised, as the backbone returns it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import torch

from lift.weights import WeightsNotFoundError, resolve_weights
from lift_identity.base import FrozenIdentityEncoder
from lift_identity.crop import face_box_for_template
from lift_identity.iresnet import IRESNET_LAYERS, IResNet

# arcface_torch's 112x112 alignment template: eye centres at (38.29, 51.70), (73.53, 51.50).
ARCFACE_FACE_BOX = face_box_for_template(eye_y=0.46, eye_spacing=0.315, eye_x=0.5)


class CheckpointMismatchError(KeyError):
    """A checkpoint's keys or shapes do not match the network."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0])


def _state_dict(obj, path: Path) -> dict[str, torch.Tensor]:
    """The backbone state dict inside a checkpoint: a plain state dict (arcface_torch's
    ``backbone.pth``) or one under ``state_dict``; a DDP ``module.`` prefix is dropped."""
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointMismatchError(f"{path} does not hold a state dict of tensors")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def load_checked(module: torch.nn.Module, state: Mapping[str, torch.Tensor], path: Path) -> None:
    """``load_state_dict(strict=True)`` with an error naming the offending keys and the file.
    BatchNorm's ``num_batches_tracked`` counters (unused in eval) may be absent."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k}: {tuple(state[k].shape)} in the file, {tuple(v.shape)} expected"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"missing keys {missing[:10]}{' ...' if len(missing) > 10 else ''}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected[:10]}"
                        f"{' ...' if len(unexpected) > 10 else ''}")
    if wrong:
        problems.append(f"shape mismatches {wrong[:10]}")
    if problems:
        depth = getattr(module, "depth", None)
        raise CheckpointMismatchError(
            f"checkpoint {path} does not match iresnet{depth}: " + "; ".join(problems)
            + " (is depth right? arcface_torch saves the backbone alone as backbone.pth)")
    full = {k: state[k] if k in state else torch.zeros_like(v) for k, v in expected.items()}
    module.load_state_dict(full, strict=True)


class ArcFace(FrozenIdentityEncoder):
    """ArcFace iresnet embeddings (512-d) of the texture's face crop.

    Args:
        weights: an arcface_torch backbone checkpoint (e.g. ``ms1mv3_arcface_r50_fp16/backbone.pth``
            from the insightface model zoo), loaded with ``torch.load(weights_only=True)``;
            None: ``arcface_iresnet<depth>.pth`` found by ``lift.weights.resolve_weights``.
        depth: iresnet depth, 18, 34, 50, 100 or 200 (must match the checkpoint).
        box: the face crop ``(top, left, height, width)`` in fractions of the UV texture; the
            default puts the synthetic layout's eyes where ArcFace's template has them.
    """

    embedding_dim = 512
    input_size = 112

    def __init__(self, weights: str | None = None, depth: int = 50,
                 box: Sequence[float] = ARCFACE_FACE_BOX):
        if depth not in IRESNET_LAYERS:
            raise ValueError(f"ArcFace depth must be one of {sorted(IRESNET_LAYERS)}, got {depth}")
        if weights is not None:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise WeightsNotFoundError(
                    f"ArcFace checkpoint {str(path)!r} not found (an arcface_torch iresnet{depth} "
                    "backbone state dict, e.g. backbone.pth from the insightface model zoo)")
        else:
            path = resolve_weights(
                f"arcface_iresnet{depth}.pth", "identity_encoder",
                hint="Use an arcface_torch backbone.pth (insightface model zoo, e.g. "
                     f"ms1mv3_arcface_r{depth}), renamed, or pass weights=<path>.")
        super().__init__(box)
        with torch.device("meta"):  # no random init: every tensor comes from the checkpoint
            self.network = IResNet(depth)
        state = _state_dict(torch.load(path, map_location="cpu", weights_only=True), path)
        self.network.to_empty(device="cpu")
        load_checked(self.network, state, path)
        self.weights_path = str(path)
        self.freeze()

    def embed(self, chip: torch.Tensor) -> torch.Tensor:
        return self.network((chip - 0.5) / 0.5)
