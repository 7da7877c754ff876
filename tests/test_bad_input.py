"""The bad-input corpus (issue 13): every case one clear error naming the file or key.

Each case builds its bad input in a fresh directory that also holds what a user would have
written before (a good checkpoint, a complete latent bank, a data folder, an earlier run), runs
one thing (the ``lift`` command in this process where it can, an API call for the library
cases), and checks:

* it fails: a non-zero exit code through the CLI, an exception otherwise;
* the first line of stderr (the exception's first line) matches the case's regex, which names
  the file or key and says what is wrong;
* nothing under the directory changed: every file's bytes are hashed before and after, so no
  earlier output was touched and no partial output was left behind.

The cases are listed in docs/architecture.md ("Bad input"). Only the disabled-plugin case needs
a subprocess (a disabled plugin's package must not be importable, which this process already
imported).
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import pickle
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest
import torch
import yaml

from lift.cli import main
from lift.data.io import write_texture

pytestmark = pytest.mark.bad_input

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
CPU = str(CONFIGS / "trainer" / "cpu.yaml")
PHONE_FIT = str(CONFIGS / "translate" / "phone_texture_quickstart.yaml")
PIPELINE = str(CONFIGS / "pipeline" / "studio.yaml")
MARKER = "PWNED"  # the file a hostile payload would create


# --- the world a case starts from -----------------------------------------------------------


def _texture(seed: int, size: int = 8, channels: int = 3) -> torch.Tensor:
    t = torch.rand(channels, size, size, generator=torch.Generator().manual_seed(seed))
    return (t * 65535).round() / 65535 if channels == 3 else (t > 0.3).float()


def make_folder(root: Path, size: int = 8) -> Path:
    """phone a b c, studio a b c, masks a b: a valid folder dataset."""
    for i, stem in enumerate("abc"):
        write_texture(root / "phone" / f"{stem}.png", _texture(i, size))
        write_texture(root / "studio" / f"{stem}.png", _texture(10 + i, size))
    for i, stem in enumerate("ab"):
        write_texture(root / "masks" / f"{stem}.png", _texture(20 + i, size, 1), bits=8)
    return root


def prior_like_checkpoint(path: Path) -> Path:
    """A checkpoint as the prior stage writes it (its components and state-dict prefixes)."""
    torch.save({"state_dict": {"generator.w": torch.zeros(2), "discriminator.w": torch.ones(2)},
                "lift_components": {
                    "generator": {"class_path": "lift_stylegan2.networks.Generator",
                                  "init_args": {}},
                    "discriminator": {"class_path": "lift_stylegan2.networks.Discriminator",
                                      "init_args": {}}},
                "global_step": 7}, path)
    return path


def make_bank(root: Path, generator: torch.nn.Module) -> Path:
    """A complete 2-shard bank of 4 stems inverted with ``generator``."""
    from lift.latent_bank import (BankLayout, LatentBankWriter, make_manifest,
                                  state_dict_fingerprint)

    layout = BankLayout.from_stems(["a", "b", "c", "d"], 2)
    manifest = make_manifest(layout, num_ws=3, w_dim=4, generator={
        "fingerprint": state_dict_fingerprint(generator), "checkpoint": "prior/last.ckpt"})
    writer = LatentBankWriter(root, manifest)
    writer.prepare()
    for k in range(layout.num_shards):
        stems = list(layout.shard_stems(k))
        n = len(stems)
        writer.write_shard(k, stems, torch.randn(n, 3, 4, generator=torch.Generator()
                                                 .manual_seed(k)),
                           {"final_loss": torch.zeros(n), "mse": torch.zeros(n),
                            "perceptual": torch.zeros(n),
                            "steps": torch.zeros(n, dtype=torch.int64)})
    writer.write_index()
    return root


def _generator(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Linear(2, 2)


class Evil:
    """A pickle payload: unpickling it calls open(<marker>, "w"), which creates the file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """What the user wrote before each case (copied into every case's directory)."""
    d = tmp_path_factory.mktemp("world")
    run = d / "run"
    run.mkdir()
    good = prior_like_checkpoint(run / "last.ckpt")
    (d / "good.ckpt").write_bytes(good.read_bytes())
    make_bank(d / "bank", _generator(0))
    make_folder(d / "data")
    (run / "run.json").write_text(json.dumps({"version": 1, "status": "done"}))
    return d


