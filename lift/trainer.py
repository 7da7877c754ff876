"""lift's Trainer: Lightning's, with one more precision value, ``bf16-auto`` (lift.precision)."""

from __future__ import annotations

from typing import Any, Optional, Union

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info

from lift.precision import resolve_precision


class LiftTrainer(pl.Trainer):
    """``lightning.pytorch.Trainer`` whose ``precision`` also takes ``"bf16-auto"``.

    Args:
        precision: any Lightning precision (``32-true``, ``bf16-mixed``, ``16-mixed``, ...) or
            ``bf16-auto``: ``bf16-mixed`` where the accelerator has native bf16, else
            ``32-true`` (the choice is logged). Every other argument is Lightning's.
    """

    def __init__(self, *args: Any, precision: Optional[Union[int, str]] = None,
                 **kwargs: Any) -> None:
        resolved, note = resolve_precision(precision, kwargs.get("accelerator"))
        if note:
            rank_zero_info(f"lift: {note}")
        super().__init__(*args, precision=resolved, **kwargs)
