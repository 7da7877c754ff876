"""Metric: an evaluation metric of Tables 1-4 (a torchmetrics Metric)."""

from __future__ import annotations

import torchmetrics


class Metric(torchmetrics.Metric):
    """A torchmetrics Metric over textures in [0,1]: ``update(preds, target)``, ``compute()``.

    Subclasses set ``higher_is_better`` and ``name`` (the column name in the report tables).
    Being torchmetrics objects, they synchronise across DDP ranks by themselves.
    """

    kind = "metric"
    name: str = ""
    full_state_update = False
