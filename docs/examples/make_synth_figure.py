"""Render docs/images/synth_examples.png: phone / mask / studio / expression textures.

    python docs/examples/make_synth_figure.py [--subjects 1 4 7 11 13] [--seed 0] [--out PATH]

Textures are linear RGB; for display they are encoded with the sRGB transfer function and
stored as an 8-bit palette PNG (the figure only, the dataset itself is 16-bit linear).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from lift.data.synth import TextureSynthesizer

COLUMNS = ["phone", "mask", "studio", "phone: smile", "studio: smile", "phone: open", "studio: open"]


def srgb(x: torch.Tensor) -> np.ndarray:
    x = x.clamp(0, 1)
    y = torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp(min=1e-8) ** (1 / 2.4) - 0.055)
    return (y.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subjects", type=int, nargs="+", default=[1, 4, 7, 11, 13])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--tile", type=int, default=160, help="displayed tile size (px)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "images" / "synth_examples.png"))
    args = ap.parse_args()

    synth = TextureSynthesizer(args.resolution, seed=args.seed)
    t, pad, head = args.tile, 4, 18
    w = len(COLUMNS) * (t + pad) + pad
    h = head + len(args.subjects) * (t + pad) + pad
    canvas = Image.new("RGB", (w, h), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for c, name in enumerate(COLUMNS):
        draw.text((pad + c * (t + pad) + 4, 3), name, fill=(0, 0, 0))
    for r, idx in enumerate(args.subjects):
        s = synth.sample(idx, expressions=2)
        ex = list(s.expressions)  # exp00_smile, exp01_open
        tiles = [
            s.phone,
            s.mask.expand(3, -1, -1),
            s.studio,
            s.expressions[ex[0]],
            s.expressions_studio[ex[0]],
            s.expressions[ex[1]],
            s.expressions_studio[ex[1]],
        ]
        for c, tex in enumerate(tiles):
            im = Image.fromarray(srgb(tex)).resize((t, t), Image.LANCZOS)
            canvas.paste(im, (pad + c * (t + pad), head + pad + r * (t + pad)))
        x0, y0 = pad + t + pad + 4, head + pad + r * (t + pad) + 2  # on the mask tile
        draw.rectangle((x0 - 2, y0 - 1, x0 + 50, y0 + 12), fill=(255, 255, 255))
        draw.text((x0, y0), s.stem, fill=(200, 0, 0))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
