"""Across-seed statistics and the orderings a run reproduces (or not)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np

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


#: Below this many pairs the sign-flip test enumerates all 2^n sign patterns exactly.
EXACT_PAIRS = 16
#: Significance level the tables count orderings at (one-sided, per ordering, uncorrected).
ALPHA = 0.05


def sign_flip_p(differences: Sequence[float], *, draws: int = 20000, seed: int = 0) -> float:
    """One-sided paired sign-flip (permutation) p-value for ``mean(differences) > 0``.

    Under the null the sign of each paired difference is a fair coin, so the p-value is the
    share of the 2^n sign patterns whose mean is at least the observed one: enumerated exactly
    for ``n <= EXACT_PAIRS``, else estimated from ``draws`` seeded random patterns with the
    (count + 1) / (draws + 1) correction (never 0). Deterministic for a given input.
    """
    d = np.asarray([float(x) for x in differences], dtype=np.float64)
    n = d.size
    if n == 0 or not np.all(np.isfinite(d)):
        raise ValueError(f"sign_flip_p needs finite differences, got {list(differences)!r}")
    observed = d.mean() - 1e-12 * max(1.0, float(np.abs(d).max()))  # ties count as extreme
    if n <= EXACT_PAIRS:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        return float(np.mean(signs @ d / n >= observed))
    rng = np.random.default_rng(seed)
    signs = rng.choice((1.0, -1.0), size=(draws, n))
    count = int(np.sum(signs @ d / n >= observed))
    return (count + 1) / (draws + 1)


def paired_differences(metric: str, a: Mapping[str, Mapping[str, float]],
                       b: Mapping[str, Mapping[str, float]]) -> list[float] | None:
    """``a - b`` oriented so that positive means ``a`` is better on ``metric``, over the
    (seed, texture) pairs both rows scored (seed -> stem -> value); None when a value is
    missing or non-finite, or no pair is shared."""
    sign = 1.0 if better(metric, 1.0, 0.0) else -1.0
    out = []
    for seed in sorted(set(a) & set(b)):
        for stem in sorted(set(a[seed]) & set(b[seed])):
            x, y = finite(a[seed][stem]), finite(b[seed][stem])
            if x is None or y is None:
                return None
            out.append(sign * (x - y))
    return out or None


def evaluate_orderings(claims: Sequence[Mapping], rows: Mapping[str, Mapping[str, Mapping]],
                       per_seed: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None,
                       per_stem: Mapping[str, Mapping[str, Mapping[str, Mapping[str, float]]]]
                       | None = None) -> list[dict]:
    """Each claim with ``"ours"``: whether our means order the two rows the same way
    (strictly), or None when either mean is missing.

    With ``per_seed`` (row -> metric -> seed -> value) and at least two seeds, two more keys
    say whether the ordering is more than seed noise:

    * ``every_seed``: it holds in each seed on its own (seed k of both rows shares its
      upstream stages, so the comparison is paired);
    * ``beyond_spread``: the means differ in the claimed direction by more than the two rows'
      seed standard deviations added (the mean +- std intervals do not overlap).

    Both are None with one seed or a missing value.

    With ``per_stem`` (row -> metric -> seed -> test texture -> value), ``p_textures`` is
    the one-sided sign-flip p-value (``sign_flip_p``) of the claimed direction over the
    paired (seed, texture) differences, ``pairs`` their number: how likely a gap this large is
    if the two rows were exchangeable on these test textures. It speaks to the test set's
    sampling, not to training noise (that is ``every_seed``), and works with one seed.
    """
    out = []
    for claim in claims:
        metric = claim["metric"]
        sa = rows.get(claim["better"], {}).get(metric) or {}
        sb = rows.get(claim["worse"], {}).get(metric) or {}
        a, b = finite(sa.get("mean")), finite(sb.get("mean"))
        ours = None if a is None or b is None else better(metric, a, b)
        entry = {"better": claim["better"], "worse": claim["worse"], "metric": metric,
                 "paper": None if claim["paper"] is None else bool(claim["paper"]),
                 "ours": ours,
                 "every_seed": None, "beyond_spread": None, "p_textures": None, "pairs": 0}
        va = ((per_seed or {}).get(claim["better"]) or {}).get(metric) or {}
        vb = ((per_seed or {}).get(claim["worse"]) or {}).get(metric) or {}
        seeds = sorted(set(va) & set(vb))
        pairs = [(finite(va[k]), finite(vb[k])) for k in seeds]
        if ours is not None and len(pairs) >= 2 and all(x is not None and y is not None
                                                        for x, y in pairs):
            entry["every_seed"] = all(better(metric, x, y) for x, y in pairs)
            spread = (finite(sa.get("std")) or 0.0) + (finite(sb.get("std")) or 0.0)
            entry["beyond_spread"] = bool(ours and abs(a - b) > spread)
        sta = ((per_stem or {}).get(claim["better"]) or {}).get(metric)
        stb = ((per_stem or {}).get(claim["worse"]) or {}).get(metric)
        diffs = paired_differences(metric, sta, stb) if ours is not None and sta and stb else None
        if diffs:
            entry["p_textures"], entry["pairs"] = sign_flip_p(diffs), len(diffs)
        out.append(entry)
    return out


def ordering_summary(orderings: Sequence[Mapping], *, recipe: bool = False) -> dict[str, int]:
    """``{"total", "reproduced", "not_reproduced", "not_evaluated", "every_seed",
    "beyond_spread", "significant"}`` (counts over the claims the paper makes, or with
    ``recipe`` over the recipe's own ``compare`` pairs, ``"paper": None``; ``significant``:
    reproduced with ``p_textures < ALPHA``)."""
    claimed = [o for o in orderings
               if (o.get("paper") is None if recipe else bool(o.get("paper")))]
    return {
        "total": len(claimed),
        "reproduced": sum(1 for o in claimed if o.get("ours") is True),
        "not_reproduced": sum(1 for o in claimed if o.get("ours") is False),
        "not_evaluated": sum(1 for o in claimed if o.get("ours") is None),
        "every_seed": sum(1 for o in claimed if o.get("every_seed") is True),
        "beyond_spread": sum(1 for o in claimed if o.get("beyond_spread") is True),
        "significant": sum(1 for o in claimed if o.get("ours") is True
                           and o.get("p_textures") is not None and o["p_textures"] < ALPHA),
    }
