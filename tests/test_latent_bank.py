"""The latent bank S_W+: partition, atomic shards, completeness, resume identity."""

from __future__ import annotations

import json

import pytest
import torch

from lift.latent_bank import (
    BankLayout,
    LatentBank,
    LatentBankError,
    LatentBankWriter,
    make_manifest,
    shard_name,
    state_dict_fingerprint,
)

NUM_WS, W_DIM = 4, 6


def _stats(n: int, offset: float = 0.0) -> dict[str, torch.Tensor]:
    base = torch.arange(n, dtype=torch.float32) + offset
    return {"final_loss": base, "mse": base / 2, "perceptual": base / 4,
            "steps": torch.full((n,), 7)}


def _writer(tmp_path, stems, shard_size=3, fingerprint="abc"):
    layout = BankLayout.from_stems(stems, shard_size)
    manifest = make_manifest(layout, num_ws=NUM_WS, w_dim=W_DIM,
                             generator={"fingerprint": fingerprint}, config={"steps": 5})
    return LatentBankWriter(tmp_path / "bank", manifest)


def _code(stem: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(sum(map(ord, stem)))
    return torch.randn(NUM_WS, W_DIM, generator=g)


def test_layout_partition_is_deterministic_and_ranks_disjoint():
    stems = [f"t{i:03d}" for i in range(10)][::-1]  # given unsorted
    layout = BankLayout.from_stems(stems, 3)
    assert layout.num_shards == 4
    assert layout.shard_stems(0) == ("t000", "t001", "t002")
    assert layout.shard_stems(3) == ("t009",)
    assert layout.shard_of("t004") == 1
    for world in (1, 2, 3):
        shards = [layout.shards_for_rank(r, world) for r in range(world)]
        flat = sorted(k for s in shards for k in s)
        assert flat == list(range(4))
    assert layout.shards_for_rank(1, 2) == [1, 3]
    with pytest.raises(ValueError, match="duplicate"):
        BankLayout.from_stems(["a", "a"], 2)


def test_write_read_roundtrip_in_any_stem_order(tmp_path):
    stems = [f"t{i:02d}" for i in range(7)]
    writer = _writer(tmp_path, stems)
    writer.prepare()
    layout = writer.layout
    for k in range(layout.num_shards):
        mine = list(layout.shard_stems(k))[::-1]  # order within a shard does not matter
        codes = torch.stack([_code(s) for s in mine])
        stats = _stats(len(mine), offset=10 * k)
        writer.write_shard(k, mine, codes, stats)
    bank = LatentBank.open(writer.root)
    bank.check_complete()
    assert bank.stems == stems
    assert bank.tensor().shape == (7, NUM_WS, W_DIM)
    for s in stems:
        torch.testing.assert_close(bank.get(s), _code(s))
    # records follow the stems: shard 0 was written reversed with losses 0,1,2
    rec = {r["stem"]: r for r in bank.records()}
    assert rec["t00"]["final_loss"] == 2.0 and rec["t02"]["final_loss"] == 0.0
    assert rec["t03"]["shard"] == 1 and rec["t03"]["steps"] == 7
    writer.write_index()
    index = json.loads((writer.root / "index.json").read_text())
    assert [r["stem"] for r in index] == stems


def test_incomplete_bank_is_reported_and_wrong_shard_content_rejected(tmp_path):
    stems = [f"t{i}" for i in range(5)]
    writer = _writer(tmp_path, stems, shard_size=2)
    writer.prepare()
    writer.write_shard(1, ["t2", "t3"], torch.zeros(2, NUM_WS, W_DIM), _stats(2))
    bank = LatentBank.open(writer.root)
    assert not bank.is_complete and bank.missing_shards() == [0, 2]
    assert bank.stems == ["t2", "t3"]
    with pytest.raises(LatentBankError, match="incomplete"):
        bank.check_complete()
    with pytest.raises(LatentBankError, match="exactly"):
        writer.write_shard(0, ["t0", "t2"], torch.zeros(2, NUM_WS, W_DIM), _stats(2))
    with pytest.raises(KeyError, match="t0"):
        bank.get("t0")


def test_resume_requires_same_identity(tmp_path):
    stems = ["a", "b", "c"]
    _writer(tmp_path, stems).prepare()
    _writer(tmp_path, stems).prepare()  # same identity: fine (resume)
    with pytest.raises(LatentBankError, match="generator"):
        _writer(tmp_path, stems, fingerprint="other").prepare()
    with pytest.raises(LatentBankError, match="stems"):
        _writer(tmp_path, stems + ["d"]).prepare()


def test_crash_during_shard_write_leaves_no_shard(tmp_path, monkeypatch):
    stems = ["a", "b"]
    writer = _writer(tmp_path, stems, shard_size=2)
    writer.prepare()
    import lift.latent_bank as lb

    def boom(tensors, path, metadata=None):
        open(path, "wb").write(b"partial")
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(lb, "save_file", boom)
    with pytest.raises(KeyboardInterrupt):
        writer.write_shard(0, stems, torch.zeros(2, NUM_WS, W_DIM), _stats(2))
    assert not (writer.root / shard_name(0)).exists()
    assert [p.name for p in writer.root.iterdir()] == ["manifest.json"]
    assert writer.done_shards() == set()


def test_state_dict_fingerprint_tracks_values():
    a = torch.nn.Linear(3, 2)
    b = torch.nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    assert state_dict_fingerprint(a) == state_dict_fingerprint(b)
    with torch.no_grad():
        b.bias[0] += 1e-6
    assert state_dict_fingerprint(a) != state_dict_fingerprint(b)
