"""Evaluation of a run directory (lift.evaluation): metrics, the table schema, orderings,
seeds, missing predictions, and the paper's orderings."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
from evaluation_helpers import (PAIRED, UNPAIRED, TinySource, noisy, write_folder_source,
                                write_prediction)

from lift.evaluation import EvaluationError, evaluate_run
from lift.evaluation import paper
from lift.evaluation.metrics import build_metric
from lift.evaluation.source import build_source

TABLE_KEYS = {"table", "split", "profile", "seeds", "rows", "paper", "higher_is_better",
              "orderings", "labels", "missing"}
ORDERING_KEYS = {"better", "worse", "metric", "paper", "ours", "every_seed", "beyond_spread",
                 "p_textures", "pairs"}


@pytest.fixture(scope="module")
def source():
    return TinySource()


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """LPIPS-VGG and DISTS weights unavailable, wherever this test runs."""
    import lift.weights

    empty = tmp_path / "no_weights"
    empty.mkdir()
    monkeypatch.setattr(lift.weights, "search_dirs", lambda: [empty])
    return empty


def _recipe(tables, seeds=(0,)):
    return {"seeds": list(seeds), "profile": "tiny", "tables": tables}


def _good_and_bad(run, source, good, bad):
    """Seed-0 paired-test predictions of two methods: ``good`` near the studio texture
    (noise 0.01), ``bad`` far from it (0.15)."""
    for stem in PAIRED:
        gt = source.load(stem, "studio")
        write_prediction(run, good, 0, stem, noisy(gt, 0.01, 1))
        write_prediction(run, bad, 0, stem, noisy(gt, 0.15, 2))
    return run


def _score(name, preds, target, mask=None):
    metric = build_metric(name).metric
    if mask is None:
        metric.update(preds, target)
    else:
        metric.update(preds, target, mask=mask)
    return float(metric.compute())


# ----------------------------------------------------------------------------- metrics


def test_psnr_of_a_constant_offset_and_ssim_of_identical_textures(source):
    gt = source.load("p0", "studio")[None]
    assert _score("psnr", gt + 0.1, gt) == pytest.approx(20.0, abs=1e-4)  # 10 log10(1 / 0.01)
    assert _score("psnr", gt + 0.05, gt) == pytest.approx(10 * math.log10(1 / 0.0025), abs=1e-4)
    assert _score("ssim", gt, gt) == pytest.approx(1.0, abs=1e-6)
    assert _score("ssim", noisy(gt, 0.1, 0), gt) < 0.9


def test_faceid_is_zero_for_identical_inputs_and_ignores_masked_out_texels(source):
    phone, mask = source.load("u0", "phone")[None], source.load("u0", "mask")[None]
    assert _score("faceid", phone, phone, mask) == pytest.approx(0.0, abs=1e-10)
    # Changed only where the phone saw nothing: masked FaceID 0, unmasked not.
    changed = torch.where(mask > 0, phone, torch.zeros_like(phone) + 0.95)
    assert _score("faceid", changed, phone, mask) == pytest.approx(0.0, abs=1e-10)
    assert _score("faceid", changed, phone) > 1e-4


def test_source_specs_are_an_allow_list(tmp_path, source):
    with pytest.raises(EvaluationError, match="not an evaluation source"):
        build_source({"class_path": "os.system", "init_args": {"command": "true"}})
    folder = build_source({"class_path": "lift.data.FolderSource",
                           "init_args": {"root": str(write_folder_source(tmp_path / "d", source))}})
    assert folder.splits()["paired_test"] == PAIRED


# ----------------------------------------------------------------------------- tables


def test_toy_ablation_writes_the_schema_and_evaluates_orderings_in_each_direction(
        tmp_path, source, no_weights):
    run = _good_and_bad(tmp_path / "run", source, "good", "bad")
    metrics = ["psnr", "ssim", "lpips", "dists"]
    recipe = _recipe([
        # W+ (good) vs Z (bad): the paper's order holds on every metric.
        {"table": 4, "split": "paired_test", "metrics": metrics, "rows": {"z": "bad", "wplus": "good"}},
        # ours (bad) vs CUT (good): the paper's order fails on every metric.
        {"table": 1, "split": "paired_test", "metrics": metrics, "rows": {"ours": "bad", "cut": "good"}},
    ])
    tables = evaluate_run(run, recipe, source=source)
    t4 = json.loads((run / "tables" / "table4.json").read_text())
    assert t4 == json.loads(json.dumps(tables[4]))
    assert set(t4) == TABLE_KEYS
    assert (t4["table"], t4["split"], t4["profile"], t4["seeds"]) == (4, "paired_test", "tiny", [0])
    assert set(t4["rows"]) == {"z", "wplus"}
    for row in t4["rows"].values():
        assert set(row) == set(metrics)
        assert all(set(stat) == {"mean", "std", "n"} for stat in row.values())
    assert t4["rows"]["wplus"]["psnr"]["mean"] > t4["rows"]["z"]["psnr"]["mean"]
    assert t4["rows"]["wplus"]["lpips"]["mean"] < t4["rows"]["z"]["lpips"]["mean"]
    assert t4["rows"]["z"]["psnr"]["std"] == 0.0 and t4["rows"]["z"]["psnr"]["n"] == 1
    assert t4["rows"]["z"]["dists"] == {"mean": None, "std": None, "n": 0}
    assert t4["paper"] == paper.PAPER[4]
    assert t4["higher_is_better"] == {"psnr": True, "ssim": True, "lpips": False, "dists": False}
    assert t4["labels"]["lpips"] == "lpips (ST-LPIPS, offline)"
    assert "dists_weights.pt" in t4["missing"]["dists"]
    assert "LIFT_WEIGHTS_DIR" in t4["missing"]["dists"]
    assert set(t4["missing"]) == {"dists"}

    def ours(table):
        assert all(set(o) == ORDERING_KEYS and o["paper"] is True for o in table["orderings"])
        return {(o["better"], o["worse"], o["metric"]): o["ours"] for o in table["orderings"]}

    assert ours(t4) == {("wplus", "z", "psnr"): True, ("wplus", "z", "ssim"): True,
                        ("wplus", "z", "lpips"): True, ("wplus", "z", "dists"): None}
    assert ours(tables[1]) == {("ours", "cut", "psnr"): False, ("ours", "cut", "ssim"): False,
                               ("ours", "cut", "lpips"): False, ("ours", "cut", "dists"): None}
    md = (run / "tables" / "table4.md").read_text()
    assert "| wplus |" in md and "22.76" in md and "✓ wplus better than z on psnr" in md
    assert "smoke level" in md and "dists: no numbers" in md
    csv_lines = (run / "tables" / "table1.csv").read_text().splitlines()
    assert csv_lines[0].startswith("table,split,row,metric") and len(csv_lines) == 1 + 2 * 4
    record = json.loads((run / "tables" / "evaluation.json").read_text())
    assert set(record["tables"]["4"]["per_stem"]["wplus"]["psnr"]["seed0"]) == set(PAIRED)


def test_mean_and_sample_std_over_two_seeds(tmp_path, source):
    run = tmp_path / "run"
    offsets = {0: 0.1, 1: 0.05}  # PSNR 20 and 26.0206 exactly
    for seed, offset in offsets.items():
        for stem in PAIRED:
            write_prediction(run, "m", seed, stem, source.load(stem, "studio") + offset)
    recipe = _recipe([{"table": 1, "split": "paired_test", "metrics": ["psnr"],
                       "rows": {"ours": "m"}}], seeds=[0, 1])
    stat = evaluate_run(run, recipe, source=source)[1]["rows"]["ours"]["psnr"]
    values = [10 * math.log10(1 / o ** 2) for o in offsets.values()]
    assert stat["n"] == 2
    assert stat["mean"] == pytest.approx(sum(values) / 2, abs=1e-3)
    assert stat["std"] == pytest.approx(abs(values[0] - values[1]) / math.sqrt(2), abs=1e-3)


def test_seeds_scored_elsewhere_join_the_table_through_scores_from(tmp_path, source):
    offsets = {0: 0.1, 1: 0.05, 2: 0.02}
    table = {"table": 1, "split": "paired_test", "metrics": ["psnr", "ssim"],
             "rows": {"ours": "m"}}
    both = tmp_path / "both"  # every seed in one run directory: the reference
    for seed, offset in offsets.items():
        for stem in PAIRED:
            write_prediction(both, "m", seed, stem, source.load(stem, "studio") + offset)
    reference = evaluate_run(both, _recipe([table], seeds=[0, 1, 2]), source=source)[1]
    early = tmp_path / "early"  # seeds 0-1 on one machine, seed 2 on another
    late = tmp_path / "late"
    for seed, offset in offsets.items():
        for stem in PAIRED:
            write_prediction(early if seed < 2 else late, "m", seed, stem,
                             source.load(stem, "studio") + offset)
    evaluate_run(early, _recipe([table], seeds=[0, 1]), source=source)
    record = early / "tables" / "evaluation.json"
    merged = evaluate_run(late, _recipe([table], seeds=[0, 1, 2]), source=source,
                          scores_from=[record])[1]
    for metric in ("psnr", "ssim"):
        for key in ("mean", "std", "n"):
            assert merged["rows"]["ours"][metric][key] == pytest.approx(
                reference["rows"]["ours"][metric][key], abs=1e-9)
    assert merged["rows"]["ours"]["psnr"]["n"] == 3
    saved = json.loads((late / "tables" / "evaluation.json").read_text())
    assert saved["scores_from"] == [str(record)]
    notes = saved["tables"]["1"]["notes"]
    assert any("m seed 0 paired_test: scores taken from" in n for n in notes)
    # The same through the recipe key, and a seed that no file holds is a missing prediction.
    recipe = _recipe([table], seeds=[0, 1, 2, 3])
    recipe["evaluation"] = {"scores_from": [str(record)]}
    with pytest.raises(EvaluationError, match="missing prediction") as info:
        evaluate_run(late, recipe, source=source)
    assert "seed3" in str(info.value) and "seed0" not in str(info.value)
    # Scores of other test data are refused, naming the file.
    other = json.loads(record.read_text())
    other["source"] = "another data set"
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(EvaluationError, match="other.json scored other test data"):
        evaluate_run(late, _recipe([table], seeds=[0, 1, 2]), source=source,
                     scores_from=[tmp_path / "other.json"])
    # ... and so are scores computed with another metric spec.
    other = json.loads(record.read_text())
    other["metrics"]["psnr"]["spec"] = {"class_path": "somewhere.Else"}
    (tmp_path / "spec.json").write_text(json.dumps(other))
    with pytest.raises(EvaluationError, match="metric psnr was computed with"):
        evaluate_run(late, _recipe([table], seeds=[0, 1, 2]), source=source,
                     scores_from=[tmp_path / "spec.json"])


def test_faceid_table_on_the_unpaired_split_is_masked(tmp_path, source):
    run = tmp_path / "run"
    for stem in UNPAIRED:
        phone, mask = source.load(stem, "phone"), source.load(stem, "mask")
        write_prediction(run, "copy", 0, stem, torch.where(mask > 0, phone, torch.ones_like(phone)))
        write_prediction(run, "shift", 0, stem, phone.roll(6, dims=-1))
    recipe = _recipe([{"table": 2, "split": "unpaired_test", "metrics": ["faceid"],
                       "rows": {"ours": "copy", "cut": "shift"}}])
    t2 = evaluate_run(run, recipe, source=source)[2]
    assert t2["rows"]["ours"]["faceid"]["mean"] == pytest.approx(0.0, abs=1e-8)
    assert t2["rows"]["cut"]["faceid"]["mean"] > 1e-4
    (o,) = t2["orderings"]
    assert {k: o[k] for k in ORDERING_KEYS - {"p_textures"}} == {
        "better": "ours", "worse": "cut", "metric": "faceid", "paper": True, "ours": True,
        "every_seed": None, "beyond_spread": None, "pairs": len(UNPAIRED)}
    # ours is better on every texture: only the all-positive sign pattern is as extreme
    assert o["p_textures"] == pytest.approx(0.5 ** len(UNPAIRED))


def test_a_missing_prediction_is_an_error_naming_the_file(tmp_path, source):
    run = tmp_path / "run"
    write_prediction(run, "m", 0, PAIRED[0], source.load(PAIRED[0], "studio"))
    recipe = _recipe([{"table": 1, "split": "paired_test", "metrics": ["psnr"],
                       "rows": {"ours": "m"}}])
    expected = run / "predictions" / "m" / "seed0" / "studio" / f"{PAIRED[1]}.png"
    with pytest.raises(EvaluationError, match="missing prediction") as info:
        evaluate_run(run, recipe, source=source)
    assert str(expected) in str(info.value)
    assert not (run / "tables").exists()


def test_command_line_with_a_folder_source_recipe(tmp_path, source, capsys):
    import yaml

    from lift.evaluation.__main__ import main

    run = tmp_path / "run"
    for stem in PAIRED:
        write_prediction(run, "m", 0, stem, source.load(stem, "studio") + 0.1)
    recipe = _recipe([{"table": 1, "split": "paired_test", "metrics": ["psnr"],
                       "rows": {"ours": "m"}}])
    recipe["evaluation"] = {"source": {"class_path": "lift.data.FolderSource", "init_args": {
        "root": str(write_folder_source(tmp_path / "data", source))}}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main([str(run), "--recipe", str(path)]) == 0
    table = json.loads((run / "tables" / "table1.json").read_text())
    assert table["rows"]["ours"]["psnr"]["mean"] == pytest.approx(20.0, abs=1e-3)
    assert "table1.md" in capsys.readouterr().out
    # --seeds overrides the recipe's: seed 3 (PSNR 10 log10(1 / 0.05^2) = 26.02) joins seed 0
    for stem in PAIRED:
        write_prediction(run, "m", 3, stem, source.load(stem, "studio") + 0.05)
    assert main([str(run), "--recipe", str(path), "--seeds", "0", "3"]) == 0
    table = json.loads((run / "tables" / "table1.json").read_text())
    assert table["seeds"] == [0, 3] and table["rows"]["ours"]["psnr"]["n"] == 2
    assert table["rows"]["ours"]["psnr"]["mean"] == pytest.approx(
        (20.0 + 10 * math.log10(400)) / 2, abs=1e-3)
    assert main([str(run), "--recipe", str(path), "--seeds", "4"]) == 2  # no seed-4 predictions
    del recipe["evaluation"]
    path.write_text(yaml.safe_dump(recipe))
    assert main([str(run), "--recipe", str(path)]) == 2  # no evaluation.source: said so


# ----------------------------------------------------------------------------- the paper


def test_the_paper_orderings_are_derived_from_its_numbers():
    counts = paper.ordering_counts()
    assert counts == {"claimed": 23, "reported": 40}
    per_table = {t: paper.claimed_orderings(t) for t in paper.PAPER}
    assert [len(v) for v in per_table.values()] == [12, 3, 4, 4]
    assert all(o["paper"] for claims in per_table.values() for o in claims)
    assert {o["better"] for o in per_table[1]} == {"ours"}
    assert {(o["worse"], o["metric"]) for o in per_table[3]} == {
        (r, m) for r in ("vanilla", "inference_only") for m in ("lpips", "dists")}
    # Direction: lower LPIPS / FaceID is better, higher PSNR is better.
    assert paper.better("lpips", 0.364, 0.402) and not paper.better("psnr", 21.0, 22.0)
    # The ablations are not ordered between themselves (LPIPS and DISTS disagree).
    reported = paper.reported_orderings(3)
    assert ("inference_only", "vanilla", "lpips") in reported
    assert ("vanilla", "inference_only", "dists") in reported


def test_predictions_at_another_resolution_are_scored_against_the_area_resized_truth(
        tmp_path, source):
    from lift.data.dataset import resize_texture

    run = tmp_path / "run"
    for stem in PAIRED:  # half the studio resolution: the area-downsampled truth + 0.1
        write_prediction(run, "half", 0, stem, resize_texture(source.load(stem, "studio"), 32) + 0.1)
    recipe = _recipe([{"table": 1, "split": "paired_test", "metrics": ["psnr"],
                       "rows": {"ours": "half"}}])
    stat = evaluate_run(run, recipe, source=source)[1]["rows"]["ours"]["psnr"]
    assert stat["mean"] == pytest.approx(20.0, abs=1e-3)
    md = (run / "tables" / "table1.md").read_text()
    assert "predictions are 32x32, the reference textures 64x64" in md and "area" in md


def test_orderings_say_whether_they_hold_in_every_seed_and_beyond_the_seed_spread():
    from lift.evaluation.stats import aggregate, evaluate_orderings, ordering_summary

    per_seed = {  # PSNR (higher is better) of two rows over three seeds
        "clear": {"psnr": {"seed0": 30.0, "seed1": 31.0, "seed2": 32.0}},    # 31 +- 1
        "close": {"psnr": {"seed0": 29.5, "seed1": 31.5, "seed2": 30.5}},    # 30.5 +- 1
        "far": {"psnr": {"seed0": 20.0, "seed1": 21.0, "seed2": 22.0}},      # 21 +- 1
    }
    rows = {r: {"psnr": aggregate(list(v["psnr"].values()))} for r, v in per_seed.items()}
    claims = [{"better": "clear", "worse": "close", "metric": "psnr", "paper": True},
              {"better": "clear", "worse": "far", "metric": "psnr", "paper": True},
              {"better": "far", "worse": "clear", "metric": "psnr", "paper": True}]
    got = evaluate_orderings(claims, rows, per_seed)
    # 31 > 30.5 on the means, but seed 1 reverses it and 0.5 < 1 + 1: seed noise
    assert (got[0]["ours"], got[0]["every_seed"], got[0]["beyond_spread"]) == (True, False, False)
    # 31 vs 21: every seed, and 10 > 1 + 1
    assert (got[1]["ours"], got[1]["every_seed"], got[1]["beyond_spread"]) == (True, True, True)
    # a claim that fails is never "beyond the spread"
    assert (got[2]["ours"], got[2]["every_seed"], got[2]["beyond_spread"]) == (False, False, False)
    assert ordering_summary(got) == {"total": 3, "reproduced": 2, "not_reproduced": 1,
                                     "not_evaluated": 0, "every_seed": 1, "beyond_spread": 1,
                                     "significant": 0}
    assert all(o["p_textures"] is None and o["pairs"] == 0 for o in got)  # no per-stem scores
    # one seed: nothing to say about the spread
    one = {r: {"psnr": {"seed0": v["psnr"]["seed0"]}} for r, v in per_seed.items()}
    rows1 = {r: {"psnr": aggregate([v["psnr"]["seed0"]])} for r, v in one.items()}
    assert all(o["every_seed"] is None and o["beyond_spread"] is None
               for o in evaluate_orderings(claims, rows1, one))


def test_sign_flip_p_matches_hand_enumeration_and_its_monte_carlo_estimate():
    from lift.evaluation.stats import sign_flip_p

    # 3 positive differences: of 8 sign patterns only +++ reaches the mean 2
    assert sign_flip_p([1.0, 2.0, 3.0]) == pytest.approx(1 / 8)
    # [1, -1], mean 0: the sums 0 (++), 2 (+-), -2 (-+), 0 (--) -> 3 of 4 reach 0
    assert sign_flip_p([1.0, -1.0]) == pytest.approx(3 / 4)
    # [3, -1, 1], observed sum 3: the sums 3a - b + c of the 8 sign patterns, by hand
    d = [3.0, -1.0, 1.0]
    sums = [a * 3 - b * 1 + c * 1 for a in (1, -1) for b in (1, -1) for c in (1, -1)]
    assert sign_flip_p(d) == pytest.approx(sum(x >= 3.0 for x in sums) / 8)
    # above EXACT_PAIRS it is a seeded Monte Carlo estimate of the same quantity: a normal
    # approximation of the sign-flip null (mean 0, sd = sqrt(sum d^2) / n) is close
    diffs = [0.3, -0.1, 0.5, 0.2, -0.4, 0.6, 0.1, 0.2, -0.2, 0.4, 0.3, 0.0, 0.5, -0.3,
             0.2, 0.1, 0.4, -0.1, 0.3, 0.2]
    p = sign_flip_p(diffs, draws=40000)
    assert p == sign_flip_p(diffs, draws=40000)  # deterministic
    z = sum(diffs) / math.sqrt(sum(x * x for x in diffs))
    assert p == pytest.approx(0.5 * math.erfc(z / math.sqrt(2)), abs=0.01)
    with pytest.raises(ValueError, match="finite"):
        sign_flip_p([1.0, float("nan")])


def test_orderings_carry_a_paired_texture_test_that_counts_toward_significant():
    from lift.evaluation.stats import aggregate, evaluate_orderings, ordering_summary

    # LPIPS (lower is better) on 4 textures x 2 seeds; "good" wins 7 of 8 pairs
    per_stem = {
        "good": {"lpips": {"seed0": {"a": 0.30, "b": 0.20, "c": 0.40, "d": 0.35},
                           "seed1": {"a": 0.31, "b": 0.22, "c": 0.38, "d": 0.36}}},
        "bad": {"lpips": {"seed0": {"a": 0.40, "b": 0.30, "c": 0.45, "d": 0.34},
                          "seed1": {"a": 0.41, "b": 0.30, "c": 0.48, "d": 0.40}}},
    }
    per_seed = {r: {"lpips": {s: sum(v.values()) / 4 for s, v in by.items()}}
                for r, m in per_stem.items() for by in [m["lpips"]]}
    rows = {r: {"lpips": aggregate(list(v["lpips"].values()))} for r, v in per_seed.items()}
    claims = [{"better": "good", "worse": "bad", "metric": "lpips", "paper": True},
              {"better": "bad", "worse": "good", "metric": "lpips", "paper": True}]
    got = evaluate_orderings(claims, rows, per_seed, per_stem)
    diffs = [0.10, 0.10, 0.05, -0.01, 0.10, 0.08, 0.10, 0.04]  # bad - good, by hand
    signs = itertools.product((1, -1), repeat=8)
    mean = sum(diffs) / 8
    hand = sum(sum(s * x for s, x in zip(sg, diffs)) / 8 >= mean - 1e-12 for sg in signs) / 256
    assert got[0]["pairs"] == 8 and got[0]["p_textures"] == pytest.approx(hand)
    assert hand < 0.05 and got[1]["p_textures"] > 0.95  # the reversed claim is not supported
    s = ordering_summary(got)
    assert (s["reproduced"], s["significant"]) == (1, 1)


def test_a_tables_compare_pairs_are_tested_like_claims_but_not_counted_as_the_papers(
        tmp_path, source, no_weights):
    run = _good_and_bad(tmp_path / "run", source, "long", "short")
    recipe = _recipe([{"table": 8, "split": "paired_test", "metrics": ["psnr", "dists"],
                       "rows": {"a": "long", "b": "short"}, "compare": [["a", "b"], ["b", "a"]]}])
    t8 = evaluate_run(run, recipe, source=source)[8]
    got = {(o["better"], o["metric"]): o for o in t8["orderings"]}
    assert set(got) == {("a", "psnr"), ("a", "dists"), ("b", "psnr"), ("b", "dists")}
    assert all(o["paper"] is None for o in got.values())
    assert got[("a", "psnr")]["ours"] is True and got[("b", "psnr")]["ours"] is False
    # the less noisy prediction wins on every texture: only the all-positive pattern is as extreme
    assert got[("a", "psnr")]["p_textures"] == pytest.approx(0.5 ** len(PAIRED))
    assert got[("a", "dists")]["ours"] is None and got[("a", "dists")]["p_textures"] is None
    from lift.evaluation.stats import ordering_summary
    assert ordering_summary(t8["orderings"])["total"] == 0  # no paper claim among them
    md = (run / "tables" / "table8.md").read_text()
    # two test textures: the smallest p a sign-flip test can give is 1/4, never significant
    assert ("Comparisons the recipe asks for (not the paper's claims): 1 of 2 evaluated hold, "
            "0 of them at p < 0.05 over the paired test textures (2 not evaluated)") in md
    assert "paper n/a" not in md
    assert "Orderings the paper claims" not in md  # no paper section for a table without claims
    with pytest.raises(EvaluationError, match=r"compare: 'c' is not a row"):
        evaluate_run(run, _recipe([{**recipe["tables"][0], "compare": [["a", "c"]]}]),
                     source=source)
