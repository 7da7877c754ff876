"""The static HTML report of a run directory (see docs/report.md).

``write_report(run_dir, recipe)`` writes ``run_dir/report/index.html`` with images under
``report/images/`` and curve files under ``report/curves/``, all linked relatively. The page
is self-contained: inline CSS and SVG, no scripts, no network (no CDN, no web fonts), so it
opens from disk. ``python -m lift.report RUN_DIR [--recipe FILE]`` regenerates it.
"""

from __future__ import annotations

import datetime
import re
import shutil
from html import escape
from pathlib import Path
from typing import Mapping

__all__ = ["write_report"]

CSS = """
body{font:14px/1.45 -apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif;margin:0;
 color:#1d1d1f;background:#fff}
main{max-width:1500px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:24px;margin:8px 0 4px}h2{font-size:19px;margin:28px 0 8px;padding-top:8px;
 border-top:2px solid #e3e3e3}h3{font-size:15px;margin:16px 0 6px}
code{font:12px ui-monospace,"DejaVu Sans Mono",monospace;background:#f3f3f3;padding:0 3px}
nav a{margin-right:12px}.meta{color:#666;font-size:12px;font-weight:normal}
.smoke{background:#fff4d6;border:1px solid #e6c35c;padding:8px 12px;margin:10px 0}
.summary{background:#eef5ff;border:1px solid #bcd3f5;padding:8px 12px}
table{border-collapse:collapse}
table.results td,table.results th{border:1px solid #d7d7d7;padding:3px 8px;text-align:right}
table.results thead th{background:#f5f5f5;text-align:center}
table.results tbody th{text-align:left;background:#fafafa}
td.pp,th.pp{color:#777;background:#fcfcfc}
ul.orders{list-style:none;padding-left:4px;margin:4px 0;columns:2;font-size:13px}
ul.orders li.ok .mk{color:#178a3a;font-weight:bold}ul.orders li.bad .mk{color:#c42b1c;
 font-weight:bold}ul.orders li.na{color:#888}
.missing{color:#9a3b00}.absent{color:#999;font-size:12px;max-width:180px}
.tbl{margin-bottom:18px}
.scroll{overflow-x:auto}
table.grid th{font-size:12px;font-weight:600;padding:2px 4px;vertical-align:middle}
table.grid thead th{position:sticky;top:0;background:#fff}
table.grid td{padding:2px;vertical-align:top;text-align:center}
img{border:1px solid #d0d0d0}
img.full{width:136px;height:auto;display:block}
img.crop{width:136px;height:auto;display:block;image-rendering:pixelated}
img.expr{width:150px;height:auto;display:block}
.cap{font-size:10px;color:#444;max-width:136px}
.pair{display:flex;gap:3px}figure{margin:0}figcaption{font-size:11px;color:#555}
.exname{font-size:12px;font-weight:600}
.panels{display:flex;flex-wrap:wrap;gap:6px}
.plot .pt{font:11px sans-serif;fill:#222}.plot .pa{font:9px sans-serif;fill:#555}
.plot .pf{fill:#fafafa;stroke:#ccc}.plot .pg{stroke:#e4e4e4}
table.runs td,table.runs th{border:1px solid #ddd;padding:3px 6px;font-size:12px;
 vertical-align:top;text-align:left}
table.runs code{white-space:pre-wrap;word-break:break-all;font-size:11px}
table.runs pre{max-height:360px;overflow:auto;font-size:11px;background:#f7f7f7;padding:6px}
.st-done{color:#178a3a}.st-failed{color:#c42b1c;font-weight:bold}
"""


def _options(recipe: Mapping) -> dict:
    options = dict(recipe.get("report") or {})
    return options


