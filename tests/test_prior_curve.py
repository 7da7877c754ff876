"""lift.evaluation.prior_curve: snapshots ordered by images seen, the KID per snapshot on
one evaluation resolution, the references, and a clear error for a checkpoint that is not a
prior's."""

import pytest
import torch

from lift.evaluation import prior_curve as pc


class MeanColour(torch.nn.Module):
    """A stand-in feature net: one 'layer', the image itself (features = mean colour)."""

    def features(self, x):
        return [x]


def _snapshot(path, seen: int):
    from lift_stylegan2.networks import Discriminator, Generator

    from lift.stages.prior import PriorModule

    narrow = dict(resolution=16, channel_base=64, channel_max=8)
    module = PriorModule(generator=Generator(z_dim=8, w_dim=8, mapping_layers=2, **narrow),
                         discriminator=Discriminator(**narrow))
    with torch.no_grad():  # zero weights: G_ema draws flat grey (0.5 in [0, 1])
        for p in module.generator_ema.parameters():
            p.zero_()
    module.seen_images.fill_(seen)
    ckpt = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
    module.on_save_checkpoint(ckpt)
    torch.save(ckpt, path)


def test_curve_orders_snapshots_and_measures_each(tmp_path):
    _snapshot(tmp_path / "b.ckpt", 200)
    _snapshot(tmp_path / "a.ckpt", 100)
    _snapshot(tmp_path / "last.ckpt", 200)  # the final snapshot again: measured once
    found = [(s, p.name) for s, p in pc.snapshots(tmp_path)]
    assert found == [(100, "a.ckpt"), (200, "b.ckpt")]
    reals = 0.3 * torch.rand(40, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    record, rows = pc.curve(tmp_path, reals, MeanColour(), eval_resolution=8, samples=40,
                            grid_columns=4, log=lambda *_: None)
    assert rows.shape == (3 * 4, 3, 8, 8)  # the reals' row and one per snapshot
    assert [s["images_seen"] for s in record["snapshots"]] == [100, 200]
    assert (rows[4:] - 0.5).abs().max() < 1e-6  # the snapshots' grey rows
    assert record["blur_sigma_px"] == pytest.approx(0.25)  # 2 px at 64^2 -> 0.25 px at 8^2
    # grey (0.5) against reals of mean colour 0.15: far above the real-vs-real floor
    k_fake = record["snapshots"][0]["kid"]["mean"]
    assert k_fake > 100 * abs(record["kid_real_halves"]["mean"]) and k_fake > 1e-3
    assert "| 100 |" in pc.markdown(record)


def test_a_checkpoint_without_seen_images_is_named(tmp_path):
    torch.save({"state_dict": {"w": torch.zeros(1)}}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="other.ckpt: not a prior-stage checkpoint"):
        pc.snapshots(tmp_path)
