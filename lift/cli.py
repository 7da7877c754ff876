"""The ``lift`` command: LightningCLI's fit/validate/test/predict plus lift's own commands.

Plugins are loaded (and the registry built) before any config is parsed, so short class
names of every registered component resolve in configs and on the command line.

Before LightningCLI parses, every ``--config FILE`` (``-c FILE``, ``--config=FILE``) whose
YAML has a top-level ``extends:`` is replaced by its composed YAML, passed as a config string
(see :mod:`lift.config_compose`; ``lift compose`` prints it).

Loggers: when the trainer config names no logger (``logger`` unset, null or true), the run
logs to TensorBoard and CSV together, both in ``<default_root_dir>/logs/version_N/`` with N
the next free number, so every run (a resumed one too) gets a fresh directory for
LightningCLI's ``config.yaml``. ``logger: false`` keeps logging off; an explicit logger
config is used as given.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Sequence

from lift.plugins import DISABLE_ENV

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")

#: The run's log version, set by rank 0 and inherited by the DDP ranks it launches.
LOG_VERSION_ENV = "LIFT_LOG_VERSION"
#: Under ``<default_root_dir>``: ``logs/version_N/`` of TensorBoard and CSV.
LOG_NAME = "logs"

TOP_HELP = """\
usage: lift [--disable-plugins NAMES] COMMAND ...

lift: studio-quality face textures from monocular phone captures.

Lightning commands (each takes --config FILE [--config OVERLAY ...] and --help):
  fit        train a stage (prior, translation, upsampling)
  validate   run a stage's validation loop
  test       evaluate a stage on its test splits
  predict    run a stage's prediction (W+ inversion into a latent bank; the studio
             pipeline on your captures: --config configs/pipeline/studio.yaml)

lift commands:
  run        run a recipe (configs/run/<name>.yaml): every stage, the methods' predictions,
             the tables and the report, skipping what is done and resuming what was killed
  plugins    list every registered component by kind, with its plugin and distribution
  data       data tools: `lift data synth` writes the synthetic benchmark,
             `lift data check` validates a texture folder
  compose    print the merged YAML of config files, `extends:` resolved

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


