"""``lift.atomic.atomic_path`` gives results the permissions a plain write would, not mkstemp's
private 0o600 (a results folder others on the machine cannot read)."""

from __future__ import annotations

import os
import stat

import pytest

from lift.atomic import atomic_write_text

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_gets_0666_less_the_umask(tmp_path, umask_027):
    plain = tmp_path / "plain.json"
    plain.write_text("{}")
    atomic_write_text(tmp_path / "atomic.json", "{}")
    assert _mode(tmp_path / "atomic.json") == _mode(plain) == 0o640


def test_a_replaced_file_keeps_its_own_mode(tmp_path, umask_027):
    target = tmp_path / "table.md"
    target.write_text("old")
    target.chmod(0o604)
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and _mode(target) == 0o604
