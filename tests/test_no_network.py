"""No network at run time (issue 13): lift works with every internet connection refused.

Sockets are blocked with tests/no_network/sitecustomize.py: in this process by calling its
``block()``, in subprocesses by putting its folder on PYTHONPATH with
``LIFT_TEST_NO_NETWORK=<log>`` (Python imports ``sitecustomize`` at startup). Every attempt is
also appended to the log, so code that tried the network and fell back quietly fails the test
as well as code that crashed.

Default run: each stage of the quickstart chain through ``lift`` in this process at toy sizes
(prior 1 step -> a real checkpoint; the inversion into a complete bank; the StyleGAN-W+, CUT and
upsampling stages' ``fast_dev_run``; a baseline translator's checkpoint -> the pipeline's
predict). ``slow``: the whole toy chain of tests/test_chain.py through ``lift run`` (a
subprocess per stage, blocked the same way), tables and report included.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lift.cli import main

ROOT = Path(__file__).resolve().parents[1]
GUARD_DIR = Path(__file__).resolve().parent / "no_network"
CPU = str(ROOT / "configs" / "trainer" / "cpu.yaml")

_spec = importlib.util.spec_from_file_location("lift_no_network_guard",
                                               GUARD_DIR / "sitecustomize.py")
guard = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(guard)

TINY_G = {"z_dim": 16, "w_dim": 16, "mapping_layers": 2, "channel_base": 128, "channel_max": 16}
TINY_D = {"channel_base": 128, "channel_max": 16, "mbstd_group_size": 2}
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
NO_VAL = ["--trainer.limit_val_batches=0", "--trainer.num_sanity_val_steps=0"]


@pytest.fixture
def no_network(tmp_path):
    """Internet sockets and name resolution raise in this process; yields the attempt log."""
    log = tmp_path / "network_attempts.log"
    saved = guard.block(str(log))
    try:
        yield log
    finally:
        guard.unblock(saved)


def _attempts(log: Path) -> str:
    return log.read_text() if log.exists() else ""


def test_the_guard_blocks_this_process(no_network):
    with pytest.raises(OSError, match="network access blocked"):
        socket.create_connection(("192.0.2.1", 80), timeout=1)
    with pytest.raises(OSError, match="network access blocked"):
        socket.getaddrinfo("example.com", 443)
    with pytest.raises(OSError, match="network access blocked"):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM).connect(("192.0.2.1", 80))
    a, b = socket.socketpair()  # local sockets still work
    a.sendall(b"x")
    assert b.recv(1) == b"x"
    a.close()
    b.close()
    assert _attempts(no_network).count("pid ") == 3


def test_the_guard_blocks_subprocesses(tmp_path):
    log = tmp_path / "attempts.log"
    env = {**os.environ, guard.ENV: str(log),
           "PYTHONPATH": os.pathsep.join([str(GUARD_DIR), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-c", "import urllib.request; "
         "urllib.request.urlopen('http://192.0.2.1/', timeout=1)"],
        env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "network access blocked" in proc.stderr
    assert "create_connection" in _attempts(log)


def _lift(*argv: str) -> None:
    code = main(list(argv))
    assert code == 0, f"lift {' '.join(argv)} exited {code}"


DATA = ["--data.init_args.source.init_args.profile=nonet"]
TINY = [*(f"--model.init_args.generator.init_args.{k}={v}" for k, v in TINY_G.items()),
        *(f"--model.init_args.discriminator.init_args.{k}={v}" for k, v in TINY_D.items())]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """The prior (1 step: a real checkpoint) and its complete bank, made with the network
    blocked; the quickstart's sizes (256², GANs at 64²) with 2 subjects per split
    (generating all 86 takes ~30 s)."""
    from lift.data import synth

    d = tmp_path_factory.mktemp("no_network_chain")
    log = d / "network_attempts.log"
    saved = guard.block(str(log))
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(ROOT)
            mp.setenv("LIFT_SYNTH_CACHE", str(d / "synth_cache"))
            mp.setitem(synth.PROFILES, "nonet", synth.SynthProfile(
                "nonet", 256, 64, phone_only=2, studio_only=2, paired_train=2, paired_test=1,
                unpaired_test=1, expressions=1))
            prior = d / "prior"
            _lift("fit", "--config", "configs/prior/stylegan2_quickstart.yaml", "--config", CPU,
                  f"--trainer.default_root_dir={prior}", "--trainer.max_steps=1",
                  "--trainer.limit_train_batches=1", "--data.init_args.batch_size=2", *NO_VAL,
                  *QUIET, *TINY, *DATA)
            invert = d / "invert"
            _lift("predict", "--config", "configs/invert/stylegan2_quickstart.yaml",
                  "--config", CPU, f"--trainer.default_root_dir={invert}",
                  f"--model.init_args.checkpoint={prior / 'last.ckpt'}",
                  "--model.init_args.settings.init_args.schedule.init_args.steps=1",
                  "--model.init_args.settings.init_args.w_stats_samples=64",
                  "--data.init_args.predict_split=paired_train",  # the codes the test needs
                  "--trainer.enable_progress_bar=false", "--return_predictions=false", *DATA)
            assert _attempts(log) == "", _attempts(log)
            yield {"dir": d, "checkpoint": prior / "last.ckpt",
                   "bank": next(invert.rglob("manifest.json")).parent, "mp": mp}
    finally:
        guard.unblock(saved)


@pytest.fixture
def blocked(chain, no_network, monkeypatch):
    monkeypatch.chdir(ROOT)
    return chain


def test_prior_and_inversion_run_with_the_network_blocked(blocked):
    from lift.latent_bank import LatentBank

    assert blocked["checkpoint"].is_file()
    LatentBank.open(blocked["bank"]).check_complete()


def test_stylegan_wplus_translation_runs_with_the_network_blocked(blocked, no_network):
    wplus = "model.init_args.translator.init_args"
    _lift("fit", "--config", "configs/translate/stylegan_wplus_quickstart.yaml", "--config", CPU,
          f"--trainer.default_root_dir={blocked['dir'] / 'translate'}",
          "--trainer.fast_dev_run=true", f"--{wplus}.checkpoint={blocked['checkpoint']}",
          f"--{wplus}.sampler.init_args.bank={blocked['bank']}",
          f"--{wplus}.paired_bank={blocked['bank']}", "--data.init_args.batch_size=2",
          "--data.init_args.paired_batch_size=2", *QUIET, *DATA)
    assert _attempts(no_network) == "", _attempts(no_network)


def test_cut_translation_runs_with_the_network_blocked(blocked, no_network):
    cut = "model.init_args.translator.init_args"
    _lift("fit", "--config", "configs/translate/cut_quickstart.yaml", "--config", CPU,
          f"--trainer.default_root_dir={blocked['dir'] / 'cut'}", "--trainer.fast_dev_run=true",
          f"--{cut}.ngf=8", f"--{cut}.ndf=8", f"--{cut}.n_blocks=1", f"--{cut}.num_patches=16",
          f"--{cut}.mlp_channels=16", "--data.init_args.batch_size=1", *QUIET, *DATA)
    assert _attempts(no_network) == "", _attempts(no_network)


@pytest.mark.slow  # the slowest of these (~20 s): the default run keeps the others
def test_upsampling_runs_with_the_network_blocked(blocked, no_network):
    denoiser = "model.init_args.upsampler.init_args.denoiser.init_args"
    _lift("fit", "--config", "configs/upsample/resshift_train_inference.yaml", "--config", CPU,
          f"--trainer.default_root_dir={blocked['dir'] / 'upsample'}",
          "--trainer.fast_dev_run=true", "--data.init_args.crop_size=64",
          f"--{denoiser}.block_out_channels=[8, 8, 8]", f"--{denoiser}.norm_num_groups=4",
          "--model.init_args.num_inference_steps=2", "--data.init_args.batch_size=2", *QUIET,
          *DATA)
    assert _attempts(no_network) == "", _attempts(no_network)


def test_the_pipeline_predicts_with_the_network_blocked(blocked, no_network):
    d = blocked["dir"]
    baseline = d / "phone_texture"
    _lift("fit", "--config", "configs/translate/phone_texture_quickstart.yaml", "--config", CPU,
          f"--trainer.default_root_dir={baseline}", "--data.init_args.batch_size=2", *QUIET,
          *DATA)
    out = d / "predictions"
    _lift("predict", "--config", "configs/pipeline/studio.yaml",
          "--config", "configs/fragments/quickstart_data.yaml", "--config", CPU,
          f"--trainer.default_root_dir={d / 'pipeline'}",
          f"--model.init_args.translator={baseline / 'last.ckpt'}",
          "--model.init_args.upsampler=null", "--model.init_args.translator_resolution=64",
          "--data.init_args.predict_split=paired_test", "--trainer.limit_predict_batches=1",
          f"--trainer.callbacks.output_dir={out}", "--return_predictions=false", *QUIET, *DATA)
    assert list((out / "studio").glob("*.png"))
    assert _attempts(no_network) == "", _attempts(no_network)


@pytest.mark.slow
@pytest.mark.chain
def test_the_whole_toy_chain_through_lift_run_with_the_network_blocked(tmp_path, monkeypatch,
                                                                        no_network):
    """tests/test_chain.py's recipe, every stage subprocess with sockets blocked too."""
    from test_chain import _recipe

    from lift.run.runner import run

    monkeypatch.chdir(ROOT)
    monkeypatch.setenv(guard.ENV, str(no_network))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in [str(GUARD_DIR), os.environ.get("PYTHONPATH", "")] if p))
    out = tmp_path / "run"
    assert run(_recipe(tmp_path), out=out, stream=False) == 0
    record = json.loads((out / "run.json").read_text())
    assert all(u["status"] == "done" for runs in record["stages"].values() for u in runs.values())
    assert (out / "tables" / "table1.json").is_file() and (out / "report" / "index.html").is_file()
    assert _attempts(no_network) == "", _attempts(no_network)
