"""Frames per second of `msinet predict clip.mp4` for each engine, on a 320x240 clip made of
real OSIE images (the model's own input size, so the numbers are the model's rate plus video
decode, map back and H.264 encode).

    python benchmarks/video_fps.py --root ../shared/data/osie --frames 24
"""

from __future__ import annotations

import argparse
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from msinet.engine.cpu import cpu_info
from msinet.pipeline import load
from msinet.video import VideoWriter, predict_video


def make_clip(path: Path, images: list[Path], frames: int, size=(320, 240)) -> None:
    out = VideoWriter(path, Fraction(25), size)
    for i in range(frames):
        out.write(np.asarray(Image.open(images[i % len(images)]).convert("RGB").resize(size)))
    out.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default="../shared/data/osie")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--engines", nargs="+", default=["onnx-int8", "onnx", "torch"])
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    images = sorted((Path(args.root) / "stimuli").iterdir())[500:508]
    print(f"# {cpu_info().describe()}; 320x240 H.264 clip of {args.frames} OSIE frames")
    print("| engine | batch | frames/s | with --overlay |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        make_clip(clip, images, args.frames)
        for engine in args.engines:
            pipeline = load(engine=engine, threads=args.threads)
            predict_video(pipeline, clip, Path(tmp) / "warm.mp4", batch_size=1)  # warm-up
            for batch in (1, 4):
                plain = predict_video(pipeline, clip, Path(tmp) / "m.mp4", batch_size=batch)
                both = predict_video(pipeline, clip, Path(tmp) / "m.mp4", batch_size=batch,
                                     overlay_output=Path(tmp) / "o.mp4")  # fmt: skip
                print(f"| {engine} | {batch} | {plain.frames / plain.seconds:.2f} | "
                      f"{both.frames / both.seconds:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
