"""OSIE (Xu et al., JoV 2014) in its official release layout, the NUS layout (msinet.data.nus).

ROOT/stimuli/1001.jpg …   800x600 RGB
ROOT/fixations.mat        one entry per image, per observer fix_x, fix_y (1-based), fix_duration
"""

from __future__ import annotations

from pathlib import Path

from msinet.data.nus import NUS_DATASETS, NUSDataset


class OSIE(NUSDataset):
    def __init__(self, root: str | Path) -> None:
        super().__init__(root, NUS_DATASETS["osie"])
