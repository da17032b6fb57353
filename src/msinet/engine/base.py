"""The engine contract: what every engine takes and returns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from msinet.weights.store import WeightsMeta

if TYPE_CHECKING:
    from msinet.engine.probe import SelfCheck


class Engine(Protocol):
    name: str
    meta: WeightsMeta
    threads: int  # intra-op threads of one call
    self_check: SelfCheck | None  # the int8 self-check on this CPU; None for other engines

    def predict(self, batch: np.ndarray) -> np.ndarray: ...


def check_batch(batch: np.ndarray) -> None:
    """Engines refuse what preprocessing can never produce, naming the problem."""
    if batch.ndim != 4 or batch.shape[1] != 3:
        raise ValueError(f"expected a (B, 3, H, W) batch, got shape {batch.shape}")
    if batch.shape[2] % 8 or batch.shape[3] % 8:
        raise ValueError(f"H and W must be multiples of 8, got {batch.shape[2]}x{batch.shape[3]}")
