"""Saliency videos: a map per frame, streamed in batches through the pipeline and written as a
video with the input's frame count, frame rate and size (PyAV, the FFmpeg bindings:
`pip install "msinet[video]"`).

Frames are decoded, predicted and encoded a batch at a time, so memory stays bounded however
long the video is. `smooth` is an optional exponential moving average over time (off by
default, so that each frame's map is the still-image map of that frame, up to compression).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from msinet.imaging.decode import ImageError
from msinet.imaging.files import written_whole
from msinet.imaging.postprocess import overlay, to_uint8
from msinet.pipeline import Pipeline

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
CODEC = "libx264"
QUALITY = "18"  # x264 CRF: visually lossless for smooth maps


class VideoError(ImageError):
    """A video that cannot be read (corrupt, truncated, no video stream)."""


@dataclass(frozen=True)
class VideoResult:
    frames: int
    fps: float
    size: tuple[int, int]  # (width, height)
    seconds: float  # wall time


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def frame_count(path: str | Path) -> int | None:
    """The frames the container declares (for a progress bar's total); None where it does not
    say or cannot be read (the decode then reports why)."""
    import av

    try:
        with av.open(str(path)) as container:
            streams = container.streams.video
            return int(streams[0].frames) or None if streams else None
    except av.FFmpegError:
        return None


def _frames(path: Path) -> tuple[Iterator[np.ndarray], Fraction, tuple[int, int]]:
    """(RGB frames as arrays, frame rate, (width, height)); a VideoError for unreadable input."""
    import av

    try:
        container = av.open(str(path))
        if not container.streams.video:
            container.close()
            raise VideoError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        size = (stream.codec_context.width, stream.codec_context.height)
    except av.FFmpegError as e:
        raise VideoError(f"{path}: not a readable video ({e})") from None

    def frames() -> Iterator[np.ndarray]:
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
        except av.FFmpegError as e:
            raise VideoError(f"{path}: corrupt video ({e})") from None
        finally:
            container.close()

    return frames(), Fraction(rate), size


class VideoWriter:
    """An H.264 .mp4 of RGB frames at `rate`; 4:4:4 where a side is odd (4:2:0 needs even)."""

    def __init__(self, path: Path, rate: Fraction, size: tuple[int, int]) -> None:
        import av

        self.container = av.open(str(path), "w", format="mp4")
        self.stream = self.container.add_stream(CODEC, rate=rate)
        self.stream.width, self.stream.height = size
        even = size[0] % 2 == 0 and size[1] % 2 == 0
        self.stream.pix_fmt = "yuv420p" if even else "yuv444p"
        self.stream.options = {"crf": QUALITY}
        self.av = av

    def write(self, rgb: np.ndarray) -> None:
        frame = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        self.container.mux(self.stream.encode(frame))

    def close(self) -> None:
        self.container.mux(self.stream.encode())
        self.container.close()


def predict_video(
    pipeline: Pipeline,
    source: str | Path,
    output: str | Path,
    *,
    overlay_output: str | Path | None = None,
    smooth: float = 0.0,
    batch_size: int = 4,
    colormap: str = "jet",
    alpha: float = 0.6,
    progress: Callable[[int], None] | None = None,
) -> VideoResult:
    """Write the saliency video of `source` to `output` (grey maps) and, if given, the heat-map
    overlay to `overlay_output`; both written whole or not at all."""
    import time

    if not 0.0 <= smooth < 1.0:
        raise ValueError(f"smooth must be in [0, 1), got {smooth}")
    source = Path(source)
    start = time.perf_counter()
    frames, rate, size = _frames(source)
    count, previous = 0, None
    with contextlib.ExitStack() as files:
        maps_out = VideoWriter(files.enter_context(written_whole(output)), rate, size)
        overlay_out = None
        if overlay_output is not None:
            overlay_out = VideoWriter(
                files.enter_context(written_whole(overlay_output)), rate, size
            )
        try:
            # a batch of frames at a time: memory stays bounded however long the video is
            while batch := list(itertools.islice(frames, batch_size)):
                for frame, saliency in zip(batch, pipeline.predict_many(batch), strict=True):
                    if smooth and previous is not None:
                        saliency = smooth * previous + (1.0 - smooth) * saliency
                    previous = saliency
                    grey = to_uint8(saliency)
                    maps_out.write(np.repeat(grey[:, :, None], 3, axis=2))
                    if overlay_out is not None:
                        overlay_out.write(overlay(frame, saliency, colormap, alpha))
                count += len(batch)
                if progress:
                    progress(len(batch))
        finally:
            maps_out.close()
            if overlay_out is not None:
                overlay_out.close()
        if count == 0:
            raise VideoError(f"{source}: no frames could be decoded")
    return VideoResult(count, float(rate), size, time.perf_counter() - start)
