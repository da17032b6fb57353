"""Folder jobs: many inputs in, files out (maps, saliency videos, crops, reports), one bad input
costing nobody else theirs. The CLI parses its flags and calls one of these; what they report
it prints."""

from __future__ import annotations

from dataclasses import dataclass, field


class JobError(Exception):
    """The job cannot start (no output folder, nothing to do): one line, exit code 2."""


@dataclass
class JobReport:
    done: int = 0  # inputs fully written
    failures: list[str] = field(default_factory=list)  # "<input>: <why>", one per skipped input
    lines: list[str] = field(default_factory=list)  # what to tell the user, in order
