"""The one registry of components, built once per process from the plugin manager.

A component's registered name is its class name, which is also what LightningCLI resolves
short ``class_path`` values to (plugins are imported before the config is parsed).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

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
from lift.plugins import LiftPluginManager, create_plugin_manager

# kind -> (registration hook, base class)
KINDS: dict[str, tuple[str, type]] = {
    "translator": ("lift_register_translators", Translator),
    "latent_sampler": ("lift_register_latent_samplers", LatentSampler),
    "upsampler": ("lift_register_upsamplers", Upsampler),
    "gradient_operator": ("lift_register_gradient_operators", GradientOperator),
    "identity_encoder": ("lift_register_identity_encoders", IdentityEncoder),
    "perceptual_distance": ("lift_register_perceptual_distances", PerceptualDistance),
    "metric": ("lift_register_metrics", Metric),
    "generator": ("lift_register_generators", StyleGenerator),
    "discriminator": ("lift_register_discriminators", ImageDiscriminator),
    "colour_transform": ("lift_register_colour_transforms", ColourTransform),
}


class RegistryError(RuntimeError):
    """Bad registration: a duplicate name, a non-class, or a wrong base class."""


@dataclass(frozen=True)
class ComponentInfo:
    kind: str
    name: str
    cls: type
    plugin: str
    distribution: str | None

    @property
    def class_path(self) -> str:
        return f"{self.cls.__module__}.{self.cls.__qualname__}"


class Registry:
    """Components by kind and name, collected from every plugin's registration hooks."""

    def __init__(self, manager: LiftPluginManager):
        self.manager = manager
        self._components: dict[str, dict[str, ComponentInfo]] = {k: {} for k in KINDS}
        for kind, (hook_name, base) in KINDS.items():
            hook = getattr(manager.hook, hook_name)
            # Call each implementation on its own so every class is traced to its plugin.
            for impl in reversed(hook.get_hookimpls()):
                result = impl.function()
                for cls in result or []:
                    self._add(kind, base, cls, impl.plugin_name)

    def _add(self, kind: str, base: type, cls: object, plugin: str) -> None:
        if not isinstance(cls, type) or not issubclass(cls, base):
            raise RegistryError(
                f"plugin {plugin!r} registered {cls!r} as a {kind}, but it is not a subclass "
                f"of {base.__module__}.{base.__name__}"
            )
        name = cls.__name__
        existing = self._components[kind].get(name)
        if existing is not None and existing.cls is not cls:
            raise RegistryError(
                f"two plugins register a {kind} named {name!r}: plugin {existing.plugin!r} "
                f"({existing.class_path}) and plugin {plugin!r} "
                f"({cls.__module__}.{cls.__qualname__})"
            )
        dist = self.manager.plugins[plugin].distribution if plugin in self.manager.plugins else None
        self._components[kind][name] = ComponentInfo(kind, name, cls, plugin, dist)

    def components(self, kind: str | None = None) -> list[ComponentInfo]:
        kinds = [kind] if kind is not None else list(KINDS)
        out: list[ComponentInfo] = []
        for k in kinds:
            if k not in self._components:
                raise KeyError(f"unknown component kind {k!r}; kinds are {sorted(KINDS)}")
            out.extend(sorted(self._components[k].values(), key=lambda c: c.name))
        return out

    def get(self, kind: str, name: str) -> type:
        """The class registered as ``name`` for ``kind``; the error lists what exists."""
        try:
            return self._components[kind][name].cls
        except KeyError:
            names = ", ".join(sorted(self._components.get(kind, {}))) or "none"
            raise KeyError(f"no {kind} named {name!r} is registered (registered: {names})") from None


_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, built on first use from the installed plugins."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = Registry(create_plugin_manager())
    return _REGISTRY


def get_plugin_manager() -> LiftPluginManager:
    return get_registry().manager


@contextlib.contextmanager
def use_registry(registry: Registry) -> Iterator[Registry]:
    """Temporarily make ``registry`` the process-wide one (tests)."""
    global _REGISTRY
    previous, _REGISTRY = _REGISTRY, registry
    try:
        yield registry
    finally:
        _REGISTRY = previous