def tree_digest(root: Path) -> dict[str, str]:
    """Every file (and symbolic link) under ``root``: relative path -> sha256 of its bytes."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "link:" + os.readlink(path)
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir():
            out[rel] = "dir"
    return out


# --- the corpus ------------------------------------------------------------------------------


@dataclass
class Case:
    """``setup(d)`` writes the bad input under ``d`` and returns what to run: a list of
    ``lift`` arguments (the CLI, in this process), or a callable (an API call)."""

    id: str
    setup: Callable[[Path], list[str] | Callable[[], object]]
    expect: str  # a regex for the first line of stderr / of the exception's message
    error: type[BaseException] = Exception
    subprocess: bool = False


CASES: list[Case] = []


def case(id: str, expect: str, **kwargs):
    def register(setup):
        CASES.append(Case(id, setup, expect, **kwargs))
        return setup
    return register


def _folder(d: Path):
    from lift.data import FolderSource

    return lambda: FolderSource(str(d / "data"))


def _fit(d: Path, *extra: str) -> list[str]:
    return ["fit", "--config", PHONE_FIT, "--config", CPU,
            f"--trainer.default_root_dir={d / 'run'}", *extra]


def _yaml(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def q(path: Path | str) -> str:
    return re.escape(str(path))


# data folders ---------------------------------------------------------------------------------

@case("data/zero-byte-png", r"data/phone/a\.png: not a PNG file or truncated header")
def _(d):
    (d / "data" / "phone" / "a.png").write_bytes(b"")
    return _folder(d)


@case("data/truncated-png", r"data/phone/b\.png: unreadable, truncated or corrupt image file")
def _(d):
    path = d / "data" / "phone" / "b.png"
    path.write_bytes(path.read_bytes()[:60])  # the header survives: found when read
    from lift.data import FolderSource

    return lambda: FolderSource(str(d / "data")).load("b", "phone")


@case("data/rgba-studio", r"data/studio/b\.png: has 4 channel\(s\), expected 3 RGB channels")
def _(d):
    cv2.imwrite(str(d / "data" / "studio" / "b.png"), np.zeros((8, 8, 4), np.uint16))
    return _folder(d)


@case("data/grey-phone", r"data/phone/c\.png: has 1 channel\(s\), expected 3 RGB channels")
def _(d):
    cv2.imwrite(str(d / "data" / "phone" / "c.png"), np.zeros((8, 8), np.uint16))
    return _folder(d)


@case("data/rgb-mask", r"data/masks/a\.png: has 3 channel\(s\), expected 1 grey channel")
def _(d):
    write_texture(d / "data" / "masks" / "a.png", _texture(3))
    return _folder(d)


@case("data/size-mismatch",
      r"data/phone/c\.png: size 16x16 differs from the 8x8 of the other phone textures")
def _(d):
    write_texture(d / "data" / "phone" / "c.png", _texture(5, size=16))
    return _folder(d)


@case("data/mask-size-mismatch",
      r"data/masks/b\.png: mask size 4x4 differs from its phone texture b\.png \(8x8\)")
def _(d):
    write_texture(d / "data" / "masks" / "b.png", _texture(5, 4, 1), bits=8)
    return _folder(d)


@case("data/non-square", r"data/studio/c\.png: texture is not square \(6x8\)")
def _(d):
    write_texture(d / "data" / "studio" / "c.png", torch.zeros(3, 8, 6))
    return _folder(d)


@case("data/nan-in-float-tif", r"data/phone/a\.tif: contains 3 NaN/Inf value\(s\)")
def _(d):
    (d / "data" / "phone" / "a.png").unlink()
    arr = np.full((8, 8, 3), 0.5, np.float32)
    arr[0, 0, 0] = arr[1, 1, 1] = np.nan
    arr[2, 2, 2] = np.inf
    cv2.imwrite(str(d / "data" / "phone" / "a.tif"), arr)
    from lift.data import FolderSource

    return lambda: FolderSource(str(d / "data")).load("a", "phone")


@case("data/split-names-a-missing-stem",
      r"data/splits/phone_train\.txt: stem 'zz' has no phone/ file, but split phone_train "
      r"needs one")
def _(d):
    (d / "data" / "splits").mkdir()
    (d / "data" / "splits" / "phone_train.txt").write_text("a\nzz\n")
    return _folder(d)


@case("data/split-path-traversal",
      r"data/splits/paired_test\.txt:2: '\.\./\.\./secret' is a path, not a file stem")
def _(d):
    (d / "data" / "splits").mkdir()
    (d / "data" / "splits" / "paired_test.txt").write_text("a\n../../secret\n")
    (d / "secret.png").write_bytes(b"not yours")
    return _folder(d)


@case("data/split-absolute-path",
      r"data/splits/unpaired_test\.txt:1: '/etc/passwd' is a path, not a file stem")
def _(d):
    (d / "data" / "splits").mkdir()
    (d / "data" / "splits" / "unpaired_test.txt").write_text("/etc/passwd\n")
    return _folder(d)


@case("data/paired-stem-missing-studio",
      r"data/splits/paired_train\.txt: stem 'x' has no studio/ file, but split paired_train")
def _(d):
    write_texture(d / "data" / "phone" / "x.png", _texture(7))
    (d / "data" / "splits").mkdir()
    (d / "data" / "splits" / "paired_train.txt").write_text("a\nx\n")
    return _folder(d)


@case("data/mask-without-phone", r"data/masks/z\.png: mask without a phone/z\.\* texture")
def _(d):
    write_texture(d / "data" / "masks" / "z.png", _texture(8, channels=1), bits=8)
    return _folder(d)


@case("data/empty-split", r"FolderSource\('.*/data'\): split paired_test is empty")
def _(d):
    from lift.data import FolderSource, TextureDataset

    return lambda: TextureDataset(FolderSource(str(d / "data")), "paired_test")


@case("data/test-stem-trained-on",
      r"data/splits/phone_train\.txt: stem 'b' is also in test split paired_test")
def _(d):
    (d / "data" / "splits").mkdir()
    (d / "data" / "splits" / "paired_test.txt").write_text("b\n")
    (d / "data" / "splits" / "phone_train.txt").write_text("a\nb\n")
    return _folder(d)


@case("data/unsupported-file", r"data/phone/notes\.txt: unsupported extension or not a file")
def _(d):
    (d / "data" / "phone" / "notes.txt").write_text("hi")
    return _folder(d)


@case("data/no-phone-or-studio", r"empty: has neither a phone/ nor a studio/ folder")
def _(d):
    (d / "empty").mkdir()
    from lift.data import FolderSource

    return lambda: FolderSource(str(d / "empty"))


@case("data/through-lift-fit",
      r"^lift: error: TextureError: .*data/phone/a\.png: not a PNG file or truncated header")
def _(d):
    (d / "data" / "phone" / "a.png").write_bytes(b"")
    return _fit(d, "--data.init_args.source=lift.data.FolderSource",
                f"--data.init_args.source.init_args.root={d / 'data'}")


# configs --------------------------------------------------------------------------------------

@case("config/invalid-yaml",
      r"^lift: error: .*bad\.yaml: cannot read YAML \(while parsing a flow sequence .* line 1, "
      r"column 10.*\)")
def _(d):
    (d / "bad.yaml").write_text("trainer: [unclosed\n")
    return _fit(d, "--config", str(d / "bad.yaml"))


@case("config/unknown-key-in-file",
      r"^lift: error: trainer\.max_stepz: .*does not accept option 'trainer\.max_stepz' "
      r"\(set in .*typo\.yaml\)")
def _(d):
    return _fit(d, "--config", str(_yaml(d / "typo.yaml", {"trainer": {"max_stepz": 3}})))


@case("config/unknown-key-on-command-line",
      r"^lift: error: trainer\.max_stepz: .*trainer\.max_stepz.*\(set on the command line\)")
def _(d):
    return _fit(d, "--trainer.max_stepz=3")


@case("config/wrong-type",
      r"^lift: error: trainer\.max_steps: Expected a <class 'int'>\. Got value: lots "
      r"\(set in .*type\.yaml\)")
def _(d):
    return _fit(d, "--config", str(_yaml(d / "type.yaml", {"trainer": {"max_steps": "lots"}})))


@case("config/missing-required-key",
      r"^lift: error: model: class_path 'lift\.stages\.translation\.TranslationModule': the "
      r"following arguments are required: translator, optimizers \(set in .*stage\.yaml\)")
def _(d):
    stage = _yaml(d / "stage.yaml", {
        "model": {"class_path": "lift.stages.translation.TranslationModule"}})
    return ["fit", "--config", str(stage), "--config", CPU]


@case("config/missing-file", r"^lift: error: .*nope\.yaml: config file not found")
def _(d):
    return _fit(d, "--config", str(d / "nope.yaml"))


@case("config/not-a-mapping", r"^lift: error: .*list\.yaml: a config must be a YAML mapping")
def _(d):
    (d / "list.yaml").write_text("- 1\n- 2\n")
    return _fit(d, "--config", str(d / "list.yaml"))


@case("config/symlink-loop",
      r"^lift: error: .*loop_a\.yaml: config file is a broken symbolic link \(Too many levels "
      r"of symbolic links\)")
def _(d):
    (d / "loop_a.yaml").symlink_to(d / "loop_b.yaml")
    (d / "loop_b.yaml").symlink_to(d / "loop_a.yaml")
    return _fit(d, "--config", str(d / "loop_a.yaml"))


@case("config/extends-cycle",
      r"^lift: error: .*cyc2\.yaml: 'extends' cycle: .*cyc1\.yaml -> .*cyc2\.yaml -> "
      r".*cyc1\.yaml")
def _(d):
    (d / "cyc1.yaml").write_text("extends: cyc2.yaml\n")
    (d / "cyc2.yaml").write_text("extends: cyc1.yaml\n")
    return _fit(d, "--config", str(d / "cyc1.yaml"))


@case("config/extends-missing-file",
      r"^lift: error: .*ext\.yaml: extends a missing file .*gone\.yaml")
def _(d):
    (d / "ext.yaml").write_text("extends: gone.yaml\ntrainer: {max_steps: 1}\n")
    return _fit(d, "--config", str(d / "ext.yaml"))


# checkpoints ----------------------------------------------------------------------------------

@case("ckpt/resume-truncated",
      r"^lift: error: --ckpt_path: checkpoint .*trunc\.ckpt is truncated or corrupt")
def _(d):
    (d / "trunc.ckpt").write_bytes((d / "good.ckpt").read_bytes()[:300])
    return _fit(d, f"--ckpt_path={d / 'trunc.ckpt'}")


@case("ckpt/resume-random-bytes",
      r"^lift: error: --ckpt_path: checkpoint .*random\.ckpt is not a torch checkpoint")
def _(d):
    (d / "random.ckpt").write_bytes(np.random.default_rng(0).bytes(4096))
    return _fit(d, f"--ckpt_path={d / 'random.ckpt'}")


@case("ckpt/resume-zero-bytes", r"^lift: error: --ckpt_path: checkpoint .*empty\.ckpt is empty")
def _(d):
    (d / "empty.ckpt").write_bytes(b"")
    return _fit(d, f"--ckpt_path={d / 'empty.ckpt'}")


@case("ckpt/resume-missing", r"^lift: error: --ckpt_path: checkpoint .*gone\.ckpt does not exist")
def _(d):
    return _fit(d, f"--ckpt_path={d / 'gone.ckpt'}")


@case("ckpt/resume-pickle-with-code",
      r"^lift: error: --ckpt_path: checkpoint .*evil\.ckpt is refused: it holds a pickled "
      r"(io|builtins)\.open, which loading with weights_only=True never runs")
def _(d):
    torch.save({"state_dict": {}, "payload": Evil(d / MARKER)}, d / "evil.ckpt")
    return _fit(d, f"--ckpt_path={d / 'evil.ckpt'}")


@case("ckpt/resume-wrong-stage",
      r"^lift: error: --ckpt_path: checkpoint .*run/last\.ckpt is another stage's: it records "
      r"the components \['discriminator', 'generator'\], the translate stage's model records "
      r"\['translator'\]")
def _(d):
    return _fit(d, f"--ckpt_path={d / 'run' / 'last.ckpt'}")


def _pipeline(d: Path, translator: Path) -> list[str]:
    return ["predict", "--config", PIPELINE, "--config", CPU,
            f"--trainer.default_root_dir={d / 'run'}",
            f"--model.init_args.translator={translator}", "--model.init_args.upsampler=null"]


@case("ckpt/pipeline-truncated",
      r"^lift: error: CheckpointError: checkpoint .*trunc\.ckpt is truncated or corrupt")
def _(d):
    (d / "trunc.ckpt").write_bytes((d / "good.ckpt").read_bytes()[:-200])
    return _pipeline(d, d / "trunc.ckpt")


@case("ckpt/pipeline-random-bytes",
      r"^lift: error: CheckpointError: checkpoint .*random\.ckpt is not a torch checkpoint")
def _(d):
    (d / "random.ckpt").write_bytes(np.random.default_rng(1).bytes(4096))
    return _pipeline(d, d / "random.ckpt")


@case("ckpt/pipeline-pickle-with-code",
      r"^lift: error: CheckpointError: checkpoint .*evil\.ckpt is refused: it holds a pickled "
      r"(io|builtins)\.open")
def _(d):
    torch.save({"state_dict": {"translator.w": Evil(d / MARKER)}}, d / "evil.ckpt")
    return _pipeline(d, d / "evil.ckpt")


@case("ckpt/pipeline-wrong-stage",
      r"^lift: error: CheckpointError: checkpoint .*good\.ckpt records no 'translator' component "
      r"\(it records \['discriminator', 'generator'\]\): another stage's checkpoint")
def _(d):
    return _pipeline(d, d / "good.ckpt")


@case("ckpt/spec-naming-a-callable",
      r"^lift: error: CheckpointError: .*hostile\.ckpt: translator: 'subprocess\.Popen' is not "
      r"a lift component class; refusing to build it")
def _(d):
    torch.save({"state_dict": {"translator.w": torch.zeros(1)}, "lift_components": {
        "translator": {"class_path": "subprocess.Popen",
                       "init_args": {"args": ["touch", str(d / MARKER)]}}}}, d / "hostile.ckpt")
    return _pipeline(d, d / "hostile.ckpt")


@case("ckpt/spec-naming-a-module-outside-lift",
      r"^lift: error: CheckpointError: .*outside\.ckpt: translator: "
      r"'lift_bad_input_payload\.Thing' is not in lift or a lift plugin; refusing to import it")
def _(d):
    (d / "lift_bad_input_payload.py").write_text(
        f"open({str(d / MARKER)!r}, 'w').close()\nclass Thing: pass\n")
    sys.path.insert(0, str(d))  # importable, were it imported (the check runs before)
    torch.save({"state_dict": {}, "lift_components": {
        "translator": {"class_path": "lift_bad_input_payload.Thing", "init_args": {}}}},
        d / "outside.ckpt")
    return _pipeline(d, d / "outside.ckpt")


@case("ckpt/bare-pickle-protocol-2-with-code",
      r"checkpoint .*legacy\.ckpt is refused: it holds a pickled (io|builtins)\.open")
def _(d):
    (d / "legacy.ckpt").write_bytes(pickle.dumps({"state_dict": Evil(d / MARKER)}, protocol=2))
    from lift.checkpoints import read_checkpoint

    return lambda: read_checkpoint(d / "legacy.ckpt")


@case("ckpt/bare-pickle-protocol-4-with-code",
      r"checkpoint .*legacy\.ckpt is refused: a bare pickle \(protocol 4\), not a torch "
      r"checkpoint; it was not unpickled, so nothing in it ran")
def _(d):
    (d / "legacy.ckpt").write_bytes(pickle.dumps({"state_dict": Evil(d / MARKER)}, protocol=4))
    from lift.checkpoints import read_checkpoint

    return lambda: read_checkpoint(d / "legacy.ckpt")


# latent banks ---------------------------------------------------------------------------------

def _open_bank(d: Path, complete: bool = True):
    from lift.latent_bank import LatentBank

    def go():
        bank = LatentBank.open(d / "bank")
        if complete:
            bank.check_complete()
        return bank
    return go


@case("bank/missing-shard",
      r"latent bank .*bank is incomplete: 1 of 2 shards missing \(first: "
      r"shard_00001\.safetensors\)")
def _(d):
    (d / "bank" / "shard_00001.safetensors").unlink()
    return _open_bank(d)


@case("bank/truncated-shard",
      r"bank/shard_00000\.safetensors: truncated or corrupt bank shard")
def _(d):
    shard = d / "bank" / "shard_00000.safetensors"
    shard.write_bytes(shard.read_bytes()[:-40])
    return _open_bank(d)


@case("bank/shard-of-another-bank",
      r"bank/shard_00001\.safetensors: shard 1 holds w_plus of shape \(2, 5, 4\), the manifest "
      r"says \(2, 3, 4\); the shard is from another bank")
def _(d):
    from safetensors.torch import save_file

    save_file({"w_plus": torch.zeros(2, 5, 4)}, str(d / "bank" / "shard_00001.safetensors"),
              metadata={"stems": json.dumps(["c", "d"])})
    return _open_bank(d)


@case("bank/manifest-missing", r"bank is not a latent bank \(no manifest\.json\)")
def _(d):
    (d / "bank" / "manifest.json").unlink()
    return _open_bank(d)


@case("bank/manifest-corrupt", r"bank/manifest\.json: corrupt bank manifest, not valid JSON")
def _(d):
    manifest = d / "bank" / "manifest.json"
    manifest.write_text(manifest.read_text()[:25])
    return _open_bank(d)


@case("bank/manifest-field-missing",
      r"bank/manifest\.json: corrupt bank manifest: 'num_ws' is missing or not an int")
def _(d):
    manifest = d / "bank" / "manifest.json"
    data = json.loads(manifest.read_text())
    del data["num_ws"]
    manifest.write_text(json.dumps(data))
    return _open_bank(d)


@case("bank/another-generator",
      r"latent bank .*bank was inverted with the generator of prior/last\.ckpt \(fingerprint "
      r"\w+\), but is used with the generator of other/last\.ckpt")
def _(d):
    from lift.latent_bank import LatentBank, check_bank_generator

    return lambda: check_bank_generator(LatentBank.open(d / "bank"), _generator(1),
                                        "other/last.ckpt")


@case("bank/resume-into-another-runs-bank",
      r"latent bank .*bank was written by another run: its manifest differs in \['generator'\]")
def _(d):
    from lift.latent_bank import BankLayout, LatentBankWriter, make_manifest

    manifest = make_manifest(BankLayout.from_stems(["a", "b", "c", "d"], 2), num_ws=3, w_dim=4,
                             generator={"fingerprint": "0" * 64, "checkpoint": "x.ckpt"})
    return LatentBankWriter(d / "bank", manifest).prepare


# plugins --------------------------------------------------------------------------------------

@case("plugin/disabled-plugin-by-full-path",
      r"^lift: error: model\.init_args\.generator: class_path "
      r"'lift_stylegan2\.networks\.Generator': lift_stylegan2 belongs to the lift plugin "
      r"'stylegan2', which is disabled", subprocess=True)
def _(d):
    return ["--disable-plugins", "stylegan2", "fit", "--config",
            str(CONFIGS / "prior" / "stylegan2_quickstart.yaml"), "--config", CPU,
            f"--trainer.default_root_dir={d / 'run'}", "--print_config"]


@case("plugin/class-outside-lift",
      r"^lift: error: model\.init_args\.translator: Import path torch\.nn\.Linear does not "
      r"correspond to a subclass of Translator \(set in .*outside\.yaml\)")
def _(d):
    overlay = _yaml(d / "outside.yaml", {"model": {"init_args": {"translator": {
        "class_path": "torch.nn.Linear", "init_args": {"in_features": 1, "out_features": 1}}}}})
    return _fit(d, "--config", str(overlay))


@case("plugin/callable-as-component",
      r"^lift: error: model\.init_args\.translator: Import path os\.system does not correspond "
      r"to a subclass of Translator \(set on the command line\)")
def _(d):
    return _fit(d, "--model.init_args.translator=os.system")


@case("plugin/unknown-class-path",
      r"^lift: error: model\.init_args\.translator: class_path "
      r"'lift_baselines\.baselines\.NoSuchTranslator': module 'lift_baselines\.baselines' has "
      r"no attribute 'NoSuchTranslator'")
def _(d):
    return _fit(d, "--model.init_args.translator=lift_baselines.baselines.NoSuchTranslator")


# the run recipe -------------------------------------------------------------------------------

def _recipe(d: Path, edit: Callable[[dict], None]) -> list[str]:
    recipe = {
        "name": "bad", "trainer": [CPU],
        "stages": {
            "a": {"command": "fit", "configs": [PHONE_FIT], "outputs": {"checkpoint": "last.ckpt"}},
            "b": {"command": "fit", "configs": [PHONE_FIT], "outputs": {"checkpoint": "last.ckpt"},
                  "inputs": {"model.init_args.init": "a.checkpoint"}},
        },
        "methods": {"m": {"configs": [PIPELINE], "splits": ["paired_test"],
                          "inputs": {"model.init_args.translator": "b.checkpoint"}}},
        "tables": [{"table": 1, "split": "paired_test", "metrics": ["psnr"],
                    "rows": {"ours": "m"}}],
    }
    edit(recipe)
    path = _yaml(d / "recipe.yaml", recipe)
    return ["run", "--config", str(path), "--out", str(d / "run")]


@case("recipe/unknown-stage-input",
      r"^lift run: error: .*recipe\.yaml: stages\.b\.inputs\[model\.init_args\.init\]: unknown "
      r"stage 'priorr'")
def _(d):
    return _recipe(d, lambda r: r["stages"]["b"].update(
        inputs={"model.init_args.init": "priorr.checkpoint"}))


@case("recipe/stage-cycle",
      r"^lift run: error: .*recipe\.yaml: stages: input cycle: a -> b \(needs a\) -> a "
      r"\(needs b\)")
def _(d):
    return _recipe(d, lambda r: r["stages"]["a"].update(
        inputs={"model.init_args.init": "b.checkpoint"}))


@case("recipe/unknown-command",
      r"^lift run: error: .*recipe\.yaml: stages\.a\.command: unknown command 'train'")
def _(d):
    return _recipe(d, lambda r: r["stages"]["a"].update(command="train"))


@case("recipe/missing-config-file",
      r"^lift run: error: .*recipe\.yaml: stages\.a\.configs\[0\]: config file not found: "
      r".*missing\.yaml")
def _(d):
    return _recipe(d, lambda r: r["stages"]["a"].update(configs=[str(d / "missing.yaml")]))


@case("recipe/table-row-unknown-method",
      r"^lift run: error: .*recipe\.yaml: tables\[0\]\.rows\.cut: unknown method 'cut'")
def _(d):
    return _recipe(d, lambda r: r["tables"][0]["rows"].update(cut="cut"))


@case("recipe/only-unknown-method",
      r"^lift run: error: --only nosuch: not a stage or method of .*recipe\.yaml")
def _(d):
    return [*_recipe(d, lambda r: None), "--only", "nosuch"]


@case("recipe/unknown-key", r"^lift run: error: .*recipe\.yaml: stages\.a\.argz: unknown key")
def _(d):
    return _recipe(d, lambda r: r["stages"]["a"].update(argz={"trainer.max_steps": 1}))


# --- the test --------------------------------------------------------------------------------


def _first_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip()), "")


def _run_cli(argv: list[str], capfd) -> tuple[int, str]:
    capfd.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    return code, capfd.readouterr().err


def _run_subprocess(argv: list[str], cwd: Path) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LIFT_TRACEBACK",
                                                            "LIFT_DISABLE_PLUGINS")}
    proc = subprocess.run([sys.executable, "-m", "lift.cli", *argv], cwd=cwd,
                          capture_output=True, text=True, timeout=240, env=env)
    return proc.returncode, proc.stderr


def test_the_corpus_has_at_least_30_cases_in_every_group():
    groups = {c.id.split("/")[0] for c in CASES}
    assert groups == {"data", "config", "ckpt", "bank", "plugin", "recipe"}
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("bad", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_one_clear_error_and_touches_nothing(bad: Case, template, tmp_path,
                                                             capfd, monkeypatch):
    import shutil

    monkeypatch.delenv("LIFT_TRACEBACK", raising=False)
    monkeypatch.chdir(ROOT)
    d = tmp_path / "case"
    shutil.copytree(template, d, symlinks=True)
    saved_path = list(sys.path)
    try:
        action = bad.setup(d)
        before = tree_digest(d)
        if isinstance(action, list):
            code, err = (_run_subprocess(action, d) if bad.subprocess
                         else _run_cli(action, capfd))
            assert code not in (0, None), f"{bad.id}: exit code {code}\n{err[-2000:]}"
            first = _first_line(err)
            assert "Traceback" not in err, err[-3000:]
        else:
            with pytest.raises(bad.error) as info:
                action()
            first = _first_line(str(info.value))
    finally:
        sys.path[:] = saved_path
        sys.modules.pop("lift_bad_input_payload", None)
    assert re.search(bad.expect, first), f"{bad.id}: first line\n  {first}\ndoes not match\n  " \
                                         f"{bad.expect}"
    assert not (d / MARKER).exists(), "a hostile payload ran"
    assert tree_digest(d) == before, "a file was written, changed or removed"


def test_the_pickle_payload_would_write_its_file_if_it_were_unpickled(tmp_path):
    """The refusal above means something: this payload does create the marker when run."""
    marker = tmp_path / MARKER
    pickle.loads(pickle.dumps(Evil(marker)))  # trusted here: the test's own payload
    assert marker.exists()


def test_every_torch_load_in_lift_and_plugins_is_weights_only():
    """No torch.load without weights_only=True (a pickle must never run code)."""
    offenders = []
    for base in (ROOT / "lift", ROOT / "plugins"):
        for path in base.rglob("*.py"):
            text = path.read_text()
            for m in re.finditer(r"torch\.load\(", text):
                depth, end = 0, m.end() - 1
                for end in range(m.end() - 1, len(text)):  # the call's closing parenthesis
                    depth += {"(": 1, ")": -1}.get(text[end], 0)
                    if depth == 0:
                        break
                call = text[m.start():end + 1]
                line = text.count("\n", 0, m.start()) + 1
                if "weights_only=True" not in call:
                    offenders.append(f"{path.relative_to(ROOT)}:{line}: {call}")
    assert not offenders, offenders


def test_resuming_asks_lightning_for_weights_only(tmp_path, monkeypatch):
    """`lift fit --ckpt_path` passes weights_only=True to Lightning (not its None default)."""
    import functools

    import lightning.pytorch as pl

    from lift import cli

    seen = {}

    @functools.wraps(pl.Trainer.fit)  # the same signature: the parser offers the same options
    def fake_fit(self, model, **kwargs):
        seen.update(kwargs)

    monkeypatch.setattr(pl.Trainer, "fit", fake_fit)
    code = cli.main(_fit(tmp_path, "--trainer.logger=false"))
    assert code == 0 and seen.get("weights_only") is True
