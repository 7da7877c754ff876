"""Every hook has a test here (``test_hook_<name>``) and is documented in docs/plugins.md.

Each test registers a throw-away plugin into a fresh plugin manager and unregisters it in
``finally``; nothing installed is loaded.
"""

from __future__ import annotations

import inspect
import re
import sys
import types
from pathlib import Path

import pytest
import torch

from lift import hookimpl, hookspecs
from lift.components import (
    ColourTransform,
    GradientOperator,
    IdentityEncoder,
    ImageDiscriminator,
    LatentSampler,
    Metric,
    PerceptualDistance,
    StyleGenerator,
    Translator,
    Upsampler,
)
from lift.registry import Registry, use_registry

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def hook_names() -> list[str]:
    return sorted(n for n, f in inspect.getmembers(hookspecs, inspect.isfunction)
                  if n.startswith("lift_"))


def rendered_signature(name: str) -> str:
    sig = str(inspect.signature(getattr(hookspecs, name)))
    return f"def {name}{sig.replace(chr(39), '')}"


def make_plugin(name: str, **hooks) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook_name, fn in hooks.items():
        setattr(module, hook_name, hookimpl(fn))
    return module


def test_every_hook_has_a_test():
    tests = {n for n in dir(sys.modules[__name__]) if n.startswith("test_hook_")}
    missing = [n for n in hook_names() if f"test_hook_{n}" not in tests]
    assert not missing, f"hooks without a test: {missing}"


def test_every_hook_is_documented_with_its_exact_signature():
    text = DOCS.read_text()
    missing = [rendered_signature(n) for n in hook_names() if rendered_signature(n) not in text]
    assert not missing, "docs/plugins.md lacks these exact signatures:\n" + "\n".join(missing)
    documented = set(re.findall(r"def (lift_\w+)\(", text))
    assert documented == set(hook_names()), documented ^ set(hook_names())


# --- registration hooks ----------------------------------------------------------------


def _registration_roundtrip(fresh_manager, hook_name: str, kind: str, base: type) -> None:
    cls = type(f"Throwaway{base.__name__}", (base,), {"__module__": __name__})
    cls.__abstractmethods__ = frozenset()  # instantiation is not what is tested here
    plugin = make_plugin("throwaway", **{hook_name: lambda: [cls]})
    fresh_manager.register(plugin, name="throwaway")
    try:
        registry = Registry(fresh_manager)
        assert registry.get(kind, cls.__name__) is cls
        (info,) = registry.components(kind)
        assert info.plugin == "throwaway" and info.cls is cls
        # Every other kind stays empty: the hook feeds exactly its own kind.
        others = [c for c in registry.components() if c.kind != kind]
        assert others == []
    finally:
        fresh_manager.unregister("throwaway")


def test_hook_lift_register_translators(fresh_manager):
    _registration_roundtrip(fresh_manager, "lift_register_translators", "translator", Translator)


def test_hook_lift_register_latent_samplers(fresh_manager):
    _registration_roundtrip(
        fresh_manager, "lift_register_latent_samplers", "latent_sampler", LatentSampler
    )


def test_hook_lift_register_upsamplers(fresh_manager):
    _registration_roundtrip(fresh_manager, "lift_register_upsamplers", "upsampler", Upsampler)


def test_hook_lift_register_gradient_operators(fresh_manager):
    _registration_roundtrip(
        fresh_manager, "lift_register_gradient_operators", "gradient_operator", GradientOperator
    )


def test_hook_lift_register_identity_encoders(fresh_manager):
    _registration_roundtrip(
        fresh_manager, "lift_register_identity_encoders", "identity_encoder", IdentityEncoder
    )


def test_hook_lift_register_perceptual_distances(fresh_manager):
    _registration_roundtrip(
        fresh_manager, "lift_register_perceptual_distances", "perceptual_distance",
        PerceptualDistance,
    )


def test_hook_lift_register_metrics(fresh_manager):
    _registration_roundtrip(fresh_manager, "lift_register_metrics", "metric", Metric)


def test_hook_lift_register_generators(fresh_manager):
    _registration_roundtrip(fresh_manager, "lift_register_generators", "generator",
                            StyleGenerator)


def test_hook_lift_register_discriminators(fresh_manager):
    _registration_roundtrip(fresh_manager, "lift_register_discriminators", "discriminator",
                            ImageDiscriminator)


def test_hook_lift_register_colour_transforms(fresh_manager):
    _registration_roundtrip(fresh_manager, "lift_register_colour_transforms",
                            "colour_transform", ColourTransform)


# --- resolution --------------------------------------------------------------------------


