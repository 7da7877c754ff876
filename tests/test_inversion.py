"""W+ inversion (Eq. 1): schedule, loss decrease, W+ vs W, per-texture independence."""

from __future__ import annotations

import math

import pytest
import torch
from inversion_helpers import single_thread as _single_thread
from inversion_helpers import MSEDistance, TinyGenerator, targets_from

from lift.inversion.codes import WCode, WPlusCode
from lift.inversion.inverter import BatchedInverter
from lift.inversion.objective import InversionObjective
from lift.inversion.schedule import ProjectorSchedule
from lift.inversion.stopping import PlateauStop

single_thread = pytest.fixture(autouse=True)(_single_thread)


def reference_schedule(steps=1000):
    return ProjectorSchedule(steps=steps, lr=0.1, lr_rampup=0.05, lr_rampdown=0.25,
                             noise_strength=0.05, noise_ramp=0.75)


def make_inverter(gen, code=None, steps=60, batch_size=4, early_stop=None, lr=0.1,
                  use_mask=False, noise=0.05):
    objective = InversionObjective(MSEDistance(), mse_weight=1.0, perceptual_weight=1.0,
                                   use_mask=use_mask)
    schedule = ProjectorSchedule(steps=steps, lr=lr, lr_rampup=0.05, lr_rampdown=0.25,
                                 noise_strength=noise, noise_ramp=0.75)
    return BatchedInverter(gen, objective, code or WPlusCode(), schedule, batch_size=batch_size,
                           early_stop=early_stop, w_stats_samples=2000, seed=0)


def test_schedule_matches_reference_formulas():
    s = reference_schedule()
    step = torch.tensor([0, 25, 50, 500, 750, 875, 999])
    lr = s.learning_rate(step)
    t = step.double() / 1000
    expected = [0.1 * min(1.0, tt / 0.05) * (0.5 - 0.5 * math.cos(math.pi * min(1.0, (1 - tt) / 0.25)))
                for tt in t.tolist()]
    torch.testing.assert_close(lr, torch.tensor(expected, dtype=torch.float32))
    assert lr[0] == 0 and abs(lr[1] - 0.05) < 1e-7 and lr[3] == pytest.approx(0.1)
    assert lr[5] == pytest.approx(0.05, abs=1e-6)  # half-way down the cosine
    noise = s.noise_scale(step)
    expected_noise = [0.05 * max(0.0, 1 - tt / 0.75) ** 2 for tt in t.tolist()]
    torch.testing.assert_close(noise, torch.tensor(expected_noise, dtype=torch.float32))
    assert noise[4] == 0 and noise[0] == pytest.approx(0.05)


def test_plateau_stop_counts_per_texture():
    stop = PlateauStop(patience=2, rel_tol=0.1, min_steps=0)
    best = torch.full((2,), float("inf"))
    since = torch.zeros(2, dtype=torch.long)
    history = [(1.0, 1.0), (0.5, 0.95), (0.4, 0.94), (0.3, 0.93)]
    stops = []
    for k, (a, b) in enumerate(history):
        best, since, s = stop.update(torch.tensor([a, b]), best, since, torch.tensor([k + 1] * 2))
        stops.append(s.tolist())
    # texture 0 keeps improving by > 10 %; texture 1 stops after 2 steps without improvement
    assert stops == [[False, False], [False, False], [False, True], [False, True]]


def test_masked_objective_ignores_invisible_texels():
    objective = InversionObjective(MSEDistance(), 1.0, 1.0, use_mask=True)
    target = torch.rand(2, 3, 8, 8)
    mask = torch.zeros(2, 1, 8, 8)
    mask[:, :, :4] = 1
    synth = target * 2 - 1
    synth[:, :, 4:] = 5.0  # wrong only where invisible
    out = objective(synth, target, mask)
    torch.testing.assert_close(out["loss"], torch.zeros(2))
    synth[0, :, 0, 0] += 0.2  # one visible texel wrong by 0.1 in [0,1] units, 3 channels
    out = objective(synth, target, mask)
    assert out["mse"][0] == pytest.approx(3 * 0.01 / (32 * 3), rel=1e-4)
    assert out["mse"][1] == 0


