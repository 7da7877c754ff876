"""Where textures come from: a folder of image files, or the synthetic generator.

Both sources answer the same four questions (which stems are in which split, one texture
of a stem, and its expression textures) so the dataset and data module have one code path.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
import functools
import hashlib
import os
from collections import OrderedDict
from pathlib import Path

import torch

# The paper's data regime (Sect. 4): G_phone trains on phone textures, G_studio finetunes on
# studio textures, Eq. 6 and the upsampler use the paired ones; Table 1 is paired_test,
# Table 2 unpaired_test (phone only).
SPLITS = ("phone_train", "studio_train", "paired_train", "paired_test", "unpaired_test")
TRAIN_SPLITS = ("phone_train", "studio_train", "paired_train")
TEST_SPLITS = ("paired_test", "unpaired_test")
KINDS = ("phone", "mask", "studio")
# The batch keys each split provides (a phone texture always comes with its mask).
SPLIT_KEYS: dict[str, tuple[str, ...]] = {
    "phone_train": ("phone", "mask"),
    "studio_train": ("studio",),
    "paired_train": ("phone", "mask", "studio"),
    "paired_test": ("phone", "mask", "studio"),
    "unpaired_test": ("phone", "mask"),
}


class TextureSource(ABC):
    """A set of subjects ("stems") with phone/studio textures, masks and expressions.

    ``load`` returns float32 linear RGB ``[3,H,W]`` in [0, 1] for ``phone``/``studio`` and
    ``[1,H,W]`` in [0, 1] for ``mask`` (all ones when the subject has no mask file;
    :class:`~lift.data.TextureDataset` binarises it at 0.5).
    """

    #: "raise": a bad file is an error; "skip": it is left out, warned about and counted.
    on_error: str = "raise"

    def __init__(self) -> None:
        # "<split or 'read'>/<stem>" -> why it was left out (only with on_error="skip").
        self.skipped: dict[str, str] = {}

    @abstractmethod
    def splits(self) -> dict[str, list[str]]:
        """Every split name of :data:`SPLITS` -> its stems in a fixed order (may be empty)."""

    @abstractmethod
    def load(self, stem: str, kind: str) -> torch.Tensor:
        """One texture of ``stem``; ``kind`` is "phone", "studio" or "mask"."""

    def expressions(self, stem: str) -> dict[str, torch.Tensor]:
        """Phone-captured expression textures of ``stem`` by name (Sect. 3.3); may be empty."""
        return {}

    def expressions_studio(self, stem: str) -> dict[str, torch.Tensor]:
        """Studio-lit ground truth of ``stem``'s expressions by name, where known."""
        return {}

    def size(self, split: str, kind: str) -> tuple[int, int] | None:
        """The (H, W) every ``kind`` texture of ``split`` has, or None if not fixed."""
        return None

    def record_skip(self, key: str, reason: str) -> None:
        self.skipped[key] = reason

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)

    def describe(self) -> str:
        return type(self).__name__


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


SYNTH_CACHE_ENV = "LIFT_SYNTH_CACHE"


