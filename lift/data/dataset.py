"""One split of a :class:`~lift.data.sources.TextureSource` as a map-style torch Dataset.

An item is ``{"stem": str, "phone": [3,R,R], "mask": [1,R,R], "studio": [3,R,R]}`` with the
keys the split provides (``SPLIT_KEYS``), and with ``with_expressions`` also
``"expressions": {name: [3,R,R]}`` (the subject's phone-captured expression textures,
``source.expressions(stem)``, possibly empty). Besides the splits of ``SPLITS`` there is the
prediction split ``"all"`` (:data:`ALL_SPLIT`): every stem with a phone texture, i.e. the
union of the splits that hold phone textures in ``SPLITS`` order, keys ``phone`` and
``mask``; on a folder without split files that is every file of ``phone/``. Optional steps,
in order:

1. ``resolution``: resize every key to ``resolution``². Down-sampling by an integer factor
   uses ``F.interpolate(mode="area")`` (the mean of each factor×factor block: an exact box
   filter, no aliasing); any other down-sampling uses antialiased bilinear
   (``mode="bilinear", antialias=True``); up-sampling uses bilinear. Masks are resized the
   same way, and so are expression textures. Masks are then binarised at 0.5 (a texel
   counts as seen when at least half of it was), with or without resizing.
2. ``crop_size``: one crop window, the same for every key of the item (paired textures stay
   aligned): random when ``random_crop`` (training), else the centre.
"""

from __future__ import annotations

import os
import warnings

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from lift.data.io import TextureError
from lift.data.sources import SPLIT_KEYS, SPLITS, TextureSource

#: The prediction split of every stem with a phone texture (see the module docstring).
ALL_SPLIT = "all"
ALL_KEYS = ("phone", "mask")
#: The splits whose union is ``ALL_SPLIT``.
PHONE_SPLITS = tuple(s for s in SPLITS if "phone" in SPLIT_KEYS[s])
#: Prediction-only splits that are unions of splits (phone and mask keys only): ``"all"``, and
#: ``"test"`` (both test splits: what test-time inversion into an eval bank reads).
UNION_SPLITS: dict[str, tuple[str, ...]] = {ALL_SPLIT: PHONE_SPLITS,
                                            "test": ("paired_test", "unpaired_test")}


def split_keys(split: str) -> tuple[str, ...]:
    """The texture keys ``split`` provides (``SPLIT_KEYS``; ``ALL_KEYS`` for a union split)."""
    if split in UNION_SPLITS:
        return ALL_KEYS
    if split not in SPLIT_KEYS:
        raise ValueError(f"unknown split {split!r} (splits: {', '.join(SPLIT_KEYS)}; "
                         f"{', '.join(UNION_SPLITS)} for prediction)")
    return SPLIT_KEYS[split]


def split_stems(source: TextureSource, split: str) -> list[str]:
    """The stems of ``split`` in order; a union split: its splits' stems, first seen first."""
    splits = source.splits()
    if split not in UNION_SPLITS:
        return list(splits[split])
    return list(dict.fromkeys(stem for s in UNION_SPLITS[split] for stem in splits.get(s, [])))


def split_size(source: TextureSource, split: str, key: str) -> tuple[int, int] | None:
    """``source.size`` of ``split``; a union: the size its splits agree on (None if they
    differ)."""
    if split not in UNION_SPLITS:
        return source.size(split, key)
    splits = source.splits()
    sizes = {source.size(s, key) for s in UNION_SPLITS[split] if splits.get(s)}
    return sizes.pop() if len(sizes) == 1 else None


