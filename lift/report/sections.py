"""The report's image, curve and stage sections (HTML fragments; images under report/images)."""

from __future__ import annotations

import os
import re
from html import escape
from pathlib import Path
from typing import Mapping, Sequence

from lift.evaluation.run import prediction_path, seed_dir
from lift.evaluation.tables import fmt
from lift.report import curves as curve_mod
from lift.report import record as record_mod
from lift.report.images import CROP_COLOURS, write_texture_views

SPLIT_TITLES = {"paired_test": "paired test subjects (against the studio ground truth)",
                "unpaired_test": "unpaired test subjects (phone input only)"}


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "x"


def rel(report_dir: Path, path: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), Path(report_dir).resolve())).as_posix()


def split_methods(recipe: Mapping) -> dict[str, list[str]]:
    """split -> the methods of the tables on it, in order of first appearance."""
    out: dict[str, list[str]] = {}
    for t in recipe.get("tables") or []:
        methods = out.setdefault(str(t.get("split")), [])
        methods += [str(m) for m in (t.get("rows") or {}).values() if str(m) not in methods]
    return out


def stem_scores(evaluation: Mapping, recipe: Mapping, split: str, method: str, seed: int,
                stem: str) -> list[tuple[str, float]]:
    """``[(metric, value)]`` of one prediction from tables/evaluation.json (first table wins)."""
    out, seen = [], set()
    record = evaluation.get("tables") or {}
    for t in recipe.get("tables") or []:
        if t.get("split") != split:
            continue
        per_stem = (record.get(str(t.get("table"))) or {}).get("per_stem") or {}
        for row, m in (t.get("rows") or {}).items():
            if m != method:
                continue
            for metric, by_seed in (per_stem.get(row) or {}).items():
                value = ((by_seed or {}).get(seed_dir(seed)) or {}).get(stem)
                if metric not in seen and value is not None:
                    seen.add(metric)
                    out.append((metric, value))
    order = {m: i for i, m in enumerate(("psnr", "ssim", "lpips", "dists", "faceid"))}
    return sorted(out, key=lambda item: order.get(item[0], len(order)))


def _cell(report_dir: Path, views: Mapping[str, Path] | None, key: str, caption: str = "",
          missing: str = "") -> str:
    if not views or key not in views:
        return f'<td class="absent">{escape(missing or "missing")}</td>'
    src = escape(rel(report_dir, views[key]))
    cls = "full" if key == "full" else "crop"
    cap = f'<div class="cap">{caption}</div>' if caption else ""
    return f'<td><a href="{src}"><img class="{cls}" src="{src}" alt="{escape(key)}"></a>{cap}</td>'


