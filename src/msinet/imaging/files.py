"""Files written whole or not at all: an interrupted or failed write leaves the old file (or
none), never half of one, and no temporary file behind."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

PARTIAL = ".partial"  # suffix of a file being written; stale ones are safe to delete


# The inputs of the running command (`protect`): no file written whole may replace one.
PROTECTED: set[str] = set()


class OverwriteRefused(OSError):
    """A write would have replaced one of the command's inputs."""


def protect(paths) -> None:
    """Never replace these files (a command's inputs), whatever the output names say; until
    the command ends (`protecting`)."""
    PROTECTED.update(os.path.realpath(p) for p in paths)


@contextlib.contextmanager
def protecting() -> Iterator[None]:
    """The scope of one command's protected inputs: none outlive it."""
    try:
        yield
    finally:
        PROTECTED.clear()


@contextlib.contextmanager
def written_whole(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside `path` to write to; renamed onto `path` (atomically, on
    the same file system) when the block ends, deleted if it raises. A protected input is
    never the target."""
    path = Path(path)
    if PROTECTED and os.path.realpath(path) in PROTECTED:
        raise OverwriteRefused(f"{path} is an input: not overwritten")
    partial = path.with_name(path.name + PARTIAL)
    try:
        yield partial
        partial.chmod(_mode_for(path))
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def _mode_for(path: Path) -> int:
    """The replaced file's permissions, else the umask's default: some writers (safetensors)
    create owner-only files, which a weights file replaced in place must not become."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        return 0o666 & ~_UMASK


_UMASK = os.umask(0o022)  # read once (os.umask can only read by setting), then put back
os.umask(_UMASK)


def write_bytes_whole(path: str | os.PathLike, data: bytes) -> None:
    with written_whole(path) as tmp:
        tmp.write_bytes(data)


def remove_partials(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed writers left in `folder`; returns them."""
    stale = sorted(Path(folder).glob(f"*{PARTIAL}"))
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def skip_reason(path: Path, e: Exception) -> str:
    """Why one input was skipped, naming it once ("x.jpg: not an image ..."): image errors for
    files already start with the path; file-system errors in `os_error`'s words."""
    message = os_error(e) if isinstance(e, OSError) else str(e)
    return message if message.startswith(f"{path}: ") else f"{path}: {message}"


def os_error(e: OSError) -> str:
    """`OSError` in one line with the path it concerns: "permission denied: out/x.png"."""
    what = (e.strerror or type(e).__name__).lower()
    if isinstance(e, FileExistsError | NotADirectoryError) and e.filename:
        return f"{what}: {e.filename} (a file is in the way of a folder)"
    return f"{what}: {e.filename}" if e.filename else f"{what}: {e}"
