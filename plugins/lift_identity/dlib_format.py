"""A pure-Python reader of dlib's DNN serialisation (``dlib::serialize(net, out)``).

Written from dlib's format (dlib/serialize.h, dlib/float_details.h, dlib/dnn/{core,layers,
input,loss}.h, dlib/cuda/tensor.h), enough for sequential ResNets such as
``dlib_face_recognition_resnet_model_v1.dat``:

* integers: a control byte whose low 4 bits give the byte count (bit 0x80: negative), then
  that many little-endian bytes; bools are one ASCII byte ``'0'``/``'1'``; strings are a
  length then the bytes; floats are two integers, mantissa and exponent (value
  ``mantissa * 2**exponent``, exponents 32000-32002 encode +inf, -inf, nan);
* tensors: version 2, ``num_samples, k, nr, nc``, then raw little-endian float32;
* a network is nested wrappers (loss -> layer -> ... -> input). Each wrapper writes its version
  before its sub-network, so the file starts with every wrapper's version (outermost first)
  and then, input-first, each layer's fields. Layers (``add_layer``) have version 2; tag and
  skip wrappers have version 1 and write nothing else (not even their id), so they appear
  here as ``"marker"`` layers whose meaning the network builder infers from the pattern.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class DlibFormatError(ValueError):
    """The file is not a dlib network this reader understands."""


@dataclass
class DlibLayer:
    """One layer, input-first. ``kind``: con, affine, relu, max_pool, avg_pool, add_prev, fc or
    marker (a tag/skip wrapper); ``version``: the serialised name, e.g. ``"con_4"``."""

    kind: str
    version: str
    fields: dict = field(default_factory=dict)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class DlibNet:
    loss: dict
    input: dict  # kind, mean (R, G, B pixel values), size (rows, cols) or None
    layers: list[DlibLayer]
    path: str = ""
    parse_seconds: float = 0.0

    def kinds(self) -> list[str]:
        return [layer.kind for layer in self.layers]


_SPECIAL_EXPONENTS = {32000: float("inf"), 32001: float("-inf"), 32002: float("nan")}


class _Reader:
    def __init__(self, data: bytes):
        self.data = memoryview(data)
        self.pos = 0

    def _take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise DlibFormatError(f"unexpected end of file at byte {self.pos} (wanted {n} more)")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self) -> int:
        control = self._take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            raise DlibFormatError(f"bad integer control byte {control:#x} at byte {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def bool(self) -> bool:
        ch = self._take(1)[0]
        if ch not in (ord("0"), ord("1")):
            raise DlibFormatError(f"bad bool byte {ch:#x} at byte {self.pos - 1}")
        return ch == ord("1")

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        if exponent in _SPECIAL_EXPONENTS:
            return _SPECIAL_EXPONENTS[exponent]
        return float(np.ldexp(np.float64(mantissa), exponent))

    def string(self) -> str:
        n = self.int()
        return bytes(self._take(n)).decode("latin-1")

    def peek_string(self) -> str | None:
        """The string at the current position, if one is there (position unchanged)."""
        saved = self.pos
        try:
            n = self.int()
            if not 0 < n < 64:
                return None
            raw = bytes(self._take(n))
            text = raw.decode("latin-1")
            return text if text.isascii() and text.isprintable() else None
        except DlibFormatError:
            return None
        finally:
            self.pos = saved

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise DlibFormatError(f"tensor version {version} (expected 2) at byte {self.pos}")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").reshape(shape).astype(np.float32)  # a copy

    def alias(self) -> tuple[int, int, int, int]:
        version = self.int()
        if version != 1:
            raise DlibFormatError(f"alias_tensor version {version} (expected 1)")
        return tuple(self.int() for _ in range(4))  # type: ignore[return-value]


def _split(params: np.ndarray, *shapes: tuple[int, ...]) -> list[np.ndarray]:
    """Consecutive views of a flat parameter tensor (dlib's alias tensors), checked for size."""
    flat = params.reshape(-1)
    out, offset = [], 0
    for shape in shapes:
        n = int(np.prod(shape))
        out.append(flat[offset:offset + n].reshape(shape))
        offset += n
    if offset != flat.size:
        raise DlibFormatError(f"parameter tensor holds {flat.size} values, layout needs {offset}")
    return out


def _read_con(r: _Reader, version: str) -> DlibLayer:
    params = r.tensor()
    f = {"num_filters": r.int(), "nr": r.int(), "nc": r.int(), "stride_y": r.int(),
         "stride_x": r.int(), "padding_y": r.int(), "padding_x": r.int()}
    filters, biases = r.alias(), r.alias()
    for _ in range(4):  # learning-rate / weight-decay multipliers
        r.float()
    f["use_bias"] = r.bool() if version in ("con_5", "con_6") else True
    if version == "con_6" and r.bool():  # use_relu: a fused relu (newer files only)
        raise DlibFormatError("con_6 layers with a fused relu are not supported")
    shapes = [filters] + ([biases] if f["use_bias"] else [])
    parts = _split(params, *shapes)
    tensors = {"weight": parts[0]}
    if f["use_bias"]:
        tensors["bias"] = parts[1].reshape(-1)
    return DlibLayer("con", version, f, tensors)


def _read_affine(r: _Reader, version: str) -> DlibLayer:
    params = r.tensor()
    gamma, beta = r.alias(), r.alias()
    mode = r.int()  # 0: CONV_MODE (per channel), 1: FC_MODE (per element)
    disabled = r.bool() if version == "affine_2" else False
    g, b = _split(params, gamma, beta)
    return DlibLayer("affine", version, {"mode": mode, "disabled": disabled},
                     {"gamma": g[0], "beta": b[0]})  # [k, nr, nc]


def _read_pool(r: _Reader, version: str, kind: str) -> DlibLayer:
    f = {"nr": r.int(), "nc": r.int(), "stride_y": r.int(), "stride_x": r.int(),
         "padding_y": r.int(), "padding_x": r.int()}
    return DlibLayer(kind, version, f)


def _read_fc(r: _Reader, version: str) -> DlibLayer:
    num_outputs, num_inputs = r.int(), r.int()
    params = r.tensor()
    weights, biases = r.alias(), r.alias()
    bias_mode = r.int()  # 0: FC_HAS_BIAS, 1: FC_NO_BIAS
    for _ in range(4):
        r.float()
    use_bias = r.bool() if version == "fc_3" else True
    has_bias = bias_mode == 0 and use_bias
    parts = _split(params, weights, *([biases] if has_bias else []))
    tensors = {"weight": parts[0].reshape(num_inputs, num_outputs)}  # stored (in, out)
    if has_bias:
        tensors["bias"] = parts[1].reshape(-1)
    return DlibLayer("fc", version, {"num_outputs": num_outputs, "num_inputs": num_inputs},
                     tensors)


def _read_layer(r: _Reader) -> DlibLayer:
    version = r.string()
    if version in ("con_4", "con_5", "con_6"):
        return _read_con(r, version)
    if version in ("affine_", "affine_2"):
        return _read_affine(r, version)
    if version in ("relu_", "relu_2"):
        disabled = r.bool() if version == "relu_2" else False
        return DlibLayer("relu", version, {"disabled": disabled})
    if version == "max_pool_2":
        return _read_pool(r, version, "max_pool")
    if version == "avg_pool_2":
        return _read_pool(r, version, "avg_pool")
    if version == "add_prev_":
        return DlibLayer("add_prev", version)
    if version in ("fc_2", "fc_3"):
        return _read_fc(r, version)
    raise DlibFormatError(f"unsupported dlib layer {version!r} at byte {r.pos}")


def _read_input(r: _Reader) -> dict:
    kind = r.string()
    if kind not in ("input_rgb_image", "input_rgb_image_sized"):
        raise DlibFormatError(f"unsupported dlib input layer {kind!r}")
    mean = (r.float(), r.float(), r.float())
    size = (r.int(), r.int()) if kind == "input_rgb_image_sized" else None
    return {"kind": kind, "mean": mean, "size": size}


def _read_loss(r: _Reader) -> dict:
    if r.int() != 1:
        raise DlibFormatError("unexpected loss-layer version (not a dlib network file?)")
    name = r.string()
    if name == "loss_metric_":
        return {"name": name, "margin": 0.1, "dist_thresh": 0.75}
    if name == "loss_metric_2":
        return {"name": name, "margin": r.float(), "dist_thresh": r.float()}
    raise DlibFormatError(f"unsupported dlib loss layer {name!r} (expected loss_metric)")


def parse_dlib_net(data: bytes) -> DlibNet:
    """Parse a serialised dlib network (the bytes of a ``.dat`` file)."""
    r = _Reader(data)
    loss = _read_loss(r)
    wrappers: list[int] = []  # versions, outermost first
    while (name := r.peek_string()) is None or not name.startswith("input_"):
        wrappers.append(r.int())
        if len(wrappers) > 100_000:
            raise DlibFormatError("no input layer found")
    inp = _read_input(r)
    if not wrappers or wrappers[-1] not in (2, 3):
        raise DlibFormatError("the innermost layer has an unsupported version")
    layers: list[DlibLayer] = []
    for depth, version in enumerate(reversed(wrappers)):
        if version == 1:  # tag or skip wrapper: nothing after its sub-network
            layers.append(DlibLayer("marker", "tag_or_skip"))
            continue
        if version != 2 and not (depth == 0 and version == 3):
            raise DlibFormatError(f"unsupported add_layer version {version}")
        layers.append(_read_layer(r))
        for _ in range(3):  # setup-called, gradient-stale, output-disabled flags
            r.bool()
        r.tensor(), r.tensor(), r.tensor()  # x_grad, cached_output, params/final gradient
        if depth == 0 and version == 3:
            r.int()  # sample expansion factor
    if r.pos != len(r.data):
        raise DlibFormatError(f"{len(r.data) - r.pos} trailing bytes after the network")
    return DlibNet(loss=loss, input=inp, layers=layers)


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, mtime_ns: int, size: int) -> DlibNet:
    start = time.perf_counter()
    net = parse_dlib_net(Path(path).read_bytes())
    net.path = path
    net.parse_seconds = time.perf_counter() - start
    return net


def load_dlib_net(path: str | os.PathLike) -> DlibNet:
    """Parse ``path`` once per process (cached on path, modification time and size: a changed
    file is parsed again). The result is shared: treat its arrays as read-only."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    try:
        return _load_cached(str(resolved), stat.st_mtime_ns, stat.st_size)
    except DlibFormatError as error:
        raise DlibFormatError(f"{resolved}: {error}") from None
