"""Images in, saliency maps out: preprocess -> engine -> postprocess."""

from __future__ import annotations

import numpy as np

from msinet.engine import Engine
from msinet.postprocess import map_to_image
from msinet.preprocess import Geometry, batch, parse_size, preprocess


class Predictor:
    """Runs an engine on RGB uint8 arrays of any size; maps come back at each image's size."""

    def __init__(self, engine: Engine, size: str | tuple[int, int] | None = None) -> None:
        self.engine = engine
        self.size = parse_size(size if size is not None else tuple(engine.meta.training_size))

    def prepare(self, image: np.ndarray) -> tuple[np.ndarray, Geometry]:
        return preprocess(image, self.size)

    def run(self, prepared: list[np.ndarray]) -> np.ndarray:
        """Model-size maps (B, H, W) for already preprocessed images."""
        return self.engine.predict(batch(prepared))

    def predict(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Maps in 0..1 at each image's original size."""
        prepared = [self.prepare(im) for im in images]
        maps = self.run([x for x, _ in prepared])
        return [map_to_image(m, g.original) for m, (_, g) in zip(maps, prepared, strict=True)]