def test_loss_decreases_and_wplus_beats_w():
    gen = TinyGenerator(seed=0)
    targets = targets_from(gen, 4, seed=1, plus=True)
    stems = [f"t{i}" for i in range(4)]
    inv = make_inverter(gen, WPlusCode(), steps=120)
    w_avg, _ = inv.w_stats
    with torch.no_grad():
        start = inv.objective(gen.synthesis(w_avg.expand(4, gen.num_ws, -1), noise_mode="const"),
                              targets, None)["loss"]
    wplus = inv.invert(stems, targets)
    w = make_inverter(gen, WCode(), steps=120).invert(stems, targets)
    wplus_loss = torch.tensor([r.loss for r in wplus])
    w_loss = torch.tensor([r.loss for r in w])
    assert (wplus_loss < 0.5 * start).all(), (wplus_loss, start)
    assert (w_loss < start).all()
    assert wplus_loss.mean() < 0.7 * w_loss.mean(), (wplus_loss, w_loss)
    for r in w:  # a W code is one w broadcast to every layer
        assert torch.equal(r.w_plus, r.w_plus[:1].expand_as(r.w_plus))
    assert all(r.steps == 120 for r in wplus)


def test_texture_result_does_not_depend_on_batch_neighbours():
    gen = TinyGenerator(seed=0)
    targets = targets_from(gen, 6, seed=2)
    stems = [f"t{i}" for i in range(6)]
    # t2 with neighbours t0..t3 (batch 4), then alone, then among other textures, position 0
    together = make_inverter(gen, steps=40, batch_size=4).invert(stems[:4], targets[:4])
    alone = make_inverter(gen, steps=40, batch_size=1).invert([stems[2]], targets[2:3])
    mixed = make_inverter(gen, steps=40, batch_size=3).invert(
        [stems[2], stems[5], stems[4]], targets[[2, 5, 4]])
    ref = together[2].w_plus
    torch.testing.assert_close(alone[0].w_plus, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(mixed[0].w_plus, ref, atol=1e-5, rtol=0)
    assert not torch.allclose(together[1].w_plus, ref)


def test_continuous_batching_with_early_stop_keeps_independence():
    gen = TinyGenerator(seed=0)
    targets = targets_from(gen, 5, seed=3)
    stems = [f"t{i}" for i in range(5)]
    early = PlateauStop(patience=5, rel_tol=0.01, min_steps=10)
    streamed = make_inverter(gen, steps=80, batch_size=2, early_stop=early)
    results = streamed.invert(stems, targets)  # 5 textures through 2 slots
    solo = make_inverter(gen, steps=80, batch_size=1, early_stop=early).invert(
        [stems[3]], targets[3:4])
    assert results[3].steps == solo[0].steps
    torch.testing.assert_close(results[3].w_plus, solo[0].w_plus, atol=1e-5, rtol=0)
    assert any(r.steps < 80 for r in results)  # early stopping did stop some
    assert streamed.texture_steps == sum(r.steps for r in results)


# --- the Lightning stage -------------------------------------------------------------------


class SimulatedKill(Exception):
    """A process killed mid-run (Lightning turns KeyboardInterrupt into SystemExit)."""


def make_stage(bank_dir, steps=20, batch_size=3, shard_size=2, code=None, use_mask=True):
    from lift.stages.inversion import InversionModule

    return InversionModule(
        checkpoint=None, generator=TinyGenerator(seed=0), bank_dir=str(bank_dir),
        shard_size=shard_size, settings=make_settings(steps, batch_size, code, use_mask))


def make_settings(steps=20, batch_size=3, code=None, use_mask=True):
    from lift.inversion.settings import InversionSettings

    return InversionSettings(
        distance=MSEDistance(), code=code or WPlusCode(),
        schedule=ProjectorSchedule(steps=steps, lr=0.1, lr_rampup=0.05, lr_rampdown=0.25,
                                   noise_strength=0.05, noise_ramp=0.75),
        mse_weight=1.0, perceptual_weight=1.0, use_mask=use_mask, batch_size=batch_size,
        early_stop=None, adam_betas=(0.9, 0.999), adam_eps=1e-8, w_stats_samples=1000, seed=0)


def run_predict(module, num=6, loader_batch=4):
    import lightning as L
    from inversion_helpers import TinyTextureData

    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_checkpointing=False, enable_model_summary=False)
    trainer.predict(module, datamodule=TinyTextureData(num=num, batch_size=loader_batch),
                    return_predictions=False)
    return module


