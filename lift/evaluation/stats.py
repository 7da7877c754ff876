"""Across-seed statistics and the orderings a run reproduces (or not)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from lift.evaluation.paper import better


def finite(value) -> float | None:
    """``value`` as a float, or None when it is missing, NaN or infinite."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def aggregate(values: Sequence[float]) -> dict:
    """``{"mean", "std", "n"}`` of per-seed values.

    ``std`` is the *sample* standard deviation (divisor n - 1), the usual spread of a mean
    over independent seeds; with one seed it is 0 (there is no spread to estimate: the table
    says so). An empty list gives ``mean = std = None, n = 0``.
    """
    vals = [float(v) for v in values]
    n = len(vals)
    if n == 0:
        return {"mean": None, "std": None, "n": 0}
    mean = sum(vals) / n
    if n == 1 or not all(math.isfinite(v) for v in vals):
        std = 0.0 if n == 1 else float("nan")
    else:
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    return {"mean": mean, "std": std, "n": n}


def evaluate_orderings(claims: Sequence[Mapping], rows: Mapping[str, Mapping[str, Mapping]]
                       ) -> list[dict]:
    """Each claim with ``"ours"``: whether our means order the two rows the same way
    (strictly), or None when either mean is missing."""
    out = []
    for claim in claims:
        metric = claim["metric"]
        a = finite((rows.get(claim["better"], {}).get(metric) or {}).get("mean"))
        b = finite((rows.get(claim["worse"], {}).get(metric) or {}).get("mean"))
        ours = None if a is None or b is None else better(metric, a, b)
        out.append({"better": claim["better"], "worse": claim["worse"], "metric": metric,
                    "paper": bool(claim["paper"]), "ours": ours})
    return out


def ordering_summary(orderings: Sequence[Mapping]) -> dict[str, int]:
    """``{"total", "reproduced", "not_reproduced", "not_evaluated"}`` (claims the paper makes)."""
    claimed = [o for o in orderings if o.get("paper")]
    return {
        "total": len(claimed),
        "reproduced": sum(1 for o in claimed if o.get("ours") is True),
        "not_reproduced": sum(1 for o in claimed if o.get("ours") is False),
        "not_evaluated": sum(1 for o in claimed if o.get("ours") is None),
    }
