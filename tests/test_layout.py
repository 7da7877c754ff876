"""The code base stays in small modules: no file of lift/ or plugins/ over 600 lines."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 600


def test_no_source_file_is_over_600_lines():
    long = {str(p.relative_to(ROOT)): n for p in [*ROOT.glob("lift/**/*.py"),
                                                 *ROOT.glob("plugins/**/*.py")]
            if (n := len(p.read_text().splitlines())) > LIMIT}
    assert not long, f"split these files (over {LIMIT} lines): {long}"