def compose_command(argv: Sequence[str]) -> int:
    from lift.config_compose import ConfigComposeError, compose_files, dump_yaml

    parser = argparse.ArgumentParser(
        prog="lift compose",
        description="Print the YAML of config files with `extends:` resolved, merged left to "
        "right (mappings merge, lists and scalars replace). A plain YAML merge: for the config "
        "LightningCLI builds from it, run `lift fit --config ... --print_config`.",
    )
    parser.add_argument("configs", nargs="+", metavar="CONFIG", help="YAML config files")
    args = parser.parse_args(argv)
    try:
        merged = compose_files(args.configs)
    except ConfigComposeError as exc:
        print(f"lift compose: error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(dump_yaml(merged))
    return 0


_CONFIG_FLAGS = ("--config", "-c")


def _looks_like_a_config_path(value: str) -> bool:
    """A ``--config`` value meant as a file (not a YAML string such as ``{trainer: ...}``)."""
    text = value.strip()
    return ("\n" not in text and ": " not in text and not text.startswith("{")
            and text.lower().endswith((".yaml", ".yml", ".json")))


def resolve_config_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``argv`` with each ``--config FILE`` whose YAML has ``extends`` replaced by the composed
    YAML as a string (jsonargparse's ``--config`` takes a path or a YAML string).

    Returns (new argv, the original files that were composed). Other values (files without
    ``extends``, YAML strings, ``--config`` after ``--``) are left as they are. Raises
    :class:`lift.config_compose.ConfigComposeError` naming the file chain.
    """
    from lift.config_compose import (EXTENDS_KEY, ConfigComposeError, dump_yaml, load_yaml,
                                     resolve_config)

    out: list[str] = []
    composed: list[str] = []

    def resolve(value: str) -> str:
        if os.path.islink(value) and not os.path.exists(value):
            try:
                os.stat(value)
            except OSError as exc:  # ELOOP or a dangling link, said as such
                raise ConfigComposeError(f"{value}: config file is a broken symbolic link "
                                         f"({exc.strerror})") from None
        if not os.path.isfile(value):
            if _looks_like_a_config_path(value):
                raise ConfigComposeError(f"{value}: config file not found")
            return value
        if EXTENDS_KEY not in load_yaml(value):  # invalid YAML: an error naming the file
            return value
        composed.append(value)
        return f"# composed from {value}\n" + dump_yaml(resolve_config(value))

    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            out.extend(argv[i:])
            break
        if arg in _CONFIG_FLAGS and i + 1 < len(argv):
            out += [arg, resolve(argv[i + 1])]
            i += 2
            continue
        flag, eq, value = arg.partition("=")
        if eq and flag == "--config":
            out.append(f"{flag}={resolve(value)}")
        else:
            out.append(arg)
        i += 1
    return out, composed


def _launched_rank() -> int:
    """This process's rank from the launcher's environment (0 when not launched as a rank)."""
    ranks = []
    for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK"):
        try:
            ranks.append(int(os.environ.get(key, "0")))
        except ValueError:
            continue  # a launcher variable that is not a number names no rank
    return max(ranks, default=0)


def _existing_versions(log_root: Path) -> list[int]:
    if not log_root.is_dir():
        return []
    found = []
    for entry in log_root.iterdir():
        match = re.fullmatch(r"version_(\d+)", entry.name)
        if match and entry.is_dir():
            found.append(int(match.group(1)))
    return found


def shared_log_version(root: str | os.PathLike, name: str = LOG_NAME) -> int:
    """One ``version_N`` number for every logger and every rank of this run.

    Rank 0 takes the next free number under ``<root>/<name>`` and puts it in the environment
    (``LIFT_LOG_VERSION``), which the DDP ranks Lightning launches as subprocesses inherit.
    A rank > 0 uses that number, or, when it was started by an outside launcher (torchrun,
    SLURM) without it, the latest existing version: its loggers write nothing (Lightning logs
    on rank 0) and ``trainer.log_dir`` and checkpoint paths are broadcast from rank 0.
    """
    existing = _existing_versions(Path(root) / name)
    if _launched_rank() > 0:
        inherited = os.environ.get(LOG_VERSION_ENV)
        if inherited is not None and inherited.isdigit():
            return int(inherited)
        return max(existing, default=0)
    version = max(existing, default=-1) + 1
    os.environ[LOG_VERSION_ENV] = str(version)
    return version


def default_loggers(root: str | os.PathLike | None) -> list[Any]:
    """TensorBoard and CSV loggers writing into the same ``<root>/logs/version_N/``."""
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    root = os.fspath(root) if root is not None else os.getcwd()
    version = shared_log_version(root, LOG_NAME)
    log_dir = os.path.join(root, LOG_NAME, f"version_{version}")
    # The CSV writer warns that a non-empty directory's "previous log files will be deleted":
    # here the directory is new and holds this run's own config.yaml and TensorBoard events.
    warnings.filterwarnings(
        "ignore", message=rf"Experiment logs directory {re.escape(log_dir)} exists and is not "
    )
    return [
        TensorBoardLogger(save_dir=root, name=LOG_NAME, version=version,
                          default_hp_metric=False),
        CSVLogger(save_dir=root, name=LOG_NAME, version=version),
    ]


def _lift_cli_class(command: str | None = None):
    from lightning.pytorch.cli import LightningCLI

    class LiftCLI(LightningCLI):
        """LightningCLI in subclass mode for both the stage module and the data module.

        The trainer gets :func:`default_loggers` when its config names no logger. Only the
        parser of the command being run is built (``command``; all four without one):
        building each costs ~0.2 s of class introspection, and ``lift run`` resolves every
        unit's config through this parser.
        """

        @staticmethod
        def subcommands() -> dict[str, set[str]]:
            every = LightningCLI.subcommands()
            return {command: every[command]} if command in every else every

        def instantiate_trainer(self, **kwargs: Any):
            path = self._lift_ckpt_path()  # before the trainer prints its banner
            if path is not None:
                from lift.cli_errors import check_checkpoint_for_model

                check_checkpoint_for_model(path, self.model)
            config = self._get(self.config_init, "trainer", default={}) or {}
            logger = config.get("logger")
            if "logger" not in kwargs and (logger is None or logger is True):
                kwargs["logger"] = default_loggers(config.get("default_root_dir"))
            return super().instantiate_trainer(**kwargs)

        # Bad input first: Lightning's "Seed set to N" is said once the classes are built, so
        # an error building them is the first line a user reads.
        def _set_seed(self) -> None:
            import logging

            from lightning.fabric.utilities.seed import log as seed_log

            level = seed_log.level
            seed_log.setLevel(max(level, logging.WARNING))  # the info line comes later
            try:
                super()._set_seed()
            finally:
                seed_log.setLevel(level)
            self._lift_seed = self._get(self.config, "seed_everything")

        def after_instantiate_classes(self) -> None:
            super().after_instantiate_classes()
            seed = getattr(self, "_lift_seed", None)
            if seed is not None and seed is not False:
                from lightning.fabric.utilities import seed as seed_module

                seed_module.log.info(seed_module.rank_prefixed_message(
                    f"Seed set to {seed}", seed_module._get_rank()))

        # --ckpt_path: read safely (weights_only) before Lightning does, with an error naming
        # the file; it must be this stage's checkpoint.
        def _parse_ckpt_path(self) -> None:
            path = self._lift_ckpt_path()
            if path is not None:
                from lift.cli_errors import check_checkpoint_file

                check_checkpoint_file(path)
            super()._parse_ckpt_path()

        def _lift_ckpt_path(self) -> str | None:
            sub = self.config.get("subcommand") if hasattr(self.config, "get") else None
            path = self.config[sub].get("ckpt_path") if sub else None
            if not path or str(path) in ("last", "best", "hpc", "registry"):
                return None
            if not os.path.isfile(path):
                from lift.cli_errors import CLIInputError

                raise CLIInputError(f"--ckpt_path: checkpoint {path} does not exist")
            return str(path)

        def _prepare_subcommand_kwargs(self, subcommand: str) -> dict[str, Any]:
            from lift.cli_errors import check_checkpoint_for_model

            kwargs = super()._prepare_subcommand_kwargs(subcommand)
            if "weights_only" in self._subcommand_method_arguments.get(subcommand, ()) \
                    and kwargs.get("weights_only") is None:
                kwargs["weights_only"] = True  # a checkpoint can never run code
            if kwargs.get("ckpt_path") == "last":  # explicit paths: checked already
                path = _last_checkpoint(self.trainer)
                if path is not None:
                    check_checkpoint_for_model(path, self.model)
            return kwargs

    return LiftCLI


def _last_checkpoint(trainer: Any) -> str | None:
    """The file ``--ckpt_path last`` resumes from (Lightning's rule: the newest of the
    checkpoint callbacks' last checkpoints), or None."""
    found: set[str] = set()
    for callback in getattr(trainer, "checkpoint_callbacks", []):
        finder = getattr(callback, "_find_last_checkpoints", None)
        if finder is None:
            continue
        try:
            found |= {str(p) for p in finder(trainer)}
        except Exception:  # not ours to judge: Lightning resolves it (or says why it cannot)
            continue
    found = {p for p in found if os.path.isfile(p)}
    return max(found, key=os.path.getmtime) if found else None


TRACEBACK_ENV = "LIFT_TRACEBACK"


def _config_error_cause(exc: BaseException) -> BaseException | None:
    """The innermost exception of an error raised while jsonargparse instantiated the config's
    classes (None for an error raised anywhere else, e.g. while training)."""
    tb, from_parser = exc.__traceback__, False
    while tb is not None:
        from_parser |= "jsonargparse" in tb.tb_frame.f_code.co_filename
        tb = tb.tb_next
    if not from_parser:
        return None
    seen, chain = {id(exc)}, [exc]
    while (nxt := chain[-1].__cause__ or chain[-1].__context__) is not None \
            and id(nxt) not in seen:
        seen.add(id(nxt))
        chain.append(nxt)
    # The outermost error lift (or a lift plugin) raised says what is wrong in lift's terms
    # (a CheckpointError naming the file, not the torch error under it); else the innermost.
    for err in chain:
        module = type(err).__module__.split(".", 1)[0]
        if module == "lift" or module.startswith("lift_"):
            return err
    return chain[-1]


def _lightning_main(argv: list[str]) -> int:
    import torch.distributed as dist

    from lift.config_compose import ConfigComposeError
    from lift.registry import get_registry

    given = list(argv)
    try:
        argv, composed = resolve_config_args(argv)
    except ConfigComposeError as exc:
        print(f"lift: error: {exc}", file=sys.stderr)
        return 2

    get_registry()  # import every plugin before parsing: short class names then resolve
    LiftCLI = _lift_cli_class(given[0] if given and given[0] in LIGHTNING_COMMANDS else None)

    # LightningCLI reads sys.argv (and Lightning's DDP launcher re-runs it on each rank).
    saved_argv = sys.argv
    sys.argv = [saved_argv[0] if saved_argv else "lift", *argv]
    try:
        from lift.trainer import LiftTrainer

        LiftCLI(
            model_class=None,
            datamodule_class=None,
            trainer_class=LiftTrainer,  # Lightning's, plus precision bf16-auto
            # Parse errors raise (ArgumentError, below) instead of printing the usage first.
            parser_kwargs={"prog": "lift", "exit_on_error": False,
                           **{c: {"exit_on_error": False} for c in LiftCLI.subcommands()}},
            auto_configure_optimizers=False,
            # A rerun (resume) of a run without a logger saves its config where the last one
            # did; with lift's loggers every run has its own logs/version_N/ anyway.
            save_config_kwargs={"overwrite": True},
        )
    except SystemExit as exc:
        if exc.code not in (0, None) and composed:  # jsonargparse names no file: we do
            print("lift: note: composed (extends) configs, passed to the parser as YAML "
                  f"strings: {', '.join(composed)} (see `lift compose FILE`)", file=sys.stderr)
        raise
    except argparse.ArgumentError as exc:
        # The config or the command line does not parse: the cause, one line, first.
        from lift.cli_errors import parser_error_line

        message = str(exc)
        print(f"lift: error: {parser_error_line(message, given)}", file=sys.stderr)
        if os.environ.get(TRACEBACK_ENV):
            print("lift: the parser's message:\n  " + message.replace("\n", "\n  "),
                  file=sys.stderr)
        elif len(message.splitlines()) > 1:
            print(f"lift: ({TRACEBACK_ENV}=1 shows the parser's whole message)",
                  file=sys.stderr)
        if composed:
            print("lift: note: composed (extends) configs, passed to the parser as YAML "
                  f"strings: {', '.join(composed)} (see `lift compose FILE`)", file=sys.stderr)
        subcommand = next((a for a in given if a in LIGHTNING_COMMANDS), "fit")
        print(f"lift: `lift {subcommand} --help` lists the options", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception as exc:
        from lift.cli_errors import CLIInputError

        if isinstance(exc, CLIInputError):
            print(f"lift: error: {exc}", file=sys.stderr)
            return 2
        cause = _config_error_cause(exc)
        if cause is None or os.environ.get(TRACEBACK_ENV):
            raise  # an error while running a stage: its traceback is the message
        # Building a component from the config failed: jsonargparse buries the cause at the
        # bottom of a long traceback under "Does not validate against any of the Union
        # subtypes". The cause is the first thing the user reads.
        print(f"lift: error: {type(cause).__name__}: {cause}", file=sys.stderr)
        print("lift: (raised while building the model / data from the config; "
              f"{TRACEBACK_ENV}=1 shows the full traceback)", file=sys.stderr)
        return 2
    finally:
        sys.argv = saved_argv
        # With strategy=ddp, leaving the process group alive makes the process abort at exit.
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = _pop_disable_flag(list(sys.argv[1:] if argv is None else argv))
    from lift.plugins import block_disabled_packages

    block_disabled_packages()
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(TOP_HELP)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "plugins":
        return plugins_command(rest)
    if command == "data":
        return data_command(rest)
    if command == "compose":
        return compose_command(rest)
    if command == "run":
        from lift.run.command import run_command

        return run_command(rest)
    if command in LIGHTNING_COMMANDS:
        return _lightning_main(argv)
    print(f"lift: unknown command {command!r}\n", file=sys.stderr)
    print(TOP_HELP, file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
