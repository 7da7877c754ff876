"""Per-subject inference latency: one new phone texture (+ its expressions) to studio textures
through the pipeline (configs/pipeline/studio.yaml), timed by step after start-up.

The texture is a test subject of the synthetic source that no bank holds, so the translator
inverts it at test time with the settings its training bank records: with a bank made by the
encoder-initialised inverter (configs/invert/encoder_quickstart.yaml, as in
configs/run/ablations_cpu.yaml) that is one encoder pass plus its short refinement; with the
optimisation-only inverter it is Eq. 1's whole schedule. Steps: start-up (imports, loading the
checkpoints: paid once per process), inversion + G_studio (I*), the upsampler's T reverse steps
(Î*), and the Eq. 15-16 colour transform of the expressions. The target (speed issue): at most
10 s after start-up on the 2-core CPU.

    python benchmarks/predict_latency.py \\
        --translator runs/ablations_cpu/stages/translate_wplus/seed0/last.ckpt \\
        --upsampler runs/ablations_cpu/stages/upsample_train_inference/seed0/last.ckpt \\
        --profile cpu --repeats 3 [--bf16]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

T0 = time.perf_counter()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--translator", required=True)
    parser.add_argument("--upsampler", required=True)
    parser.add_argument("--pipeline", default="configs/pipeline/studio.yaml")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--split", default="unpaired_test")
    parser.add_argument("--repeats", type=int, default=3, help="subjects timed (medians)")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (native bf16 CPUs)")
    args = parser.parse_args()

    import contextlib

    import torch

    from lift.config_compose import resolve_config
    from lift.data import SyntheticSource
    from lift.spec import build
    from machine import describe

    print(describe())
    start = time.perf_counter()
    from lift.stages.pipeline import PipelineModule

    init = dict(resolve_config(args.pipeline)["model"]["init_args"])
    colour = init.pop("colour_transform")
    model = PipelineModule(**{**init, "translator": args.translator, "upsampler": args.upsampler,
                              "colour_transform": colour and build(colour, "colour")}).eval()
    source = SyntheticSource(profile=args.profile, seed=0)
    stems = source.splits()[args.split][:args.repeats]
    loaded = time.perf_counter()
    print(f"start-up: imports {start - T0:.1f} s, building the pipeline (checkpoints) "
          f"{loaded - start:.1f} s")
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if args.bf16
                else contextlib.nullcontext())
    rows = []
    for i, stem in enumerate(stems):
        phone = source.load(stem, "phone")[None]
        mask = source.load(stem, "mask")[None]
        expressions = {k: v[None] for k, v in source.expressions(stem).items()}
        batch = {"phone": phone, "mask": mask, "stem": [stem], "expressions": expressions}
        times = {}
        with torch.no_grad(), autocast:
            t = time.perf_counter()
            translated = model.translate(batch, [stem])
            times["inversion + G_studio"] = time.perf_counter() - t
            t = time.perf_counter()
            studio = model.upsample(translated, phone, i).float()
            times["upsampler"] = time.perf_counter() - t
            t = time.perf_counter()
            model.transfer(phone, studio, mask, expressions)
            times[f"colour transform ({len(expressions)} expressions)"] = (
                time.perf_counter() - t)
        times["total"] = sum(times.values())
        rows.append(times)
        print(f"{stem}: " + ", ".join(f"{k} {v:.2f} s" for k, v in times.items()))
    print(f"\nmedian over {len(rows)} subjects ({'bf16' if args.bf16 else 'fp32'}), after "
          "start-up:")
    for key in rows[0]:
        print(f"  {key:40s} {statistics.median(r[key] for r in rows):7.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
