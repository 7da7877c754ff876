"""``evaluate_run``: score every method's predictions and write the paper's tables.

Inputs (see docs/run.md, "Evaluation"):

* ``recipe["tables"]``: ``[{table, split, metrics, rows: {row: method}}]``;
* ``recipe["seeds"]``, ``recipe["profile"]`` (shown in the tables);
* ``recipe["evaluation"]``: ``source`` (the test data, a source spec, required),
  ``metrics`` (optional per-name candidate specs, :mod:`lift.evaluation.metrics`),
  ``device`` (optional, default ``"cpu"``);
* the predictions ``run_dir/predictions/<method>/seed<k>/studio/<stem>.png``, one per stem of
  the table's split, for every row and seed. A missing one is an error naming the file.

Outputs (atomic): ``run_dir/tables/table{N}.json|md|csv`` and ``run_dir/tables/evaluation.json``
(per-stem and per-seed values, the metric specs used, notes, ordering counts).

Seeds run elsewhere: ``scores_from`` (or ``recipe["evaluation"]["scores_from"]``) names earlier
``evaluation.json`` files whose per-stem values stand in for a (method, seed, split) that has no
prediction folder under ``run_dir``, so seeds trained on different machines or days make one
table. They are taken only for the same test data (``source``) and the same metric specs, and
every stem must be there; the tables' notes say which were taken from where.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from lift.atomic import atomic_write_text
from lift.evaluation import paper as paper_data
from lift.evaluation.metrics import IDENTITY_METRICS, EvaluationError, MetricSet
from lift.evaluation.source import recipe_source
from lift.evaluation.stats import aggregate, evaluate_orderings, ordering_summary

PREDICTION_EXTENSIONS = (".png", ".exr", ".tif", ".tiff")
TEST_SPLITS = ("paired_test", "unpaired_test")


def seed_dir(seed: int) -> str:
    return f"seed{int(seed)}"


def prediction_path(run_dir: Path, method: str, seed: int, stem: str, kind: str = "studio") -> Path:
    """The file of a prediction: ``<stem>.png``, or another texture extension if that exists."""
    folder = Path(run_dir) / "predictions" / method / seed_dir(seed) / kind
    for ext in PREDICTION_EXTENSIONS:
        path = folder / f"{stem}{ext}"
        if path.is_file():
            return path
    return folder / f"{stem}.png"


def _check_tables(recipe: Mapping[str, Any]) -> list[dict]:
    tables = recipe.get("tables")
    if not isinstance(tables, list) or not tables:
        raise EvaluationError("the recipe has no tables: list "
                              "[{table, split, metrics, rows: {row: method}}]")
    out, seen = [], set()
    for i, entry in enumerate(tables):
        where = f"recipe tables[{i}]"
        if not isinstance(entry, Mapping):
            raise EvaluationError(f"{where}: expected a mapping, got {entry!r}")
        missing = [k for k in ("table", "split", "metrics", "rows") if k not in entry]
        if missing:
            raise EvaluationError(f"{where}: missing {', '.join(missing)}")
        number = int(entry["table"])
        if number in seen:
            raise EvaluationError(f"{where}: table {number} is listed twice")
        seen.add(number)
        if entry["split"] not in TEST_SPLITS:
            raise EvaluationError(f"{where}.split: {entry['split']!r} is not a test split "
                                  f"({', '.join(TEST_SPLITS)})")
        rows = entry["rows"]
        if not isinstance(rows, Mapping) or not rows:
            raise EvaluationError(f"{where}.rows: expected {{row name: method}}, got {rows!r}")
        metrics = [str(m) for m in entry["metrics"]]
        for m in metrics:
            if m not in IDENTITY_METRICS and entry["split"] == "unpaired_test":
                raise EvaluationError(f"{where}.metrics: {m!r} needs the studio ground truth, "
                                      "which unpaired_test does not have")
        compare = entry.get("compare") or []
        if not isinstance(compare, list) or not all(
                isinstance(c, (list, tuple)) and len(c) == 2 for c in compare):
            raise EvaluationError(f"{where}.compare: expected a list of [better row, worse row] "
                                  f"pairs, got {compare!r}")
        for a, b in compare:
            for r in (a, b):
                if r not in rows:
                    raise EvaluationError(f"{where}.compare: {r!r} is not a row of this table "
                                          f"(rows: {', '.join(map(str, rows))})")
        out.append({"table": number, "split": str(entry["split"]), "metrics": metrics,
                    "rows": {str(r): str(m) for r, m in rows.items()},
                    "compare": [(str(a), str(b)) for a, b in compare]})
    return out


def _check_predictions(run_dir: Path, tables: list[dict], seeds: list[int],
                       stems: dict[str, list[str]], imported: frozenset = frozenset()) -> None:
    missing = []
    for t in tables:
        for row, method in t["rows"].items():
            for seed in seeds:
                if (method, seed, t["split"]) in imported:
                    continue
                for stem in stems[t["split"]]:
                    path = prediction_path(run_dir, method, seed, stem)
                    if not path.is_file():
                        missing.append(f"{path} (table {t['table']}, row {row}, method "
                                       f"{method}, seed {seed}, {t['split']} stem {stem})")
    if missing:
        shown = "\n  ".join(dict.fromkeys(missing[:10]))
        more = f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise EvaluationError(f"missing prediction: {len(missing)} file(s) absent:\n  "
                              f"{shown}{more}")


def _read_record(path: Path, source_desc: str) -> tuple[dict, dict]:
    """An earlier evaluation.json as (method, seed, split) -> metric -> stem -> value, and its
    metric specs."""
    try:
        record = json.loads(path.read_text())
        theirs, tables = record["source"], record["tables"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EvaluationError(f"evaluation.scores_from: {path} is not a readable "
                              f"evaluation.json ({exc})") from exc
    if theirs != source_desc:
        raise EvaluationError(f"evaluation.scores_from: {path} scored other test data "
                              f"({theirs}), not {source_desc}")
    out: dict[tuple[str, int, str], dict[str, dict[str, float]]] = {}
    for table in tables.values():
        if "split" not in table:
            raise EvaluationError(f"evaluation.scores_from: {path} predates per-split "
                                  f"records; score its predictions again")
        for row, method in table.get("rows", {}).items():
            for metric, by_seed in table.get("per_stem", {}).get(row, {}).items():
                for seed_key, by_stem in by_seed.items():
                    key = (method, int(seed_key.removeprefix("seed")), table["split"])
                    out.setdefault(key, {})[metric] = {k: float(v) for k, v in by_stem.items()}
    specs = {m: v.get("spec") for m, v in record.get("metrics", {}).items()}
    return out, specs


def _read_scores(paths: list[Path], source_desc: str, metrics: MetricSet,
                 wanted: dict[tuple[str, int, str], list[str]], stems: dict[str, list[str]],
                 run_dir: Path) -> tuple[dict, dict]:
    """(method, seed, split) -> metric -> stem -> value from earlier evaluation records, for
    the keys of ``wanted`` that have no prediction folder under ``run_dir`` (the first file
    that holds every stem of every metric asked for wins); and key -> file."""
    records = [(str(p), *_read_record(Path(p), source_desc)) for p in paths]
    scores: dict[tuple[str, int, str], dict[str, dict[str, float]]] = {}
    origin: dict[tuple[str, int, str], str] = {}
    for key, names in wanted.items():
        method, seed, split = key
        if not records or (run_dir / "predictions" / method / seed_dir(seed)).is_dir():
            continue  # predictions here: scored afresh
        names = [m for m in names if metrics.get(m).available]
        for path, held, specs in records:
            have = held.get(key, {})
            if not all(m in have and set(stems[split]) <= set(have[m]) for m in names):
                continue
            for m in names:
                if specs.get(m) != metrics.get(m).spec:
                    raise EvaluationError(
                        f"evaluation.scores_from: {path}: metric {m} was computed with "
                        f"{specs.get(m)}, this evaluation uses {metrics.get(m).spec}")
            scores[key] = {m: {st: have[m][st] for st in stems[split]} for m in names}
            origin[key] = path
            break
    return scores, origin


class _References:
    """Ground truth, phone inputs and masks of the test stems, resized to a prediction's size."""

    def __init__(self, source):
        self.source = source
        self._cache: dict[tuple[str, str, int | None], torch.Tensor] = {}

    def get(self, stem: str, kind: str, size: int) -> tuple[torch.Tensor, int]:
        from lift.data.dataset import resize_texture

        key = (stem, kind, None)
        if key not in self._cache:
            self._cache[key] = self.source.load(stem, kind).float()
        native = self._cache[key]
        if native.shape[-1] == size and native.shape[-2] == size:
            return native, size
        sized = (stem, kind, size)
        if sized not in self._cache:
            out = resize_texture(native, size)
            if kind == "mask":
                out = (out >= 0.5).to(torch.float32)
            self._cache[sized] = out
        return self._cache[sized], int(native.shape[-1])


