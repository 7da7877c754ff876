"""Every kind of file lift writes (checkpoint, bank shard, texture, table, report image, run
record) goes through a temporary file and a rename: a process SIGKILLed in the middle of
writing a new version leaves the earlier file intact, and what it left behind (a dot-prefixed
temporary) is never read as the file."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kill_resume_helpers import TESTS, env

pytestmark = pytest.mark.kill_resume


def _check_earlier(kind: str, folder: Path) -> None:
    if kind == "checkpoint":
        ckpt = torch.load(folder / "last.ckpt", weights_only=True)
        assert ckpt["version"] == 1 and bool((ckpt["state_dict"]["w"] == 1).all())
        # `--ckpt_path last` looks for last*.ckpt: the temporary (.last.*.tmp.ckpt) is not one
        assert [p.name for p in folder.glob("last*.ckpt")] == ["last.ckpt"]
    elif kind == "bank_shard":
        from lift.latent_bank import LatentBank

        bank = LatentBank.open(folder / "bank")
        bank.check_complete()
        assert torch.equal(bank.tensor(), torch.full((2, 4, 8), 1.0))
    elif kind == "texture":
        from lift.data.io import read_texture

        assert torch.allclose(read_texture(folder / "studio" / "s0.png"),
                              torch.full((3, 256, 256), 0.25), atol=1e-4)
        # readers of texture folders skip dot files (FolderSource, lift data synth, the report)
        assert [p.name for p in (folder / "studio").glob("*.png")
                if not p.name.startswith(".")] == ["s0.png"]
    elif kind == "table":
        assert json.loads((folder / "tables" / "table1.json").read_text()) == {"version": 1}
    elif kind == "report_image":
        from PIL import Image

        assert (np.asarray(Image.open(folder / "report" / "a.png")) == 60).all()
    elif kind == "run_record":
        from lift.run.record import RunRecord

        assert RunRecord.load(folder).data["status"] == "version 1"


KINDS = ["checkpoint", "bank_shard", "texture", "table", "report_image", "run_record"]


@pytest.mark.parametrize("mode", ["partial", pytest.param("rename", marks=pytest.mark.slow)])
def test_a_write_killed_midway_leaves_the_earlier_file(tmp_path, mode):
    for kind in KINDS:
        folder = tmp_path / kind
        proc = subprocess.run([sys.executable, str(TESTS / "atomic_kill_writer.py"), kind,
                               str(folder), mode], env=env(), capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == -signal.SIGKILL, (kind, proc.stdout, proc.stderr[-2000:])
        left = [p for p in folder.rglob(".*.tmp*")]
        assert left, f"{kind}: the kill came before the temporary file was written"
        _check_earlier(kind, folder)