@functools.lru_cache(maxsize=1)
def synth_code_hash() -> str:
    """sha256 of the synthetic generator's source files: a cache written by other code is
    never read."""
    from lift.data import synth

    h = hashlib.sha256()
    for path in sorted(Path(synth.__file__).parent.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _read_cached(path: Path):
    """The SynthSample stored at ``path``; None if absent or unreadable (then regenerated)."""
    from lift.data.synth import SynthSample

    if not path.is_file():
        return None
    try:
        fields = torch.load(path, map_location="cpu", weights_only=True)
        return SynthSample(**fields)
    except Exception:  # a damaged cache file costs a regeneration, never a wrong texture
        return None


def _write_cached(path: Path, sample) -> None:
    from lift.atomic import atomic_path

    fields = {name: getattr(sample, name) for name in
              ("stem", "phone", "mask", "studio", "expressions", "expressions_studio", "meta")}
    try:
        with atomic_path(path) as tmp:
            torch.save(fields, tmp)
    except OSError:  # a read-only or full disk: keep going without the cache
        pass


class SyntheticSource(TextureSource):
    """The synthetic benchmark of :mod:`lift.data.synth`, generated lazily per subject.

    Stems, splits and values are exactly those ``lift data synth --profile P --seed S``
    writes (both use this class), so a config can switch between this and a
    :class:`~lift.data.FolderSource` of the written folder without changing a tensor.
    Generated subjects are kept in an LRU cache of ``cache_size`` subjects (per process;
    a 256² subject is about 2.5 MB, a 1024² one 40 MB). With ``cache_dir`` (or the
    environment variable ``LIFT_SYNTH_CACHE``, which ``lift run`` sets to ``<run>/synth_cache``)
    every subject is also written there once, as a ``.pt`` file keyed by profile, seed and a
    hash of the generator's source, and read back by every later stage and epoch (~1 ms
    instead of ~35 ms a 256² subject): a run generates its data once.
    """

    def __init__(self, profile: str = "quickstart", seed: int = 0, cache_size: int = 128,
                 cache_dir: str | None = None):
        super().__init__()
        from lift.data import synth

        if profile not in synth.PROFILES:
            raise ValueError(
                f"unknown synthetic profile {profile!r} (choices: {', '.join(synth.PROFILES)})"
            )
        self.profile_name = profile
        self.profile = synth.PROFILES[profile]
        self.seed = int(seed)
        self.cache_size = int(cache_size)
        self.cache_dir = cache_dir
        # stem -> (subject index, has phone, has studio, number of expressions)
        self.subjects: dict[str, tuple[int, bool, bool, int]] = {}
        for stem, index, has_phone, has_studio, n_expr, _cat in synth.subject_plan(self.profile):
            self.subjects[stem] = (index, has_phone, has_studio, n_expr if has_phone else 0)
        self._splits = {
            split: [entry[0] for entry in entries]
            for split, entries in synth.split_plan(self.profile).items()
        }
        missing = set(SPLITS) - set(self._splits)
        if missing:
            raise ValueError(f"synth.split_plan lacks splits {sorted(missing)}")
        self._synth = None
        self._cache: OrderedDict = OrderedDict()

    def __getstate__(self):  # DataLoader workers (spawn) rebuild the generator and cache
        state = self.__dict__.copy()
        state.update(_synth=None, _cache=OrderedDict())
        return state

    @property
    def synthesizer(self):
        if self._synth is None:
            from lift.data.synth import TextureSynthesizer

            self._synth = TextureSynthesizer(self.profile.resolution, self.seed)
        return self._synth

    def splits(self) -> dict[str, list[str]]:
        return {split: list(self._splits[split]) for split in SPLITS}

    def sample(self, stem: str, *, with_expressions: bool = False):
        """The :class:`~lift.data.synth.SynthSample` of ``stem`` (cached)."""
        if stem not in self.subjects:
            raise KeyError(f"{stem!r} is not a subject of synthetic profile {self.profile_name!r}")
        index, has_phone, has_studio, n_expr = self.subjects[stem]
        for key in ((stem, True), (stem, with_expressions)):
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        disk = self._disk_path(stem, with_expressions)
        sample = _read_cached(disk) if disk is not None else None
        if sample is None:
            # Expressions are rendered only when asked for: each costs about one phone render,
            # and the synthesizer's random streams make the neutral outputs independent of them.
            sample = self.synthesizer.sample(
                index, phone=has_phone, studio=has_studio,
                expressions=n_expr if with_expressions else 0, stem=stem,
            )
            if disk is not None:
                _write_cached(disk, sample)
        if self.cache_size > 0:
            self._cache[(stem, with_expressions)] = sample
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return sample

    def _disk_path(self, stem: str, with_expressions: bool) -> Path | None:
        root = self.cache_dir or os.environ.get(SYNTH_CACHE_ENV)
        if not root:
            return None
        key = f"{self.profile_name}-seed{self.seed}-{synth_code_hash()[:12]}"
        return Path(root) / key / f"{stem}{'.expr' if with_expressions else ''}.pt"

    def load(self, stem: str, kind: str) -> torch.Tensor:
        _check_kind(kind)
        sample = self.sample(stem)
        tensor = getattr(sample, kind)
        if tensor is None:
            raise KeyError(f"synthetic subject {stem!r} has no {kind} texture")
        return tensor

    def expressions(self, stem: str) -> dict[str, torch.Tensor]:
        return dict(sorted(self.sample(stem, with_expressions=True).expressions.items()))

    def expressions_studio(self, stem: str) -> dict[str, torch.Tensor]:
        return dict(sorted(self.sample(stem, with_expressions=True).expressions_studio.items()))

    def size(self, split: str, kind: str) -> tuple[int, int] | None:
        r = self.profile.resolution
        return (r, r)

    def describe(self) -> str:
        return f"SyntheticSource(profile={self.profile_name!r}, seed={self.seed})"
