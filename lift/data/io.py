"""Reading and writing texture files: 8/16-bit PNG, float EXR, float/int TIFF.

Values are linear: an integer file is divided by its maximum level (255 or 65535) and nothing
else is done (no gamma, no colour management). A texture is float32 ``[3,H,W]``, a mask float32
``[1,H,W]``. Every problem is a :class:`TextureError` whose message names the file.

Why OpenCV: Pillow, imageio's default plugin and skimage read a 16-bit RGB PNG silently as
8-bit. ``cv2.imread(path, IMREAD_UNCHANGED)`` keeps the bit depth (in BGR order).

EXR: OpenCV reads it only when built with OpenEXR *and* ``OPENCV_IO_ENABLE_OPENEXR=1`` is set
before its first use (set below, before ``import cv2``). The opencv-python(-headless) 5.0 wheels
are built without OpenEXR, so when OpenCV cannot, the ``OpenEXR`` package (``pip install
openexr``) is used if it is installed; without either an EXR file is a clear error. Float TIFF
(``.tif``) always works through OpenCV and is exact for float32.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")  # must precede the first cv2 import

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from lift.atomic import atomic_path  # noqa: E402

TEXTURE_EXTENSIONS = (".png", ".exr", ".tif", ".tiff")
_INT_LEVELS = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
_FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


class TextureError(ValueError):
    """A texture file or folder that cannot be used as it is; the message names the file."""


@dataclass(frozen=True)
class TextureInfo:
    """What a file's header says, read without decoding the pixels (PNG, EXR)."""

    path: Path
    width: int
    height: int
    channels: int
    dtype: str  # "uint8", "uint16", "float16", "float32" (sample type as stored)

    @property
    def size(self) -> tuple[int, int]:
        return (self.height, self.width)


def _check_extension(path: Path) -> str:
    ext = path.suffix.lower()
    if ext not in TEXTURE_EXTENSIONS:
        raise TextureError(
            f"{path}: unsupported extension {path.suffix!r} "
            f"(supported: {', '.join(TEXTURE_EXTENSIONS)})"
        )
    return ext


# ----------------------------------------------------------------------------- headers

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # colour type -> channels (palette decodes to RGB)
_EXR_MAGIC = b"\x76\x2f\x31\x01"
_EXR_PIXEL_TYPES = {0: "uint32", 1: "float16", 2: "float32"}


def _png_info(path: Path) -> TextureInfo:
    with open(path, "rb") as fh:
        head = fh.read(33)
    if len(head) < 33 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise TextureError(f"{path}: not a PNG file or truncated header")
    width, height, bit_depth, colour_type = struct.unpack(">IIBB", head[16:26])
    if colour_type not in _PNG_CHANNELS:
        raise TextureError(f"{path}: invalid PNG colour type {colour_type}")
    dtype = "uint16" if bit_depth == 16 else "uint8"  # 1/2/4-bit samples decode to uint8
    return TextureInfo(path, width, height, _PNG_CHANNELS[colour_type], dtype)


def _exr_header(path: Path) -> tuple[int, int, dict[str, int]]:
    """(width, height, {channel name: pixel type}) from an OpenEXR header (single part)."""
    data = path.read_bytes()[: 1 << 16]
    if data[:4] != _EXR_MAGIC:
        raise TextureError(f"{path}: not an OpenEXR file")
    pos, channels, window = 8, None, None
    try:
        while True:
            end = data.index(b"\0", pos)
            name = data[pos:end].decode("latin-1")
            pos = end + 1
            if not name:
                break
            end = data.index(b"\0", pos)
            kind = data[pos:end].decode("latin-1")
            (size,) = struct.unpack("<i", data[end + 1 : end + 5])
            value = data[end + 5 : end + 5 + size]
            if len(value) < size:
                raise ValueError("attribute runs past the end")
            pos = end + 5 + size
            if name == "channels" and kind == "chlist":
                channels, p = {}, 0
                while value[p] != 0:
                    e = value.index(b"\0", p)
                    cname = value[p:e].decode("latin-1")
                    (ptype,) = struct.unpack("<i", value[e + 1 : e + 5])
                    channels[cname] = ptype
                    p = e + 1 + 16  # pixel type, pLinear + reserved, x/y sampling
            elif name == "dataWindow" and kind == "box2i":
                window = struct.unpack("<iiii", value)
    except (ValueError, IndexError, struct.error) as exc:
        raise TextureError(f"{path}: truncated or corrupt OpenEXR header ({exc})") from None
    if channels is None or window is None:
        raise TextureError(f"{path}: OpenEXR header lacks channels or dataWindow")
    xmin, ymin, xmax, ymax = window
    return xmax - xmin + 1, ymax - ymin + 1, channels


