"""The synthetic generator's output, hashed bit for bit.

The digests below were recorded from ``lift/data/synth.py`` (the single module) at commit
7bf19956c00dddca7469e9ac2972b9b64be7b894, before it was split into the package
``lift/data/synth/``; the split must not change a single bit of any tensor.

``QUICKSTART``: every split of the ``quickstart`` profile (seed 0) in :data:`SPLITS` order,
every stem of the split in order, every key the split yields (``SPLIT_KEYS``) and, for the
subjects with expressions, every expression and studio-lit expression texture by name.
``EXTRA``: the code paths quickstart does not reach (all five expression kinds, a second
capture, the unlit albedo, raw float32 output, no misalignment warp, no highlight cap, no
dark cutoff, a grey missing value, full-resolution shadow marching, ``iter_samples``, the
blur's edge cases) and every profile's subject and split plan.  Each tensor is hashed as a
``label|dtype|shape`` line followed by its raw (C-contiguous) bytes.

Recorded with torch 2.14.1 on x86-64, one intra-op thread.  Float results are only
guaranteed equal on the same torch build and CPU kind (docs/data.md, "Determinism"): after
a torch upgrade, re-record the digests from an unchanged generator (``python
tests/test_synth_hash.py`` prints them), never from one being edited.
"""

from __future__ import annotations

import hashlib

import torch

from lift.data.sources import SPLIT_KEYS, SPLITS, SyntheticSource
from lift.data.synth import (PROFILES, SynthProfile, TextureSynthesizer, _blur, iter_samples, split_plan,
                             subject_plan)

QUICKSTART = "37e3bedd5012f5c2ae073d2e1a699887a84b44ce30d174c8e61acb391cdacfc8"
EXTRA = "2ed34027c12ab797e864adb1dbb5e6d7bf4f69fefe095db0861ad4ae2fa004ce"


def _update(h, label: str, t: torch.Tensor) -> None:
    t = t.detach().cpu().contiguous()
    h.update(f"{label}|{t.dtype}|{tuple(t.shape)}\n".encode())
    h.update(t.numpy().tobytes())


def quickstart_digest() -> str:
    src = SyntheticSource("quickstart", 0, cache_size=200)
    h = hashlib.sha256()
    for split in SPLITS:
        for stem in src.splits()[split]:
            for key in SPLIT_KEYS[split]:
                _update(h, f"{split}/{stem}/{key}", src.load(stem, key))
            if src.subjects[stem][3]:
                for name, t in src.expressions(stem).items():
                    _update(h, f"{split}/{stem}/expressions/{name}", t)
                for name, t in src.expressions_studio(stem).items():
                    _update(h, f"{split}/{stem}/expressions_studio/{name}", t)
    return h.hexdigest()


def _sample(h, prefix: str, synth: TextureSynthesizer, index: int, **kwargs) -> None:
    s = synth.sample(index, **kwargs)
    for key in ("phone", "mask", "studio"):
        if getattr(s, key) is not None:
            _update(h, f"{prefix}/{s.stem}/{key}", getattr(s, key))
    for name in sorted(s.expressions):
        _update(h, f"{prefix}/{s.stem}/expressions/{name}", s.expressions[name])
        _update(h, f"{prefix}/{s.stem}/expressions_studio/{name}", s.expressions_studio[name])


def extra_digest() -> str:
    h = hashlib.sha256()
    for name in sorted(PROFILES):
        prof = PROFILES[name]
        h.update(repr(subject_plan(prof)).encode())
        h.update(repr(split_plan(prof)).encode())
        h.update(repr(prof.num_subjects).encode())
    default = TextureSynthesizer(96, seed=5)
    for i in range(4):
        _sample(h, "default", default, i, expressions=5)
        _sample(h, "capture1", default, i, capture=1, studio=False)
        _update(h, f"albedo/{i}", default.albedo(i))
    odd = TextureSynthesizer(64, seed=2, quantize_bits=None, misalignment_px=0.0, highlight_quantile=1.0,
                             dark_cutoff=0.0, missing_value=0.5)
    for i in range(3):
        _sample(h, "odd", odd, i, expressions=1)
    tiny = SynthProfile("tiny", 32, 16, 1, 1, 1, 1, 1, 3)
    for s in iter_samples(tiny, seed=4):
        for key in ("phone", "mask", "studio"):
            if getattr(s, key) is not None:
                _update(h, f"tiny/{s.stem}/{key}", getattr(s, key))
        for name in sorted(s.expressions):
            _update(h, f"tiny/{s.stem}/expressions/{name}", s.expressions[name])
    img = torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(0))
    for sigma in (0.1, 2.5, 10.0):  # no-op, kernel cut to the image, reduced resolution
        _update(h, f"blur/{sigma}", _blur(img, sigma))
    return h.hexdigest()


def test_quickstart_is_unchanged(one_thread):
    assert quickstart_digest() == QUICKSTART


def test_extra_paths_are_unchanged(one_thread):
    assert extra_digest() == EXTRA


if __name__ == "__main__":
    torch.set_num_threads(1)
    print("QUICKSTART =", quickstart_digest())
    print("EXTRA =", extra_digest())
