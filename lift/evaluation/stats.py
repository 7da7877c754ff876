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


def evaluate_orderings(claims: Sequence[Mapping], rows: Mapping[str, Mapping[str, Mapping]],
                       per_seed: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None
                       ) -> list[dict]:
    """Each claim with ``"ours"``: whether our means order the two rows the same way
    (strictly), or None when either mean is missing.

    With ``per_seed`` (row -> metric -> seed -> value) and at least two seeds, two more keys
    say whether the ordering is more than seed noise:

    * ``every_seed``: it holds in each seed on its own (seed k of both rows shares its
      upstream stages, so the comparison is paired);
    * ``beyond_spread``: the means differ in the claimed direction by more than the two rows'
      seed standard deviations added (the mean +- std intervals do not overlap).

    Both are None with one seed or a missing value.
    """
    out = []
    for claim in claims:
        metric = claim["metric"]
        sa = rows.get(claim["better"], {}).get(metric) or {}
        sb = rows.get(claim["worse"], {}).get(metric) or {}
        a, b = finite(sa.get("mean")), finite(sb.get("mean"))
        ours = None if a is None or b is None else better(metric, a, b)
        entry = {"better": claim["better"], "worse": claim["worse"], "metric": metric,
                 "paper": bool(claim["paper"]), "ours": ours,
                 "every_seed": None, "beyond_spread": None}
        va = ((per_seed or {}).get(claim["better"]) or {}).get(metric) or {}
        vb = ((per_seed or {}).get(claim["worse"]) or {}).get(metric) or {}
        seeds = sorted(set(va) & set(vb))
        pairs = [(finite(va[k]), finite(vb[k])) for k in seeds]
        if ours is not None and len(pairs) >= 2 and all(x is not None and y is not None
                                                        for x, y in pairs):
            entry["every_seed"] = all(better(metric, x, y) for x, y in pairs)
            spread = (finite(sa.get("std")) or 0.0) + (finite(sb.get("std")) or 0.0)
            entry["beyond_spread"] = bool(ours and abs(a - b) > spread)
        out.append(entry)
    return out


def ordering_summary(orderings: Sequence[Mapping]) -> dict[str, int]:
    """``{"total", "reproduced", "not_reproduced", "not_evaluated", "every_seed",
    "beyond_spread"}`` (counts over the claims the paper makes)."""
    claimed = [o for o in orderings if o.get("paper")]
    return {
        "total": len(claimed),
        "reproduced": sum(1 for o in claimed if o.get("ours") is True),
        "not_reproduced": sum(1 for o in claimed if o.get("ours") is False),
        "not_evaluated": sum(1 for o in claimed if o.get("ours") is None),
        "every_seed": sum(1 for o in claimed if o.get("every_seed") is True),
        "beyond_spread": sum(1 for o in claimed if o.get("beyond_spread") is True),
    }
