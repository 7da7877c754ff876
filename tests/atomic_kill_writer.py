"""Run as ``python atomic_kill_writer.py KIND DIR MODE``: write version 1 of one kind of file
lift writes, then start writing version 2 and SIGKILL this process in the middle of it.

MODE ``rename``: killed at the rename (the temporary file complete, the target not replaced);
MODE ``partial``: a thread kills the process as soon as the temporary file has bytes on disk
(usually mid-write), with the rename blocked so that the kill always comes first."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch


def writers(folder: Path):
    from lift.atomic import atomic_write_text
    from lift.callbacks import AtomicCheckpointIO
    from lift.data.io import write_texture
    from lift.latent_bank import BankLayout, LatentBankWriter, make_manifest
    from lift.report.images import save_png
    from lift.run.record import RunRecord

    def checkpoint(v):
        big = torch.full((2_000_000,), float(v))  # 8 MB: the kill lands mid-write
        AtomicCheckpointIO().save_checkpoint({"version": v, "state_dict": {"w": big}},
                                             folder / "last.ckpt")

    def bank_shard(v):
        layout = BankLayout.from_stems(["a", "b"], 2)
        writer = LatentBankWriter(folder / "bank", make_manifest(layout, num_ws=4, w_dim=8,
                                                                 generator={}))
        writer.prepare()
        zeros = torch.zeros(2)
        writer.write_shard(0, ["a", "b"], torch.full((2, 4, 8), float(v)),
                           {"final_loss": zeros, "mse": zeros, "perceptual": zeros,
                            "steps": torch.zeros(2, dtype=torch.int64)})

    def texture(v):
        write_texture(folder / "studio" / "s0.png", torch.full((3, 256, 256), v / 4.0))

    def table(v):
        atomic_write_text(folder / "tables" / "table1.json", json.dumps({"version": v}))

    def report_image(v):
        save_png(np.full((256, 256, 3), 60 * v, dtype=np.uint8), folder / "report" / "a.png")

    def run_record(v):
        record = RunRecord(folder)
        record.update(status=f"version {v}")

    return {"checkpoint": checkpoint, "bank_shard": bank_shard, "texture": texture,
            "table": table, "report_image": report_image, "run_record": run_record}


def main(kind: str, folder: str, mode: str) -> None:
    root = Path(folder)
    write = writers(root)[kind]
    write(1)

    def die(*_args, **_kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    if mode == "rename":
        os.replace = die
    else:
        def block(*_args, **_kwargs):
            time.sleep(60)
        os.replace = block

        def watch():
            while True:
                for tmp in root.rglob(".*.tmp*"):
                    try:
                        if tmp.stat().st_size > 0:
                            die()
                    except FileNotFoundError:
                        pass

        threading.Thread(target=watch, daemon=True).start()
    write(2)
    print("not killed", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