def _score(run_dir: Path, method: str, seed: int, split: str, stems: list[str],
           names: list[str], metrics: MetricSet, refs: _References, device: str,
           notes: list[str]) -> dict[str, dict[str, float]]:
    """metric -> stem -> value, for one method's predictions of one seed on one split."""
    from lift.data.io import read_texture

    out: dict[str, dict[str, float]] = {n: {} for n in names}
    resized: set[tuple[int, int]] = set()
    for stem in stems:
        path = prediction_path(run_dir, method, seed, stem)
        pred = read_texture(path)[None].to(device)
        size = int(pred.shape[-1])
        for name in names:
            built = metrics.get(name)
            if not built.available:
                continue
            if name in IDENTITY_METRICS:
                target, native = refs.get(stem, "phone", size)
                mask, _ = refs.get(stem, "mask", size)
                mask = (mask >= 0.5).to(torch.float32)[None].to(device)
            else:
                target, native = refs.get(stem, "studio", size)
                mask = None
            if native != size:
                resized.add((native, size))
            target = target[None].to(device)
            built.metric.reset()
            with torch.no_grad():
                if mask is None:
                    built.metric.update(pred, target)
                else:
                    built.metric.update(pred, target, mask=mask)
                out[name][stem] = float(built.metric.compute())
    for native, size in sorted(resized):
        how = "area" if native > size else "bilinear"
        notes.append(f"{method} seed {seed} {split}: predictions are {size}x{size}, the "
                     f"reference textures {native}x{native}; references resized with {how} "
                     f"to the prediction's resolution")
    return out


