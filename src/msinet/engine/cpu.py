"""The CPU this process runs on: model name and the instruction sets int8 speed and exactness
depend on.

ONNX Runtime's u8s8 int8 kernels use VNNI (`vpdpbusd`, exact 32-bit sums) where the CPU has
it, and `vpmaddubsw` elsewhere (AVX2, AVX-512 without VNNI), which saturates 16-bit pair sums;
so the same int8 file can give different maps on different CPUs (docs/engines.md). Every speed
or int8 fidelity number msinet prints comes with this description.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from functools import cache

# Flags as Linux names them in /proc/cpuinfo, in the order they are printed.
ISA_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8")


@dataclass(frozen=True)
class CpuInfo:
    model: str
    cores: int
    isa: tuple[str, ...]  # the ISA_FLAGS this CPU has

    @property
    def vnni(self) -> bool:
        return "avx512_vnni" in self.isa or "avx_vnni" in self.isa

    def describe(self) -> str:
        isa = " ".join(self.isa) if self.isa else "no AVX2"
        return f"{self.model}, {self.cores} cores, {platform.machine()}; ISA: {isa}"


def parse_cpuinfo(text: str) -> tuple[str, set[str]]:
    """(model name, flags) from the text of /proc/cpuinfo (first processor)."""
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return model, flags


@cache
def cpu_info() -> CpuInfo:
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            model, flags = parse_cpuinfo(f.read())
    except OSError:  # not Linux: the name only
        pass
    model = model or platform.processor() or platform.machine() or "unknown CPU"
    return CpuInfo(model, os.cpu_count() or 1, tuple(f for f in ISA_FLAGS if f in flags))