def test_hook_lift_resolve_weights(fresh_manager, tmp_path, monkeypatch):
    from lift.weights import WeightsNotFoundError, resolve_weights

    monkeypatch.setenv("LIFT_WEIGHTS_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    weights = tmp_path / "mine.pth"
    weights.write_bytes(b"w")
    calls = []

    def first(name, kind):
        calls.append((name, kind))
        return str(weights) if name == "mine.pth" else None

    fresh_manager.register(make_plugin("resolver", lift_resolve_weights=first), name="resolver")
    try:
        with use_registry(Registry(fresh_manager)):
            assert resolve_weights("mine.pth", "identity_encoder") == weights
            assert calls == [("mine.pth", "identity_encoder")]
            with pytest.raises(WeightsNotFoundError) as err:
                resolve_weights("other.pth", "perceptual_distance", hint="From somewhere.")
            msg = str(err.value)
            assert "other.pth" in msg and str(tmp_path / "empty" / "other.pth") in msg
            assert "From somewhere." in msg
            # The built-in search finds a file placed in $LIFT_WEIGHTS_DIR.
            (tmp_path / "empty").mkdir()
            (tmp_path / "empty" / "other.pth").write_bytes(b"x")
            assert resolve_weights("other.pth", "x") == tmp_path / "empty" / "other.pth"
    finally:
        fresh_manager.unregister("resolver")


def test_resolve_weights_hook_returning_missing_file_is_an_error(fresh_manager, tmp_path):
    from lift.weights import WeightsNotFoundError, resolve_weights

    bad = make_plugin("bad", lift_resolve_weights=lambda name: str(tmp_path / "nope.pth"))
    fresh_manager.register(bad, name="bad")
    try:
        with use_registry(Registry(fresh_manager)), pytest.raises(WeightsNotFoundError, match="nope"):
            resolve_weights("w.pth", "metric")
    finally:
        fresh_manager.unregister("bad")


# --- per-stage hooks ---------------------------------------------------------------------


def _stage(loss_weights):
    from lift.stages.base import StageModule

    class Toy(StageModule):
        stage = "toy"

        def _phase_terms(self, phase):
            return frozenset({"rec", "adv"})

    module = Toy(loss_weights=loss_weights)
    module.log = lambda *a, **k: None  # no trainer attached
    return module


def test_hook_lift_extra_loss_terms(fresh_manager):
    seen = {}

    def extra(stage, phase, batch, outputs, module, active_terms):
        seen.update(stage=stage, phase=phase, active=active_terms, out=dict(outputs))
        return {"sharpness": torch.tensor(3.0), "unconfigured": torch.tensor(100.0)}

    fresh_manager.register(make_plugin("extra", lift_extra_loss_terms=extra), name="extra")
    try:
        with use_registry(Registry(fresh_manager)):
            module = _stage({"rec": 1.0, "adv": 0.5, "sharpness": 2.0})
            total = module.weighted_loss(
                "generator", {"rec": torch.tensor(1.0), "adv": torch.tensor(4.0)},
                batch={}, outputs={"fake": 1},
            )
            # 1*1 + 0.5*4 + 2*3; "unconfigured" has no weight and is never applied.
            assert total.item() == pytest.approx(9.0)
            assert seen["stage"] == "toy" and seen["phase"] == "generator"
            assert seen["active"] == frozenset({"rec", "adv", "sharpness"})
            assert seen["out"] == {"fake": 1}
            # Without a weight for it, the plugin's term changes nothing.
            module = _stage({"rec": 1.0, "adv": 0.5})
            total = module.weighted_loss(
                "generator", {"rec": torch.tensor(1.0), "adv": torch.tensor(4.0)}, batch={}
            )
            assert total.item() == pytest.approx(3.0)
    finally:
        fresh_manager.unregister("extra")


def test_weighted_loss_names_a_configured_term_nobody_computes(fresh_manager):
    from lift.stages.base import LossWeightError

    with use_registry(Registry(fresh_manager)):
        module = _stage({"rec": 1.0, "adv": 1.0})
        with pytest.raises(LossWeightError, match="adv"):
            module.weighted_loss("generator", {"rec": torch.tensor(1.0)}, batch={})
        module = _stage({"other": 1.0})
        with pytest.raises(LossWeightError, match="rec"):
            module.weighted_loss("generator", {"rec": torch.tensor(1.0)}, batch={})


def test_hook_lift_extra_images(fresh_manager):
    def extra(stage, batch, outputs, module):
        return {"residual": outputs["fake"] - batch["real"]}

    fresh_manager.register(make_plugin("images", lift_extra_images=extra), name="images")
    try:
        with use_registry(Registry(fresh_manager)):
            module = _stage({"rec": 1.0})
            real, fake = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
            images = module.collect_extra_images({"real": real}, {"fake": fake})
            assert set(images) == {"residual"} and torch.equal(images["residual"], fake)
    finally:
        fresh_manager.unregister("images")


def test_hook_implementation_may_accept_fewer_arguments(fresh_manager):
    def extra(active_terms):  # ignores everything else
        return {"k": torch.tensor(1.0)} if "k" in active_terms else None

    fresh_manager.register(make_plugin("few", lift_extra_loss_terms=extra), name="few")
    try:
        with use_registry(Registry(fresh_manager)):
            module = _stage({"rec": 1.0, "k": 10.0})
            total = module.weighted_loss("generator", {"rec": torch.tensor(1.0)}, batch={})
            assert total.item() == pytest.approx(11.0)
    finally:
        fresh_manager.unregister("few")