def _exr_info(path: Path) -> TextureInfo:
    width, height, channels = _exr_header(path)
    types = {_EXR_PIXEL_TYPES.get(t, "unknown") for t in channels.values()}
    dtype = "float32" if "float32" in types else types.pop() if len(types) == 1 else "mixed"
    return TextureInfo(path, width, height, len(channels), dtype)


def texture_info(path: str | os.PathLike) -> TextureInfo:
    """Size, channel count and sample type of a texture file.

    PNG and EXR are read from the header only (cheap, used when a folder is opened); other
    formats are decoded.
    """
    path = Path(path)
    ext = _check_extension(path)
    if not path.is_file():
        raise TextureError(f"{path}: file not found")
    if ext == ".png":
        return _png_info(path)
    if ext == ".exr":
        return _exr_info(path)
    arr = _decode(path, ext)
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    return TextureInfo(path, arr.shape[1], arr.shape[0], channels, str(arr.dtype))


# ----------------------------------------------------------------------------- EXR backends


def _cv2_has_exr() -> bool:
    try:
        return bool(cv2.haveImageWriter("probe.exr"))
    except cv2.error:
        return False


def _openexr_module():
    try:
        import OpenEXR
    except ImportError:
        return None
    return OpenEXR


def exr_available() -> bool:
    """Whether EXR files can be read and written here (OpenCV with OpenEXR, or ``openexr``)."""
    return _cv2_has_exr() or _openexr_module() is not None


def _no_exr(path: Path) -> TextureError:
    return TextureError(
        f"{path}: cannot read or write OpenEXR here: this OpenCV ({cv2.__version__}) was built "
        "without OpenEXR and the 'OpenEXR' Python package is not installed "
        "(pip install openexr), or use float32 .tif instead"
    )


def _read_exr_openexr(path: Path, OpenEXR) -> np.ndarray:
    # Channels are grouped by name: R,G,B -> "RGB" [H,W,3]; Y -> [H,W]; RGBA -> [H,W,4].
    try:
        with OpenEXR.File(str(path)) as f:
            channels = {k: v.pixels for k, v in f.channels().items()}
    except Exception as exc:  # the binding raises RuntimeError on a bad file
        raise TextureError(f"{path}: unreadable OpenEXR file ({exc})") from None
    if len(channels) != 1:
        raise TextureError(
            f"{path}: OpenEXR channel layout {sorted(channels)} is not one RGB, RGBA or Y image"
        )
    return np.asarray(next(iter(channels.values())))  # already RGB(A) order


def _write_exr_openexr(path: Path, arr: np.ndarray, OpenEXR) -> None:
    name = "Y" if arr.ndim == 2 else "RGB"
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {name: np.ascontiguousarray(arr)}) as f:
        f.write(str(path))


# ----------------------------------------------------------------------------- reading


def _decode(path: Path, ext: str) -> np.ndarray:
    """The file's samples as stored (RGB(A) order, [H,W] or [H,W,C])."""
    if ext == ".exr" and not _cv2_has_exr():
        OpenEXR = _openexr_module()
        if OpenEXR is None:
            raise _no_exr(path)
        return _read_exr_openexr(path, OpenEXR)
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise TextureError(f"{path}: unreadable, truncated or corrupt image file")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)  # OpenCV stores BGR
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA)
    return arr


def _to_float(path: Path, arr: np.ndarray) -> np.ndarray:
    if arr.dtype in _INT_LEVELS:
        return arr.astype(np.float32) / np.float32(_INT_LEVELS[arr.dtype])
    if arr.dtype in _FLOAT_DTYPES:
        return arr.astype(np.float32)
    raise TextureError(f"{path}: unsupported sample type {arr.dtype} (use 8/16-bit or float)")


