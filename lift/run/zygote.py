"""The warm launcher of ``lift run``: stage runs forked from one process that imported
torch, Lightning and lift once.

A ``lift fit`` / ``lift predict`` process spends its first ~4-11 s (by machine) importing
torch, Lightning, torchvision, torchmetrics, scipy and the plugins before it does any work;
a recipe of 30 stage runs pays that 30 times. The zygote is one helper process, started
with the run's environment (``GLIBC_TUNABLES`` included, which glibc reads at process start),
that does those imports once and never computes anything; each stage run is an ``os.fork``
of it that runs ``lift.cli.main`` on the unit's arguments, with its stdin on ``/dev/null``
and its stdout and stderr appended to the unit's ``stage.log``. A fork is a fresh process in
every way the stage can see: its own seeds (``seed_everything``), its own environment (the
runner's, sent with each request), no state from an earlier stage run.

Protocol (JSON lines): the runner writes ``{"argv", "log", "env", "cwd"}`` to the zygote's
stdin; the zygote answers ``{"ready": pid}`` once after its imports, then for each request
``{"pid": child}`` when it has forked and ``{"pid": child, "rc": code}`` when that child has
exited. End of stdin stops the zygote (so it never outlives the runner).

``python -m lift.run.zygote ARGS...`` with arguments is ``lift ARGS...``: Lightning's DDP
launcher re-runs ``python -m <__main__'s module> <argv>`` for each further rank, and in a
forked stage run ``__main__`` is this module.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import io
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

# Imported once by the zygote (the third-party ones dominate a stage's start-up). Plugins are
# imported by ``lift.registry.get_registry`` under the run's ``LIFT_DISABLE_PLUGINS``.
PRELOAD = ("torch", "torchvision", "torchmetrics", "lightning.pytorch", "lightning.pytorch.cli",
           "jsonargparse", "scipy.signal", "lift.cli", "lift.trainer", "lift.registry")


def _send(message: dict) -> None:
    os.write(1, (json.dumps(message) + "\n").encode())


def _child(request: dict) -> None:
    """In the forked child: become the stage run, then exit (never returns)."""
    rc = 1
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        null = os.open(os.devnull, os.O_RDONLY)
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(null)
        os.close(log)
        # As `python -u`: every write reaches the log at once (progress bars included).
        sys.stdin = open(0, closefd=False)
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True,
                                      line_buffering=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True,
                                      line_buffering=True)
        sys.argv = [sys.argv[0], *request["argv"]]
        from lift.cli import main

        try:
            code = main(list(request["argv"]))
        except SystemExit as exc:
            code = exc.code
        rc = code if isinstance(code, int) else (0 if code is None else 1)
        if not isinstance(code, (int, type(None))):
            print(code, file=sys.stderr)
        # What interpreter shutdown does for a normal process: wait for non-daemon threads
        # (loggers flushing), then the atexit handlers.
        for thread in threading.enumerate():
            if thread is not threading.main_thread() and not thread.daemon:
                thread.join()
        atexit._run_exitfuncs()
    except KeyboardInterrupt:
        rc = 130
    except BaseException:  # the traceback goes to the stage's log, as in a normal process
        import traceback

        traceback.print_exc()
        rc = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(rc)


def serve() -> None:
    """The zygote's loop (``python -m lift.run.zygote`` without arguments)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the stage runs, not for us
    for name in PRELOAD:
        importlib.import_module(name)
    from lift.plugins import block_disabled_packages
    from lift.registry import get_registry

    block_disabled_packages()
    get_registry()
    # The imported objects move to a permanent generation: a fork's garbage collections then
    # skip them instead of writing to (and so copying) every page they share with the zygote.
    gc.collect()
    gc.freeze()
    _send({"ready": os.getpid()})
    children: dict[int, int] = {}
    buffer = b""
    stdin_open = True
    while stdin_open or children:
        if stdin_open:
            readable, _, _ = select.select([0], [], [], 0.05)
            if readable:
                chunk = os.read(0, 65536)
                if not chunk:
                    stdin_open = False
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        request = json.loads(line)
                        pid = os.fork()
                        if pid == 0:
                            _child(request)
                        children[pid] = pid
                        _send({"pid": pid})
        else:
            time.sleep(0.05)
        for pid in list(children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                del children[pid]
                _send({"pid": pid, "rc": os.waitstatus_to_exitcode(status)})


class ZygoteError(RuntimeError):
    """The zygote did not start or stopped answering."""


class Zygote:
    """A running zygote; :meth:`run` runs one stage and returns its exit code."""

    def __init__(self, env: Mapping[str, str] | None = None, wait: bool = True,
                 timeout: float = 600.0):
        """Start the zygote with ``env`` (default: this process's environment). With
        ``wait=False`` this returns at once and the first :meth:`run` waits for its imports,
        so they overlap with whatever the caller does meanwhile."""
        env = dict(os.environ if env is None else env, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "lift.run.zygote"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self._buffer = b""
        self.timeout = timeout
        self.pid: int | None = None
        if wait:
            self.wait_ready()

    def wait_ready(self) -> int:
        """Wait until the zygote has done its imports; returns its pid."""
        if self.pid is None:
            try:
                ready = self._message(self.timeout)
            except ZygoteError:
                ready = None
            if ready is None or "ready" not in ready:
                self.close()
                raise ZygoteError(f"the warm launcher did not start (answered {ready!r})")
            self.pid = int(ready["ready"])
        return self.pid

    def _message(self, timeout: float | None) -> dict | None:
        """The zygote's next message; None when ``timeout`` passes first."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            readable, _, _ = select.select([fd], [], [], wait)
            if not readable:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise ZygoteError(f"the warm launcher exited (code {self.proc.wait()})")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def run(self, argv: Sequence[str], log: Path, on_wait: Callable[[], None] | None = None,
            env: Mapping[str, str] | None = None) -> int:
        """Run ``lift <argv>`` in a fork, its output appended to ``log``; returns its exit
        code. ``on_wait`` is called every 0.2 s while it runs (the runner copies the log to
        the terminal there). Ctrl-C reaches the stage through the process group; this waits
        up to 30 s for it, then sends SIGTERM, and re-raises."""
        assert self.proc.stdin is not None
        self.wait_ready()
        env = dict(os.environ if env is None else env, PYTHONUNBUFFERED="1")
        request = {"argv": list(argv), "log": str(log), "env": env, "cwd": os.getcwd()}
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.proc.stdin.flush()
        started = self._message(60.0)
        if started is None or "pid" not in started:
            raise ZygoteError(f"the warm launcher did not fork (answered {started!r})")
        pid = int(started["pid"])
        try:
            while True:
                message = self._message(0.2)
                if on_wait is not None:
                    on_wait()
                if message is not None and message.get("pid") == pid and "rc" in message:
                    return int(message["rc"])
        except KeyboardInterrupt:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                message = self._message(0.5)
                if message is not None and message.get("pid") == pid and "rc" in message:
                    break
            else:
                _kill(pid, signal.SIGTERM)
            raise
        except BaseException:
            _kill(pid, signal.SIGKILL)
            raise

    def close(self) -> None:
        """Stop the zygote (end of its stdin; killed if it does not exit in 10 s)."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> "Zygote":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it has exited already
        os.kill(pid, sig)


if __name__ == "__main__":
    if len(sys.argv) > 1:  # a DDP rank re-run by Lightning's launcher: plain `lift ARGS`
        from lift.cli import main

        sys.exit(main())
    serve()
