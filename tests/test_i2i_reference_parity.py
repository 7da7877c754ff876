"""Opt-in numerical parity of CUT / FastCUT / CycleGAN with the reference code.

Set ``LIFT_CUT_REFERENCE`` to a checkout of taesungp/contrastive-unpaired-translation (never
part of this repository). Both sides start from the same weights and draw the same random
numbers (patch locations, flips, pool swaps); a few full training iterations must give the same
losses and weights, in float64 (stepped with SGD, see below).

The reference gathers NCE patches through a channels-last view, so at batch 1 the gradient
reaching its residual blocks' instance norms is channels-last, and torch's CPU instance-norm
backward (2.15 here) silently miscomputes it. The test makes that incoming gradient contiguous
(a no-op for ours, whose gradients are contiguous already) so that the two can be compared;
``test_i2i_cut.py`` checks our gradients against a hand-written instance norm.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REFERENCE = os.environ.get("LIFT_CUT_REFERENCE", "")
pytestmark = pytest.mark.skipif(
    not REFERENCE, reason="set LIFT_CUT_REFERENCE to a CUT repository checkout"
)


def _bench():
    path = Path(__file__).parents[1] / "benchmarks" / "i2i_throughput.py"
    spec = importlib.util.spec_from_file_location("i2i_throughput", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def bench(monkeypatch):
    saved = {k for k in sys.modules}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # deterministic reductions on both sides
    yield _bench()
    torch.set_num_threads(threads)
    for name in [k for k in sys.modules if k not in saved]:  # the reference's `models`, `util`...
        if name.split(".")[0] in ("models", "options", "util", "data"):
            del sys.modules[name]


class _ContiguousGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous()


def _work_around_instance_norm_backward(monkeypatch):
    original = torch.nn.functional.instance_norm
    monkeypatch.setattr(torch.nn.functional, "instance_norm",
                        lambda x, *a, **k: _ContiguousGrad.apply(original(x, *a, **k)))


def _same_random_draws(monkeypatch):
    """Route the reference's numpy draws (patch ids, flips) through torch's RNG, in order."""
    monkeypatch.setattr(np.random, "permutation", lambda n: torch.randperm(n).numpy())
    monkeypatch.setattr(np.random, "random", lambda: float(torch.rand(())))


def _load(ours: dict, ref: dict) -> None:
    for name, net in ours.items():
        state = ref[name].state_dict()
        if name == "F":  # the reference names its MLPs mlp_<i>
            state = {k.replace("mlp_", "mlps."): v for k, v in state.items()}
        net.load_state_dict(state)


@pytest.mark.parametrize("kind", ["cut", "fastcut", "cyclegan"])
def test_training_iterations_match_reference(bench, monkeypatch, kind):
    _same_random_draws(monkeypatch)
    _work_around_instance_norm_backward(monkeypatch)
    size, steps = 32, 4
    g = torch.Generator().manual_seed(0)
    phone = torch.rand(steps + 1, 3, size, size, generator=g, dtype=torch.float64)
    studio = torch.rand(steps + 1, 3, size, size, generator=g, dtype=torch.float64)

    torch.manual_seed(0)
    ref, opt = bench.reference_model(REFERENCE, kind, ngf=8, ndf=8, n_blocks=6)
    bench.reference_setup(ref, opt, bench.reference_batch(phone[:1].float(), studio[:1].float()))
    # Float64 on both sides: in float32, batching (ours) vs one image at a time (reference)
    # changes oneDNN's conv algorithms and their rounding, which PatchNCE's 1/tau amplifies.
    for net in bench.reference_networks(ref, kind).values():
        net.double()
    ref.criterionGAN.double()
    ours = bench.our_translator(kind, ngf=8, ndf=8, n_blocks=6).double()
    _load(bench.our_networks(ours, kind), bench.reference_networks(ref, kind))
    loop = bench.PlainLoop(ours)
    # SGD on both sides: Adam's first steps are +-lr whatever the gradient's size, so rounding
    # differences on near-zero gradients would become lr-sized weight differences.
    sgd = functools.partial(torch.optim.SGD, lr=1e-4)
    ref_nets = bench.reference_networks(ref, kind)
    ref.optimizer_G = sgd(ref_nets["G"].parameters())
    ref.optimizer_D = sgd(ref_nets["D"].parameters())
    if "F" in ref_nets:
        ref.optimizer_F = sgd(ref_nets["F"].parameters())
    loop.opts = {phase: sgd(params) for phase, params in loop.params.items()}
    start = {name: {k: v.detach().clone() for k, v in net.named_parameters()}
             for name, net in bench.our_networks(ours, kind).items()}

    for i in range(1, steps + 1):
        torch.manual_seed(i)
        random.seed(i)
        ref.set_input(bench.reference_batch(phone[i:i + 1], studio[i:i + 1]))
        ref.optimize_parameters()
        torch.manual_seed(i)
        random.seed(i)
        totals = loop.step({"phone": phone[i:i + 1], "studio": studio[i:i + 1]})
        if kind == "cyclegan":
            ref_d = float(ref.loss_D_A + ref.loss_D_B)
        else:
            ref_d = float(ref.loss_D)
        assert totals["generator"] == pytest.approx(float(ref.loss_G), rel=1e-9, abs=1e-12)
        assert totals["discriminator"] == pytest.approx(ref_d, rel=1e-9, abs=1e-12)

    # Every weight moved as the reference's did (float64: agreement to ~1e-13 of the update;
    # the floor covers biases in front of instance norms, whose exact gradient is 0).
    ours_nets = bench.our_networks(ours, kind)
    for name, net in bench.reference_networks(ref, kind).items():
        ref_params = dict(net.named_parameters())
        if name == "F":
            ref_params = {k.replace("mlp_", "mlps."): v for k, v in ref_params.items()}
        for pname, p in ours_nets[name].named_parameters():
            ours_step = p.detach() - start[name][pname]
            ref_step = ref_params[pname].detach() - start[name][pname]
            error = (ours_step - ref_step).norm().item()
            assert error <= 1e-9 * ref_step.norm().item() + 1e-12, (name, pname, error)
