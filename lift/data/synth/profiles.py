"""Sizes of the synthetic benchmarks (the paper's data regime and two smaller ones)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SynthProfile:
    """Sizes of a synthetic benchmark.

    ``resolution`` is the full ("high") resolution of every texture written;
    ``low_resolution`` is what the GAN stages work at (recorded only, unused here).
    Subject counts per category are disjoint: phone-only subjects train G_phone,
    studio-only ones finetune G_studio, paired_train ones do both (Eq. 6, diffusion),
    paired_test is Table 1 and unpaired_test (phone only) is Table 2.
    """

    name: str
    resolution: int
    low_resolution: int
    phone_only: int
    studio_only: int
    paired_train: int
    paired_test: int
    unpaired_test: int
    expressions: int

    @property
    def num_subjects(self) -> int:
        return (
            self.phone_only + self.studio_only + self.paired_train + self.paired_test + self.unpaired_test
        )


PROFILES: dict[str, SynthProfile] = {
    "quickstart": SynthProfile("quickstart", 256, 64, 48, 16, 12, 4, 6, 2),
    "cpu": SynthProfile("cpu", 256, 64, 1200, 120, 40, 10, 31, 2),
    # Paper (Sect. 4): 12,543 phone textures for G_phone (83 of them paired), 383 studio
    # textures (83 paired), 10 paired test, 31 unpaired test subjects.
    "paper": SynthProfile("paper", 1024, 256, 12543 - 83, 383 - 83, 83, 10, 31, 4),
}
