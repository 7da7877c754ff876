"""fp32 vs bf16-mixed, stage by stage: does bf16 pay, and how far do the losses move?

For each stage it runs ``lift fit`` of the stage's quickstart config for a few steps, once with
``--trainer.precision 32-true`` and once with ``bf16-mixed``, alternating, each in a fresh
subprocess (same seed, same data), with lift's ``StepTimer`` callback; it prints the median
step CPU and wall time of each, the speed-up, and the relative difference of the last logged
training losses (one number per loss; a few steps in, so it measures the arithmetic, not
training). The CPU, its native-bf16 flag and ceilings are measured in the same run.

    python benchmarks/precision_stages.py [--stages prior translate_cut upsample] [--steps 24]
    python benchmarks/precision_stages.py --stages translate_wplus \
        --prior runs/quickstart/stages/prior/seed0/last.ckpt --bank runs/quickstart/stages/invert/seed0/bank

Run it on a quiet machine; both precisions run under the same glibc malloc setting (FACTS.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from machine import describe

ROOT = Path(__file__).resolve().parents[1]
TUNABLES = "glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296"


def stage_args(args) -> dict[str, list[str]]:
    wplus = ["--config", "configs/translate/stylegan_wplus_quickstart.yaml",
             f"--model.init_args.translator.init_args.checkpoint={args.prior}",
             f"--model.init_args.translator.init_args.sampler.init_args.bank={args.bank}",
             f"--model.init_args.translator.init_args.paired_bank={args.bank}"]
    return {
        "prior": ["--config", "configs/prior/stylegan2_quickstart.yaml"],
        "translate_wplus": wplus,
        "translate_cut": ["--config", "configs/translate/cut_quickstart.yaml"],
        "translate_cyclegan": ["--config", "configs/translate/cyclegan_quickstart.yaml"],
        "upsample": ["--config", "configs/upsample/resshift_train_inference.yaml",
                     "--data.init_args.crop_size=64"],
    }


def run_once(argv: list[str], precision: str, steps: int, root: Path) -> dict:
    cmd = [sys.executable, "-m", "lift.cli", "fit", *argv, "--config", "configs/trainer/cpu.yaml",
           f"--trainer.max_steps={steps}", f"--trainer.precision={precision}",
           "--trainer.limit_val_batches=0", "--trainer.enable_progress_bar=false",
           f"--trainer.default_root_dir={root}", "--trainer.log_every_n_steps=1",
           "--trainer.callbacks+=lift.timing.StepTimer"]
    env = dict(os.environ, GLIBC_TUNABLES=os.environ.get("GLIBC_TUNABLES", TUNABLES))
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    times = json.loads((root / "step_times.json").read_text())
    losses: dict[str, float] = {}
    for path in root.rglob("metrics.csv"):
        with open(path) as fh:
            for row in csv.DictReader(fh):
                for key, value in row.items():
                    if key.startswith("train/") and value not in ("", None):
                        losses[key] = float(value)
    return {"cpu": times["median_cpu_s"], "wall": times["median_wall_s"], "losses": losses}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stages", nargs="+", default=["prior", "translate_cut", "upsample"])
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--prior", default="runs/quickstart/stages/prior/seed0/last.ckpt")
    ap.add_argument("--bank", default="runs/quickstart/stages/invert/seed0/bank")
    args = ap.parse_args()
    print(describe())
    configs = stage_args(args)
    for stage in args.stages:
        results: dict[str, list[dict]] = {"32-true": [], "bf16-mixed": []}
        for rep in range(args.repeats):
            for precision in results:
                with tempfile.TemporaryDirectory() as tmp:
                    results[precision].append(run_once(configs[stage], precision, args.steps,
                                                       Path(tmp)))
        med = {p: {k: statistics.median(r[k] for r in rs) for k in ("cpu", "wall")}
               for p, rs in results.items()}
        ref, low = results["32-true"][-1]["losses"], results["bf16-mixed"][-1]["losses"]
        diffs = {k: abs(low[k] - ref[k]) / max(abs(ref[k]), 1e-8) for k in ref if k in low}
        worst = max(diffs.items(), key=lambda kv: kv[1]) if diffs else ("-", float("nan"))
        print(f"{stage:18s} s/step cpu fp32 {med['32-true']['cpu']:.3f} bf16 "
              f"{med['bf16-mixed']['cpu']:.3f} -> {med['32-true']['cpu'] / med['bf16-mixed']['cpu']:.2f}x"
              f" (wall {med['32-true']['wall'] / med['bf16-mixed']['wall']:.2f}x); "
              f"largest relative loss difference {worst[1]:.3f} ({worst[0]})", flush=True)


if __name__ == "__main__":
    main()
