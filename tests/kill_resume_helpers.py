"""Kill-and-resume harness: run a real ``lift`` subprocess, SIGKILL it (its whole process
group) at a random moment after its first checkpoint, rerun the same command with
``--ckpt_path last``, and compare the result with an uninterrupted run, bit for bit."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


def env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore",
                PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))


def lift(*args: str) -> list[str]:
    return [sys.executable, "-m", "lift.cli", *args]


def checkpoint_every(steps: int) -> str:
    """``--trainer.callbacks=[StageCheckpoint]`` refreshing last.ckpt every ``steps`` steps."""
    return ('--trainer.callbacks=[{"class_path": "lift.callbacks.StageCheckpoint", '
            f'"init_args": {{"save_top_k": 0, "last_every_n_train_steps": {steps}}}}}]')


def run(cmd: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


def _step(path: Path) -> int | None:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])
    except Exception:  # noqa: BLE001 - not there yet
        return None


def run_killed(cmd: list[str], cwd: Path, watch: Path, *, seed: int, min_step: int = 1,
               max_delay: float = 2.0, timeout: float = 600,
               log_dir: Path | None = None) -> float:
    """Start ``cmd``, wait until ``watch`` (a last.ckpt) holds step >= ``min_step`` (or, for
    a non-checkpoint ``watch``, until it exists), sleep a random 0..``max_delay`` s, SIGKILL
    the process group. Returns the delay. Fails if the run ended before the kill. The killed
    run's output goes to ``<log_dir or cwd>/killed-<watch name>.log``."""
    delay = random.Random(seed).uniform(0.0, max_delay)
    log = open(Path(log_dir or cwd) / f"killed-{watch.name}.log", "w")
    proc = subprocess.Popen(cmd, cwd=cwd, env=env(), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    start = time.monotonic()
    try:
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"the run ended (rc {proc.returncode}) before it was killed;"
                                     f" see {log.name}")
            if time.monotonic() - start > timeout:
                raise AssertionError("no checkpoint to kill after")
            if watch.suffix == ".ckpt":
                step = _step(watch) if watch.exists() else None
                if step is not None and step >= min_step:
                    break
            elif watch.exists():
                break
            time.sleep(0.05)
        time.sleep(delay)
        assert proc.poll() is None, "the run ended before the kill: make it longer"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        log.close()
    return delay


def _normalise(value: Any, roots: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        for r in roots:
            value = value.replace(r, "<ROOT>")
        return value
    if isinstance(value, dict):
        return {k: _normalise(v, roots) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_normalise(v, roots) for v in value)
    return value


def differences(a: Any, b: Any, path: str = "", atol: float = 0.0) -> list[str]:
    """Where two checkpoint values differ (tensors: exactly, or within ``atol``)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return [f"{path}: tensor vs {type(b).__name__}"]
        if a.shape != b.shape or a.dtype != b.dtype:
            return [f"{path}: {tuple(a.shape)} {a.dtype} vs {tuple(b.shape)} {b.dtype}"]
        if atol == 0.0 or not a.is_floating_point():
            return [] if torch.equal(a, b) else [
                f"{path}: max |diff| {(a.double() - b.double()).abs().max().item():.3g}"]
        close = torch.allclose(a, b, rtol=0.0, atol=atol, equal_nan=True)
        return [] if close else [
            f"{path}: max |diff| {(a.double() - b.double()).abs().max().item():.3g} > {atol}"]
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}.{k}: only in one" for k in set(a) ^ set(b)]
        for k in a.keys() & b.keys():
            out += differences(a[k], b[k], f"{path}.{k}", atol)
        return out
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} vs {len(b)}"]
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += differences(x, y, f"{path}[{i}]", atol)
        return out
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return []
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


#: What a resumed checkpoint must equal: weights (and EMA, buffers), optimiser and scheduler
#: states, the step and epoch counters, the loops' progress and data-loader states (the data
#: order), the callbacks' states, every rank's RNG streams, the recorded specs.
COMPARED = ("state_dict", "optimizer_states", "lr_schedulers", "global_step", "epoch", "loops",
            "callbacks", "lift_rng", "lift_components", "lift_rebuilt", "hyper_parameters")


def compare_checkpoints(a: Path, b: Path, *, atol: float = 0.0, ignore: tuple[str, ...] = (),
                        roots: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Assert that checkpoints ``a`` (uninterrupted) and ``b`` (killed and resumed) are equal
    on :data:`COMPARED` (paths under their directories, or ``roots``, written as ``<ROOT>``)."""
    ca = torch.load(a, map_location="cpu", weights_only=True)
    cb = torch.load(b, map_location="cpu", weights_only=True)
    roots = tuple(sorted({str(a.parent), str(b.parent), *map(str, roots)}, key=len,
                         reverse=True))
    diffs = []
    for key in COMPARED:
        if key in ignore:
            continue
        if (key in ca) != (key in cb):
            diffs.append(f"{key}: only in one checkpoint")
            continue
        if key in ca:
            diffs += differences(_normalise(ca[key], roots), _normalise(cb[key], roots), key,
                                 atol)
    assert not diffs, "resumed run differs from the uninterrupted one:\n" + "\n".join(diffs[:40])
    assert ca.get("lift_rng"), "the checkpoint holds no RNG streams"
    return ca
