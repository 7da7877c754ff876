"""``run.json``: the run's record, rewritten atomically after every state change.

Schema (``version`` 1; paths are relative to the run directory unless absolute)::

    {"version": 1, "name": ..., "recipe": "<abs path of the recipe file>", "profile": ...,
     "seeds": [0], "status": "running" | "done" | "failed" | "incomplete",
     "created": iso, "updated": iso,
     "stages":  {"<stage>":  {"seed<k>": RUN}},
     "methods": {"<method>": {"seed<k>/<split>": RUN}},
     "evaluation": {"status": "done" | "failed" | "unavailable", "tables": "tables",
                    "finished": iso, "error": ...},
     "report": {"status": ..., "path": "report/index.html", "finished": iso, "error": ...}}

    RUN = {"kind": "stage" | "method", "name": ..., "seed": k, "split": null | "<split>",
           "subcommand": "fit" | "predict",
           "command": [argv], "command_line": "<python> -m lift.cli ...", "cwd": "<abs>",
           "resume": null | "ckpt_path last", "reason": "why it ran",
           "dir": "stages/<stage>/seed<k>", "log": ".../stage.log",
           "resolved_config": ".../resolved.yaml",
           "fingerprint": "<sha256>", "upstream": {"<stage>/seed<k>": "<sha256>"},
           "upstream_runs": {"<stage>/seed<k>": "<run_id>"},
           "status": "running" | "done" | "failed", "returncode": int | null, "error": ...,
           "started": iso, "finished": iso | null,
           "wall_time_s": this attempt, "total_wall_time_s": every attempt of this fingerprint,
           "attempts": int, "run_id": "<hex>" (new each time it finishes done; null before),
           "outputs": {"<name>": "<path>"},
           "stale": ["stages/<stage>/seed<k>.stale-1", ...],
           "estimate_s": the last done run's total wall time (kept across reruns)}

A unit is addressed by its key, ``<stage>/seed<k>`` or ``<method>/seed<k>/<split>`` (stage
and method names are distinct).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lift.atomic import atomic_write_text
from lift.run.progress import median

VERSION = 1
FILENAME = "run.json"
GROUPS = ("stages", "methods")


def now() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


class RunRecord:
    """The parsed ``run.json`` of a run directory; :meth:`save` writes it atomically."""

    def __init__(self, run_dir: Path, data: dict[str, Any] | None = None):
        self.run_dir = Path(run_dir)
        self.data: dict[str, Any] = data or {"version": VERSION, "created": now()}

    @property
    def path(self) -> Path:
        return self.run_dir / FILENAME

    @classmethod
    def load(cls, run_dir: Path) -> "RunRecord":
        path = Path(run_dir) / FILENAME
        if not path.is_file():
            return cls(run_dir)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"{path}: cannot read the run record ({exc}); move it aside "
                               "to start the run afresh") from None
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise RuntimeError(f"{path}: not a version-{VERSION} run record")
        return cls(run_dir, data)

    def unit(self, key: str) -> dict[str, Any] | None:
        name, sub = key.split("/", 1)
        for group in GROUPS:
            entry = (self.data.get(group) or {}).get(name, {}).get(sub)
            if entry is not None:
                return entry
        return None

    def estimate(self, key: str) -> float | None:
        """Seconds the unit ``key`` is expected to take: its own last finished wall time
        (``estimate_s``), else the median of the same stage's or method's other seeds and
        splits (a seed costs about what another seed of the same unit cost); None without
        either."""
        own = (self.unit(key) or {}).get("estimate_s")
        if own is not None:
            return float(own)
        name = key.split("/", 1)[0]
        return median([float(e["estimate_s"]) for group in GROUPS
                       for e in ((self.data.get(group) or {}).get(name) or {}).values()
                       if isinstance(e, dict) and e.get("estimate_s") is not None])

    def update_unit(self, key: str, **fields: Any) -> dict[str, Any]:
        entry = self.unit(key)
        if entry is None:
            name, sub = key.split("/", 1)
            group = "stages" if fields.get("kind") == "stage" else "methods"
            entry = self.data.setdefault(group, {}).setdefault(name, {}).setdefault(sub, {})
        entry.update(fields)
        self.save()
        return entry

    def update(self, **fields: Any) -> None:
        self.data.update(fields)
        self.save()

    def save(self) -> None:
        self.data["updated"] = now()
        # the run's own fields first, the units (long) and the evaluation after them
        order = (*GROUPS, "evaluation", "report")
        data = {k: v for k, v in self.data.items() if k not in order}
        data.update({k: self.data[k] for k in order if k in self.data})
        atomic_write_text(self.path, json.dumps(data, indent=2) + "\n")

    def rel(self, path: Path) -> str:
        """``path`` relative to the run directory when inside it."""
        try:
            return str(Path(path).relative_to(self.run_dir))
        except ValueError:
            return str(path)