def _json_value(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return value


def dumps(data: Any) -> str:
    """JSON text with NaN/Inf written as null (strict JSON)."""
    return json.dumps(_json_value(data), indent=2, allow_nan=False) + "\n"


def evaluate_run(run_dir: Path, recipe: dict, *, source=None,
                 scores_from: list[Path] | None = None) -> dict[int, dict]:
    """Score every table of ``recipe`` on the predictions under ``run_dir`` and write
    ``run_dir/tables/``; returns ``{table number: the table's JSON object}``.

    ``source`` (a :class:`~lift.data.TextureSource`) overrides ``recipe["evaluation"]["source"]``;
    ``scores_from`` (earlier ``evaluation.json`` files) adds to ``recipe["evaluation"]
    ["scores_from"]`` (see the module's docstring).
    """
    from lift.evaluation.tables import write_table_files

    run_dir = Path(run_dir)
    tables = _check_tables(recipe)
    seeds = [int(s) for s in (recipe.get("seeds") or [0])]
    profile = str(recipe.get("profile", ""))
    evaluation = dict(recipe.get("evaluation") or {})
    device = str(evaluation.get("device", "cpu"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    source = source if source is not None else recipe_source(recipe)
    splits = source.splits()
    stems: dict[str, list[str]] = {}
    for t in tables:
        stems[t["split"]] = list(splits.get(t["split"], []))
        if not stems[t["split"]]:
            raise EvaluationError(f"table {t['table']}: split {t['split']} of "
                                  f"{source.describe()} has no stems")
    metrics = MetricSet(evaluation.get("metrics"), device)
    refs = _References(source)
    notes: list[str] = []
    # (method, seed, split) -> metric -> stem -> value; a method in several tables is scored once
    wanted: dict[tuple[str, int, str], list[str]] = {}
    for t in tables:
        for method in t["rows"].values():
            for seed in seeds:
                names = wanted.setdefault((method, seed, t["split"]), [])
                names += [m for m in t["metrics"] if m not in names]
    paths = [Path(p) for p in (evaluation.get("scores_from") or [])] + list(scores_from or [])
    scores, origin = _read_scores(paths, source.describe(), metrics, wanted, stems, run_dir)
    _check_predictions(run_dir, tables, seeds, stems, frozenset(scores))
    for (method, seed, split), names in wanted.items():
        if (method, seed, split) not in scores:
            scores[(method, seed, split)] = _score(run_dir, method, seed, split, stems[split],
                                                   names, metrics, refs, device, notes)
    for (method, seed, split), path in sorted(origin.items()):
        notes.append(f"{method} seed {seed} {split}: scores taken from {path} (no predictions "
                     f"in this run directory)")

    results: dict[int, dict] = {}
    record_tables = {}
    for t in tables:
        number, split = t["table"], t["split"]
        paper_rows = paper_data.PAPER.get(number, {})
        built = {m: metrics.get(m) for m in t["metrics"]}
        rows, per_seed = {}, {}
        for row, method in t["rows"].items():
            rows[row], per_seed[row] = {}, {}
            for m in t["metrics"]:
                if not built[m].available:
                    rows[row][m] = {"mean": None, "std": None, "n": 0}
                    continue
                seed_values = []
                for seed in seeds:
                    by_stem = scores[(method, seed, split)][m]
                    seed_values.append(sum(by_stem.values()) / len(by_stem))
                rows[row][m] = aggregate(seed_values)
                per_seed[row][m] = {seed_dir(s): v for s, v in zip(seeds, seed_values)}
        claims = paper_data.claimed_orderings(number, t["metrics"], list(t["rows"]))
        # the recipe's own hypotheses (``compare``): tested the same way, not the paper's claims
        claims += [{"better": a, "worse": b, "metric": m, "paper": None}
                   for a, b in t["compare"] for m in t["metrics"]]
        per_stem = {row: {m: {seed_dir(s): scores[(method, s, split)][m] for s in seeds}
                          for m in t["metrics"] if built[m].available}
                    for row, method in t["rows"].items()}
        table = {
            "table": number,
            "split": split,
            "profile": profile,
            "seeds": seeds,
            "rows": rows,
            "paper": {r: {m: v for m, v in paper_rows[r].items() if m in t["metrics"]}
                      for r in t["rows"] if r in paper_rows},
            "higher_is_better": {m: paper_data.HIGHER_IS_BETTER.get(
                m, bool(getattr(built[m].metric, "higher_is_better", True)))
                for m in t["metrics"]},
            "orderings": evaluate_orderings(claims, rows, per_seed, per_stem),
            "labels": {m: built[m].label for m in t["metrics"]},
            "missing": {m: built[m].missing for m in t["metrics"] if not built[m].available},
        }
        results[number] = table
        table_notes = sorted({n for m in t["metrics"] for n in built[m].notes})
        table_notes += [n for n in notes if n.split(" ")[0] in set(t["rows"].values())
                        and f" {split}:" in n]
        record_tables[number] = {
            "split": split, "rows": t["rows"], "per_seed": per_seed, "notes": table_notes,
            "per_stem": per_stem,
            "orderings": ordering_summary(table["orderings"]),
        }
        write_table_files(run_dir / "tables", table, table_notes)

    record = {
        "profile": profile, "seeds": seeds, "source": source.describe(), "device": device,
        "metrics": {name: {"label": b.label, "spec": b.spec, "missing": b.missing,
                           "notes": b.notes} for name, b in metrics.built().items()},
        "std": "sample standard deviation over seeds (n - 1); 0 with one seed",
        "scores_from": sorted({str(p) for p in origin.values()}),
        "tables": record_tables,
        "paper_orderings": paper_data.ordering_counts(),
    }
    atomic_write_text(run_dir / "tables" / "evaluation.json", dumps(record))
    return results