def write_report(run_dir: Path, recipe: dict, *, source=None) -> Path:
    """Write ``run_dir/report/index.html`` (and its images); returns its path.

    Reads ``run_dir/tables/*.json`` (:func:`lift.evaluation.evaluate_run`), the predictions,
    ``run_dir/run.json`` and the stages' CSV logs; each part that is absent is said so on the
    page. ``recipe`` keys: ``seeds``, ``profile``, ``name``, ``tables`` (which methods are
    shown per split), ``evaluation.source`` (the test textures; ``source`` overrides it) and
    the optional ``report`` block: ``crops`` ``{name: [top, left, height, width]}`` in
    fractions of the texture, ``seed`` (whose predictions are shown, default the first
    that has predictions in ``run_dir``),
    ``max_subjects``, ``image_size`` (px, default 256), ``crop_size`` (px, default 96).
    """
    from lift.atomic import atomic_write_text
    from lift.report import sections
    from lift.report.images import check_crops
    from lift.report.tables import tables_section

    run_dir = Path(run_dir)
    report_dir = run_dir / "report"
    for sub in ("images", "curves"):  # this report's own outputs: no stale files left
        if (report_dir / sub).is_dir():
            shutil.rmtree(report_dir / sub)
    report_dir.mkdir(parents=True, exist_ok=True)
    options = _options(recipe)
    crops = check_crops(options.get("crops"))
    seeds = [int(s) for s in (recipe.get("seeds") or [0])]
    # Default: the first seed with predictions here (seeds scored elsewhere have none).
    present = [s for s in seeds if any((run_dir / "predictions").glob(f"*/seed{s}"))]
    seed = int(options.get("seed", (present or seeds)[0]))
    name = recipe.get("name") or run_dir.name

    tables_html, _tables, evaluation = tables_section(run_dir)
    body = []
    if source is None:
        try:
            from lift.evaluation.source import recipe_source

            source = recipe_source(recipe)
        except Exception as exc:  # the page still shows tables, curves and stages
            body.append(f'<p class="missing">No subject images: {escape(str(exc))}</p>')
    methods = sections.split_methods(recipe)
    if source is not None:
        for split in ("paired_test", "unpaired_test"):
            if split in methods:
                body.append(sections.subject_grids(report_dir, run_dir, recipe, source, split,
                                                   methods[split], seed, crops, evaluation,
                                                   options))
        every = list(dict.fromkeys(m for ms in methods.values() for m in ms))
        body.append(sections.expressions_section(report_dir, run_dir, source, every, seed,
                                                 options))
    body.append(sections.stage_quality_section(report_dir, run_dir))
    body.append(sections.curves_section(report_dir, run_dir))
    body.append(sections.stages_section(report_dir, run_dir))

    smoke = ""
    if len(seeds) == 1:
        smoke = ('<p class="smoke"><b>One seed: smoke level.</b> Every std is 0 by construction '
                 'and an ordering from a single seed is indicative only; run more seeds before '
                 'reading anything into the differences.</p>')
    generated = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    nav = " ".join(f'<a href="#{a}">{t}</a>' for a, t in (
        ("tables", "tables"), ("paired_test", "paired subjects"),
        ("unpaired_test", "unpaired subjects"), ("expressions", "expressions"),
        ("stage_quality", "stages alone"),
        ("curves", "curves"), ("stages", "stages")))
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lift report: {escape(str(name))}</title>
<style>{CSS}</style></head>
<body><main>
<h1>lift run report: {escape(str(name))}</h1>
<p class="meta">profile <code>{escape(str(recipe.get('profile', '')))}</code> · seeds {seeds}
 · run directory <code>{escape(str(run_dir))}</code> · generated {escape(generated)}
 · paper: Athar et al. 2024, <i>Bridging the Gap: Studio-like Avatar Creation from a Monocular
 Phone Capture</i></p>
<nav>{nav}</nav>
{smoke}
{tables_html}
{chr(10).join(body)}
</main></body></html>
"""
    # Not one URL on the page: the weights hints' download addresses lose their scheme (they
    # stay readable as text, and nothing can be fetched or followed from the page).
    page = re.sub(r"(?i)\bhttps?://", "", page)
    index = report_dir / "index.html"
    atomic_write_text(index, page)
    return index
