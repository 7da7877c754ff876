"""A stage run's resolved config and fingerprint.

The resolved config is exactly what the stage's ``lift <command> ... --print_config`` prints
(LightningCLI's parse of every config, override and default). It is produced in this process
(``lift.cli.main`` with ``--print_config``): the first call imports Lightning and the plugins
(a few seconds), each further one takes a fraction of a second, where a subprocess per stage
would cost the whole import again.

The fingerprint is the sha256 of the command (fit / predict), that text with the run
directory written as ``${RUN}`` (so a moved or copied run directory keeps its fingerprints)
and without the ``# lightning.pytorch==x.y`` banner, and the fingerprints of the upstream stage
runs. Code changes do not change a fingerprint; config values, defaults included, do.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

RUN_PLACEHOLDER = "${RUN}"


class ResolveError(RuntimeError):
    """A stage's configs and overrides do not parse; the message is the parser's."""


def print_config(lift_argv: Sequence[str]) -> str:
    """What ``lift <lift_argv> --print_config`` prints, computed in this process."""
    from lift.cli import main

    out, err = io.StringIO(), io.StringIO()
    code: object = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([*lift_argv, "--print_config"])
        except SystemExit as exc:
            code = exc.code
    if code not in (0, None) or not out.getvalue().strip():
        message = err.getvalue().strip() or out.getvalue().strip() or f"exit code {code}"
        raise ResolveError(message)
    text = out.getvalue()
    banner = text.find("# lightning.pytorch==")
    return text[banner:] if banner > 0 else text  # anything an import printed comes first


def normalise(text: str, run_dir: str | os.PathLike) -> str:
    """``text`` with the run directory as ``${RUN}`` and no Lightning version banner."""
    lines = [line for line in text.splitlines()
             if not line.startswith("# lightning.pytorch==")]
    text = "\n".join(lines) + "\n"
    for form in {str(Path(run_dir)), os.path.realpath(run_dir)}:
        text = text.replace(form, RUN_PLACEHOLDER)
    return text


def fingerprint(command: str, resolved_text: str, run_dir: str | os.PathLike,
                upstream: Mapping[str, str]) -> str:
    """sha256 hex of the command, the normalised resolved config and the upstream fingerprints."""
    payload = json.dumps({"command": command, "config": normalise(resolved_text, run_dir),
                          "upstream": dict(sorted(upstream.items()))}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()
