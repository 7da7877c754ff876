"""The ``lift`` command: LightningCLI's fit/validate/test/predict plus lift's own commands.

Plugins are loaded (and the registry built) before any config is parsed, so short class
names of every registered component resolve in configs and on the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

from lift.plugins import DISABLE_ENV

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")

TOP_HELP = """\
usage: lift [--disable-plugins NAMES] COMMAND ...

lift: studio-quality face textures from monocular phone captures.

Lightning commands (each takes --config FILE [--config OVERLAY ...] and --help):
  fit        train a stage (prior, translation, upsampling)
  validate   run a stage's validation loop
  test       evaluate a stage on its test splits
  predict    run a stage's prediction (e.g. W+ inversion into a latent bank)

lift commands:
  plugins    list every registered component by kind, with its plugin and distribution
  data       data tools: `lift data synth` writes the synthetic benchmark,
             `lift data check` validates a texture folder

global options:
  --disable-plugins NAMES  comma-separated plugin (entry-point) names not to load;
                           same as the environment variable {env}

Run `lift COMMAND --help` for a command's options.
""".format(env=DISABLE_ENV)


def _pop_disable_flag(argv: list[str]) -> list[str]:
    """Strip ``--disable-plugins X`` from argv into the environment (inherited by DDP ranks)."""
    out: list[str] = []
    names: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg == "--disable-plugins":
            value = next(it, None)
            if value is None:
                raise SystemExit("lift: --disable-plugins needs a comma-separated list of names")
            names.append(value)
        elif arg.startswith("--disable-plugins="):
            names.append(arg.split("=", 1)[1])
        else:
            out.append(arg)
    if names:
        existing = os.environ.get(DISABLE_ENV, "")
        os.environ[DISABLE_ENV] = ",".join(n for n in [existing, *names] if n)
    return out


def plugins_command(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="lift plugins", description="List every registered component by kind."
    )
    parser.add_argument("--kind", help="only this component kind")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)

    from lift.registry import get_registry

    registry = get_registry()
    comps = registry.components(args.kind)
    if args.json:
        rows = [
            dict(kind=c.kind, name=c.name, plugin=c.plugin, distribution=c.distribution,
                 class_path=c.class_path)
            for c in comps
        ]
        print(json.dumps(rows, indent=2))
        return 0
    plugins = registry.manager.plugins
    print("plugins:")
    for info in sorted(plugins.values(), key=lambda p: p.name):
        print(f"  {info.name:<16} {info.module:<36} ({info.distribution or 'not installed'})")
    for name in registry.manager.disabled:
        print(f"  {name:<16} disabled")
    kind = None
    for c in comps:
        if c.kind != kind:
            kind = c.kind
            print(f"\n{kind}:")
        print(f"  {c.name:<22} {c.class_path:<52} plugin {c.plugin} ({c.distribution})")
    return 0


def data_command(argv: Sequence[str]) -> int:
    from lift.data import synth

    parser = argparse.ArgumentParser(prog="lift data", description="Data tools.")
    sub = parser.add_subparsers(dest="action", required=True)
    p_synth = sub.add_parser(
        "synth",
        help="write the synthetic phone/studio benchmark as image folders",
        description="Write the synthetic paired phone/studio UV texture benchmark "
        "(see docs/data.md) as ordinary image folders that `lift.data.FolderSource` reads.",
    )
    p_synth.add_argument("--out", required=True, help="output folder (created)")
    p_synth.add_argument(
        "--profile", default="quickstart", choices=sorted(synth.PROFILES),
        help="dataset size and resolution (default: quickstart)",
    )
    p_synth.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p_synth.add_argument(
        "--overwrite", action="store_true", help="replace an existing benchmark in --out"
    )
    p_synth.add_argument(
        "--workers", type=int, default=1,
        help="writer processes (output is identical for any number; default: 1)",
    )
    p_check = sub.add_parser(
        "check", help="validate a texture folder and print its splits",
        description="Read every texture of a folder dataset once and report problems.",
    )
    p_check.add_argument("root", help="dataset folder (phone/, studio/, masks/, splits/)")
    args = parser.parse_args(argv)

    if args.action == "synth":
        from lift.data.writer import write_synthetic_benchmark

        write_synthetic_benchmark(args.out, args.profile, seed=args.seed,
                                  overwrite=args.overwrite, workers=args.workers)
        return 0
    from lift.data.folder import check_folder

    report = check_folder(args.root)
    print(report)
    return 0 if report.rstrip().endswith("problems: none (ok)") else 1


def _lightning_main(argv: list[str]) -> int:
    import torch.distributed as dist
    from lightning.pytorch.cli import LightningCLI

    from lift.registry import get_registry

    get_registry()  # import every plugin before parsing: short class names then resolve

    class LiftCLI(LightningCLI):
        """LightningCLI in subclass mode for both the stage module and the data module."""

    # LightningCLI reads sys.argv (and Lightning's DDP launcher re-runs it on each rank).
    saved_argv = sys.argv
    sys.argv = [saved_argv[0] if saved_argv else "lift", *argv]
    try:
        LiftCLI(
            model_class=None,
            datamodule_class=None,
            parser_kwargs={"prog": "lift"},
            auto_configure_optimizers=False,
        )
    finally:
        sys.argv = saved_argv
        # With strategy=ddp, leaving the process group alive makes the process abort at exit.
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = _pop_disable_flag(list(sys.argv[1:] if argv is None else argv))
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(TOP_HELP)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "plugins":
        return plugins_command(rest)
    if command == "data":
        return data_command(rest)
    if command in LIGHTNING_COMMANDS:
        return _lightning_main(argv)
    print(f"lift: unknown command {command!r}\n", file=sys.stderr)
    print(TOP_HELP, file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
