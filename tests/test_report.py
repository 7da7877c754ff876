"""The static HTML report of a run directory (lift.report): every link resolves, nothing
comes from the network, the tables, grids, expression textures, curves and stages are shown."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from evaluation_helpers import PAIRED, UNPAIRED, TinySource, noisy, write_prediction

from lift.evaluation import evaluate_run
from lift.report import write_report
from lift.report.curves import line_plot, read_metrics_csv, seed_curves
from lift.report.images import check_crops


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.links.append((tag, value))


def _parse(html: str) -> _Links:
    parser = _Links()
    parser.feed(html)
    return parser


RECIPE = {
    "name": "toy", "seeds": [0], "profile": "tiny",
    "tables": [
        {"table": 1, "split": "paired_test", "metrics": ["psnr", "ssim"],
         "rows": {"ours": "good", "cut": "bad"}},
        {"table": 2, "split": "unpaired_test", "metrics": ["faceid"],
         "rows": {"ours": "good", "cut": "bad"}},
        {"table": 4, "split": "paired_test", "metrics": ["psnr"], "rows": {"z": "bad", "wplus": "good"}},
    ],
    "report": {"crops": {"eyes": [0.3, 0.3, 0.15, 0.4], "lips": [0.6, 0.4, 0.1, 0.2]}},
}


def _fake_run(run: Path, source: TinySource) -> None:
    for stem in PAIRED:
        gt = source.load(stem, "studio")
        write_prediction(run, "good", 0, stem, noisy(gt, 0.01, 1))
        write_prediction(run, "bad", 0, stem, noisy(gt, 0.2, 2))
    for stem in UNPAIRED:
        phone = source.load(stem, "phone")
        write_prediction(run, "good", 0, stem, phone)
        write_prediction(run, "bad", 0, stem, noisy(phone, 0.2, 3))
    expr = run / "predictions" / "good" / "seed0" / "expressions" / PAIRED[0]
    write_prediction(run, "good", 0, "smile", source.expressions(PAIRED[0])["smile"] * 1.1,
                     kind=f"expressions/{PAIRED[0]}")
    assert (expr / "smile.png").is_file()
    stage = run / "stages" / "prior" / "seed0"
    (stage / "logs" / "version_0").mkdir(parents=True)
    (stage / "logs" / "version_0" / "metrics.csv").write_text(
        "epoch,step,train/G/adv,train/D/adv,val/fid\n"
        + "".join(f"0,{s},{1.0 / (s + 1):.4f},{0.5 + 0.01 * s:.4f},\n" for s in range(0, 40, 2))
        + "0,39,,,12.5\n")
    (stage / "logs" / "version_1").mkdir(parents=True)  # a resumed run continues the steps
    (stage / "logs" / "version_1" / "metrics.csv").write_text(
        "epoch,step,train/G/adv,train/D/adv\n0,40,0.02,0.9\n0,42,0.01,0.91\n")
    (stage / "config.yaml").write_text("trainer:\n  max_steps: 42\n")
    (stage / "stage.log").write_text("done\n")
    stale = run / "stages" / "prior" / "seed0.stale-1" / "logs" / "version_0"
    stale.mkdir(parents=True)  # a rerun's old outputs, moved aside: not plotted
    (stale / "metrics.csv").write_text("epoch,step,train/old\n0,0,1.0\n")
    (run / "run.json").write_text(json.dumps({  # lift/run/record.py's schema
        "version": 1, "recipe": "/nonexistent/recipe.yaml",
        "stages": {
            "prior": {"seed0": {"kind": "stage", "name": "prior", "seed": 0,
                                "command": ["python", "-m", "lift.cli", "fit"],
                                "command_line": "lift fit --config p.yaml",
                                "resolved_config": "stages/prior/seed0/config.yaml",
                                "fingerprint": "f" * 64, "status": "done", "wall_time_s": 12.5,
                                "log": "stages/prior/seed0/stage.log"}},
            "invert": {"seed0": {"status": "failed"}},  # every other key missing
        },
        "methods": {"good": {"seed0/paired_test": {"kind": "method", "seed": 0,
                                                   "split": "paired_test", "status": "done",
                                                   "wall_time_s": 3.0}}},
    }))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run = tmp_path_factory.mktemp("report") / "run"
    source = TinySource()
    _fake_run(run, source)
    evaluate_run(run, RECIPE, source=source)
    index = write_report(run, RECIPE, source=source)
    return run, index, index.read_text()


def test_every_link_exists_and_nothing_comes_from_the_network(report):
    run, index, html = report
    assert index == run / "report" / "index.html"
    parsed = _parse(html)
    assert parsed.links, "no links at all"
    for tag, target in parsed.links:
        if target.startswith("#"):
            continue
        assert not re.match(r"[a-z]+:", target), f"{tag} links outside the disk: {target}"
        assert (index.parent / target).resolve().is_file(), f"{tag} -> {target} does not exist"
    assert not re.search(r"https?://", html)
    assert "url(" not in html and "@import" not in html and "<script" not in html
    assert "link" not in parsed.tags  # no stylesheets: CSS is inline
    for tag, target in parsed.links:  # images are the report's own copies
        if tag == "img" and target.endswith(".png"):
            assert target.startswith("images/")


def test_tables_grids_expressions_and_smoke_note(report):
    run, index, html = report
    for n in (1, 2, 4):
        assert f'id="table{n}"' in html
    assert "22.76" in html  # the paper beside ours
    assert "One seed: smoke level" in html
    assert "orderings the paper claims are reproduced" in html
    images = {t for tag, t in _parse(html).links if tag == "img"}
    for stem in PAIRED:
        for column in ("phone", "mask", "studio", "good", "bad"):
            assert f"images/paired_test/{stem}/{column}.png" in images
            assert f"images/paired_test/{stem}/{column}_crop1.png" in images  # lips
    for stem in UNPAIRED:
        assert f"images/unpaired_test/{stem}/good.png" in images
        assert f"images/unpaired_test/{stem}/studio.png" not in images
    assert ">eyes<" in html and ">lips<" in html
    assert f"images/expressions/good/{PAIRED[0]}/smile_phone.png" in images
    assert f"images/expressions/good/{PAIRED[0]}/smile_transformed.png" in images


def test_images_are_srgb_encoded(report):
    import numpy as np
    from PIL import Image

    from lift.colour import linear_to_srgb

    run, index, _ = report
    shown = np.asarray(Image.open(index.parent / "images" / "paired_test" / PAIRED[0] /
                                  "studio.png")).astype(float) / 255
    linear = TinySource().load(PAIRED[0], "studio").permute(1, 2, 0).numpy()
    assert np.abs(shown - linear_to_srgb(linear)).max() < 1 / 255 + 1e-6


def test_curves_and_stages_from_fake_logs_and_run_json(report):
    run, index, html = report
    assert "<polyline" in html and "train/G/adv" in html and "val/fid" in html
    assert (index.parent / "curves" / "prior.svg").is_file()
    curves = seed_curves(run / "stages" / "prior" / "seed0")
    assert curves["train/G/adv"][-1] == (42.0, 0.01)  # version_1 joined after version_0
    assert curves["val/fid"] == [(39.0, 12.5)]
    assert "lift fit --config p.yaml" in html and "12.5 s" in html and "max_steps: 42" in html
    assert "failed" in html and html.count(">missing<") >= 4  # invert: no command/config/log/...
    assert "good (paired_test)" in html and "train/old" not in html


def test_a_bare_run_directory_still_renders(tmp_path):
    run = tmp_path / "empty"
    index = write_report(run, {"seeds": [0, 1], "tables": []})
    html = index.read_text()
    assert "No tables" in html and "run.json" in html and "No CSV logs" in html
    assert "smoke level" not in html
    assert "No subject images" in html  # no evaluation.source in the recipe


def test_svg_plot_and_csv_reader_helpers(tmp_path):
    svg = line_plot({"seed0": [(0, 1.0), (1, 0.5)], "seed1": [(0, 2.0)]}, "loss")
    assert svg.startswith("<svg") and svg.endswith("</svg>") and "<polyline" in svg
    assert "no data" in line_plot({}, "empty")
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,a,b\n0,0,1.5,\n0,1,,x\n")
    assert read_metrics_csv(path) == {"a": [(0.0, 1.5)]}  # step/epoch are the x axis
    with pytest.raises(ValueError, match="inside the texture"):
        check_crops({"eyes": [0.9, 0.1, 0.2, 0.2]})


def test_the_default_seed_shown_is_the_first_with_predictions_here(report, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(report[0], run)
    # seed 3 was scored elsewhere (evaluation's scores_from): this directory has only seed 0.
    html = write_report(run, {**RECIPE, "seeds": [3, 0]}, source=TinySource()).read_text()
    assert "predictions of seed 0" in html and "predictions of seed 3" not in html
    html = write_report(run, {**RECIPE, "seeds": [3, 0], "report": {"seed": 3}},
                        source=TinySource()).read_text()
    assert "predictions of seed 3" in html  # an explicit seed is kept


def test_a_table_of_recipe_comparisons_only_is_not_headed_as_the_papers_claims(tmp_path):
    from lift.report.tables import table_html

    row = {"psnr": {"mean": 22.0, "std": 0.0, "n": 1}}
    table = {"table": 8, "split": "paired_test", "profile": "cpu", "seeds": [1],
             "rows": {"a": row, "b": {"psnr": {"mean": 21.0, "std": 0.0, "n": 1}}},
             "paper": {}, "higher_is_better": {"psnr": True}, "labels": {"psnr": "psnr"},
             "missing": {},
             "orderings": [{"better": "a", "worse": "b", "metric": "psnr", "paper": None,
                            "ours": True, "every_seed": None, "beyond_spread": None,
                            "p_textures": 0.0352, "pairs": 10}]}
    html = table_html(tmp_path, table, [])
    assert "Orderings the paper claims" not in html
    assert "Comparisons the recipe asks for" in html
    assert "ours 22.00 vs 21.00 (the recipe's comparison, not a paper claim)" in html
    assert "p = 0.0352 over 10 paired textures" in html
    table["orderings"][0]["paper"] = True  # the same ordering as a paper claim
    html = table_html(tmp_path, table, [])
    assert "Orderings the paper claims: 1 of 1 reproduced" in html and "paper –" not in html
