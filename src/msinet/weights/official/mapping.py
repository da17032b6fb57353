"""The official TF variables <-> msinet's parameters: names, shapes, the input convention,
and the dataset a file was trained on.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from msinet.model.arch import MSINetConfig, official_name, parameter_shapes
from msinet.weights.store import WeightsError, check_finite

OFFICIAL_MEAN = (103.939, 116.779, 123.68)


# The official graph subtracts the BGR means from RGB input without flipping the channels.
OFFICIAL_CONFIG = MSINetConfig(input_order="rgb", mean=OFFICIAL_MEAN)


@lru_cache(maxsize=1)
def expected_variables() -> dict[str, str]:
    """Official TF variable name -> our state-dict key, for every parameter."""
    return {official_name(k): k for k in parameter_shapes()}


@lru_cache(maxsize=1)
def expected_tf_shapes() -> dict[str, tuple[int, ...]]:
    """Official TF variable name -> its shape in TF's layout (kernels HWIO)."""
    hwio = (2, 3, 1, 0)  # OIHW -> HWIO
    return {official_name(k): tuple(s[i] for i in hwio) if len(s) == 4 else tuple(s)
            for k, s in parameter_shapes().items()}  # fmt: skip


NAME_TAILS = ("/.ATTRIBUTES/VARIABLE_VALUE", "/Read/ReadVariableOp", "/ReadVariableOp")


def official_key(name: str, shape: tuple[int, ...] | None = None) -> tuple[str, int] | None:
    """The official variable a TF name holds, and how directly: 0 for the name itself; 1 for
    the name inside outer scopes (a TF2 function's); 2 for the name without its block scope,
    as Keras 3 names variables ("conv1_1/kernel"), which the declared `shape` decides between
    (conv1/conv1_1 or aspp/conv1_1: their shapes differ). Tails such as `:0` or
    `/.ATTRIBUTES/VARIABLE_VALUE` are dropped. None for anything else (optimizer slots)."""
    wanted = expected_variables()
    if ".OPTIMIZER_SLOT" in name:
        return None
    name = name.split(":", 1)[0]
    for tail in NAME_TAILS:
        name = name.removesuffix(tail)
    if name in wanted:
        return name, 0
    parts = name.split("/")
    for i in range(1, len(parts)):
        inner = "/".join(parts[i:])
        if inner in wanted:
            return inner, 1
    if shape is not None and len(parts) >= 2:
        shapes = expected_tf_shapes()
        fits = [w for w in wanted if w.endswith("/" + name) and shapes[w] == tuple(shape)]
        if len(fits) == 1:
            return fits[0], 2
    return None


class Found(dict):
    """Official name -> array, keeping the most direct of several candidates; a declared
    shape that does not fit MSI-Net is kept as the shape alone (never read or allocated)."""

    def __init__(self) -> None:
        super().__init__()
        self.rank: dict[str, int] = {}

    def offer(self, name: str, rank: int, value) -> None:
        if name in self and self.rank[name] < rank:
            return
        if name in self and self.rank[name] == rank and not _same(self[name], value):
            raise WeightsError(f"{name} appears twice with different values: ambiguous")
        self[name], self.rank[name] = value, rank

    def merge(self, other: Found) -> None:
        for name, value in other.items():
            self.offer(name, other.rank[name], value)


def _same(a, b) -> bool:
    if isinstance(a, tuple) or isinstance(b, tuple):
        return a == b
    return a.shape == b.shape and np.array_equal(a, b)


def to_msinet(found: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """TF names/HWIO -> our keys/OIHW, with every missing or mis-shaped variable named."""
    names = expected_variables()
    shapes = expected_tf_shapes()
    missing = sorted(set(names) - set(found))
    wrong = [f"{n}: {v} (MSI-Net: {shapes[n]})" for n, v in found.items() if isinstance(v, tuple)]
    if wrong:
        also = f"; {len(missing)} more variables missing" if missing else ""
        raise WeightsError(f"shape mismatch for the MSI-Net architecture: {wrong}{also}")
    if missing:
        raise WeightsError(f"not an MSI-Net graph: missing {len(missing)} variables: {missing}")
    out = {}
    for tf_name, key in names.items():
        a = found[tf_name]
        a = a.transpose(3, 2, 0, 1) if a.ndim == 4 else a  # HWIO -> OIHW
        out[key] = np.ascontiguousarray(a, dtype=np.float32)
    check_finite(out, "the official weights")
    return out


OFFICIAL_FILE = re.compile(r"model_(salicon|mit1003|cat2000|dutomron|pascals|osie|fiwi)_(cpu|gpu)"
                           r"(\.pb|\.ckpt(\.index|\.meta|\.data-\d+-of-\d+)?)")  # fmt: skip


def dataset_of(path: Path, given: str | None) -> str:
    """The dataset the weights were trained on: the flag, else the official release's file
    name; the graphs themselves do not record it, and guessing picks the wrong input size."""
    if given:
        return given
    m = OFFICIAL_FILE.fullmatch(path.name)
    if m is None:
        raise WeightsError(f"cannot tell which dataset {path.name} was trained on (it is not "
                           "named as the official files, model_<dataset>_<cpu|gpu>.pb or .ckpt): "
                           "pass --dataset (salicon, mit1003, cat2000, dutomron, pascals, "
                           "osie or fiwi)")  # fmt: skip
    return m[1]