def subject_grids(report_dir: Path, run_dir: Path, recipe: Mapping, source, split: str,
                  methods: Sequence[str], seed: int, crops: Mapping, evaluation: Mapping,
                  options: Mapping) -> str:
    from lift.data.io import TextureError, read_texture

    stems = list(source.splits().get(split, []))
    limit = options.get("max_subjects")
    shown = stems[: int(limit)] if limit else stems
    image_dir = report_dir / "images" / split
    max_side, crop_side = int(options.get("image_size", 256)), int(options.get("crop_size", 96))
    title = SPLIT_TITLES.get(split, split)
    out = [f'<h2 id="{split}">Subjects: {escape(title)}</h2>',
           f'<p class="meta">{len(shown)} of {len(stems)} subjects of <code>{split}</code>, '
           f'predictions of seed {seed} beside the phone input, its visibility mask'
           + (' and the studio ground truth' if split == 'paired_test' else '')
           + '; per-subject scores under each method; textures shown sRGB-encoded (they '
           'are linear), masks as they are. Crop boxes (outlined on the mask): '
           + ", ".join(f'<span style="color:rgb{CROP_COLOURS[i % len(CROP_COLOURS)]}">'
                       f'■ {escape(n)}</span>' for i, n in enumerate(crops))
           + ". Click an image for its file.</p>"]
    for stem in shown:
        folder = image_dir / safe_name(stem)
        columns: list[tuple[str, dict | None, str, str]] = []  # label, views, caption, missing
        phone = source.load(stem, "phone")
        columns.append(("phone input", write_texture_views(
            phone, folder, "phone", crops, max_side=max_side, crop_min_side=crop_side), "", ""))
        columns.append(("mask", write_texture_views(
            source.load(stem, "mask"), folder, "mask", crops, colour=False, max_side=max_side,
            crop_min_side=crop_side, outline=True), "", ""))
        if split == "paired_test":
            columns.append(("studio ground truth", write_texture_views(
                source.load(stem, "studio"), folder, "studio", crops, max_side=max_side,
                crop_min_side=crop_side), "", ""))
        for method in methods:
            path = prediction_path(run_dir, method, seed, stem)
            try:
                texture = read_texture(path)
            except TextureError as exc:
                columns.append((method, None, "", f"no prediction: {exc}"))
                continue
            scores = stem_scores(evaluation, recipe, split, method, seed, stem)
            caption = " · ".join(f"{escape(m)} {fmt(m, v)}" for m, v in scores)
            columns.append((method, write_texture_views(
                texture, folder, safe_name(method), crops, max_side=max_side,
                crop_min_side=crop_side), caption, ""))
        head = "".join(f"<th>{escape(label)}</th>" for label, *_ in columns)
        body = ["<tr><th>texture</th>" + "".join(_cell(report_dir, v, "full", c, miss)
                                                 for _, v, c, miss in columns) + "</tr>"]
        for crop in crops:
            body.append(f"<tr><th>{escape(crop)}</th>" + "".join(
                _cell(report_dir, v, crop, "", "–") for _, v, _c, _m in columns) + "</tr>")
        out.append(f'<div class="subject"><h3>{escape(stem)}</h3><div class="scroll">'
                   f'<table class="grid"><thead><tr><th></th>{head}</tr></thead><tbody>'
                   + "".join(body) + "</tbody></table></div></div>")
    return "\n".join(out)


def expressions_section(report_dir: Path, run_dir: Path, source, methods: Sequence[str],
                        seed: int, options: Mapping) -> str:
    """Phone expression textures beside their colour-transformed versions (Eq. 16)."""
    from lift.data.io import TextureError, read_texture
    from lift.report.images import display_array, fit_size, save_png

    out = ['<h2 id="expressions">Expression textures (Eq. 16)</h2>']
    max_side = int(options.get("expression_size", 192))
    found = 0
    splits = source.splits()
    for method in methods:
        base = Path(run_dir) / "predictions" / method / seed_dir(seed) / "expressions"
        if not base.is_dir():
            continue
        for split in ("paired_test", "unpaired_test"):
            for stem in splits.get(split, []):
                folder = base / stem
                if not folder.is_dir():
                    continue
                files = sorted(p for p in folder.iterdir() if p.is_file()
                               and not p.name.startswith("."))
                if not files:
                    continue
                phone = source.expressions(stem)
                studio = source.expressions_studio(stem)
                cells = []
                target = report_dir / "images" / "expressions" / safe_name(method) / safe_name(stem)
                for path in files:
                    name = path.stem
                    try:
                        ours = read_texture(path)
                    except TextureError as exc:
                        cells.append(f'<td class="absent">{escape(str(exc))}</td>')
                        continue
                    pair = []
                    for label, tensor in (("phone", phone.get(name)), ("transformed", ours),
                                          ("studio", studio.get(name))):
                        if tensor is None:
                            continue
                        file = save_png(display_array(fit_size(tensor, max_side)),
                                        target / f"{safe_name(name)}_{label}.png")
                        src = escape(rel(report_dir, file))
                        pair.append(f'<figure><a href="{src}"><img class="expr" src="{src}" '
                                    f'alt="{escape(label)}"></a><figcaption>{escape(label)}'
                                    "</figcaption></figure>")
                    cells.append(f'<td><div class="exname">{escape(name)}</div>'
                                 f'<div class="pair">{"".join(pair)}</div></td>')
                    found += 1
                out.append(f'<div class="subject"><h3>{escape(method)} · {escape(stem)} '
                           f'<span class="meta">({split})</span></h3><div class="scroll">'
                           f'<table class="grid"><tr>{"".join(cells)}</tr></table></div></div>')
    if not found:
        out.append('<p class="meta">No expression textures under '
                   '<code>predictions/&lt;method&gt;/seed&lt;k&gt;/expressions/</code>.</p>')
    return "\n".join(out)