def test_stage_writes_a_complete_bank_under_inference_mode(tmp_path):
    from lift.latent_bank import LatentBank

    module = run_predict(make_stage(tmp_path / "bank"))
    bank = LatentBank.open(tmp_path / "bank")
    bank.check_complete()
    assert bank.stems == [f"t{i:03d}" for i in range(6)]
    assert sorted(module.shards_written) == [0, 1, 2]
    assert (tmp_path / "bank" / "index.json").exists()
    assert "WPlusCode" in (tmp_path / "bank" / "report.md").read_text()
    records = bank.records()
    assert all(r["steps"] == 20 and r["final_loss"] > 0 for r in records)
    manifest = bank.manifest
    assert manifest["config"]["code"] == "WPlusCode" and manifest["num_ws"] == 6
    # the stored code reproduces the stored loss
    from inversion_helpers import TinyTextures

    data = TinyTextures(6)
    gen = TinyGenerator(seed=0)
    with torch.no_grad():
        img = (gen.synthesis(bank.get("t004")[None], noise_mode="const") + 1) / 2
    m = data.masks[4:5]
    mse = (m * (img - data.images[4:5]).square()).sum() / (3 * m.sum())
    assert float(mse) == pytest.approx(records[4]["mse"], rel=1e-4)


def test_bank_resumes_after_a_crash_without_redoing_finished_shards(tmp_path, monkeypatch):
    from lift.latent_bank import LatentBank, LatentBankWriter

    reference = LatentBank.open(run_predict(make_stage(tmp_path / "ref")).bank_dir)
    original = LatentBankWriter.write_shard
    calls = []

    def crash_on_second(self, k, *args, **kwargs):
        calls.append(k)
        if len(calls) == 2:
            raise SimulatedKill("killed while writing a shard")
        return original(self, k, *args, **kwargs)

    monkeypatch.setattr(LatentBankWriter, "write_shard", crash_on_second)
    with pytest.raises(SimulatedKill):
        run_predict(make_stage(tmp_path / "bank"))
    monkeypatch.setattr(LatentBankWriter, "write_shard", original)
    partial = LatentBank.open(tmp_path / "bank")
    assert len(partial.missing_shards()) == 2  # one shard made it, the killed one did not
    first = (tmp_path / "bank" / "shard_00000.safetensors").read_bytes()
    resumed = run_predict(make_stage(tmp_path / "bank"))
    assert sorted(resumed.shards_written) == partial.missing_shards()
    assert (tmp_path / "bank" / "shard_00000.safetensors").read_bytes() == first
    bank = LatentBank.open(tmp_path / "bank")
    bank.check_complete()
    torch.testing.assert_close(bank.tensor(), reference.tensor(), atol=1e-5, rtol=0)
    # a finished bank is not redone
    assert run_predict(make_stage(tmp_path / "bank")).shards_written == []


def test_resume_into_a_bank_of_another_generator_is_refused(tmp_path):
    from lift.latent_bank import LatentBankError

    run_predict(make_stage(tmp_path / "bank", steps=2))
    module = make_stage(tmp_path / "bank", steps=2)
    with torch.no_grad():
        module.generator.synthesis.torgb.bias.add_(1.0)
    with pytest.raises(LatentBankError, match="generator"):
        run_predict(module)


