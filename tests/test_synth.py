"""Tests of the synthetic phone/studio UV texture generator (lift.data.synth)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from lift.data.synth import (
    EXPRESSION_KINDS,
    PROFILES,
    SynthProfile,
    TextureSynthesizer,
    _blur,
    iter_samples,
    split_plan,
    subject_plan,
)

RES = 96


@pytest.fixture(scope="module")
def synth() -> TextureSynthesizer:
    return TextureSynthesizer(RES, seed=0)


def _masked_mean(x: torch.Tensor, m: torch.Tensor) -> float:
    return float((x * m).sum() / (x.shape[0] * m.sum()).clamp(min=1))


# ------------------------------------------------------------------ profiles and splits


def test_profiles_match_the_paper_regime():
    p = PROFILES["paper"]
    assert (p.resolution, p.low_resolution) == (1024, 256)
    assert p.phone_only + p.paired_train == 12543  # phone textures training G_phone
    assert p.studio_only + p.paired_train == 383  # studio textures finetuning G_studio
    assert (p.paired_train, p.paired_test, p.unpaired_test) == (83, 10, 31)
    for name in ("quickstart", "cpu"):
        assert (PROFILES[name].resolution, PROFILES[name].low_resolution) == (256, 64)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.resolution = 3  # type: ignore[misc]


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_split_plan_counts_and_disjointness(name):
    prof = PROFILES[name]
    plan = split_plan(prof)
    assert set(plan) == {"phone_train", "studio_train", "paired_train", "paired_test", "unpaired_test"}
    assert len(plan["phone_train"]) == prof.phone_only + prof.paired_train
    assert len(plan["studio_train"]) == prof.studio_only + prof.paired_train
    assert len(plan["paired_train"]) == prof.paired_train
    assert len(plan["paired_test"]) == prof.paired_test
    assert len(plan["unpaired_test"]) == prof.unpaired_test
    assert all(ph for _, _, ph, _ in plan["phone_train"])
    assert all(st for _, _, _, st in plan["studio_train"])
    assert all(ph and st for _, _, ph, st in plan["paired_train"] + plan["paired_test"])
    assert all(ph and not st for _, _, ph, st in plan["unpaired_test"])
    stems = {k: {s for s, *_ in v} for k, v in plan.items()}
    train = stems["phone_train"] | stems["studio_train"]
    assert not train & stems["paired_test"] and not train & stems["unpaired_test"]
    assert not stems["paired_test"] & stems["unpaired_test"]
    assert stems["paired_train"] == stems["phone_train"] & stems["studio_train"]
    # every subject has a distinct index and the stem encodes it
    subjects = subject_plan(prof)
    assert len(subjects) == prof.num_subjects == len({i for _, i, *_ in subjects})
    for stem, i, *_ in subjects:
        assert stem == f"s{i:06d}"
    for _, _, ph, st, ne, cat in subjects:
        assert ne == (prof.expressions if ph and cat != "phone_only" else 0)


# ------------------------------------------------------------------ determinism


def test_deterministic_per_seed_and_index_regardless_of_order(synth):
    a = synth.sample(5, expressions=1)
    for i in (3, 0, 7):
        synth.sample(i)
    b = synth.sample(5, expressions=1)
    c = TextureSynthesizer(RES, seed=0).sample(5, expressions=1)
    for s in (b, c):
        assert torch.equal(a.phone, s.phone) and torch.equal(a.mask, s.mask) and torch.equal(a.studio, s.studio)
        for k in a.expressions:
            assert torch.equal(a.expressions[k], s.expressions[k])
            assert torch.equal(a.expressions_studio[k], s.expressions_studio[k])
    # requesting fewer outputs never changes the others
    assert torch.equal(synth.sample(5, phone=False).studio, a.studio)
    only_phone = synth.sample(5, studio=False)
    assert only_phone.studio is None and torch.equal(only_phone.phone, a.phone)


def test_different_seeds_and_indices_differ(synth):
    a = synth.sample(1)
    b = synth.sample(2)
    c = TextureSynthesizer(RES, seed=1).sample(1)
    for other in (b, c):
        assert (a.studio - other.studio).abs().mean() > 1e-2
        assert not torch.equal(a.phone, other.phone)


# ------------------------------------------------------------------ format


def test_shapes_dtypes_range_and_16bit_quantisation(synth):
    s = synth.sample(4, expressions=2)
    assert s.stem == "s000004"
    tex = [s.phone, s.studio, *s.expressions.values(), *s.expressions_studio.values()]
    assert len(s.expressions) == len(s.expressions_studio) == 2
    for t in tex:
        assert t.shape == (3, RES, RES) and t.dtype == torch.float32
        assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0
        q = t * 65535
        assert torch.equal(q, torch.round(q))  # exactly on the 16-bit grid
    assert s.mask.shape == (1, RES, RES) and s.mask.dtype == torch.float32
    assert set(torch.unique(s.mask).tolist()) <= {0.0, 1.0}
    assert float((s.phone * (1 - s.mask)).abs().max()) == 0.0  # missing texels are black
    # the 16-bit PNG convention used by writers/readers reproduces the tensor bit for bit
    u16 = np.round(s.phone.numpy() * 65535).astype(np.uint16)
    assert torch.equal(torch.from_numpy(u16.astype(np.float32) / np.float32(65535)), s.phone)
    raw = TextureSynthesizer(RES, seed=0, quantize_bits=None).sample(4)
    assert torch.allclose(raw.studio, s.studio, atol=1 / 65535)


def test_custom_missing_value_and_no_misalignment():
    s = TextureSynthesizer(64, seed=0, missing_value=0.5, misalignment_px=0.0, quantize_bits=8).sample(0)
    assert torch.all(s.phone[:, s.mask[0] == 0] == 128 / 255)


# ------------------------------------------------------------------ physics


def test_missing_regions_are_where_a_phone_scan_cannot_see(synth):
    back = (synth.x.abs() > 0.45).float()  # back of the head (UV seam)
    face = ((synth.x.abs() < 0.12) & (synth.v > 0.3) & (synth.v < 0.7)).float()
    vb, vf, holes = [], [], []
    for i in range(6):
        m = synth.sample(i, studio=False).mask
        vb.append(_masked_mean(m, back))
        vf.append(_masked_mean(m, face))
        holes.append(1 - float(m.mean()))
    assert np.mean(vb) < 0.15 and np.mean(vf) > 0.9
    assert min(holes) > 0.1


def test_studio_is_lighting_free_phone_is_not(synth):
    a = synth.sample(2)
    b = synth.sample(2, capture=1)  # same identity, another phone capture (lights, camera)
    assert torch.equal(a.studio, b.studio)
    m = a.mask * b.mask
    assert _masked_mean((a.phone - b.phone).abs(), m) > 0.02
    assert a.meta["key_azimuth_deg"] != b.meta["key_azimuth_deg"]


def test_studio_is_near_symmetric_but_not_exactly(synth):
    fw = synth.face_w
    for i in range(3):
        st = synth.sample(i, phone=False).studio
        other = synth.sample(i + 20, phone=False).studio
        sym = _masked_mean((st - st.flip(-1)).abs(), fw)
        assert 1e-3 < sym < 0.2 * _masked_mean(st, fw)
        assert sym < 0.5 * _masked_mean((st - other.flip(-1)).abs(), fw)


def test_identity_is_recognisable_across_phone_and_studio():
    synth = TextureSynthesizer(128, seed=3)
    n = 8
    samples = [synth.sample(i) for i in range(n)]
    mse = torch.zeros(n, n)
    corr = torch.zeros(n, n)

    def hp(t):  # log-luminance high-pass: identity detail, not illumination
        y = torch.log(t.mean(0, keepdim=True) + 0.01)
        return y - _blur(y, 3.0)

    for i in range(n):
        for j in range(n):
            m = samples[j].mask
            mse[i, j] = _masked_mean((samples[i].studio - samples[j].phone) ** 2, m)
            w = m * synth.face_w
            a, b = hp(samples[i].studio) * w, hp(samples[j].phone) * w
            corr[i, j] = (a * b).sum() / ((a * a).sum() * (b * b).sum()).sqrt()
    own, others = mse.diag().mean(), (mse.sum() - mse.diag().sum()) / (n * n - n)
    assert own < others
    assert (corr.argmax(1) == torch.arange(n)).float().mean() >= 0.5


def test_expressions_share_phone_lighting_and_move_the_face(synth):
    s = synth.sample(6, expressions=3)
    names = list(s.expressions)
    assert [n.split("_", 1)[1] for n in names] == list(EXPRESSION_KINDS[:3])
    x, v = synth.x.abs(), synth.v
    forehead = ((x < 0.1) & (v > 0.2) & (v < 0.28)).float() * s.mask
    mouth = ((x < 0.1) & (v > 0.58) & (v < 0.72)).float()
    for n in names:
        exp_phone, exp_studio = s.expressions[n], s.expressions_studio[n]
        # same capture: unaffected regions match the neutral phone texture up to noise
        assert _masked_mean((exp_phone - s.phone).abs(), forehead) < 0.03
        assert _masked_mean((exp_studio - s.studio).abs(), forehead) < 0.01
    smile, opened = s.expressions_studio[names[0]], s.expressions_studio[names[1]]
    for t in (smile, opened):
        assert _masked_mean((t - s.studio).abs(), mouth) > 0.005
    # the neutral phone texture's colour transform applies to its expressions (Eq. 15-16):
    # phone / studio ratios agree away from the deformed region
    ratio_n = s.phone / s.studio.clamp(min=0.02)
    ratio_e = s.expressions[names[2]] / s.expressions_studio[names[2]].clamp(min=0.02)
    assert _masked_mean((ratio_n - ratio_e).abs(), forehead) < 0.1


def test_iter_samples_yields_every_subject_once():
    prof = SynthProfile("tiny", 48, 16, 2, 1, 1, 1, 1, 1)
    got = list(iter_samples(prof, seed=0))
    assert [s.stem for s in got] == [s for s, *_ in subject_plan(prof)]
    flags = [(s.phone is not None, s.studio is not None, len(s.expressions)) for s in got]
    assert flags == [(True, False, 0), (True, False, 0), (False, True, 0), (True, True, 1), (True, True, 1), (True, False, 1)]
    synth = TextureSynthesizer(48, seed=0)
    assert torch.equal(got[3].phone, synth.sample(3).phone)


def test_threads_setting_is_restored():
    before = torch.get_num_threads()
    TextureSynthesizer(32, num_threads=1).sample(0)
    assert torch.get_num_threads() == before


def test_a_disk_cache_returns_the_generated_subject_bit_for_bit(tmp_path):
    from lift.data.sources import SyntheticSource

    first = SyntheticSource("quickstart", 0, cache_dir=str(tmp_path))
    stem = first.splits()["paired_train"][0]
    made = first.sample(stem)
    files = list(tmp_path.rglob("*.pt"))
    assert len(files) == 1 and files[0].name == f"{stem}.pt"
    again = SyntheticSource("quickstart", 0, cache_dir=str(tmp_path))
    again._synth = object()  # reading must not generate (the synthesizer is never called)
    read = again.sample(stem)
    for kind in ("phone", "mask", "studio"):
        assert torch.equal(getattr(made, kind), getattr(read, kind))
    assert read.meta == made.meta
    files[0].write_bytes(b"damaged")  # a damaged file is regenerated, never trusted
    fresh = SyntheticSource("quickstart", 0, cache_dir=str(tmp_path)).sample(stem)
    assert torch.equal(fresh.phone, made.phone)
