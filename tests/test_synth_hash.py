"""The synthetic generator's output, pinned two ways.

``QUICKSTART``: every split of the ``quickstart`` profile (seed 0) in :data:`SPLITS` order,
every stem of the split in order, every key the split yields (``SPLIT_KEYS``) and, for the
subjects with expressions, every expression and studio-lit expression texture by name.
``EXTRA``: the code paths quickstart does not reach (all five expression kinds, a second
capture, the unlit albedo, raw float32 output, no misalignment warp, no highlight cap, no
dark cutoff, a grey missing value, full-resolution shadow marching, ``iter_samples``, the
blur's edge cases) and every profile's subject and split plan.

1. Bit for bit (``sha256`` of every tensor's ``label|dtype|shape`` line and raw bytes), first
   recorded from ``lift/data/synth.py`` at commit 7bf19956c00d before it became the package
   ``lift/data/synth/``. Float rounding differs between CPUs and kernel builds (a CI machine
   got other digests; ATen's scalar kernels against its AVX-512 ones on one CPU flip 16-bit
   quantisation steps of 1/65535 in about 0.2% of the pixels), so the digests
   are asserted only on a platform they were recorded on (:data:`RECORDED`, keyed by torch
   version, CPU model and ATen vector capability) and skipped elsewhere with the key printed.
2. Everywhere: every label, dtype and shape exactly, and per tensor its mean, standard
   deviation, a ramp-weighted mean (catches shifts) and the mean of its odd elements, within
   :data:`ATOL` (1e-5) of ``tests/data/synth_fingerprints.json``. Between two kernel builds
   on one CPU these moved by at most 8e-8; one mask pixel of a 256x256 map moves a mean by
   1.5e-5, a new random stream by about 1e-2.

After a torch upgrade, re-record both from an unchanged generator (``python
tests/test_synth_hash.py --record`` prints the digest key and rewrites the fingerprints),
never from one being edited.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from inversion_helpers import single_thread
from lift.data.sources import SPLIT_KEYS, SPLITS, SyntheticSource
from lift.data.synth import (PROFILES, SynthProfile, TextureSynthesizer, _blur, iter_samples, split_plan,
                             subject_plan)

_AMD_EPYC = ("AMD EPYC", "2.14.1+cu130")
RECORDED = {  # (cpu model, torch version, capability): (QUICKSTART, EXTRA)
    (*_AMD_EPYC, "AVX512"): ("37e3bedd5012f5c2ae073d2e1a699887a84b44ce30d174c8e61acb391cdacfc8",
                             "2ed34027c12ab797e864adb1dbb5e6d7bf4f69fefe095db0861ad4ae2fa004ce"),
    (*_AMD_EPYC, "AVX2"): ("37e3bedd5012f5c2ae073d2e1a699887a84b44ce30d174c8e61acb391cdacfc8",
                           "2ed34027c12ab797e864adb1dbb5e6d7bf4f69fefe095db0861ad4ae2fa004ce"),
    (*_AMD_EPYC, "DEFAULT"): ("e7766631a6db9c55dca12fcaaca8ecd70112ed05153e08385748e8da01f48c6b",
                              "3493e8087e9b54d0393b91e92f94d549f1e277934e43a9bb02b7ce0ce98cd69c"),
}
FINGERPRINTS = Path(__file__).parent / "data" / "synth_fingerprints.json"
ATOL = 1e-5  # 125x the spread measured between kernel builds
STATS = ("mean", "std", "ramp", "odd")


def platform_key() -> tuple[str, str, str]:
    """(CPU model name, torch version, ATen capability) the bit-exact digests depend on."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return model, torch.__version__, torch.backends.cpu.get_cpu_capability()


