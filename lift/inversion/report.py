"""Reconstruction report of one or more latent banks: PSNR and perceptual distance per texture.

The paper claims near-perfect W+ reconstructions (Sect 4, Table 4 discussion); comparing a
W+ bank with a W bank of the same textures shows how much W+ buys. Written as Markdown plus
CSV, atomically::

    python -m lift.inversion.report --bank W+=banks/wplus --bank W=banks/w --out reports/inv

PSNR is ``10 log10(1 / mse)`` of the bank's final MSE in [0,1] units (over visible texels
when the inversion used the visibility mask); ``perceptual`` is the configured distance.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
from pathlib import Path
from typing import Mapping, Sequence

from lift.atomic import atomic_write_text
from lift.latent_bank import LatentBank


def psnr_from_mse(mse: float) -> float:
    return float("inf") if mse <= 0 else 10.0 * math.log10(1.0 / mse)


def bank_rows(bank: LatentBank) -> list[dict]:
    """One row per texture: stem, psnr, mse, perceptual, loss, steps."""
    return [
        {"stem": r["stem"], "psnr": psnr_from_mse(r["mse"]), "mse": r["mse"],
         "perceptual": r["perceptual"], "loss": r["final_loss"], "steps": r["steps"]}
        for r in bank.records()
    ]


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else float("nan")


def write_report(banks: Mapping[str, str | Path], out_dir: str | Path) -> dict[str, dict]:
    """Write ``report.md`` and ``report.csv`` for the labelled banks; return the means."""
    out = Path(out_dir)
    tables = {label: bank_rows(LatentBank.open(path)) for label, path in banks.items()}
    means = {
        label: {"textures": len(rows), "psnr": _mean([r["psnr"] for r in rows]),
                "perceptual": _mean([r["perceptual"] for r in rows]),
                "mse": _mean([r["mse"] for r in rows]),
                "steps": _mean([float(r["steps"]) for r in rows])}
        for label, rows in tables.items()
    }
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["space", "stem", "psnr", "mse", "perceptual", "loss", "steps"])
    for label, rows in tables.items():
        for r in rows:
            writer.writerow([label, r["stem"], f"{r['psnr']:.4f}", f"{r['mse']:.6g}",
                             f"{r['perceptual']:.6g}", f"{r['loss']:.6g}", r["steps"]])
    atomic_write_text(out / "report.csv", buf.getvalue())

    lines = ["# Inversion report (Eq. 1)", "",
             "| space | textures | mean PSNR (dB) | mean perceptual | mean MSE | mean steps |",
             "|---|---|---|---|---|---|"]
    for label, m in means.items():
        lines.append(f"| {label} | {m['textures']} | {m['psnr']:.2f} | {m['perceptual']:.4f} "
                     f"| {m['mse']:.3g} | {m['steps']:.0f} |")
    for label, path in banks.items():
        lines.append(f"\n`{label}`: {Path(path)}")
    for label, rows in tables.items():
        lines += ["", f"## {label}", "", "| stem | PSNR (dB) | perceptual | steps |",
                  "|---|---|---|---|"]
        lines += [f"| {r['stem']} | {r['psnr']:.2f} | {r['perceptual']:.4f} | {r['steps']} |"
                  for r in rows]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    return means


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lift.inversion.report",
                                     description="Reconstruction report of latent banks.")
    parser.add_argument("--bank", action="append", required=True, metavar="LABEL=DIR",
                        help="a latent bank and its label (repeat: e.g. W+=... W=...)")
    parser.add_argument("--out", required=True, help="folder for report.md and report.csv")
    args = parser.parse_args(argv)
    banks = {}
    for spec in args.bank:
        label, sep, path = spec.partition("=")
        if not sep:
            parser.error(f"--bank takes LABEL=DIR, got {spec!r}")
        banks[label] = path
    for label, m in write_report(banks, args.out).items():
        print(f"{label}: {m['textures']} textures, PSNR {m['psnr']:.2f} dB, "
              f"perceptual {m['perceptual']:.4f}, steps {m['steps']:.0f}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
