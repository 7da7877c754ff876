"""`lift run`: recipe validation, a toy recipe end to end, skip / rerun / resume / failure,
--dry-run, the evaluator and report hooks, and the shipped quickstart recipe.

The toy stages (a linear layer on random vectors, written to a temporary module) run through
the real `lift fit` / `lift predict` subprocesses in a few seconds each."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import torch
import yaml
from config_leaves import leaves

from lift.cli import TOP_HELP, main
from lift.run.fingerprint import print_config
from lift.run.plan import _writer_flags, build_units, resolve
from lift.run.recipe import RecipeError, load_recipe
from lift.run.runner import run

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "run" / "quickstart.yaml"

TOY_MODULE = '''
"""Toy stages for tests/test_run.py."""
import os
import time

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset


class Vectors(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x.sum(dim=1, keepdim=True)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"stem": f"item{i:03d}", "x": self.x[i], "y": self.y[i]}


class ToyData(pl.LightningDataModule):
    def __init__(self, n: int = 8, batch_size: int = 2, predict_split: str = "paired_test"):
        super().__init__()
        self.n, self.batch_size, self.predict_split = n, batch_size, predict_split

    def train_dataloader(self):
        return DataLoader(Vectors(self.n, 0), batch_size=self.batch_size)

    def predict_dataloader(self):
        return DataLoader(Vectors(4, len(self.predict_split)), batch_size=self.batch_size)


class ToyModule(pl.LightningModule):
    """`init`: an upstream checkpoint to start from; `sleep`: seconds per training step."""

    def __init__(self, lr: float = 0.01, init: str | None = None, sleep: float = 0.0):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.lr, self.sleep = lr, sleep
        if init is not None:
            state = torch.load(init, map_location="cpu", weights_only=True)["state_dict"]
            self.load_state_dict(state)

    def training_step(self, batch, batch_idx):
        if self.global_step == 0:  # what the stage process sees of the run's environment
            with open("/proc/self/environ", "rb") as fh:
                at_start = b"GLIBC_TUNABLES=" in fh.read()
            print(f"toy env cache={os.environ.get('LIFT_SYNTH_CACHE')} "
                  f"tunables_at_start={at_start}", flush=True)
        print(f"toy step {self.global_step}", flush=True)
        time.sleep(self.sleep)
        return (self.layer(batch["x"]) - batch["y"]).square().mean()

    def predict_step(self, batch, batch_idx):
        out = self.layer(batch["x"]).sigmoid()
        image = (out[:, :, None, None] * torch.ones(1, 3, 4, 4)).contiguous()
        return {"stem": list(batch["stem"]), "studio": image}

    def configure_optimizers(self):
        if self.lr <= 0:
            raise ValueError(f"ToyModule: lr must be > 0, got {self.lr}")
        return torch.optim.SGD(self.parameters(), lr=self.lr)
'''

# no `logger: false`: a resumed run in the same directory needs lift's default loggers (a new
# logs/version_N/ for LightningCLI's config.yaml; with logger false it goes to the root dir once)
QUIET = {"enable_progress_bar": False, "enable_model_summary": False}
TOY = {"model": {"class_path": "toy_run_stage.ToyModule"},
       "data": {"class_path": "toy_run_stage.ToyData"}}
CONFIGS = {
    "fit.yaml": {"trainer": {**QUIET, "max_steps": 4, "callbacks": [
        {"class_path": "lift.callbacks.StageCheckpoint",
         "init_args": {"save_top_k": 0, "every_n_train_steps": 5}}]}, **TOY},
    "pred.yaml": {"trainer": {**QUIET, "callbacks": [
        {"class_path": "lift.prediction_writer.TextureWriter"}]}, **TOY},
    "meth.yaml": {"trainer": dict(QUIET), **TOY},
}


def toy_recipe(d: Path) -> dict:
    """a (fit) -> b (fit) -> method m; a -> c (predict, writes textures)."""
    return {
        "name": "toy", "seeds": [0], "trainer": [str(d / "cpu.yaml")],
        "stages": {
            "a": {"command": "fit", "configs": [str(d / "fit.yaml")],
                  "args": {"trainer.max_steps": 3}, "outputs": {"checkpoint": "last.ckpt"}},
            "b": {"command": "fit", "configs": [str(d / "fit.yaml")],
                  "args": {"trainer.max_steps": 2},
                  "inputs": {"model.init_args.init": "a.checkpoint"},
                  "outputs": {"checkpoint": "last.ckpt"}},
            "c": {"command": "predict", "configs": [str(d / "pred.yaml")],
                  "inputs": {"model.init_args.init": "a.checkpoint"},
                  "outputs": {"textures": "predictions"}},
        },
        "methods": {"m": {"configs": [str(d / "meth.yaml")],
                          "inputs": {"model.init_args.init": "b.checkpoint"},
                          "splits": ["paired_test"]}},
    }


def write_recipe(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def record(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def units(run_dir: Path) -> dict[str, dict]:
    """run.json's stage and method runs by key: <stage>/seed<k>, <method>/seed<k>/<split>."""
    rec = record(run_dir)
    return {f"{name}/{sub}": entry for group in ("stages", "methods")
            for name, runs in rec.get(group, {}).items() for sub, entry in runs.items()}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The toy module and configs on the path (this process and the stage subprocesses)."""
    d = tmp_path_factory.mktemp("toy")
    (d / "toy_run_stage.py").write_text(TOY_MODULE)
    for name, data in CONFIGS.items():
        (d / name).write_text(yaml.safe_dump(data))
    (d / "cpu.yaml").write_text(yaml.safe_dump({"trainer": {"accelerator": "cpu",
                                                            "devices": 1}}))
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(d))
        mp.setenv("PYTHONPATH", os.pathsep.join([str(d), str(ROOT / "tests")]))
        mp.setenv("OMP_NUM_THREADS", "1")
        mp.chdir(ROOT)
        yield d


@pytest.fixture(scope="module")
def done_run(toy):
    """The toy recipe run once, end to end (4 stage subprocesses)."""
    out = toy / "run"
    recipe = write_recipe(toy / "toy.yaml", toy_recipe(toy))
    assert run(recipe, out=out, stream=False) == 0
    return out


def copy_run(done_run: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(done_run, out)
    return out


# --- recipe validation -----------------------------------------------------------------------


def test_recipe_errors_name_the_file_and_the_key(tmp_path, toy):
    data = toy_recipe(toy)
    data["stages"]["b"]["command"] = "train"
    data["stages"]["b"]["inputs"] = {"model.init_args.init": "nope.checkpoint"}
    data["stages"]["c"]["inputs"] = {"model.init_args.init": "a.weights"}
    data["stages"]["c"]["configs"] = [str(tmp_path / "missing.yaml")]
    data["stages"]["x"] = {"command": "fit", "configs": [str(toy / "fit.yaml")],
                           "inputs": {"model.init_args.init": "y.checkpoint"},
                           "outputs": {"checkpoint": "last.ckpt"}}
    data["stages"]["y"] = {"command": "fit", "configs": [str(toy / "fit.yaml")],
                           "inputs": {"model.init_args.init": "x.checkpoint"},
                           "args": {"trainer.default_root_dir": "elsewhere"},
                           "outputs": {"checkpoint": "last.ckpt"}}
    data["methods"]["m"]["bogus"] = 1
    data["tables"] = [{"table": 1, "split": "paired_test", "rows": {"ours": "ours"}}]
    path = write_recipe(tmp_path / "bad.yaml", data)
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    lines = str(err.value).splitlines()
    assert all(line.startswith(f"{path}: ") for line in lines), lines
    text = str(err.value)
    for expected in [
        "stages.b.command: unknown command 'train'",
        "stages.b.inputs[model.init_args.init]: unknown stage 'nope'",
        "stages.c.inputs[model.init_args.init]: stage 'a' declares no output 'weights'",
        f"stages.c.configs[0]: config file not found: {tmp_path / 'missing.yaml'}",
        "stages: input cycle: x -> y (needs x) -> x (needs y)",
        "stages.y.args[trainer.default_root_dir]: trainer.default_root_dir is set by the runner",
        "methods.m.bogus: unknown key",
        "tables[0].rows.ours: unknown method 'ours'",
    ]:
        assert expected in text, f"{expected!r} not in:\n{text}"
    # `lift run` prints them and exits 2 without running anything
    assert main(["run", "--config", str(path), "--out", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r").exists()


def test_top_help_lists_run_and_run_help(capsys):
    assert "  run " in TOP_HELP
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--dry-run" in out and "--only" in out and "run.json" in out


def test_shipped_quickstart_recipe_validates_and_its_stage_configs_parse(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    recipe = load_recipe(QUICKSTART)  # every config file exists, every input is declared
    assert list(recipe.stages)[:2] == ["prior", "invert"]
    assert {"ours", "ours_vanilla", "ours_inference_only", "ours_z", "agilegan", "cut",
            "cyclegan"} <= set(recipe.methods)
    assert {t["table"] for t in recipe.tables} == {1, 2, 3, 4}
    # every configs + args + inputs parse as LightningCLI reads them (no run)
    units = build_units(recipe, tmp_path / "run")  # the methods too: the pipeline config
    resolve(units, tmp_path / "run")
    invert = yaml.safe_load(units[1].resolved)
    assert invert["model"]["init_args"]["checkpoint"] == str(
        tmp_path / "run" / "stages" / "prior" / "seed0" / "last.ckpt")
    assert len({u.fingerprint for u in units}) == len(units)
    ours = yaml.safe_load(next(u for u in units if u.key == "ours/seed0/test").resolved)
    assert ours["data"]["init_args"]["predict_split"] == "test"  # both test splits at once
    assert ours["model"]["init_args"]["upsampler"].endswith(
        "stages/upsample_train_inference/seed0/last.ckpt")
    writers = [c for c in ours["trainer"]["callbacks"] if c["class_path"].endswith("TextureWriter")]
    assert [w["init_args"]["output_dir"] for w in writers] == [
        str(tmp_path / "run" / "predictions" / "ours" / "seed0")]


def test_shipped_cpu_ablation_recipe_runs_every_stage_on_the_cpu_profile_with_3_seeds(
        tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    recipe = load_recipe(ROOT / "configs" / "run" / "ablations_cpu.yaml")
    assert list(recipe.seeds) == [0, 1, 2]
    units = build_units(recipe, tmp_path / "run")
    per_seed = {seed: [u.key for u in units if u.key.split("/")[1] == seed]
                for seed in ("seed0", "seed1", "seed2")}
    assert len(units) == 3 * len(per_seed["seed0"])  # every stage and method, every seed
    resolve([u for u in units if u.key == "prior/seed1"], tmp_path / "run")
    resolve([u for u in units if u.key.split("/")[1] == "seed2"], tmp_path / "run")
    prior = yaml.safe_load(next(u for u in units if u.key == "prior/seed1").resolved)
    assert prior["data"]["init_args"]["source"]["init_args"]["profile"] == "cpu"
    assert prior["trainer"]["max_steps"] == 600 and prior["seed_everything"] == 1
    ours = yaml.safe_load(next(u for u in units if u.key == "ours/seed2/test").resolved)
    assert ours["data"]["init_args"]["source"]["init_args"]["profile"] == "cpu"
    assert ours["trainer"]["precision"] == "bf16-auto"
    invert = yaml.safe_load(next(u for u in units if u.key == "invert/seed2").resolved)
    settings = invert["model"]["init_args"]["settings"]
    assert settings["class_path"] == "lift.inversion.encoder.EncoderInversionSettings"
    assert settings["init_args"]["schedule"]["init_args"]["steps"] == 3
    # `null` removed the inherited *_diffusion rows; the Table 3/4 variants predict paired_test
    assert "cut_diffusion" not in recipe.methods and "cut_diffusion" in load_recipe(
        QUICKSTART).methods
    assert recipe.methods["ours_z"].splits == ("paired_test",)
    # The per-session shards are the same units of the same run directory.
    for name, seeds in (("ablations_cpu_seed0", ["seed0"]),
                        ("ablations_cpu_seeds01", ["seed0", "seed1"]),
                        ("ablations_cpu_seeds12", ["seed1", "seed2"])):
        shard = load_recipe(ROOT / "configs" / "run" / f"{name}.yaml")
        assert shard.name == recipe.name, name
        keys = [u.key for u in build_units(shard, tmp_path / "run")]
        assert keys == [u.key for u in units if u.key.split("/")[1] in seeds], name


def test_shipped_cpu32_recipe_moves_the_prior_chain_to_32_and_shares_the_rest(
        tmp_path, monkeypatch):
    from lift_stylegan2.networks import SynthesisNetwork
    monkeypatch.chdir(ROOT)
    recipe = load_recipe(ROOT / "configs" / "run" / "ablations_cpu32.yaml")
    assert list(recipe.seeds) == [0, 1, 2] and recipe.name == "ablations_cpu32"
    units = {u.key: u for u in build_units(recipe, tmp_path / "a")}
    shared = ("translate_cut/seed1", "translate_cyclegan/seed1", "translate_mean_fill/seed1",
              "translate_symmetric_completion/seed1", "cut/seed1/test")
    moved = ("prior/seed1", "invert/seed1", "translate_agilegan/seed1",
             "upsample_train_inference/seed1", "upsample_srresnet/seed1")
    resolve([units[k] for k in shared + moved], tmp_path / "a")
    base = {u.key: u for u in build_units(
        load_recipe(ROOT / "configs" / "run" / "ablations_cpu_seeds12.yaml"), tmp_path / "b")}
    resolve([base[k] for k in shared + moved], tmp_path / "b")
    for key in shared:  # copied from an ablations_cpu run directory, then skipped
        assert units[key].fingerprint == base[key].fingerprint, key
    for key in moved:
        assert units[key].fingerprint != base[key].fingerprint, key
    cfg = {k: yaml.safe_load(units[k].resolved) for k in moved}
    prior = cfg["prior/seed1"]["model"]["init_args"]
    assert prior["generator"]["init_args"]["resolution"] == 32 and prior["augment"] is None
    assert cfg["prior/seed1"]["trainer"]["max_steps"] == 10000
    assert cfg["prior/seed1"]["trainer"]["max_time"] is None
    assert cfg["invert/seed1"]["data"]["init_args"]["resolution"] == 32
    encoder = cfg["translate_agilegan/seed1"]["model"]["init_args"]["translator"]["init_args"][
        "encoder"]["init_args"]
    assert encoder["ws_resolutions"] == SynthesisNetwork(resolution=32).ws_resolutions
    for key in ("upsample_train_inference/seed1", "upsample_srresnet/seed1"):
        model = cfg[key]["model"]["init_args"]
        assert (model["low_resolution"], model["upsampler"]["init_args"]["scale_factor"]) == (
            32, 8), key
    shard = load_recipe(ROOT / "configs" / "run" / "ablations_cpu32_seed1.yaml")
    assert shard.name == recipe.name
    assert [u.key for u in build_units(shard, tmp_path / "a")] == [
        k for k in units if k.split("/")[1] == "seed1"]


def test_shipped_supplement_recipe_shares_the_ablation_units_and_ablates_one_thing_each(
        tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    recipe = load_recipe(ROOT / "configs" / "run" / "supplement_cpu.yaml")
    assert list(recipe.seeds) == [0] and {t["table"] for t in recipe.tables} == {5, 6, 7}
    shared = ("prior/seed0", "invert/seed0", "invert_test/seed0", "translate_wplus/seed0",
              "upsample_srresnet/seed0", "ours_srresnet/seed0/paired_test")
    units = build_units(recipe, tmp_path / "a")
    resolve([u for u in units if u.key.startswith("translate_") or u.key in shared],
            tmp_path / "a")
    base = build_units(load_recipe(ROOT / "configs" / "run" / "ablations_cpu_seed0.yaml"),
                       tmp_path / "b")
    resolve([u for u in base if u.key in shared], tmp_path / "b")
    fp = {u.key: u.fingerprint for u in units}
    # the copied run directory's units are skipped: same fingerprints in another directory
    for key in shared:
        assert fp[key] == next(u.fingerprint for u in base if u.key == key), key
    ref = yaml.safe_load(next(u for u in units if u.key == "translate_wplus/seed0").resolved)

    ref_leaves = dict(leaves(ref))
    expected = {"freeze0": {"model.init_args.translator.init_args.freeze_resolution": 0},
                "freeze16": {"model.init_args.translator.init_args.freeze_resolution": 16},
                "without_paired": {"model.init_args.loss_weights.paired": 0.0},
                "without_prior_lpips": {"model.init_args.loss_weights.lpips_prior": 0.0},
                "without_faceid": {"model.init_args.loss_weights.faceid": 0.0}}
    for variant, changes in expected.items():
        got = dict(leaves(yaml.safe_load(
            next(u for u in units if u.key == f"translate_wplus_{variant}/seed0").resolved)))
        diff = {k: got.get(k) for k in set(got) | set(ref_leaves)
                if got.get(k) != ref_leaves.get(k) and k != "trainer.default_root_dir"}
        assert diff == changes, variant


def test_shipped_table4_length_recipe_changes_only_the_step_count_of_both_samplers(
        tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    recipe = load_recipe(ROOT / "configs" / "run" / "table4_length_cpu32.yaml")
    assert list(recipe.seeds) == [1] and {t["table"] for t in recipe.tables} == {8, 9}
    shared = ("prior/seed1", "invert/seed1", "invert_test/seed1", "translate_wplus/seed1",
              "translate_z/seed1", "upsample_train_inference/seed1",
              "ours/seed1/test", "ours_z/seed1/paired_test")
    units = {u.key: u for u in build_units(recipe, tmp_path / "a")}
    longer = [f"translate_{s}_{n}/seed1" for s in ("wplus", "z") for n in (1200, 3000)]
    istar = [k for k in units if k.startswith("istar_")]
    assert len(istar) == 6
    resolve([units[k] for k in (*shared, *longer, *istar)], tmp_path / "a")
    base = {u.key: u for u in build_units(
        load_recipe(ROOT / "configs" / "run" / "ablations_cpu32_seed1.yaml"), tmp_path / "b")}
    resolve([base[k] for k in shared], tmp_path / "b")
    for key in shared:  # copied from the ablations_cpu32 run directory, then skipped
        assert units[key].fingerprint == base[key].fingerprint, key
    for sampler in ("wplus", "z"):
        ref = dict(leaves(yaml.safe_load(units[f"translate_{sampler}/seed1"].resolved)))
        for steps in (1200, 3000):
            got = dict(leaves(yaml.safe_load(
                units[f"translate_{sampler}_{steps}/seed1"].resolved)))
            diff = {k: got.get(k) for k in set(got) | set(ref)
                    if got.get(k) != ref.get(k) and k != "trainer.default_root_dir"}
            assert diff == {"trainer.max_steps": steps}, (sampler, steps)
    # Table 9 scores I* alone: no upsampler in its rows' pipelines
    for key in istar:
        assert yaml.safe_load(units[key].resolved)["model"]["init_args"]["upsampler"] is None, key


def test_a_null_stage_or_method_removes_the_inherited_one(tmp_path, toy):
    base = write_recipe(tmp_path / "base.yaml", toy_recipe(toy))
    child = tmp_path / "child.yaml"
    child.write_text(yaml.safe_dump({"extends": base.name, "methods": {"m": None},
                                     "stages": {"c": None}, "tables": []}))
    recipe = load_recipe(child)
    assert "m" not in recipe.methods and "c" not in recipe.stages
    assert set(load_recipe(base).stages) - set(recipe.stages) == {"c"}


def test_shipped_paper_recipe_resolves_at_the_papers_sizes(tmp_path, monkeypatch):
    """Not run here (no GPU, no data): every unit of seed 0 parses as LightningCLI reads it."""
    monkeypatch.chdir(ROOT)
    recipe = load_recipe(ROOT / "configs" / "run" / "paper.yaml")
    units = [u for u in build_units(recipe, tmp_path / "run") if "/seed0" in u.key]
    resolve(units, tmp_path / "run")
    by_key = {u.key: yaml.safe_load(u.resolved) for u in units}
    assert by_key["prior/seed0"]["model"]["init_args"]["generator"]["init_args"][
        "resolution"] == 256
    assert by_key["upsample_train_inference/seed0"]["data"]["init_args"]["resolution"] == 1024
    ours = by_key["ours/seed0/test"]
    assert ours["data"]["init_args"]["resolution"] == 1024
    assert ours["trainer"]["accelerator"] == "gpu"
    assert ours["data"]["init_args"]["source"]["class_path"] == "lift.data.FolderSource"


# --- running ---------------------------------------------------------------------------------


def test_toy_recipe_runs_end_to_end(done_run):
    rec = record(done_run)
    assert rec["status"] == "done" and rec["name"] == "toy"
    runs = units(done_run)
    assert set(runs) == {"a/seed0", "b/seed0", "c/seed0", "m/seed0/paired_test"}
    assert set(rec["stages"]) == {"a", "b", "c"}
    assert set(rec["methods"]["m"]) == {"seed0/paired_test"}
    for key, unit in runs.items():
        assert unit["status"] == "done", key
        assert len(unit["fingerprint"]) == 64 and unit["wall_time_s"] > 0, key
        assert (done_run / unit["log"]).is_file() and (done_run / unit["resolved_config"]).is_file()
        for path in unit["outputs"].values():
            assert (done_run / path).exists(), (key, path)
    assert runs["b/seed0"]["upstream"] == {"a/seed0": runs["a/seed0"]["fingerprint"]}
    b = runs["b/seed0"]
    assert f"--model.init_args.init={done_run}/stages/a/seed0/last.ckpt" in b["command"]
    assert "--seed_everything=0" in b["command"] and b["subcommand"] == "fit"
    assert yaml.safe_load((done_run / "recipe.yaml").read_text())["name"] == "toy"
    assert torch.load(done_run / "stages/b/seed0/last.ckpt", weights_only=True)["global_step"] == 2
    assert sorted(p.name for p in (done_run / "stages/c/seed0/predictions/studio").iterdir()) \
        == [f"item{i:03d}.png" for i in range(4)]
    assert len(list((done_run / "predictions/m/seed0/studio").glob("*.png"))) == 4


def test_warm_and_subprocess_launchers_give_the_same_stage_runs(done_run, toy, tmp_path):
    """The default (warm) launcher forks each stage run from one process that imported
    Lightning once; each fork must be a fresh process: the run's environment (the cache, and
    GLIBC_TUNABLES in the environment glibc read at start), the same weights and textures
    bit for bit as a new interpreter per stage."""
    out = tmp_path / "sub"
    assert run(toy / "toy.yaml", out=out, stream=False, launcher="subprocess") == 0
    warm, sub = units(done_run), units(out)
    assert {u["launcher"] for u in warm.values()} == {"warm"}
    assert {u["launcher"] for u in sub.values()} == {"subprocess"}
    for run_dir in (done_run, out):
        log = (run_dir / "stages/a/seed0/stage.log").read_text()
        assert f"toy env cache={run_dir / 'synth_cache'} tunables_at_start=True" in log
    for stage in ("a", "b"):
        ckpts = [torch.load(d / f"stages/{stage}/seed0/last.ckpt", weights_only=True)
                 for d in (done_run, out)]
        for key, value in ckpts[0]["state_dict"].items():
            assert torch.equal(value, ckpts[1]["state_dict"][key]), (stage, key)
    for rel in ("stages/c/seed0/predictions/studio", "predictions/m/seed0/studio"):
        files = sorted((done_run / rel).iterdir())
        assert files and [f.read_bytes() for f in files] == \
            [(out / rel / f.name).read_bytes() for f in files]


def test_a_warm_launcher_that_cannot_start_falls_back_to_subprocesses(done_run, toy, tmp_path,
                                                                       monkeypatch, capsys):
    from lift.run.zygote import ZygoteError

    class Broken:
        def __init__(self, *args, **kwargs):
            pass

        def run(self, *args, **kwargs):
            raise ZygoteError("the warm launcher did not start (test)")

        def close(self):
            pass

    monkeypatch.setattr("lift.run.zygote.Zygote", Broken)
    out = tmp_path / "fallback"
    assert run(toy / "toy.yaml", out=out, only=["a"], stream=False) == 0
    assert units(out)["a/seed0"]["launcher"] == "subprocess"
    assert (out / "stages/a/seed0/last.ckpt").is_file()
    assert "the remaining stage runs start as subprocesses" in capsys.readouterr().err


def test_the_warm_launcher_leaves_multi_process_runs_to_subprocesses():
    from lift.run.plan import Unit
    from lift.run.runner import warm_eligible

    def unit(trainer: dict, argv: tuple[str, ...] = ()) -> Unit:
        return Unit(key="s/seed0", kind="stage", name="s", seed=0, split=None, command="fit",
                    dir=Path("."), lift_argv=["fit", *argv], outputs={}, upstream=(),
                    resolved=yaml.safe_dump({"trainer": trainer}))

    assert warm_eligible(unit({"accelerator": "cpu", "devices": 1}))
    assert warm_eligible(unit({"accelerator": "cpu", "devices": "auto", "strategy": "auto"}))
    assert warm_eligible(unit({"devices": [0]}))
    assert not warm_eligible(unit({"devices": 2}))
    assert not warm_eligible(unit({"devices": [0, 1]}))
    assert not warm_eligible(unit({"devices": 1, "strategy": "ddp"}))
    assert not warm_eligible(unit({"devices": 1, "strategy": {
        "class_path": "lightning.pytorch.strategies.DDPStrategy"}}))
    assert not warm_eligible(unit({"devices": 1, "num_nodes": 2}))
    assert not warm_eligible(unit({"devices": 1}, ("--disable-plugins=x",)))


def test_the_warm_launcher_reports_exit_codes_and_an_unknown_launcher_is_an_error(tmp_path,
                                                                                   capsys):
    from lift.run.zygote import Zygote

    with Zygote() as zygote:
        assert zygote.run(["nosuchcommand"], tmp_path / "a.log") == 2
        assert zygote.run(["--help"], tmp_path / "b.log") == 0
    assert "unknown command 'nosuchcommand'" in (tmp_path / "a.log").read_text()
    assert "usage: lift" in (tmp_path / "b.log").read_text()
    assert zygote.proc.poll() == 0  # stopped with its stdin
    assert run(QUICKSTART, out=tmp_path / "r", launcher="fast") == 2
    assert "launcher 'fast': not one of warm, subprocess" in capsys.readouterr().err


def test_rerun_skips_everything_without_a_subprocess(done_run, toy, monkeypatch, capsys):
    before = units(done_run)

    def no_subprocess(*args, **kwargs):
        raise AssertionError("a stage was started")

    monkeypatch.setattr("lift.run.runner.run_logged", no_subprocess)
    monkeypatch.setattr("lift.run.runner.run_warm", no_subprocess)
    assert run(toy / "toy.yaml", out=done_run, stream=False) == 0
    out = capsys.readouterr().out
    assert out.count("skipped (done, same fingerprint)") == 4
    assert "[2/4] b seed0 ... skipped" in out
    assert units(done_run) == before


def test_changed_args_rerun_the_stage_and_its_dependents(done_run, toy, tmp_path, capsys):
    out = copy_run(done_run, tmp_path)  # a copied run directory keeps its fingerprints
    before = units(out)
    data = toy_recipe(toy)
    data["stages"]["b"]["args"]["trainer.max_steps"] = 3
    recipe = write_recipe(tmp_path / "toy.yaml", data)
    assert run(recipe, out=out, stream=False) == 0
    text = capsys.readouterr().out
    after = units(out)
    for key in ("a/seed0", "c/seed0"):
        assert after[key] == before[key], key
    for key in ("b/seed0", "m/seed0/paired_test"):
        assert after[key]["started"] != before[key]["started"], key
        assert after[key]["fingerprint"] != before[key]["fingerprint"], key
    assert "b seed0 ... done in" in text and "a seed0 ... skipped" in text
    assert after["b/seed0"]["stale"] == ["stages/b/seed0.stale-1"]
    assert after["m/seed0/paired_test"]["stale"] == ["methods/m/seed0/paired_test.stale-1",
                                                     "predictions/m/seed0.stale-1"]
    assert (out / "stages/b/seed0.stale-1/last.ckpt").is_file()  # moved aside, not deleted
    assert torch.load(out / "stages/b/seed0/last.ckpt", weights_only=True)["global_step"] == 3
    assert len(list((out / "predictions/m/seed0/studio").glob("*.png"))) == 4


def test_dry_run_prints_the_plan_and_runs_nothing(done_run, toy, tmp_path, capsys):
    data = toy_recipe(toy)
    data["stages"]["a"]["args"]["trainer.max_steps"] = 2
    recipe = write_recipe(tmp_path / "toy.yaml", data)
    before = (done_run / "run.json").read_text()
    assert main(["run", "--config", str(recipe), "--out", str(done_run), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "plan: 4 to run, 0 to resume, 0 to skip" in out
    assert "its config, args or inputs changed (new fingerprint); moves stages/a/seed0 aside" in out
    assert "upstream a/seed0 changed" in out and "upstream b/seed0 changed" in out
    assert "$ " in out and "-m lift.cli fit --config" in out
    assert (done_run / "run.json").read_text() == before
    assert not list(done_run.glob("stages/*/*.stale-*"))


def test_a_killed_run_skips_what_is_done_and_resumes_the_killed_fit(done_run, toy, tmp_path,
                                                                    capsys):
    out = copy_run(done_run, tmp_path)
    data = toy_recipe(toy)
    data["stages"]["b"]["args"] = {"trainer.max_steps": 12, "model.init_args.sleep": 0.15}
    recipe = write_recipe(tmp_path / "toy.yaml", data)
    runner = subprocess.Popen(
        [sys.executable, "-m", "lift.cli", "run", "--config", str(recipe), "--out", str(out),
         "--no-stream"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True)
    log = out / "stages/b/seed0/stage.log"
    deadline = time.monotonic() + 120
    try:  # last.ckpt is saved at step 5; kill the runner's group during step 6
        while not (log.is_file() and "toy step 6" in log.read_text()):
            assert runner.poll() is None, runner.stdout.read().decode()
            assert time.monotonic() < deadline, "stage b never reached step 6"
            time.sleep(0.05)
        os.killpg(runner.pid, signal.SIGKILL)
    finally:
        runner.wait()
    rec = units(out)
    assert rec["b/seed0"]["status"] == "running"
    assert (out / "stages/b/seed0/last.ckpt").is_file()

    assert run(recipe, out=out, stream=False) == 0
    text = capsys.readouterr().out
    rec = units(out)
    assert "[1/4] a seed0 ... skipped" in text
    b = rec["b/seed0"]
    assert b["status"] == "done" and b["attempts"] == 2 and b["resume"] == "ckpt_path last"
    assert b["command"][-1] == "--ckpt_path=last"
    second = log.read_text().split("=== lift run")[-1]
    assert "resume from last.ckpt" in second
    assert "toy step 5" in second and "toy step 4" not in second  # continued, not restarted
    assert torch.load(out / "stages/b/seed0/last.ckpt", weights_only=True)["global_step"] == 12
    assert rec["m/seed0/paired_test"]["status"] == "done"


def test_a_failing_stage_stops_the_run_naming_stage_command_and_log(done_run, toy, tmp_path,
                                                                     capsys):
    out = copy_run(done_run, tmp_path)
    data = toy_recipe(toy)
    data["stages"]["b"]["args"]["model.init_args.lr"] = -1.0
    recipe = write_recipe(tmp_path / "toy.yaml", data)
    assert main(["run", "--config", str(recipe), "--out", str(out), "--no-stream"]) == 1
    captured = capsys.readouterr()
    err = captured.err
    log = out / "stages/b/seed0/stage.log"
    assert "lift run: FAILED: stage b seed0 (exit code 1" in err
    assert f"  log:     {log}" in err
    assert "  command: cd " in err and "--model.init_args.lr=-1.0" in err
    assert "ToyModule: lr must be > 0, got -1.0" in err  # the log's tail
    rec = record(out)
    assert rec["status"] == "failed" and units(out)["b/seed0"]["status"] == "failed"
    assert units(out)["m/seed0/paired_test"]["status"] == "done"  # not reached: unchanged
    assert "m seed0" not in captured.out


def test_an_override_that_does_not_parse_fails_before_anything_runs(done_run, toy, tmp_path,
                                                                    capsys):
    data = toy_recipe(toy)
    data["stages"]["c"]["args"] = {"model.init_args.no_such_arg": 1}
    recipe = write_recipe(tmp_path / "toy.yaml", data)
    before = (done_run / "run.json").read_text()
    assert run(recipe, out=done_run, stream=False) == 1
    err = capsys.readouterr().err
    assert "the configs of stage c seed0 do not parse" in err and "stages.c" in err
    assert "no_such_arg" in err and "--print_config" in err
    assert (done_run / "run.json").read_text() == before


def test_only_reruns_the_named_stage_and_skips_what_it_needs(done_run, toy, tmp_path, capsys):
    out = copy_run(done_run, tmp_path)
    before = units(out)
    assert run(toy / "toy.yaml", out=out, only=["c"], stream=False) == 0
    text = capsys.readouterr().out
    after = units(out)
    assert "[1/2] a seed0 ... skipped" in text and "[2/2] c seed0 ... done" in text
    assert after["c/seed0"]["stale"] == ["stages/c/seed0.stale-1"]
    assert after["b/seed0"] == before["b/seed0"] and "evaluation and report skipped" in text


def test_evaluator_and_report_are_called_after_the_run(done_run, toy, tmp_path, monkeypatch,
                                                       capsys):
    out = copy_run(done_run, tmp_path)
    data = toy_recipe(toy)
    data["tables"] = [{"table": 1, "split": "paired_test", "metrics": ["psnr"],
                       "rows": {"m": "m"}}]
    recipe = write_recipe(tmp_path / "toy.yaml", data)
    # modules not there yet: a note, and the run still succeeds
    monkeypatch.setitem(sys.modules, "lift.evaluation", None)
    monkeypatch.setitem(sys.modules, "lift.report", None)
    assert run(recipe, out=out, stream=False) == 0
    assert "lift.evaluation.evaluate_run is not available" in capsys.readouterr().out

    calls = []

    def evaluate_run(run_dir, recipe):
        calls.append(("evaluate", run_dir, recipe))
        (run_dir / "tables").mkdir()
        return {1: {"table": 1}}

    def write_report(run_dir, recipe):
        calls.append(("report", run_dir, recipe))
        (run_dir / "report").mkdir()
        (run_dir / "report" / "index.html").write_text("<html></html>")
        return run_dir / "report" / "index.html"

    monkeypatch.setitem(sys.modules, "lift.evaluation",
                        types.SimpleNamespace(evaluate_run=evaluate_run))
    monkeypatch.setitem(sys.modules, "lift.report",
                        types.SimpleNamespace(write_report=write_report))
    assert run(recipe, out=out, stream=False) == 0
    text = capsys.readouterr().out
    assert [c[0] for c in calls] == ["evaluate", "report"]
    assert calls[0][1] == out and calls[0][2]["tables"] == data["tables"]
    assert calls[0][2]["methods"]["m"]["splits"] == ["paired_test"]
    assert f"tables: {out / 'tables'}/" in text and f"report: {out / 'report/index.html'}" in text
    rec = record(out)
    assert rec["evaluation"]["status"] == "done" and rec["report"]["path"] == "report/index.html"
    # nothing changed: both are up to date
    assert run(recipe, out=out, stream=False) == 0
    assert len(calls) == 2 and "evaluation up to date, skipped" in capsys.readouterr().out


def test_a_method_config_that_lists_a_texture_writer_gets_its_output_dir(toy, tmp_path):
    preds = tmp_path / "preds"
    # the writer is the last callback: its output_dir is set on the command line
    pred = ["predict", "--config", str(toy / "pred.yaml")]
    assert _writer_flags(print_config(pred), preds) == [
        f"--trainer.callbacks.output_dir={preds}", "--return_predictions=false"]
    # not the last one: the callback list is passed whole with output_dir replaced
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"trainer": {"callbacks": [
        {"class_path": "lift.prediction_writer.TextureWriter", "init_args": {"format": "png8"}},
        {"class_path": "lift.callbacks.StageCheckpoint"}]}}))
    argv = pred + ["--config", str(other)]
    flags = _writer_flags(print_config(argv), preds)
    assert flags[0].startswith("--trainer.callbacks=[")
    resolved = yaml.safe_load(print_config(argv + flags))
    writers = [c for c in resolved["trainer"]["callbacks"] if c["class_path"].endswith("Writer")]
    assert [(w["init_args"]["output_dir"], w["init_args"]["format"]) for w in writers] == [
        (str(preds), "png8")]
    # none: one is appended
    appended = _writer_flags(print_config(["predict", "--config", str(toy / "meth.yaml")]), preds)
    assert appended[0] == "--trainer.callbacks+=lift.prediction_writer.TextureWriter"


def test_a_method_predicting_the_test_union_covers_both_test_splits():
    from lift.run.recipe import covers

    assert covers(("test",), "paired_test") and covers(("test",), "unpaired_test")
    assert covers(("paired_test",), "paired_test") and not covers(("paired_test",), "unpaired_test")
    assert not covers(("test",), "val")


def test_stage_subprocesses_get_the_run_cache_and_allocator_settings(tmp_path, monkeypatch):
    import os

    from lift.run.runner import GLIBC_TUNABLES, unit_environment

    monkeypatch.delenv("LIFT_SYNTH_CACHE", raising=False)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    with unit_environment(tmp_path):
        assert os.environ["LIFT_SYNTH_CACHE"] == str(tmp_path / "synth_cache")
        assert os.environ["GLIBC_TUNABLES"] == GLIBC_TUNABLES
    assert "LIFT_SYNTH_CACHE" not in os.environ and "GLIBC_TUNABLES" not in os.environ
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=1")  # the user's wins
    with unit_environment(tmp_path):
        assert os.environ["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=1"
    assert os.environ["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=1"
