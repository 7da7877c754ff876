"""Shared fixtures. Tests never load whatever else happens to be installed: the process-wide
registry is built from the ``lift`` distribution's own entry points only."""

from __future__ import annotations

import os

import pytest
import torch

from inversion_helpers import single_thread

# Two threads a test process; under pytest-xdist (`-n N`) the cores are shared between the
# workers, so each gets cores // N (at least one): oversubscribed threads slow every step.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
_THREADS = max(1, min(2, (os.cpu_count() or 1) // _WORKERS))
os.environ.setdefault("OMP_NUM_THREADS", str(_THREADS))
torch.set_num_threads(min(_THREADS, torch.get_num_threads()))


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