def read_texture(
    path: str | os.PathLike, *, channels: int = 3, square: bool = True, check_range: bool = True
) -> torch.Tensor:
    """Read a texture (``channels=3``, RGB) or a mask (``channels=1``, grey) as float32 [C,H,W].

    Integer files are divided by 255 or 65535 (linear values, no gamma). The file must have
    exactly ``channels`` channels: an RGBA or grey texture, or an RGB mask, is an error (alpha
    is never dropped silently, and visibility belongs in ``masks/``). Also errors: a missing,
    unreadable or truncated file, an unsupported extension, NaN/Inf, values outside [0, 1]
    (when ``check_range``), and a non-square image (when ``square``).
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (mask) or 3 (texture), got {channels}")
    path = Path(path)
    ext = _check_extension(path)
    if not path.is_file():
        raise TextureError(f"{path}: file not found")
    arr = _decode(path, ext)
    found = 1 if arr.ndim == 2 else arr.shape[2]
    if found != channels:
        what = "mask (1 grey channel)" if channels == 1 else "texture (3 RGB channels)"
        raise TextureError(f"{path}: has {found} channel(s), expected a {what}")
    h, w = arr.shape[:2]
    if square and h != w:
        raise TextureError(f"{path}: texture is not square ({w}x{h})")
    out = _to_float(path, arr)
    if not np.isfinite(out).all():
        bad = int((~np.isfinite(out)).sum())
        raise TextureError(f"{path}: contains {bad} NaN/Inf value(s)")
    if check_range and out.size and (out.min() < 0.0 or out.max() > 1.0):
        raise TextureError(
            f"{path}: values span [{out.min():.4g}, {out.max():.4g}], outside [0, 1] "
            "(textures are linear values in [0, 1]; rescale or clip the file)"
        )
    if out.ndim == 2:
        return torch.from_numpy(out)[None]
    return torch.from_numpy(out).permute(2, 0, 1).contiguous()


# ----------------------------------------------------------------------------- writing


def write_texture(path: str | os.PathLike, tensor: torch.Tensor, *, bits: int = 16,
                  check_range: bool = True) -> Path:
    """Write a [3,H,W] texture or [1,H,W] mask with values in [0, 1], atomically.

    ``.png``: rounded to ``bits`` (8 or 16) integer levels. ``.exr``: float32 (OpenCV with
    OpenEXR, else the ``OpenEXR`` package). ``.tif``/``.tiff``: float32, exact.
    NaN/Inf are refused; so are values outside [0, 1] unless ``check_range=False``, which only
    the float formats (``.exr``, ``.tif``) accept (signed maps such as a colour transform's
    bias; read them back with ``read_texture(..., check_range=False)``).
    """
    path = Path(path)
    ext = _check_extension(path)
    if not check_range and ext == ".png":
        raise ValueError(f"{path}: PNG holds values in [0, 1] only; check_range=False needs "
                         ".exr or .tif")
    t = torch.as_tensor(tensor).detach().cpu()
    if t.ndim != 3 or t.shape[0] not in (1, 3):
        raise TextureError(f"{path}: cannot write a tensor of shape {tuple(t.shape)}; "
                           "expected [3,H,W] or [1,H,W]")
    arr = t.to(torch.float32).numpy().transpose(1, 2, 0)
    if not np.isfinite(arr).all():
        raise TextureError(f"{path}: refusing to write NaN/Inf values")
    if check_range and arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
        raise TextureError(f"{path}: refusing to write values outside [0, 1] "
                           f"([{arr.min():.4g}, {arr.max():.4g}])")
    arr = arr[:, :, 0] if arr.shape[2] == 1 else np.ascontiguousarray(arr)
    if ext == ".png":
        if bits not in (8, 16):
            raise ValueError(f"PNG bits must be 8 or 16, got {bits}")
        levels = 255.0 if bits == 8 else 65535.0
        dtype = np.uint8 if bits == 8 else np.uint16
        arr = np.rint(arr.astype(np.float64) * levels).astype(dtype)
    use_openexr = ext == ".exr" and not _cv2_has_exr()
    if use_openexr and _openexr_module() is None:
        raise _no_exr(path)
    with atomic_path(path) as tmp:
        if use_openexr:
            _write_exr_openexr(tmp, arr.astype(np.float32), _openexr_module())
        else:
            bgr = arr[:, :, ::-1] if arr.ndim == 3 else arr
            params = [cv2.IMWRITE_EXR_TYPE, cv2.IMWRITE_EXR_TYPE_FLOAT] if ext == ".exr" else []
            if not cv2.imwrite(str(tmp), np.ascontiguousarray(bgr), params):
                raise TextureError(f"{path}: OpenCV could not write the file")
    return path

