"""The inversion stage through `lift predict`: the shipped config, W overlay, DDP sharding."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from inversion_helpers import single_thread as _single_thread

from lift.latent_bank import LatentBank

single_thread = pytest.fixture(autouse=True)(_single_thread)

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "invert" / "stylegan2_quickstart.yaml"

# A narrow generator, a few steps and small shards: the config's wiring, not its quality.
GENERATOR = json.dumps({"class_path": "lift_stylegan2.networks.Generator", "init_args": {
    "z_dim": 32, "w_dim": 32, "resolution": 64, "channel_base": 256, "channel_max": 16,
    "mapping_layers": 2}})
SMALL = [
    "--model.init_args.checkpoint", "null",
    "--model.init_args.generator", GENERATOR,
    "--model.init_args.settings.init_args.schedule.init_args.steps", "2",
    "--model.init_args.settings.init_args.w_stats_samples", "256",
    "--model.init_args.settings.init_args.batch_size", "16",
    "--model.init_args.shard_size", "8",
    "--data.init_args.batch_size", "16",
    "--trainer.enable_progress_bar", "false",
]


def _phone_train_stems() -> list[str]:
    from lift.data import SyntheticSource

    return sorted(SyntheticSource("quickstart", 0).splits()["phone_train"])


def test_lift_predict_writes_wplus_and_w_banks(tmp_path):
    from lift.cli import main

    for overlay, name in ((None, "wplus"), (ROOT / "configs" / "invert" / "w_space.yaml", "w")):
        args = ["predict", "--config", str(CONFIG)]
        if overlay is not None:
            args += ["--config", str(overlay)]
        args += ["--config", str(ROOT / "configs" / "trainer" / "cpu.yaml"), *SMALL,
                 "--trainer.default_root_dir", str(tmp_path / f"{name}_run")]
        assert main(args) == 0
        if overlay is None:  # the same command again resumes: the bank is complete, no work
            shard = tmp_path / f"{name}_run" / "bank" / "shard_00000.safetensors"
            before = shard.stat().st_mtime_ns
            assert main(args) == 0
            assert shard.stat().st_mtime_ns == before
    # bank_dir is null in the config: the bank is <default_root_dir>/bank
    wplus = LatentBank.open(tmp_path / "wplus_run" / "bank")
    w = LatentBank.open(tmp_path / "w_run" / "bank")
    for bank in (wplus, w):
        bank.check_complete()
        assert bank.stems == _phone_train_stems()
    assert wplus.manifest["config"]["code"] == "WPlusCode"
    assert w.manifest["config"]["code"] == "WCode"
    codes = w.tensor()
    assert (codes == codes[:, :1]).all()  # W codes: one w for every layer
    assert not (wplus.tensor() == wplus.tensor()[:, :1]).all()


@pytest.mark.ddp
def test_ddp_ranks_invert_disjoint_shards_covering_every_texture_once(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    cmd = [sys.executable, "-m", "lift.cli", "predict", "--config", str(CONFIG),
           "--config", str(ROOT / "configs" / "trainer" / "ddp_cpu.yaml"), *SMALL,
           "--trainer.default_root_dir", str(tmp_path / "run")]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    bank = LatentBank.open(tmp_path / "run" / "bank")
    bank.check_complete()
    stems = _phone_train_stems()
    assert bank.stems == stems and len(set(bank.stems)) == len(stems)  # each exactly once
    ranks = bank.shard_ranks()
    assert ranks == {k: k % 2 for k in range(bank.layout.num_shards)}  # rank r: shards r::2
    assert (tmp_path / "run" / "bank" / "index.json").exists()
