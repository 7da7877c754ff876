"""Running one unit's ``lift`` command, its output into ``stage.log``: in a subprocess
(:func:`run_logged`) or forked from the warm launcher (:func:`run_warm`, ``lift.run.zygote``).

The child stays in the runner's process group (killing the runner's group kills the stage
too) and inherits its environment, with ``PYTHONUNBUFFERED=1`` so the log follows the run.
With ``stream=True`` (a terminal, not CI) its output is also copied to the terminal, progress
bars included; otherwise only the log gets it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from lift.run.zygote import Zygote

TAIL_LINES = 30
# How stage runs start: forked from one process that imported torch / Lightning / lift once
# (lift.run.zygote, the default), or each a new interpreter.
LAUNCHERS = ("warm", "subprocess")


def move_aside(path: Path) -> Path:
    """Rename ``path`` to ``<path>.stale-<n>`` (the first free n >= 1); never deletes."""
    n = 1
    while (target := path.with_name(f"{path.name}.stale-{n}")).exists():
        n += 1
    os.rename(path, target)
    return target


def _write_terminal(data: bytes) -> None:
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is not None:
        buffer.write(data)
        buffer.flush()
    else:
        sys.stdout.write(data.decode(errors="replace"))
        sys.stdout.flush()


def run_logged(argv: Sequence[str], log: Path, header: str, stream: bool) -> int:
    """Run ``argv``, appending a header line and its stdout + stderr to ``log``; returns the
    exit code. Ctrl-C stops the child (SIGINT reaches it through the process group, a
    SIGTERM follows after 30 s) and is re-raised."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log, "ab") as fh:
        fh.write(header.encode())
        fh.flush()
        proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env)
        try:
            assert proc.stdout is not None
            fd = proc.stdout.fileno()
            while chunk := os.read(fd, 65536):
                fh.write(chunk)
                fh.flush()
                if stream:
                    _write_terminal(chunk)
            return proc.wait()
        except KeyboardInterrupt:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGTERM)
                proc.wait()
            fh.write(b"\n[lift run: interrupted]\n")
            raise
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def run_warm(zygote: "Zygote", lift_argv: Sequence[str], log: Path, header: str,
             stream: bool) -> int:
    """:func:`run_logged` for ``lift <lift_argv>`` forked from ``zygote``: the same log, the
    same exit code, the same Ctrl-C behaviour, without the interpreter's start-up."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        fh.write(header.encode())
    offset = log.stat().st_size

    def copy_new() -> None:
        nonlocal offset
        with open(log, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
        if data:
            offset += len(data)
            _write_terminal(data)

    try:
        rc = zygote.run(lift_argv, log, on_wait=copy_new if stream else None)
    except KeyboardInterrupt:
        with open(log, "ab") as fh:
            fh.write(b"\n[lift run: interrupted]\n")
        raise
    if stream:
        copy_new()
    return rc


def log_tail(log: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of a log as a terminal shows them (``\\r`` rewrites a line)."""
    try:
        data = log.read_bytes()[-256_000:]
    except OSError:
        return []
    text = data.decode(errors="replace")
    shown = [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n")]
    while shown and not shown[-1].strip():
        shown.pop()
    return shown[-lines:]
