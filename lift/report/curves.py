"""Training curves: Lightning's CSVLogger files read back and drawn as small inline SVG plots.

``run_dir/stages/<stage>/seed<k>/logs/version_*/metrics.csv`` has a header of every logged
key (``step``, ``epoch``, ``train/<phase>/<term>``, ``val/<metric>``, ...) and one line per
logging call with empty cells for keys not logged then. Versions of one seed (a resumed run
writes ``version_1``) are joined by step, the later version winning a repeated step.
"""

from __future__ import annotations

import csv
import math
import re
from html import escape
from pathlib import Path
from typing import Mapping, Sequence

SKIPPED = {"step", "epoch"}
SERIES_COLOURS = ("#1f5fbf", "#d0452c", "#2a9d4b", "#8a3fbf", "#c98a00", "#137f86")
MAX_POINTS = 400


def read_metrics_csv(path: Path) -> dict[str, list[tuple[float, float]]]:
    """column -> [(step, value)] of one metrics.csv (non-numeric cells skipped)."""
    out: dict[str, list[tuple[float, float]]] = {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        for i, line in enumerate(reader):
            step = _number(line.get("step"))
            step = float(i) if step is None else step
            for key, cell in line.items():
                if key is None or key in SKIPPED:
                    continue
                value = _number(cell)
                if value is not None:
                    out.setdefault(key, []).append((step, value))
    return out


def _number(cell) -> float | None:
    if cell is None or cell == "":
        return None
    try:
        value = float(cell)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _version_key(path: Path) -> int:
    match = re.search(r"version_(\d+)", str(path))
    return int(match.group(1)) if match else -1


def seed_curves(seed_dir: Path) -> dict[str, list[tuple[float, float]]]:
    """Every version's metrics.csv under ``seed_dir/logs`` joined by step."""
    files = sorted(Path(seed_dir).glob("logs/version_*/metrics.csv"), key=_version_key)
    joined: dict[str, dict[float, float]] = {}
    for path in files:
        try:
            curves = read_metrics_csv(path)
        except (OSError, csv.Error, UnicodeDecodeError):
            continue
        for key, points in curves.items():
            joined.setdefault(key, {}).update(dict(points))  # later versions win
    return {k: sorted(v.items()) for k, v in joined.items()}


def stage_curves(run_dir: Path) -> dict[str, dict[str, dict[str, list[tuple[float, float]]]]]:
    """stage -> seed folder name -> column -> points, for every stage with CSV logs."""
    out: dict[str, dict[str, dict]] = {}
    stages = Path(run_dir) / "stages"
    if not stages.is_dir():
        return out
    for stage in sorted(p for p in stages.iterdir() if p.is_dir()):
        # seed<k> only: a rerun's old outputs are moved aside as seed<k>.stale-N
        for seed in sorted(p for p in stage.iterdir() if p.is_dir()
                           and re.fullmatch(r"seed\d+", p.name)):
            curves = seed_curves(seed)
            if curves:
                out.setdefault(stage.name, {})[seed.name] = curves
    return out


def _thin(points: Sequence[tuple[float, float]], limit: int = MAX_POINTS):
    if len(points) <= limit:
        return list(points)
    stride = len(points) / limit
    return [points[int(i * stride)] for i in range(limit)] + [points[-1]]


def _smooth(points: Sequence[tuple[float, float]], window: int):
    out, acc, values = [], 0.0, [p[1] for p in points]
    for i, (x, y) in enumerate(points):
        acc += y
        if i >= window:
            acc -= values[i - window]
        out.append((x, acc / min(i + 1, window)))
    return out


def _tick(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        return f"{value:.1e}"
    return f"{value:.4g}"


def line_plot(series: Mapping[str, Sequence[tuple[float, float]]], title: str, *,
              width: int = 260, height: int = 150) -> str:
    """One small SVG line plot (inline markup) of named ``[(x, y)]`` series."""
    left, right, top, bottom = 46, 8, 18, 22
    pw, ph = width - left - right, height - top - bottom
    points = [p for s in series.values() for p in s]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" role="img">',
             f'<title>{escape(title)}</title>',
             f'<text x="{left}" y="12" class="pt">{escape(_short(title, 40))}</text>']
    if not points:
        parts.append(f'<text x="{left}" y="{top + ph / 2}" class="pa">no data</text></svg>')
        return "".join(parts)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    if y1 == y0:
        pad = abs(y0) * 0.05 or 0.5
        y0, y1 = y0 - pad, y1 + pad

    def sx(x):
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y):
        return top + (1 - (y - y0) / (y1 - y0)) * ph

    parts.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="pf"/>')
    for frac in (0.0, 0.5, 1.0):
        y = y0 + frac * (y1 - y0)
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" '
                     f'class="pg"/><text x="{left - 3}" y="{sy(y) + 3:.1f}" class="pa" '
                     f'text-anchor="end">{_tick(y)}</text>')
    parts.append(f'<text x="{left}" y="{height - 6}" class="pa">{_tick(x0)}</text>'
                 f'<text x="{left + pw}" y="{height - 6}" class="pa" text-anchor="end">'
                 f'{_tick(x1)}</text><text x="{left + pw / 2}" y="{height - 6}" class="pa" '
                 f'text-anchor="middle">step</text>')
    for i, (name, pts) in enumerate(series.items()):
        colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
        pts = sorted(pts)
        if len(pts) == 1:
            x, y = pts[0]
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{colour}"/>')
            continue
        raw = _thin(pts)
        faint = len(pts) > 50
        parts.append(_polyline(raw, sx, sy, colour, 0.35 if faint else 1.0))
        if faint:
            parts.append(_polyline(_thin(_smooth(pts, max(5, len(pts) // 25))), sx, sy, colour, 1.0))
    if len(series) > 1:
        for i, name in enumerate(series):
            colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
            parts.append(f'<text x="{left + pw - 2}" y="{top + 10 + 10 * i}" class="pa" '
                         f'text-anchor="end" fill="{colour}">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _polyline(points, sx, sy, colour: str, opacity: float) -> str:
    coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
    return (f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.3" '
            f'stroke-opacity="{opacity}"/>')


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else "…" + text[-(n - 1):]


def stage_panels(per_seed: Mapping[str, Mapping[str, Sequence[tuple[float, float]]]],
                 max_panels: int = 30) -> list[str]:
    """One plot per logged column of a stage (train/ first, then the rest), seeds overlaid."""
    columns = sorted({c for curves in per_seed.values() for c in curves},
                     key=lambda c: (not c.startswith("train/"), c))
    panels = []
    for column in columns[:max_panels]:
        series = {seed: curves[column] for seed, curves in per_seed.items() if column in curves}
        panels.append(line_plot(series, column))
    return panels


STYLE = ("<style>.plot .pt{font:11px sans-serif;fill:#222}.plot .pa{font:9px sans-serif;"
         "fill:#555}.plot .pf{fill:#fafafa;stroke:#ccc}.plot .pg{stroke:#e4e4e4}</style>")


def panels_svg_document(panels: Sequence[str], columns: int = 4) -> str:
    """Stand-alone SVG file of the panels in a grid (``report/curves/<stage>.svg``)."""
    if not panels:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
    w, h = 260, 150
    rows = math.ceil(len(panels) / columns)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w * min(columns, len(panels))}" '
           f'height="{h * rows}">', STYLE]
    for i, panel in enumerate(panels):
        x, y = (i % columns) * w, (i // columns) * h
        out.append(panel.replace("<svg ", f'<svg x="{x}" y="{y}" ', 1))
    out.append("</svg>")
    return "".join(out)
