"""Writing one table: ``table{N}.json`` (the schema of docs/run.md), ``.md`` and ``.csv``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from lift.atomic import atomic_write_text
from lift.evaluation import paper as paper_data
from lift.evaluation.stats import ALPHA, finite, ordering_summary

_DECIMALS = {"psnr": 2, "ssim": 3, "lpips": 3, "dists": 3}


def fmt(metric: str, value) -> str:
    """A metric value as the paper prints it (FaceID in scientific notation)."""
    value = finite(value)
    if value is None:
        return "n/a"
    if metric == "faceid" or (abs(value) < 1e-2 and value != 0):
        return f"{value:.2e}"
    return f"{value:.{_DECIMALS.get(metric, 4)}f}"


def fmt_stat(metric: str, stat: dict | None) -> str:
    if not stat or finite(stat.get("mean")) is None:
        return "n/a"
    return f"{fmt(metric, stat['mean'])} ± {fmt(metric, stat.get('std'))}"


def arrow(table: dict, metric: str) -> str:
    return "↑" if table["higher_is_better"].get(metric, True) else "↓"


def mark(ours) -> str:
    return {True: "✓", False: "✗"}.get(ours, "–")


def p_text(o: dict) -> str:
    """The sign-flip p-value of an ordering over its paired test textures, in words."""
    return f"p = {o['p_textures']:.3g} over {o['pairs']} paired textures"


def ordering_text(table: dict, o: dict) -> str:
    """One ordering as a sentence with the numbers behind it."""
    m = o["metric"]
    paper = table.get("paper", {})
    pa, pb = paper.get(o["better"], {}).get(m), paper.get(o["worse"], {}).get(m)
    ra = (table["rows"].get(o["better"], {}).get(m) or {}).get("mean")
    rb = (table["rows"].get(o["worse"], {}).get(m) or {}).get("mean")
    status = {True: "reproduced", False: "NOT reproduced"}.get(o["ours"], "not evaluated")
    if o["ours"] and o.get("every_seed") is not None:
        status += ("; in every seed" if o["every_seed"] else "; not in every seed")
        status += ("; beyond the seed spread" if o.get("beyond_spread")
                   else "; within the seed spread")
    if o.get("p_textures") is not None:
        status += f"; {p_text(o)}"
    paper_part = "" if o.get("paper") is None else f"paper {fmt(m, pa)} vs {fmt(m, pb)}, "
    return (f"{mark(o['ours'])} {o['better']} better than {o['worse']} on {m}: "
            f"{paper_part}ours {fmt(m, ra)} vs {fmt(m, rb)} ({status})")


def markdown(table: dict, notes: list[str] = ()) -> str:
    n, metrics = table["table"], list(table["labels"])
    title = paper_data.TITLES.get(n, "")
    lines = [f"# Table {n}" + (f": {title}" if title else ""), "",
             f"Split `{table['split']}`, profile `{table['profile']}`, seeds "
             f"{table['seeds']}: our mean ± std over seeds (sample std), the paper's number "
             "beside it.", ""]
    if len(table["seeds"]) == 1:
        lines += ["> **One seed: smoke level.** The std is 0 by construction; orderings "
                  "from one seed are indicative only.", ""]
    header = ["row"]
    for m in metrics:
        header += [f"{table['labels'][m]} {arrow(table, m)}", "paper"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row, values in table["rows"].items():
        cells = [row]
        for m in metrics:
            cells += [fmt_stat(m, values.get(m)),
                      fmt(m, table["paper"].get(row, {}).get(m)) if m in
                      table["paper"].get(row, {}) else "–"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for m, why in table.get("missing", {}).items():
        lines += [f"**{m}: no numbers.** {why}", ""]
    claimed = [o for o in table["orderings"] if o.get("paper") is not None]
    asked = [o for o in table["orderings"] if o.get("paper") is None]
    if claimed or not asked:  # a table of the recipe's own comparisons only: no paper section
        summary = ordering_summary(table["orderings"])
        lines += [f"## Orderings the paper claims: {summary['reproduced']} of {summary['total']} "
                  f"reproduced ({summary['not_reproduced']} not, {summary['not_evaluated']} "
                  "not evaluated)", ""]
        robust = []
        if len(table["seeds"]) > 1:
            robust.append(f"{summary['every_seed']} hold in every seed and "
                          f"{summary['beyond_spread']} beyond the seed spread (mean ± std "
                          "intervals apart)")
        if any(o.get("p_textures") is not None for o in claimed):
            robust.append(f"{summary['significant']} at p < {ALPHA} over the paired test "
                          "textures (one-sided sign-flip test of the claimed direction, per "
                          "ordering, uncorrected)")
        if robust:
            lines += ["Of those reproduced, " + "; ".join(robust) + ".", ""]
        lines += [f"- {ordering_text(table, o)}" for o in claimed] or ["- none"]
    if asked:
        c = ordering_summary(asked, recipe=True)
        lines += ["", f"## Comparisons the recipe asks for (not the paper's claims): "
                  f"{c['reproduced']} of {c['total'] - c['not_evaluated']} evaluated hold, "
                  f"{c['significant']} of them at p < {ALPHA} over the paired test textures "
                  f"({c['not_evaluated']} not evaluated)", ""]
        lines += [f"- {ordering_text(table, o)}" for o in asked]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def csv_text(table: dict) -> str:
    """One line per (row, metric): mean, std, n, the paper's number."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["table", "split", "row", "metric", "label", "higher_is_better", "mean",
                     "std", "n", "paper"])
    for row, values in table["rows"].items():
        for m, stat in values.items():
            paper = table["paper"].get(row, {}).get(m)
            writer.writerow([table["table"], table["split"], row, m, table["labels"].get(m, m),
                             table["higher_is_better"].get(m), _cell(stat.get("mean")),
                             _cell(stat.get("std")), stat.get("n", 0), _cell(paper)])
    return buf.getvalue()


def _cell(value) -> str:
    value = finite(value)
    return "" if value is None else repr(value)


def write_table_files(folder: Path, table: dict, notes: list[str] = ()) -> dict[str, Path]:
    """Write ``table{N}.json``, ``.md`` and ``.csv`` into ``folder`` (atomically)."""
    from lift.evaluation.run import dumps

    stem = Path(folder) / f"table{table['table']}"
    paths = {"json": stem.with_suffix(".json"), "md": stem.with_suffix(".md"),
             "csv": stem.with_suffix(".csv")}
    atomic_write_text(paths["json"], dumps(table))
    atomic_write_text(paths["md"], markdown(table, list(notes)))
    atomic_write_text(paths["csv"], csv_text(table))
    return paths
