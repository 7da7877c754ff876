"""Which subjects a profile has and which split each of them goes to."""

from __future__ import annotations

from lift.data.sources import SPLITS  # the split names are defined once, there
from lift.data.synth.profiles import SynthProfile

__all__ = ["SPLITS", "subject_plan", "split_plan"]


def _stem(index: int) -> str:
    return f"s{index:06d}"


def subject_plan(profile: SynthProfile) -> list[tuple[str, int, bool, bool, int, str]]:
    """Every distinct subject once: ``(stem, index, has_phone, has_studio, n_expressions, category)``.

    Indices are allocated in the order phone_only, studio_only, paired_train, paired_test,
    unpaired_test.  Expression textures are planned only for subjects that have a phone
    texture and belong to paired_train / paired_test / unpaired_test.
    """
    cats = [
        ("phone_only", profile.phone_only, True, False, 0),
        ("studio_only", profile.studio_only, False, True, 0),
        ("paired_train", profile.paired_train, True, True, profile.expressions),
        ("paired_test", profile.paired_test, True, True, profile.expressions),
        ("unpaired_test", profile.unpaired_test, True, False, profile.expressions),
    ]
    out = []
    i = 0
    for cat, n, ph, st, ne in cats:
        for _ in range(n):
            out.append((_stem(i), i, ph, st, ne, cat))
            i += 1
    return out


def split_plan(profile: SynthProfile) -> dict[str, list[tuple[str, int, bool, bool]]]:
    """Split name (:data:`SPLITS`, in that order) -> list of ``(stem, subject_index, has_phone, has_studio)``.

    ``phone_train`` = phone-only + paired_train subjects, ``studio_train`` = studio-only +
    paired_train subjects, then ``paired_train``, ``paired_test``, ``unpaired_test``.
    Test subjects never appear in a train split.
    """
    by_cat: dict[str, list[tuple[str, int, bool, bool]]] = {}
    for stem, i, ph, st, _ne, cat in subject_plan(profile):
        by_cat.setdefault(cat, []).append((stem, i, ph, st))
    g = lambda c: list(by_cat.get(c, []))  # noqa: E731
    plan = {
        "phone_train": g("phone_only") + g("paired_train"),
        "studio_train": g("studio_only") + g("paired_train"),
        "paired_train": g("paired_train"),
        "paired_test": g("paired_test"),
        "unpaired_test": g("unpaired_test"),
    }
    assert tuple(plan) == SPLITS  # a new split needs a rule here
    return plan
