"""The worked third-party example (docs/examples/lift-example-translator) installs, shows up
in `lift plugins`, resolves by short class name in a config, and trains."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "lift-example-translator"


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory) -> Path:
    """pip-install the example into a throw-away folder (never into the environment)."""
    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("src") / EXAMPLE.name
    shutil.copytree(EXAMPLE, source)  # building writes build/ and egg-info beside the sources
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(source)],
        check=True, capture_output=True, timeout=300,
    )
    assert list(target.glob("lift_example_translator-*.dist-info"))
    return target


def _run(site: Path, code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "LIFT_DISABLE_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=180)


def test_example_plugin_is_listed_by_lift_plugins(installed_example):
    out = _run(installed_example, "import sys; from lift.cli import main; "
                                  "sys.exit(main(['plugins', '--kind', 'translator']))")
    assert out.returncode == 0, out.stderr
    assert "AffineColourTranslator" in out.stdout
    assert "plugin example_translator (lift-example-translator)" in out.stdout


def test_example_translator_resolves_by_short_name_and_trains(installed_example):
    code = textwrap.dedent(
        """
        import torch
        from jsonargparse import ArgumentParser
        from lift.components import Translator
        from lift.registry import get_registry

        get_registry()  # plugins are imported before parsing, as in the lift CLI
        parser = ArgumentParser()
        parser.add_subclass_arguments(Translator, "translator")
        cfg = parser.parse_string(
            "translator:\\n  class_path: AffineColourTranslator\\n  init_args: {init_gain: 0.5}\\n")
        translator = parser.instantiate_classes(cfg).translator
        assert type(translator).__name__ == "AffineColourTranslator"
        assert torch.allclose(translator.matrix, 0.5 * torch.eye(3))

        # It learns a colour cast from paired data: the L1 loss falls on a fixed batch.
        g = torch.Generator().manual_seed(0)
        studio = torch.rand(4, 3, 8, 8, generator=g)
        phone = (studio * torch.tensor([0.7, 0.9, 1.2])[None, :, None, None]).clamp(0, 1)
        batch = {"paired_phone": phone, "paired_studio": studio}
        opt = torch.optim.Adam(translator.generator_parameters(), lr=0.05)
        first = translator.generator_losses(batch)["l1"].item()
        for _ in range(200):
            opt.zero_grad()
            translator.generator_losses(batch)["l1"].backward()
            opt.step()
        last = translator.generator_losses(batch)["l1"].item()
        assert last < 0.2 * first, (first, last)
        print("ok", first, last)
        """
    )
    out = _run(installed_example, code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")
