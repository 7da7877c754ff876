"""`lift run`'s two launchers side by side: each stage run a new interpreter (`subprocess`)
against each forked from one process that imported torch, Lightning and lift once (`warm`,
lift.run.zygote).

The recipe is the quickstart's cheapest real units (the trivial translators and their
predictions on paired_test), where start-up is most of a unit's time, run alternately with
each launcher into fresh run directories, on one shared synthetic-data cache (made by an
untimed first run). It prints the median wall time a unit and a run, the CPU time of all the
run's processes, and the ratios subprocess / warm. ``--cut-steps N`` adds the CUT translator
for N steps, a compute-bound unit: a forked stage must train as fast as a new interpreter
(the same allocator settings, threads and libraries), which its wall time shows.

    python benchmarks/run_launcher.py --repeats 3 [--cut-steps 40]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parents[1]

STAGES = ("translate_phone_texture", "translate_mean_fill")
METHODS = ("phone_texture", "mean_fill")


def small_recipe(path: Path, cut_steps: int = 0) -> Path:
    """The quickstart recipe cut to the trivial translators and their paired_test predictions
    (and CUT for ``cut_steps`` steps)."""
    data = yaml.safe_load((ROOT / "configs/run/quickstart.yaml").read_text())
    data["name"] = "launcher_benchmark"
    stages = {k: v for k, v in data["stages"].items() if k in STAGES}
    if cut_steps:  # last: the first unit of a warm run also waits for the helper's imports
        stages["translate_cut"] = data["stages"]["translate_cut"]
        stages["translate_cut"]["args"]["trainer.max_steps"] = cut_steps
    data["stages"] = stages
    data["methods"] = {k: dict(v, splits=["paired_test"]) for k, v in data["methods"].items()
                       if k in METHODS}
    data["tables"] = []
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_run(recipe: Path, out: Path, launcher: str) -> dict:
    from lift.run.runner import run

    cpu0, t0 = children_cpu(), time.perf_counter()
    rc = run(recipe, out=out, stream=False, launcher=launcher)
    wall, cpu = time.perf_counter() - t0, children_cpu() - cpu0
    if rc != 0:
        raise SystemExit(f"lift run failed ({launcher}, {out}): exit code {rc}")
    units = list(_runs(json.loads((out / "run.json").read_text())))
    used = {u.get("launcher") for u in units}
    if used != {launcher}:
        raise SystemExit(f"{launcher}: the units ran with {used}")
    cut_log = out / "stages/translate_cut/seed0/stage.log"
    return {"run_wall": wall, "children_cpu": cpu,
            "unit_walls": [u["wall_time_s"] for u in units if u["name"] != "translate_cut"],
            "cut": [u["wall_time_s"] for u in units if u["name"] == "translate_cut"],
            "cut_rate": _last_rate(cut_log) if cut_log.is_file() else None}


def _last_rate(log: Path) -> float | None:
    """The last iterations / s of the progress bar in a stage log."""
    rates = re.findall(r"([\d.]+)(it/s|s/it)", log.read_text(errors="replace"))
    if not rates:
        return None
    value, unit = rates[-1]
    return float(value) if unit == "it/s" else 1.0 / float(value)


def _runs(node):
    """Every unit's entry in a run.json (the dicts with a wall time)."""
    if isinstance(node, dict):
        if "wall_time_s" in node:
            yield node
        else:
            for value in node.values():
                yield from _runs(value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cut-steps", type=int, default=0,
                        help="also train CUT for this many steps (a compute-bound unit)")
    parser.add_argument("--workdir", help="where the runs go (default: a temporary directory)")
    args = parser.parse_args()
    from machine import describe

    print(describe(), flush=True)
    with tempfile.TemporaryDirectory(prefix="lift-launcher-") as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        recipe = small_recipe(work / "recipe.yaml", args.cut_steps)
        os.environ["LIFT_SYNTH_CACHE"] = str(work / "synth_cache")
        print("untimed first run (makes the synthetic-data cache) ...", flush=True)
        one_run(recipe, work / "warmup", "subprocess")
        results: dict[str, list[dict]] = {"subprocess": [], "warm": []}
        for r in range(args.repeats):
            order = ("subprocess", "warm") if r % 2 == 0 else ("warm", "subprocess")
            for launcher in order:
                res = one_run(recipe, work / f"{launcher}{r}", launcher)
                results[launcher].append(res)
                print(f"repeat {r + 1} {launcher:>10}: run {res['run_wall']:.1f} s wall, "
                      f"{res['children_cpu']:.1f} s CPU; units "
                      + ", ".join(f"{w:.1f}" for w in res["unit_walls"])
                      + (f"; CUT {res['cut'][0]:.1f} s, {res['cut_rate']} it/s" if res["cut"]
                         else ""), flush=True)
    med = {k: {"run": statistics.median(x["run_wall"] for x in v),
               "cpu": statistics.median(x["children_cpu"] for x in v),
               "unit": statistics.median(w for x in v for w in x["unit_walls"])}
           for k, v in results.items()}
    n = len(results["warm"][0]["unit_walls"])
    print(f"\n{n} units a run, medians over {args.repeats} repeats:")
    print("| launcher | s / unit (wall) | s / run (wall) | s / run (CPU, all processes) |")
    print("|---|---|---|---|")
    for k in ("subprocess", "warm"):
        print(f"| {k} | {med[k]['unit']:.2f} | {med[k]['run']:.1f} | {med[k]['cpu']:.1f} |")
    saved = med["subprocess"]["unit"] - med["warm"]["unit"]
    print(f"subprocess / warm: {med['subprocess']['unit'] / med['warm']['unit']:.2f}x a unit "
          f"(wall), {med['subprocess']['run'] / med['warm']['run']:.2f}x a run (wall), "
          f"{med['subprocess']['cpu'] / med['warm']['cpu']:.2f}x CPU; "
          f"{saved:.1f} s saved a unit")
    if args.cut_steps:
        cut = {k: statistics.median(x["cut"][0] for x in v) for k, v in results.items()}
        rate = {k: statistics.median(x["cut_rate"] for x in v) for k, v in results.items()}
        print(f"CUT, {args.cut_steps} steps: unit wall subprocess {cut['subprocess']:.1f} s, "
              f"warm {cut['warm']:.1f} s; training it/s (progress bar) subprocess "
              f"{rate['subprocess']:.3f}, warm {rate['warm']:.3f} "
              f"(warm / subprocess {rate['warm'] / rate['subprocess']:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
