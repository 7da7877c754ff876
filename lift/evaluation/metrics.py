"""The evaluation's metrics by name, built from the registered metric components.

Each name maps to a list of *candidates* (component specs, tried in order); the first that
builds is used, so LPIPS is the paper's LPIPS-VGG where its weights are on disk and the offline
ST-LPIPS otherwise. A metric none of whose candidates can find its weights
(:class:`~lift.weights.WeightsNotFoundError`) is *missing*: its column holds no numbers and
says which file to place where. Class paths are strings (built by :func:`lift.spec.build`),
so nothing under ``lift/`` imports a plugin. The recipe's ``evaluation.metrics`` may replace
a name's candidates (one spec or a list; an optional ``label`` key beside ``class_path``).

Which texels each metric sees (the same for every method):

* ``psnr``, ``ssim``, ``lpips``, ``dists``: every texel of the texture (the studio ground
  truth is complete; SSIM drops its 5-texel border as Wang et al.'s reference does);
* ``faceid``: the face crop of the encoder's UV box, with both textures multiplied by the
  phone's visibility mask (holes of the input are not counted as identity changes).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from lift.evaluation.paper import HIGHER_IS_BETTER
from lift.weights import WeightsNotFoundError

_STLPIPS = {"class_path": "lift_perceptual.stlpips.STLPIPS", "init_args": {"net": "alex"}}
_LPIPS_VGG = {"class_path": "lift_perceptual.lpips_distance.LPIPS", "init_args": {"net": "vgg"}}
_DISTS = {"class_path": "lift_perceptual.dists.DISTS"}
_DLIB = {"class_path": "lift_identity.dlib_resnet.DlibResNet",
         "init_args": {"weights": None, "box": [0.20, 0.19, 0.63, 0.63]}}  # translation_eval.yaml

#: name -> candidates, each ``(label, spec)``; the metrics of configs/fragments/*.yaml.
DEFAULT_METRICS: dict[str, list[tuple[str, dict]]] = {
    "psnr": [("psnr", {"class_path": "lift_metrics.image_metrics.PSNR"})],
    "ssim": [("ssim", {"class_path": "lift_metrics.image_metrics.SSIM"})],
    "lpips": [
        ("lpips (LPIPS-VGG)",
         {"class_path": "lift_metrics.perceptual.LPIPSMetric", "init_args": {"distance": _LPIPS_VGG}}),
        ("lpips (ST-LPIPS, offline)",
         {"class_path": "lift_metrics.perceptual.LPIPSMetric", "init_args": {"distance": _STLPIPS}}),
    ],
    "dists": [("dists", {"class_path": "lift_metrics.perceptual.DISTSMetric",
                         "init_args": {"distance": _DISTS}})],
    "faceid": [("faceid (dlib ResNet)",
                {"class_path": "lift_metrics.faceid.FaceID", "init_args": {"encoder": _DLIB}})],
}

#: metrics scored against the phone input (masked) rather than the studio ground truth.
IDENTITY_METRICS = frozenset({"faceid"})


class EvaluationError(RuntimeError):
    """The evaluation cannot run as asked; the message names the file or key concerned."""


@dataclass
class BuiltMetric:
    """A metric name resolved to a component, or why it is missing."""

    name: str
    label: str
    metric: Any = None  # a lift.components.Metric, or None when missing
    spec: dict | None = None
    missing: str | None = None  # what to place where, when no candidate could be built
    notes: list[str] = field(default_factory=list)  # e.g. why a fallback was used

    @property
    def available(self) -> bool:
        return self.metric is not None


def _candidates(name: str, overrides: dict | None) -> list[tuple[str, dict]]:
    if overrides and name in overrides:
        given = overrides[name]
        given = [given] if isinstance(given, dict) else list(given or [])
        out = []
        for spec in given:
            if not isinstance(spec, dict) or "class_path" not in spec:
                raise EvaluationError(f"recipe evaluation.metrics.{name}: expected a component "
                                      f"spec (class_path/init_args), got {spec!r}")
            spec = dict(spec)
            out.append((str(spec.pop("label", name)), spec))
        return out
    if name not in DEFAULT_METRICS:
        raise EvaluationError(f"unknown metric {name!r} (known: {', '.join(DEFAULT_METRICS)}; "
                              "or give its spec in the recipe's evaluation.metrics)")
    return copy.deepcopy(DEFAULT_METRICS[name])


def _short_missing(exc: Exception) -> str:
    """The WeightsNotFoundError message on one line, led by the file to place."""
    import re

    text = " ".join(str(exc).split())
    found = re.search(r"weights '([^']+)'", text)
    return f"place {found.group(1)} in $LIFT_WEIGHTS_DIR. {text}" if found else text


def build_metric(name: str, overrides: dict | None = None, device: str = "cpu") -> BuiltMetric:
    """The first candidate of ``name`` that builds (see the module docs)."""
    from lift.spec import build

    candidates = _candidates(name, overrides)
    notes, errors = [], []
    for label, spec in candidates:
        try:
            metric = build(spec, where=f"evaluation.metrics.{name}")
        except WeightsNotFoundError as exc:
            errors.append(_short_missing(exc))
            notes.append(f"{label}: weights not found ({_short_missing(exc)})")
            continue
        expected = HIGHER_IS_BETTER.get(name)
        found = getattr(metric, "higher_is_better", None)
        if expected is not None and found is not None and bool(found) != expected:
            raise EvaluationError(f"evaluation.metrics.{name}: {spec['class_path']} has "
                                  f"higher_is_better={found}, the {name} column needs {expected}")
        if name in IDENTITY_METRICS and not getattr(metric, "supports_mask", False):
            raise EvaluationError(f"evaluation.metrics.{name}: {spec['class_path']} does not "
                                  "support a mask; FaceID is scored on the phone's visible texels")
        used = notes[:] if notes else []
        return BuiltMetric(name, label, metric.to(device).eval(), spec, None, used)
    label = f"{name} (weights missing)"
    return BuiltMetric(name, label, None, None, " / ".join(errors) or "no candidate", notes)


class MetricSet:
    """Builds each metric once, on first use."""

    def __init__(self, overrides: dict | None = None, device: str = "cpu"):
        self.overrides = overrides or {}
        self.device = device
        self._built: dict[str, BuiltMetric] = {}

    def get(self, name: str) -> BuiltMetric:
        if name not in self._built:
            self._built[name] = build_metric(name, self.overrides, self.device)
        return self._built[name]

    def built(self) -> dict[str, BuiltMetric]:
        return dict(self._built)
