"""The report's table section: every tables/table{N}.json with the paper beside ours."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from lift.evaluation import paper as paper_data
from lift.evaluation.stats import ALPHA, ordering_summary
from lift.evaluation.tables import arrow, fmt, fmt_stat, mark, p_text


def load_tables(run_dir: Path) -> tuple[dict[int, dict], list[str]]:
    """``({number: table}, problems)`` from ``run_dir/tables/table*.json``."""
    tables, problems = {}, []
    for path in sorted((Path(run_dir) / "tables").glob("table*.json")):
        try:
            data = json.loads(path.read_text())
            tables[int(data["table"])] = data
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problems.append(f"{path.name}: unreadable ({exc})")
    return dict(sorted(tables.items())), problems


def load_evaluation(run_dir: Path) -> dict:
    path = Path(run_dir) / "tables" / "evaluation.json"
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _links(run_dir: Path, number: int) -> str:
    out = []
    for ext in ("md", "csv", "json"):
        if (Path(run_dir) / "tables" / f"table{number}.{ext}").is_file():
            out.append(f'<a href="../tables/table{number}.{ext}">{ext}</a>')
    return " · ".join(out)


def missing_html(metric: str, why: str) -> str:
    """A column without numbers: what to place where first, the full message folded."""
    head, sep, rest = why.partition(". ")
    if not sep or not head.startswith("place "):
        return f'<p class="missing"><b>{escape(metric)}: no numbers.</b> {escape(why)}</p>'
    return (f'<details class="missing"><summary><b>{escape(metric)}: no numbers</b>: '
            f'{escape(head)} (details)</summary>{escape(rest)}</details>')


def table_html(run_dir: Path, table: dict, notes: list[str]) -> str:
    n = table.get("table")
    labels = table.get("labels") or {m: m for m in next(iter(table.get("rows", {}).values()), {})}
    metrics = list(labels)
    rows = table.get("rows") or {}
    paper = table.get("paper") or {}
    title = paper_data.TITLES.get(n, "")
    out = [f'<section class="tbl" id="table{n}"><h3>Table {n}'
           f'{": " + escape(title) if title else ""}</h3>',
           f'<p class="meta">split <code>{escape(str(table.get("split")))}</code>, profile '
           f'<code>{escape(str(table.get("profile")))}</code>, seeds '
           f'{escape(str(table.get("seeds")))} · {_links(run_dir, n)}</p>']
    head = "".join(f'<th colspan="2">{escape(labels[m])} {arrow(table, m)}</th>' for m in metrics)
    sub = "".join('<th class="us">ours</th><th class="pp">paper</th>' for _ in metrics)
    out.append(f'<table class="results"><thead><tr><th rowspan="2">row</th>{head}</tr>'
               f'<tr>{sub}</tr></thead><tbody>')
    for row, values in rows.items():
        cells = []
        for m in metrics:
            stat = (values or {}).get(m)
            pv = paper.get(row, {}).get(m)
            cells.append(f'<td class="us">{escape(fmt_stat(m, stat))}</td>'
                         f'<td class="pp">{escape(fmt(m, pv)) if pv is not None else "–"}</td>')
        name = paper_data.ROW_NAMES.get(row, row)
        out.append(f'<tr><th title="{escape(name)}">{escape(row)}</th>{"".join(cells)}</tr>')
    out.append("</tbody></table>")
    for m, why in (table.get("missing") or {}).items():
        out.append(missing_html(m, str(why)))
    orderings = table.get("orderings") or []
    s = ordering_summary(orderings)
    if any(o.get("paper") is not None for o in orderings) or not orderings:
        out.append(f'<p class="orders-head"><b>Orderings the paper claims: {s["reproduced"]} of '
                   f'{s["total"]} reproduced</b> ({s["not_reproduced"]} not, '
                   f'{s["not_evaluated"]} not evaluated)</p><ul class="orders">')
    else:  # only the recipe's own comparisons
        out.append('<p class="orders-head"><b>Comparisons the recipe asks for</b> (not the '
                   'paper\'s claims)</p><ul class="orders">')
    for o in orderings:
        m = o.get("metric", "?")
        ours = o.get("ours")
        cls = {True: "ok", False: "bad"}.get(ours, "na")
        a = ((rows.get(o.get("better")) or {}).get(m) or {}).get("mean")
        b = ((rows.get(o.get("worse")) or {}).get(m) or {}).get("mean")
        pa = (paper.get(o.get("better")) or {}).get(m)
        pb = (paper.get(o.get("worse")) or {}).get(m)
        out.append(f'<li class="{cls}"><span class="mk">{mark(ours)}</span> '
                   f'<b>{escape(str(o.get("better")))}</b> better than '
                   f'<b>{escape(str(o.get("worse")))}</b> on {escape(m)}: '
                   + ('' if o.get("paper") is None else f'paper {fmt(m, pa)} vs {fmt(m, pb)}, ')
                   + f'ours {fmt(m, a)} vs {fmt(m, b)}'
                   + ('' if o.get("paper") is not None else " (the recipe's comparison, not a "
                      "paper claim)")
                   + f'{escape(_robustness(o))}</li>')
    out.append("</ul>")
    if notes:
        out.append('<details class="notes"><summary>notes</summary><ul>'
                   + "".join(f"<li>{escape(x)}</li>" for x in notes) + "</ul></details>")
    out.append("</section>")
    return "\n".join(out)


def _robustness(o: dict) -> str:
    parts = []
    if o.get("ours") and o.get("every_seed") is not None:
        parts += ["every seed" if o["every_seed"] else "not every seed",
                  ("beyond" if o.get("beyond_spread") else "within") + " the seed spread"]
    if o.get("p_textures") is not None:
        parts.append(p_text(o))
    return f" ({', '.join(parts)})" if parts else ""


def tables_section(run_dir: Path) -> tuple[str, dict[int, dict], dict]:
    """``(html, tables, evaluation record)``."""
    tables, problems = load_tables(run_dir)
    evaluation = load_evaluation(run_dir)
    out = ['<h2 id="tables">Tables 1-4</h2>']
    if not tables:
        out.append('<p class="missing">No tables: <code>tables/table*.json</code> not found '
                   '(run <code>python -m lift.evaluation RUN_DIR --recipe ...</code>).</p>')
    else:
        total = dict.fromkeys(("total", "reproduced", "not_reproduced", "not_evaluated",
                               "every_seed", "beyond_spread", "significant"), 0)
        for t in tables.values():
            for k, v in ordering_summary(t.get("orderings") or []).items():
                total[k] = total.get(k, 0) + v
        seeds = max((len(t.get("seeds") or []) for t in tables.values()), default=1)
        robust = (f' Of those, {total["every_seed"]} hold in every seed and '
                  f'{total["beyond_spread"]} beyond the seed spread.' if seeds > 1 else "")
        if any(o.get("p_textures") is not None for t in tables.values()
               for o in t.get("orderings") or []):
            robust += (f' {total["significant"]} at p &lt; {ALPHA} over the paired test '
                       'textures (one-sided sign-flip test, per ordering).')
        out.append(f'<p class="summary">Across the tables: <b>{total["reproduced"]} of '
                   f'{total["total"]}</b> orderings the paper claims are reproduced '
                   f'({total["not_reproduced"]} not, {total["not_evaluated"]} not evaluated).'
                   f'{robust} '
                   'Ours: mean ± sample std over seeds. The paper\'s numbers are on its private '
                   'data; the orderings are what should carry over.</p>')
    for problem in problems:
        out.append(f'<p class="missing">{escape(problem)}</p>')
    record_tables = evaluation.get("tables") or {}
    for n, t in tables.items():
        notes = (record_tables.get(str(n)) or {}).get("notes") or []
        out.append(table_html(run_dir, t, list(notes)))
    return "\n".join(out), tables, evaluation