def resize_texture(tensor: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a ``[C,H,W]`` texture to ``[C,size,size]`` (see the module docstring)."""
    c, h, w = tensor.shape
    if (h, w) == (size, size):
        return tensor
    x = tensor[None]
    if h % size == 0 and w % size == 0:
        x = F.interpolate(x, size=(size, size), mode="area")
    else:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                          antialias=h > size or w > size)
    return x[0].clamp_(0.0, 1.0)


class TextureDataset(Dataset):
    """Items of one split of ``source``.

    Args:
        source: where the textures come from.
        split: one of ``SPLITS``, or ``"all"`` (prediction: every stem with a phone texture);
            an empty split is an error.
        keys: texture keys to load (default: all the split provides).
        with_expressions: add ``"expressions"``: ``{name: [3,R,R]}`` (resized and cropped like
            the other keys) to every item.
        resolution: resize every texture to this size (None: as stored).
        crop_size: crop this size from every texture (None: no crop).
        random_crop: random crop window (else centred).
        seed: mixed with torch's per-process seed to draw crop windows; under
            ``seed_everything(workers=True)`` crops are reproducible and differ per epoch
            and DataLoader worker.

    ``dataset[(index, draw)]`` (what :class:`~lift.data.datamodule.ResumableSampler` yields
    for a training loader) takes the random crop window from a generator seeded with ``draw``
    instead: the window is then a function of the sampler's ``(seed, epoch, position)``, the
    same in a resumed run and for any number of DataLoader workers.
    """

    def __init__(
        self,
        source: TextureSource,
        split: str,
        *,
        keys: tuple[str, ...] | list[str] | None = None,
        resolution: int | None = None,
        crop_size: int | None = None,
        random_crop: bool = False,
        seed: int = 0,
        with_expressions: bool = False,
    ):
        allowed = split_keys(split)
        keys = tuple(allowed if keys is None else keys)
        extra = [k for k in keys if k not in allowed]
        if extra:
            raise ValueError(f"split {split} provides {allowed}, not {extra}")
        self.source = source
        self.split = split
        self.keys = keys
        self.with_expressions = bool(with_expressions)
        self.stems = split_stems(source, split)
        if not self.stems:
            raise TextureError(
                f"{source.describe()}: split {split} is empty (a folder lists its stems in "
                f"splits/{split}.txt; or do not request it, e.g. val_split: null)")
        if resolution is not None and resolution < 1:
            raise ValueError(f"resolution must be positive, got {resolution}")
        size = resolution
        if crop_size is not None:
            for key in keys:
                known = split_size(source, split, key)
                limit = size or (min(known) if known else None)
                if limit is not None and crop_size > limit:
                    raise ValueError(f"crop_size {crop_size} exceeds the {key} texture size "
                                     f"{limit} of split {split}")
        self.resolution = resolution
        self.crop_size = crop_size
        self.random_crop = random_crop
        self.seed = int(seed)
        self._generator: torch.Generator | None = None
        self._generator_pid: int | None = None

    def __len__(self) -> int:
        return len(self.stems)

    def __getstate__(self):
        state = self.__dict__.copy()
        state.update(_generator=None, _generator_pid=None)
        return state

    def _rng(self) -> torch.Generator:
        # One generator per process (DataLoader workers get fresh torch seeds every epoch).
        if self._generator is None or self._generator_pid != os.getpid():
            self._generator = torch.Generator()
            self._generator.manual_seed((self.seed * 0x9E3779B1 + torch.initial_seed()) % 2**63)
            self._generator_pid = os.getpid()
        return self._generator

    def _window(self, h: int, w: int, draw: int | None = None) -> tuple[int, int]:
        c = self.crop_size
        if not self.random_crop:
            return (h - c) // 2, (w - c) // 2
        g = self._rng() if draw is None else torch.Generator().manual_seed(int(draw))
        top = int(torch.randint(0, h - c + 1, (), generator=g))
        left = int(torch.randint(0, w - c + 1, (), generator=g))
        return top, left

    def load(self, index: int, draw: int | None = None) -> dict:
        stem = self.stems[index]
        item: dict = {"stem": stem}
        for key in self.keys:
            tensor = self.source.load(stem, key)
            expected = split_size(self.source, self.split, key)
            channels = 1 if key == "mask" else 3
            if tensor.ndim != 3 or tensor.shape[0] != channels or (
                expected is not None and tuple(tensor.shape[1:]) != expected
            ):
                raise TextureError(
                    f"{self.source.describe()}: {key} texture of stem {stem!r} has shape "
                    f"{tuple(tensor.shape)}, expected [{channels}, *{expected}] in split "
                    f"{self.split}")
            if self.resolution is not None:
                tensor = resize_texture(tensor, self.resolution)
            if key == "mask":  # masks are {0, 1}, also when a file held soft values
                tensor = (tensor >= 0.5).to(torch.float32)
            item[key] = tensor
        if self.with_expressions:
            item["expressions"] = self._expressions(stem)
        if self.crop_size is not None:
            shapes = {tuple(item[k].shape[1:]) for k in self.keys}
            shapes |= {tuple(t.shape[1:]) for t in item.get("expressions", {}).values()}
            if len(shapes) != 1:
                raise TextureError(
                    f"{self.source.describe()}: cannot crop stem {stem!r} of split "
                    f"{self.split}: its textures differ in size {sorted(shapes)}; set "
                    "resolution so that they match")
            h, w = shapes.pop()
            top, left = self._window(h, w, draw)
            c = self.crop_size
            for key in self.keys:
                item[key] = item[key][:, top:top + c, left:left + c].contiguous()
            for name, tensor in item.get("expressions", {}).items():
                item["expressions"][name] = tensor[:, top:top + c, left:left + c].contiguous()
        return item

    def _expressions(self, stem: str) -> dict[str, torch.Tensor]:
        out = {}
        for name, tensor in self.source.expressions(stem).items():
            if tensor.ndim != 3 or tensor.shape[0] != 3:
                raise TextureError(f"{self.source.describe()}: expression {name!r} of stem "
                                   f"{stem!r} has shape {tuple(tensor.shape)}, expected [3,H,W]")
            out[name] = tensor if self.resolution is None else resize_texture(tensor,
                                                                              self.resolution)
        return out

    def __getitem__(self, index: int | tuple[int, int]) -> dict | None:
        draw = None
        if isinstance(index, tuple):
            index, draw = index
        if self.source.on_error != "skip":
            return self.load(index, draw)
        try:
            return self.load(index, draw)
        except TextureError as exc:
            stem = self.stems[index]
            self.source.record_skip(f"read/{stem}", str(exc))
            warnings.warn(f"skipping {stem!r} of split {self.split}: {exc}", stacklevel=2)
            return None  # dropped by collate_textures
