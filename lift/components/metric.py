"""Metric: an evaluation metric of Tables 1-4 (a torchmetrics Metric)."""

from __future__ import annotations

import torchmetrics
from lift.spec import Recordable


class Metric(Recordable, torchmetrics.Metric):
    """A torchmetrics Metric over textures ``[B,3,H,W]`` in [0,1].

    ``update(preds, target)`` accumulates, ``compute()`` returns the value; a metric with
    ``supports_mask = True`` also takes ``update(preds, target, mask=mask)`` with the
    visibility mask ``[B,1,H,W]`` and scores the visible texels only. Subclasses set
    ``higher_is_better`` and ``name`` (the column name in the report tables). Being
    torchmetrics objects, they synchronise across DDP ranks by themselves.
    """

    kind = "metric"
    name: str = ""
    supports_mask: bool = False
    full_state_update = False