def curves_section(report_dir: Path, run_dir: Path) -> str:
    """Small-multiple SVG plots of every stage's CSV logs (inline, and one file per stage)."""
    out = ['<h2 id="curves">Training curves</h2>']
    stages = curve_mod.stage_curves(run_dir)
    if not stages:
        out.append('<p class="meta">No CSV logs under '
                   '<code>stages/&lt;stage&gt;/seed&lt;k&gt;/logs/version_*/metrics.csv</code>.'
                   '</p>')
        return "\n".join(out)
    out.append('<p class="meta">Every logged column (train/ first); seeds overlaid; a faint '
               'line is the raw value, the solid one its running mean.</p>')
    for stage, per_seed in stages.items():
        panels = curve_mod.stage_panels(per_seed)
        file = report_dir / "curves" / f"{safe_name(stage)}.svg"
        from lift.atomic import atomic_write_text

        atomic_write_text(file, curve_mod.panels_svg_document(panels))
        out.append(f'<div class="stage"><h3>{escape(stage)} <span class="meta">'
                   f'({", ".join(escape(s) for s in per_seed)}; '
                   f'<a href="{escape(rel(report_dir, file))}">svg</a>)</span></h3>'
                   f'<div class="panels">{"".join(panels)}</div></div>')
    return "\n".join(out)


