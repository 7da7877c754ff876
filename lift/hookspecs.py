"""Hook specifications of the ``lift`` plugin system (pluggy project name ``"lift"``).

Every hook is called with keyword arguments only, and an implementation may accept fewer
arguments than its spec, so hooks can grow new arguments without breaking plugins.

Registration hooks (``lift_register_*``) are called once per process, when the registry is
built at start-up (every rank under DDP builds its own, identical registry); every plugin's
result is collected. ``docs/plugins.md`` lists every hook with its exact signature and a test
checks that it does.
"""

from __future__ import annotations

from typing import Any, Mapping

import pluggy

PROJECT_NAME = "lift"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# --- registration: called once per process at start-up; all results collected ------------


@hookspec
def lift_register_translators() -> list[type]:
    """Return Translator subclasses (phone texture -> studio-lit low-res texture)."""


@hookspec
def lift_register_latent_samplers() -> list[type]:
    """Return LatentSampler subclasses (where G_studio's training latents come from)."""


@hookspec
def lift_register_upsamplers() -> list[type]:
    """Return Upsampler subclasses (low-res studio texture -> high-res, Sect 3.2)."""


@hookspec
def lift_register_gradient_operators() -> list[type]:
    """Return GradientOperator subclasses (the image-gradient operator G of Eq. 13-14)."""


@hookspec
def lift_register_identity_encoders() -> list[type]:
    """Return IdentityEncoder subclasses (the face-recognition network F of Eq. 4)."""


@hookspec
def lift_register_perceptual_distances() -> list[type]:
    """Return PerceptualDistance subclasses (LPIPS-like distances of Eq. 1, 5, 6)."""


@hookspec
def lift_register_metrics() -> list[type]:
    """Return Metric subclasses (evaluation metrics of Tables 1-4)."""


@hookspec
def lift_register_generators() -> list[type]:
    """Return StyleGenerator subclasses (G_phone / G_studio: mapping and synthesis, W+ codes)."""


@hookspec
def lift_register_discriminators() -> list[type]:
    """Return ImageDiscriminator subclasses (D_phone / D_studio: images -> logits)."""


@hookspec
def lift_register_colour_transforms() -> list[type]:
    """Return ColourTransform subclasses (neutral -> expression colour transfer, Eq. 15-16)."""


# --- resolution: first non-None result wins ----------------------------------------------


@hookspec(firstresult=True)
def lift_resolve_weights(name: str, kind: str) -> str | None:
    """Return a local file path for pretrained weights ``name`` of component kind ``kind``.

    Called on any rank, whenever a component needs pretrained weights; implementations must
    not download anything. Return None to let the next plugin (and finally the built-in
    search of ``$LIFT_WEIGHTS_DIR`` and the cache) try.
    """


# --- per-stage hooks: called by the stage LightningModules ---------------------------------


@hookspec
def lift_extra_loss_terms(
    stage: str,
    phase: str,
    batch: Mapping[str, Any],
    outputs: Mapping[str, Any],
    module: Any,
    active_terms: frozenset[str],
) -> Mapping[str, Any] | None:
    """Return extra loss terms ``{name: scalar tensor}`` for a training step.

    Called on every rank, in every training step of ``stage`` (e.g. ``"translate"``) and
    ``phase`` (e.g. ``"generator"``, ``"discriminator"``), after the stage's own terms are
    computed. Only names in ``active_terms`` (the names that carry a weight in the stage's
    configured loss weights) are applied, each multiplied by its weight; return only those, so
    installing a plugin never silently changes an objective.
    """


@hookspec
def lift_extra_images(
    stage: str,
    batch: Mapping[str, Any],
    outputs: Mapping[str, Any],
    module: Any,
) -> Mapping[str, Any] | None:
    """Return extra image grids ``{name: tensor [B,3,H,W] in [0,1]}`` for logging.

    Called on rank 0 only, once per validation epoch, with the first validation batch.
    """
