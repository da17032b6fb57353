"""Image in, saliency map out: decode -> preprocess -> engine -> map back -> encode.

The one path from an image to its map. `msinet predict`, both HTTP APIs, Ray Data scoring,
`msinet evaluate` and the Python API (`msinet.load`) all run it; the server only puts its
batcher between `prepare` and `map_back`.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from msinet.density import DensityError, log_density
from msinet.engine import Engine
from msinet.imaging.decode import DEFAULT_MAX_PIXELS, ImageError, load_image, to_rgb
from msinet.imaging.postprocess import ImageMap, encode_jpeg, encode_png, overlay, to_uint8
from msinet.imaging.preprocess import Geometry, parse_size, preprocess

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    ImageInput = str | os.PathLike | bytes | np.ndarray | PILImage


@dataclass
class Done:
    """One input through the pipeline's batch driver: its decoded image, model-size map and
    geometry (map it back with `Pipeline.map_back`), or why it was skipped."""

    key: Any
    image: np.ndarray | None = None
    input: np.ndarray | None = None  # the prepared model input, until the map is made
    geometry: Geometry | None = None
    error: Exception | None = None
    map: np.ndarray | None = None

    def raised(self) -> Done:
        """Itself, or its error raised (for callers for whom one bad input stops all)."""
        if self.error is not None:
            raise self.error
        return self


class Pipeline:
    """An engine with its input size: images of any size and kind in, maps in 0..1 at each
    image's own size out."""

    def __init__(self, engine: Engine, size: str | tuple[int, int] | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:  # fmt: skip
        self.engine = engine
        self.size = parse_size(size if size is not None else tuple(engine.meta.training_size))
        self.max_pixels = max_pixels

    def __repr__(self) -> str:
        meta = self.engine.meta
        return (f"Pipeline(engine={self.engine.name!r}, size={self.size[0]}x{self.size[1]}, "
                f"dataset={meta.dataset!r}, version={meta.version!r})")  # fmt: skip

    # --- the stages, in order ------------------------------------------------------------------

    def decode(self, image: ImageInput) -> np.ndarray:
        """A path, encoded bytes, a PIL image or an array -> (H, W, 3) uint8 RGB."""
        if isinstance(image, str | os.PathLike | bytes | bytearray):
            return load_image(image, self.max_pixels)
        if isinstance(image, np.ndarray):
            return as_rgb_array(image)
        if hasattr(image, "mode") and hasattr(image, "size"):  # PIL.Image.Image
            return to_rgb(image)
        raise ImageError(f"not an image: {type(image).__name__} (give a path, bytes, a PIL "
                         "image or an (H, W[, 3]) array)")  # fmt: skip

    def prepare(self, image: np.ndarray) -> tuple[np.ndarray, Geometry]:
        """RGB image -> (model input (3, H, W) float32, the engine's layout; how to map back)."""
        x, geometry = preprocess(image, self.size)
        return np.ascontiguousarray(x.transpose(2, 0, 1)), geometry

    def run(self, prepared: list[np.ndarray]) -> np.ndarray:
        """Model-size maps (B, H, W) of prepared images, in one engine call."""
        return self.engine.predict(np.stack(prepared))

    @staticmethod
    def map_back(m: np.ndarray, geometry: Geometry, whole: bool = True) -> np.ndarray | ImageMap:
        """A model-size map -> the image's own size (float32, 0..1); with `whole=False` an
        ImageMap, computed a band of rows at a time by `encode` (a 49 MP map whole is 196 MB)."""
        image_map = ImageMap(m, geometry.original)
        return np.asarray(image_map) if whole else image_map

    def density_back(self, m: np.ndarray, geometry: Geometry) -> np.ndarray:
        """A model-size map -> the image's calibrated fixation density (float32 natural log at
        the image's size, logsumexp 0), with the parameters the weights carry."""
        calibration = self.engine.meta.density
        if calibration is None:
            raise DensityError("these weights carry no density calibration: fit one with "
                               "`msinet calibrate` (docs/metrics.md)")  # fmt: skip
        return log_density(m, geometry.original, calibration)

    @staticmethod
    def encode(image: np.ndarray | None, saliency: np.ndarray | ImageMap, fmt: str = "png", *,
               with_overlay=False, colormap: str = "jet", alpha: float = 0.6,
               quality: int = 90) -> bytes:  # fmt: skip
        """An image-size map (or its overlay on `image`, needed only then) as PNG or JPEG."""
        picture = overlay(image, saliency, colormap, alpha) if with_overlay else to_uint8(saliency)
        return encode_jpeg(picture, quality) if fmt == "jpeg" else encode_png(picture)

    # --- all of it -----------------------------------------------------------------------------

    def predict(self, image: ImageInput) -> np.ndarray:
        """The saliency map of one image: (H, W) float32 in 0..1 at the image's size."""
        return self.predict_many([image])[0]

    def predict_many(self, images: list[ImageInput]) -> list[np.ndarray]:
        """Maps of several images, computed in one engine call; the first bad one raises."""
        done = list(self.run_batches(enumerate(images), batch_size=max(1, len(images))))
        return [self.map_back(d.map, d.geometry) for d in map(Done.raised, done)]

    def run_batches(self, inputs: Iterable[tuple[Any, ImageInput]],
                    batch_size: int = 1) -> Iterator[Done]:  # fmt: skip
        """The one batch driver (predict, Ray Data, video, calibrate): `(key, image)` pairs in
        batches of `batch_size` through decode -> prepare -> one engine call, each input's
        `Done` in order. An input that fails to decode or prepare is yielded with its error
        and never costs the others theirs; memory stays one batch however many inputs come."""
        it = iter(inputs)
        while group := list(itertools.islice(it, batch_size)):
            out: list[Done] = []
            for key, source in group:
                try:
                    image = self.decode(source)
                    x, geometry = self.prepare(image)
                    out.append(Done(key, image, x, geometry))
                except (ImageError, MemoryError) as e:
                    out.append(Done(key, error=e))
            ready = [d for d in out if d.error is None]
            if ready:
                for d, m in zip(ready, self.run([d.input for d in ready]), strict=True):
                    d.map, d.input = m, None  # the model input is not needed any more
            yield from out

    def log_density(self, image: ImageInput) -> np.ndarray:
        """The calibrated fixation density of one image: (H, W) float32 natural log."""
        x, geometry = self.prepare(self.decode(image))
        return self.density_back(self.run([x])[0], geometry)

    __call__ = predict


def as_rgb_array(a: np.ndarray) -> np.ndarray:
    """(H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA arrays, uint8 0..255 or float 0..1."""
    if a.ndim == 2:
        a = a[:, :, None].repeat(3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or 0 in a.shape:
        raise ImageError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4), got {a.shape}")
    a = a[:, :, :3]
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if not np.issubdtype(a.dtype, np.number) or not np.isfinite(a).all():
        raise ImageError(f"an image array must hold finite numbers, got {a.dtype}")
    scale = 255.0 if np.issubdtype(a.dtype, np.floating) and a.max(initial=0) <= 1.0 else 1.0
    return np.clip(np.rint(a * scale), 0, 255).astype(np.uint8)


def resolve(weights: str | os.PathLike | None = None, engine: str | None = None,
            device: str = "cpu") -> tuple[str, Path]:  # fmt: skip
    """The one engine rule: (engine name, weights path). No weights: the shipped model, on the
    fastest engine that passes the fidelity bar (on the CPU int8 ONNX Runtime where installed,
    else torch); given weights: fp32 ONNX Runtime where installed, else torch; on a GPU, ONNX
    Runtime's CUDA provider where installed, else torch; an explicit engine always wins."""
    from msinet.engine import auto_engine
    from msinet.engine.device import parse_device
    from msinet.weights.store import default_weights

    name = engine or auto_engine(weights, parse_device(device))
    return name, Path(weights) if weights else default_weights(name)


def load(weights: str | os.PathLike | None = None, *, engine: str | None = None,
         size: str | tuple[int, int] | None = None, threads: int | None = None,
         max_pixels: int = DEFAULT_MAX_PIXELS, device: str = "cpu",
         amp: str | None = None) -> Pipeline:  # fmt: skip
    """A ready pipeline: `msinet.load().predict("photo.jpg")` is the shipped model's map;
    `device="cuda"` runs it on a GPU (engine/device.py), `amp="bf16"` with autocast (torch)."""
    from msinet.engine import load_engine

    name, path = resolve(weights, engine, device)
    return Pipeline(load_engine(name, path, threads=threads, device=device, amp=amp), size,
                    max_pixels)  # fmt: skip
