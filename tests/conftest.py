"""Shared fixtures. Tests never load whatever else happens to be installed: the process-wide
registry is built from the ``lift`` distribution's own entry points only."""

from __future__ import annotations

import os

import pytest
import torch

from inversion_helpers import single_thread

os.environ.setdefault("OMP_NUM_THREADS", "2")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session", autouse=True)
def builtin_registry():
    from lift.plugins import DISABLE_ENV, create_plugin_manager
    from lift.registry import Registry, use_registry

    saved = os.environ.pop(DISABLE_ENV, None)
    try:
        registry = Registry(create_plugin_manager(distributions={"lift"}, disabled=()))
        with use_registry(registry):
            yield registry
    finally:
        if saved is not None:
            os.environ[DISABLE_ENV] = saved


# Opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")`` (tiny tensors run fastest
# and steadiest under load on one thread).
one_thread = pytest.fixture(single_thread, name="one_thread")


@pytest.fixture
def fresh_manager():
    """An empty plugin manager (no entry points loaded) for throw-away plugins."""
    from lift.plugins import create_plugin_manager

    return create_plugin_manager(load_entry_points=False)