def stage_quality_section(report_dir: Path, run_dir: Path) -> str:
    """``tables/stage_quality.json`` (``python -m lift.evaluation.stage_quality RUN_DIR``):
    each stage on its own job, with its image grids; empty when it was not run."""
    import json

    path = run_dir / "tables" / "stage_quality.json"
    if not path.is_file():
        return ""
    try:
        data = json.loads(path.read_text())
        seeds = dict(data["seeds"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f'<p class="missing">{escape(str(path))}: unreadable ({escape(str(exc))})</p>'
    out = ['<h2 id="stage_quality">Each stage on its own job</h2>',
           f'<p class="meta">{escape(str(data.get("source", "")))}; features '
           f'{escape(str(data.get("feature_net", "")))}. Prior: KID of G_phone samples against '
           'the phone textures it was trained on (real halves: the floor; blurred reals: '
           'colour blobs). Inversion: the held-out test phone textures over visible texels. '
           'Upsampler: the area-downsampled studio textures.</p>']

    def num(v, f="{:.3f}", scale=1.0):
        return f.format(scale * v) if isinstance(v, (int, float)) else "–"

    def kid(stat):
        return num((stat or {}).get("mean"), "{:.2f}", 1e3)

    def table(title: str, head: list[str], rows: list[list[str]]) -> str:
        return (f"<h3>{title}</h3><table><thead><tr>" + "".join(f"<th>{h}</th>" for h in head)
                + "</tr></thead><tbody>" + "".join(
                    f"<tr><th>{escape(r[0])}</th>" + "".join(f"<td>{c}</td>" for c in r[1:])
                    + "</tr>" for r in rows) + "</tbody></table>")

    prior = [[seed, kid(p.get("kid")), kid(p.get("kid_real_halves")),
              kid(p.get("kid_blurred_reals"))]
             for seed, p in ((s, r.get("prior") or {}) for s, r in seeds.items())]
    out.append(table("Prior (KID × 10³)", ["seed", "KID samples", "KID real halves",
                                           "KID blurred reals"], prior))
    inversion = [[seed, escape(name), num(v.get("psnr"), "{:.2f}"), num(v.get("lpips")),
                  num(v["w_distance"], "{:.2f}"), num(v["row_spread"], "{:.2f}")]
                 for seed, r in seeds.items() for name, v in (r.get("inversion") or {}).items()
                 if isinstance(v, dict) and "w_distance" in v]
    out.append(table("Inversion", ["seed", "codes", "PSNR", "ST-LPIPS", "w_distance",
                                   "row_spread"], inversion))
    upsampler = [[seed, escape(name), num(v.get("psnr"), "{:.2f}"), num(v.get("lpips")),
                  num(v.get("seconds"), "{:.1f}")]
                 for seed, r in seeds.items() for name, v in (r.get("upsampler") or {}).items()
                 if isinstance(v, dict)]
    out.append(table("Upsampler", ["seed", "upsampler", "PSNR", "ST-LPIPS", "s"], upsampler))
    for seed, r in seeds.items():
        grids = [(k, (r.get(k) or {}).get("grid")) for k in ("prior", "inversion", "upsampler")]
        cells = "".join(
            f'<figure><img src="{escape(rel(report_dir, Path(g)))}" alt="{escape(k)} {escape(seed)}"'
            f' style="max-width:100%"><figcaption>{escape(k)}, {escape(seed)}</figcaption></figure>'
            for k, g in grids if g and Path(g).is_file())
        if cells:
            out.append(f'<div class="stage">{cells}</div>')
    return "\n".join(out)


def _missing(value) -> str:
    return '<span class="absent">missing</span>' if value is None else escape(str(value))


def _duration(value) -> str:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return _missing(value)
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def stages_section(report_dir: Path, run_dir: Path) -> str:
    """Every stage's and method's run from run.json: status, wall time, command, config."""
    out = ['<h2 id="stages">Stages: commands, configs, wall times</h2>']
    data, problem = record_mod.load_run_json(run_dir)
    if problem:
        out.append(f'<p class="missing">{escape(problem)}</p>')
        return "\n".join(out)
    for group in ("stages", "methods"):
        entries = record_mod.runs(data, group)
        if not entries:
            if group == "stages":
                out.append('<p class="missing">run.json records no stages.</p>')
            continue
        total = sum(float(e["wall_time_s"]) for e in entries
                    if isinstance(e["wall_time_s"], (int, float)))
        out.append(f"<h3>{group} <span class=\"meta\">(total wall time {_duration(total)})"
                   "</span></h3>")
        rows = []
        for e in entries:
            config = record_mod.resolve_path(run_dir, e["config"])
            log = record_mod.resolve_path(run_dir, e["log"])
            config_cell = _missing(e["config"])
            if config is not None:
                text = config.read_text(errors="replace")[:100_000]
                config_cell = (f'<details><summary><a href="{escape(rel(report_dir, config))}">'
                               f'{escape(str(e["config"]))}</a></summary><pre>{escape(text)}'
                               "</pre></details>")
            log_cell = (f'<a href="{escape(rel(report_dir, log))}">{escape(str(e["log"]))}</a>'
                        if log is not None else _missing(e["log"]))
            fingerprint = e["fingerprint"]
            fp = (f'<code title="{escape(str(fingerprint))}">{escape(str(fingerprint)[:12])}'
                  "</code>" if fingerprint is not None else _missing(None))
            status = e["status"]
            rows.append(f'<tr><th>{escape(e["name"])}</th><td>{_missing(e["seed"])}</td>'
                        f'<td class="st-{escape(str(status))}">{_missing(status)}</td>'
                        f'<td>{_duration(e["wall_time_s"])}</td><td>{fp}</td>'
                        f'<td><code>{_missing(e["command"])}</code></td><td>{config_cell}</td>'
                        f"<td>{log_cell}</td></tr>")
        out.append('<table class="runs"><thead><tr><th>name</th><th>seed</th><th>status</th>'
                   '<th>wall time</th><th>fingerprint</th><th>command</th>'
                   '<th>resolved config</th><th>log</th></tr></thead><tbody>'
                   + "".join(rows) + "</tbody></table>")
    return "\n".join(out)