def test_checkpoint_weights_load_by_prefix_and_misfits_name_the_file(tmp_path):
    from lift.checkpoints import CheckpointError, load_weights

    raw, ema = TinyGenerator(seed=1), TinyGenerator(seed=2)
    state = {f"generator.{k}": v for k, v in raw.state_dict().items()}
    state |= {f"generator_ema.{k}": v for k, v in ema.state_dict().items()}
    state["discriminator.w"] = torch.zeros(1)
    torch.save({"state_dict": state, "hyper_parameters": {}}, tmp_path / "prior.ckpt")
    for prefix, src in (("generator_ema", ema), ("generator", raw)):
        gen = load_weights(TinyGenerator(seed=0), tmp_path / "prior.ckpt", prefix)
        for k, v in gen.state_dict().items():
            torch.testing.assert_close(v, src.state_dict()[k])
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_weights(TinyGenerator(w_dim=4), tmp_path / "prior.ckpt", "generator_ema")
    with pytest.raises(CheckpointError, match="prior.ckpt.*no 'encoder"):
        load_weights(TinyGenerator(), tmp_path / "prior.ckpt", "encoder")
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.ckpt"):
        load_weights(TinyGenerator(), tmp_path / "bad.ckpt", "generator")


def test_prior_checkpoint_rebuilds_its_networks_and_the_stage_reads_it(tmp_path):
    """The prior records its networks' specs; the inversion stage needs the file and nothing
    else (architecture and EMA weights come from it), and loads it with weights_only=True."""
    prior = pytest.importorskip("lift.stages.prior")
    from lift_stylegan2.networks import Discriminator, Generator

    from lift.checkpoints import COMPONENTS_KEY, load_prior
    from lift.stages.inversion import InversionModule

    narrow = dict(resolution=16, channel_base=64, channel_max=8)
    module = prior.PriorModule(generator=Generator(z_dim=8, w_dim=8, mapping_layers=2, **narrow),
                               discriminator=Discriminator(**narrow))
    with torch.no_grad():
        for p in module.generator_ema.parameters():
            p.add_(0.5)
    # As Lightning writes it: state dict, plain-data hyperparameters, and the stage's own keys.
    checkpoint = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
    module.on_save_checkpoint(checkpoint)
    assert checkpoint[COMPONENTS_KEY]["generator"]["init_args"]["mapping_layers"] == 2
    torch.save(checkpoint, tmp_path / "last.ckpt")
    gen, disc = load_prior(tmp_path / "last.ckpt", ema=True)
    assert isinstance(gen, Generator) and isinstance(disc, Discriminator) and gen.w_dim == 8
    for k, v in module.generator_ema.state_dict().items():
        torch.testing.assert_close(gen.state_dict()[k], v)
    stage = InversionModule(checkpoint=str(tmp_path / "last.ckpt"), settings=make_settings(),
                            bank_dir=str(tmp_path / "bank"), shard_size=4, use_ema=False)
    for k, v in module.generator.state_dict().items():
        torch.testing.assert_close(stage.generator.state_dict()[k], v)


def test_report_gives_psnr_and_perceptual_per_texture_and_w_vs_wplus_means(tmp_path):
    import csv

    from lift.inversion.report import main as report_main
    from lift.inversion.report import psnr_from_mse

    run_predict(make_stage(tmp_path / "wplus", steps=60))
    run_predict(make_stage(tmp_path / "w", steps=60, code=WCode()))
    assert report_main(["--bank", f"W+={tmp_path / 'wplus'}", "--bank", f"W={tmp_path / 'w'}",
                        "--out", str(tmp_path / "report")]) == 0
    rows = list(csv.DictReader((tmp_path / "report" / "report.csv").open()))
    assert len(rows) == 12 and {r["space"] for r in rows} == {"W+", "W"}
    from lift.latent_bank import LatentBank

    rec = LatentBank.open(tmp_path / "wplus").records()[0]
    row = next(r for r in rows if r["space"] == "W+" and r["stem"] == rec["stem"])
    assert float(row["psnr"]) == pytest.approx(psnr_from_mse(rec["mse"]), abs=1e-3)
    assert psnr_from_mse(0.01) == pytest.approx(20.0)
    mean = {s: sum(float(r["psnr"]) for r in rows if r["space"] == s) / 6 for s in ("W+", "W")}
    assert mean["W+"] > mean["W"]  # W+ reconstructs better on a fixed generator
    text = (tmp_path / "report" / "report.md").read_text()
    assert "| W+ | 6 |" in text and "| W | 6 |" in text