class Recorder:
    """One pass over the tensors: a sha256 digest and a per-tensor fingerprint."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.plans = hashlib.sha256()  # the pure-Python parts, equal on every platform
        self.prints: dict[str, list] = {}

    def bytes(self, b: bytes) -> None:
        self.hash.update(b)
        self.plans.update(b)

    def tensor(self, label: str, t: torch.Tensor) -> None:
        t = t.detach().cpu().contiguous()
        self.hash.update(f"{label}|{t.dtype}|{tuple(t.shape)}\n".encode())
        self.hash.update(t.numpy().tobytes())
        x = t.double().flatten()
        ramp = torch.linspace(-1.0, 1.0, x.numel(), dtype=torch.float64)
        stats = [x.mean(), x.std() if x.numel() > 1 else x.new_zeros(()), (x * ramp).mean(),
                 x[1::2].mean() if x.numel() > 1 else x.mean()]
        self.prints[label] = [str(t.dtype), list(t.shape), [float(v) for v in stats]]


def quickstart_record() -> Recorder:
    src = SyntheticSource("quickstart", 0, cache_size=200)
    h = Recorder()
    for split in SPLITS:
        for stem in src.splits()[split]:
            for key in SPLIT_KEYS[split]:
                h.tensor(f"{split}/{stem}/{key}", src.load(stem, key))
            if src.subjects[stem][3]:
                for name, t in src.expressions(stem).items():
                    h.tensor(f"{split}/{stem}/expressions/{name}", t)
                for name, t in src.expressions_studio(stem).items():
                    h.tensor(f"{split}/{stem}/expressions_studio/{name}", t)
    return h


def _sample(h: Recorder, prefix: str, synth: TextureSynthesizer, index: int, **kwargs) -> None:
    s = synth.sample(index, **kwargs)
    for key in ("phone", "mask", "studio"):
        if getattr(s, key) is not None:
            h.tensor(f"{prefix}/{s.stem}/{key}", getattr(s, key))
    for name in sorted(s.expressions):
        h.tensor(f"{prefix}/{s.stem}/expressions/{name}", s.expressions[name])
        h.tensor(f"{prefix}/{s.stem}/expressions_studio/{name}", s.expressions_studio[name])


def extra_record() -> Recorder:
    h = Recorder()
    for name in sorted(PROFILES):
        prof = PROFILES[name]
        h.bytes(repr(subject_plan(prof)).encode())
        h.bytes(repr(split_plan(prof)).encode())
        h.bytes(repr(prof.num_subjects).encode())
    default = TextureSynthesizer(96, seed=5)
    for i in range(4):
        _sample(h, "default", default, i, expressions=5)
        _sample(h, "capture1", default, i, capture=1, studio=False)
        h.tensor(f"albedo/{i}", default.albedo(i))
    odd = TextureSynthesizer(64, seed=2, quantize_bits=None, misalignment_px=0.0, highlight_quantile=1.0,
                             dark_cutoff=0.0, missing_value=0.5)
    for i in range(3):
        _sample(h, "odd", odd, i, expressions=1)
    tiny = SynthProfile("tiny", 32, 16, 1, 1, 1, 1, 1, 3)
    for s in iter_samples(tiny, seed=4):
        for key in ("phone", "mask", "studio"):
            if getattr(s, key) is not None:
                h.tensor(f"tiny/{s.stem}/{key}", getattr(s, key))
        for name in sorted(s.expressions):
            h.tensor(f"tiny/{s.stem}/expressions/{name}", s.expressions[name])
    img = torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(0))
    for sigma in (0.1, 2.5, 10.0):  # no-op, kernel cut to the image, reduced resolution
        h.tensor(f"blur/{sigma}", _blur(img, sigma))
    return h


@pytest.fixture(scope="module")
def records():
    with contextmanager(single_thread)():  # as recorded; one pass serves both tests
        yield {"quickstart": quickstart_record(), "extra": extra_record()}


def test_plans_and_fingerprints_match_within_rounding(records):
    want = json.loads(FINGERPRINTS.read_text())
    for part, rec in records.items():
        assert sorted(rec.prints) == sorted(want[part]), f"{part}: the set of tensors changed"
        for label, (dtype, shape, stats) in rec.prints.items():
            w_dtype, w_shape, w_stats = want[part][label]
            assert (dtype, shape) == (w_dtype, w_shape), label
            for name, got, exp in zip(STATS, stats, w_stats):
                assert abs(got - exp) <= ATOL, f"{part} {label} {name}: {got!r} != {exp!r}"
    assert records["extra"].plans.hexdigest() == want["extra_plans"]


def test_bit_for_bit_on_a_recorded_platform(records):
    key = platform_key()
    if key not in RECORDED:
        pytest.skip(f"digests not recorded for {key} (rounding differs across CPUs; "
                    "the fingerprint test covers this platform)")
    got = records["quickstart"].hash.hexdigest(), records["extra"].hash.hexdigest()
    assert got == RECORDED[key]


if __name__ == "__main__":
    torch.set_num_threads(1)
    q, e = quickstart_record(), extra_record()
    print("platform key:", platform_key())
    print("QUICKSTART =", q.hash.hexdigest())
    print("EXTRA =", e.hash.hexdigest())
    if "--record" in sys.argv:
        FINGERPRINTS.parent.mkdir(exist_ok=True)
        FINGERPRINTS.write_text(json.dumps({"quickstart": q.prints, "extra": e.prints,
                                            "extra_plans": e.plans.hexdigest()}, indent=0) + "\n")
        print("wrote", FINGERPRINTS)
