"""StepTimer: wall and CPU seconds of every training step, for benchmarks and the run report.

Add it to any stage: ``--trainer.callbacks+ lift.timing.StepTimer``. It logs
``time/step_wall_s`` and ``time/step_cpu_s`` and, when fitting ends, writes
``<default_root_dir>/step_times.json`` (atomically): per-step times and their medians over
the steps after ``warmup`` (the first steps pay one-off costs: allocator growth, oneDNN
primitive creation, caches). CPU time is this process's, all threads: on a shared machine it
is steadier than wall time.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import lightning.pytorch as pl

from lift.atomic import atomic_write_text


class StepTimer(pl.Callback):
    """Times every training batch (all of its phases).

    Args:
        warmup: steps left out of the medians.
        filename: the JSON written under the trainer's ``default_root_dir``.
    """

    def __init__(self, warmup: int = 2, filename: str = "step_times.json"):
        self.warmup = warmup
        self.filename = filename
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self._start: tuple[float, float] | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._start = (time.perf_counter(), time.process_time())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self._start is None:
            return
        wall, cpu = time.perf_counter() - self._start[0], time.process_time() - self._start[1]
        self.wall.append(wall)
        self.cpu.append(cpu)
        pl_module.log_dict({"time/step_wall_s": wall, "time/step_cpu_s": cpu},
                           on_step=True, on_epoch=False, batch_size=1, rank_zero_only=True)

    def summary(self) -> dict:
        wall, cpu = self.wall[self.warmup:] or self.wall, self.cpu[self.warmup:] or self.cpu
        return {"steps": len(self.wall), "warmup": self.warmup,
                "median_wall_s": statistics.median(wall) if wall else None,
                "median_cpu_s": statistics.median(cpu) if cpu else None,
                "wall_s": self.wall, "cpu_s": self.cpu}

    def on_fit_end(self, trainer, pl_module):
        if trainer.is_global_zero:
            root = Path(trainer.default_root_dir)
            atomic_write_text(root / self.filename, json.dumps(self.summary(), indent=1))
