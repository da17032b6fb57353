"""The request lifecycle: decode -> preprocess -> batch -> predict -> postprocess -> encode.

CPU work (decoding, resizing, encoding) runs in threads; the model runs in the batcher's."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
from starlette.concurrency import run_in_threadpool

from msinet.engine import Engine, load_engine, under_load
from msinet.imaging.decode import ImageError, ImageTooLarge, declared_pixels
from msinet.imaging.outputs import npy_bytes
from msinet.imaging.postprocess import colormap_lut
from msinet.imaging.preprocess import Geometry
from msinet.pipeline import Pipeline, resolve
from msinet.server.batcher import Batcher, QueueFull, make_batcher
from msinet.server.memory import return_freed_memory
from msinet.server.observability import Metrics
from msinet.server.settings import Settings

Format = Literal["png", "jpeg", "npy", "json", "density"]


class ServiceError(Exception):
    """An error with an HTTP status, reported as a JSON body."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


@dataclass
class Options:
    format: Format = "png"
    overlay: bool = False
    colormap: str = "jet"
    alpha: float = 0.6
    size: Literal["original", "model"] = "original"
    json_max_side: int = 64


@dataclass
class CropRequest:
    aspects: dict[str, tuple[int, int]]  # as given ("16:9") -> reduced
    format: Literal["json", "jpeg", "png"] = "json"
    min_scale: float = 1.0
    keep: float = 0.95
    regions: int = 5


@dataclass
class Timing:
    """Where one image's time in the service went, in ms (the Server-Timing header and the
    msinet_stage_seconds histogram)."""

    decode: float = 0.0  # decode + preprocess (a worker thread)
    queue: float = 0.0  # waiting for the model: the batch to form, earlier calls to finish
    model: float = 0.0  # the model call that computed it (its whole batch)
    encode: float = 0.0  # map back + encode (a worker thread)

    @property
    def model_ms(self) -> float:
        """Queue + model: what X-Model-Time-Ms has always said."""
        return self.queue + self.model

    def header(self) -> str:
        return ", ".join(f"{k};dur={v:.1f}" for k, v in self.__dict__.items())


@dataclass
class Result:
    body: bytes | dict
    media_type: str
    shape: tuple[int, int]
    timing: Timing

    @property
    def model_ms(self) -> float:
        return self.timing.model_ms


# Bytes per pixel a request holds beyond its decoded image, measured with tracemalloc: a map
# (PNG) ~9, an overlay ~8 (made in row blocks), a crop's search ~28 (summed-area table and
# window sums in float64, labels): crops count twice in the in-flight pixel budget.
CROP_WEIGHT = 2

# Admit new work only if it is expected to finish within this share of the request timeout.
ADMIT_SHARE = 0.7


def timed(fn, *args):
    """fn(*args) and the seconds it took (inside the worker thread, so thread hops and event
    loop turns are not counted as the stage's)."""
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


class Ticket:
    """Admitted images: their deadline, counted as pending until they reach the batcher."""

    def __init__(self, service: SaliencyService, images: int, deadline: float) -> None:
        self.service, self.images, self.deadline = service, images, deadline

    def release(self) -> None:
        self.service.admitted -= self.images
        self.images = 0

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, *_) -> None:
        self.release()


class SaliencyService:
    def __init__(self, settings: Settings, metrics: Metrics,
                 engine: Engine | None = None) -> None:  # fmt: skip
        self.settings = settings
        self.metrics = metrics
        self.engine = engine
        self.batcher: Batcher | None = None
        self.pipeline: Pipeline | None = None  # decode/preprocess and map back/encode
        self.admitted = 0  # images admitted but not yet queued (uploading, decoding)
        self.pixels = 0  # pixels of the images being decoded, queued, run or encoded
        self.ready = False

    async def start(self) -> None:
        """Load the model (in a thread), start batching, warm up; then report ready."""
        s = self.settings
        if self.ready:
            return
        return_freed_memory()
        if self.engine is None:
            name, weights = resolve(s.weights, s.engine, s.device)
            self.engine = await run_in_threadpool(
                lambda: load_engine(name, weights, s.threads, device=s.device, amp=s.amp)
            )
        self.metrics.engine_loaded(self.engine)
        self.pipeline = Pipeline(self.engine, s.size, s.max_pixels)
        narrow, calls = await run_in_threadpool(under_load, self.engine)
        self.batcher = make_batcher(self.engine, s, self.metrics.observe, narrow, calls)
        self.batcher.start()
        warm = np.full((3, *self.size), 126.0, np.float32)  # the padding colour
        await self.batcher.submit(warm, timeout=120)
        self.ready = True

    async def stop(self) -> None:
        """Stop batching and let go of what start made (the single-threaded sibling session
        holds a copy of the weights), so that an app kept after its lifespan holds little."""
        self.ready = False
        if self.batcher:
            await self.batcher.stop()
        self.batcher = None

    @property
    def size(self) -> tuple[int, int] | None:
        """The model's input size (H, W), once loaded."""
        return self.pipeline.size if self.pipeline else None

    @property
    def model_version(self) -> str:
        return self.engine.meta.version if self.engine else "unknown"

    def _require_ready(self) -> None:
        """503 before the model is loaded and warmed up (checked before any decoding)."""
        if not self.ready or self.batcher is None:
            raise ServiceError(503, "model is not ready yet", {"Retry-After": "5"})

    def _check_options(self, opts: Options) -> None:
        try:
            colormap_lut(opts.colormap)
        except ValueError as e:
            raise ServiceError(422, str(e)) from e
        if opts.format == "density":
            if opts.overlay or opts.size != "original":
                raise ServiceError(422, "format=density is the image-size density: no overlay, "
                                   "size=original")  # fmt: skip
            if self.engine is not None and self.engine.meta.density is None:
                raise ServiceError(422, "the served model carries no density calibration "
                                   "(msinet calibrate); format=density is unavailable")  # fmt: skip

    @contextlib.contextmanager
    def _image_errors(self):
        """Bad images (undecodable, too large, too thin for the model) as counted HTTP errors."""
        try:
            yield
        except ImageTooLarge as e:
            self.metrics.rejected.labels("too_large").inc()
            raise ServiceError(413, str(e)) from e
        except ImageError as e:
            self.metrics.rejected.labels("bad_image").inc()
            raise ServiceError(422, str(e)) from e

    def prepare(self, data: bytes) -> tuple[np.ndarray, np.ndarray, Geometry]:
        """Image bytes -> (RGB image, model input, geometry); 413/422 for bad images."""
        with self._image_errors():
            image = self.pipeline.decode(data)
            return image, *self.pipeline.prepare(image)

    def admit(self, images: int = 1) -> Ticket:
        """Admission before anything is read or decoded: 503 with Retry-After at once when the
        work already ahead means `images` more could not finish before the request timeout;
        else a ticket whose deadline counts from now (arrival)."""
        self._require_ready()
        timeout = self.settings.request_timeout_s
        wait = self.batcher.expected_wait(self.admitted + images)
        if wait > ADMIT_SHARE * timeout:
            self.metrics.rejected.labels("overloaded").inc()
            retry = max(1, math.ceil(wait - ADMIT_SHARE * timeout))
            message = f"server busy: about {wait:.0f} s of work is ahead (timeout {timeout:g} s)"
            raise ServiceError(503, message, {"Retry-After": str(retry)})
        self.admitted += images
        return Ticket(self, images, time.perf_counter() + timeout)

    @contextlib.contextmanager
    def hold_pixels(self, data: bytes, weight: int = 1):
        """Memory bound: the images in flight may declare `max_inflight_pixels` in all (their
        decoded arrays and full-size maps scale with it), each counted `weight` times (a crop's
        search holds about twice a map's memory per pixel); beyond, 503 at once, before
        decoding. An image alone is always taken (`max_pixels` caps it)."""
        with self.hold_count(declared_pixels(data) * weight):
            yield

    @contextlib.contextmanager
    def hold_count(self, n: int):
        """The memory bound for `n` pixels known without a header (v2 tensors)."""
        budget = self.settings.max_inflight_pixels
        if self.pixels and self.pixels + n > budget:
            self.metrics.rejected.labels("memory").inc()
            raise ServiceError(503, f"server busy: {self.pixels} pixels of images in flight, "
                               f"{n} more would pass the {budget}-pixel limit",
                               {"Retry-After": "1"})  # fmt: skip
        self.pixels += n
        try:
            yield
        finally:
            self.pixels -= n

    async def run_model(self, x: np.ndarray, ticket: Ticket | None = None,
                        ) -> tuple[np.ndarray, Timing]:  # fmt: skip
        """Model-size map of one preprocessed image, and its queue and model ms; a 504 at the
        ticket's deadline (or the request timeout from now)."""
        self._require_ready()
        start = time.perf_counter()
        timeout = self.settings.request_timeout_s
        if ticket is not None:
            ticket.release()  # from here on it is counted in the batcher
            timeout = ticket.deadline - start
        try:
            if timeout <= 0:
                raise TimeoutError
            m, waited, model = await self.batcher.submit(x, timeout)
        except QueueFull:
            self.metrics.rejected.labels("queue_full").inc()
            raise ServiceError(503, "server busy: queue is full", {"Retry-After": "1"}) from None
        except TimeoutError:
            self.metrics.rejected.labels("timeout").inc()
            raise ServiceError(504, f"prediction timed out after "
                               f"{self.settings.request_timeout_s:g} s") from None  # fmt: skip
        return m, Timing(queue=waited * 1e3, model=model * 1e3)

    async def predict_map(
        self, image: np.ndarray, ticket: Ticket | None = None
    ) -> tuple[np.ndarray, Geometry, Timing]:
        """Model-size map of one RGB image, its geometry, and where the time went."""
        self._require_ready()
        with self._image_errors():
            x, geometry = await run_in_threadpool(self.pipeline.prepare, image)
        m, timing = await self.run_model(x, ticket)
        return m, geometry, timing

    async def saliency(self, data: bytes, opts: Options, ticket: Ticket | None = None) -> Result:
        if opts.overlay and opts.size != "original":
            raise ServiceError(422, "overlay needs size=original")
        self._check_options(opts)
        (body, media), geometry, timing = await self._through_model(
            data, ticket, lambda image, m, g: self.encode(image, m, g, opts), opts.overlay
        )
        shape = geometry.original if opts.size == "original" else self.size
        return Result(body, media, shape, timing)

    async def crop(self, data: bytes, req: CropRequest, ticket: Ticket | None = None,
                   ) -> tuple[dict | bytes, str]:  # fmt: skip
        """Boxes, focus and regions of one image (JSON), or the crop itself for one aspect."""
        needs_image = req.format != "json"
        deadline = ticket.deadline if ticket else None
        finish = lambda image, m, g: self._crop(image, m, g, req, deadline)  # noqa: E731
        answer, _, _ = await self._through_model(data, ticket, finish, needs_image, CROP_WEIGHT)
        return answer

    async def aoi(self, data: bytes, regions: list, ticket: Ticket | None = None) -> dict:
        """The attention report of one image for `regions` (msinet.aoi): measured on a grid of
        at most 4.2 MP, so its memory does not grow with the image."""
        if self.engine is not None and self.engine.meta.density is None:
            raise ServiceError(422, "the served model carries no density calibration (msinet "
                               "calibrate); /v1/aoi is unavailable")  # fmt: skip
        answer, _, _ = await self._through_model(
            data, ticket, lambda image, m, g: self._aoi(m, g, regions), False
        )
        return answer

    async def _through_model(self, data: bytes, ticket: Ticket | None, finish,
                             keep_image: bool, weight: int = 1):  # fmt: skip
        """Image bytes -> decode + prepare (a thread) -> the batcher -> `finish(image, map,
        geometry)` (a thread): (its result, geometry, timing). One thread hop per side of the
        model (each costs the event loop a round trip); the pixels are held for the memory
        bound throughout; the decoded image is dropped while queued unless `finish` needs it."""
        self._require_ready()
        with self.hold_pixels(data, weight):
            (image, x, geometry), decode_s = await run_in_threadpool(timed, self.prepare, data)
            if not keep_image:
                image = None
            m, timing = await self.run_model(x, ticket)
            answer, encode_s = await run_in_threadpool(timed, finish, image, m, geometry)
        timing.decode, timing.encode = decode_s * 1e3, encode_s * 1e3
        self.metrics.stages(timing)
        return answer, geometry, timing

    def _aoi(self, m: np.ndarray, geometry: Geometry, regions: list) -> dict:
        from msinet.aoi.measure import density_on_grid, measure
        from msinet.aoi.regions import RegionError

        H, W = geometry.original
        try:
            return measure(density_on_grid(m, (H, W), self.engine.meta.density), regions,
                           size=(W, H))  # fmt: skip
        except RegionError as e:
            raise ServiceError(422, str(e)) from None

    def _crop(self, image: np.ndarray | None, m: np.ndarray, geometry: Geometry,
              req: CropRequest, deadline: float | None = None):  # fmt: skip
        from msinet.crop import CropTimeout, crop_image, plan
        from msinet.imaging.postprocess import encode_jpeg, encode_png

        saliency = self.pipeline.map_back(m, geometry)
        try:
            out = plan(saliency, req.aspects, req.min_scale, req.keep, req.regions, deadline)
        except CropTimeout:
            raise ServiceError(
                504,
                "the crop search did not finish within the request "
                f"timeout of {self.settings.request_timeout_s:g} s",
            ) from None
        if req.format == "json":
            return out, "application/json"
        (spec,) = req.aspects
        piece = crop_image(image, tuple(out[spec]))
        body = encode_jpeg(piece, 92) if req.format == "jpeg" else encode_png(piece)
        return body, f"image/{req.format}"

    def encode(self, image: np.ndarray | None, m: np.ndarray, geometry: Geometry,
               opts: Options):  # fmt: skip
        if opts.format == "density":
            return npy_bytes(self.pipeline.density_back(m, geometry)), "application/x-npy"
        if opts.size == "original":  # 8-bit maps and overlays read it a band at a time
            m = self.pipeline.map_back(m, geometry, whole=opts.format in ("npy", "json"))
        if opts.format == "npy":
            return npy_bytes(m), "application/x-npy"
        if opts.format == "json":
            step = max(1, int(np.ceil(max(m.shape) / opts.json_max_side)))
            small = m[::step, ::step]
            # 3 decimals: all that an 8-bit map can mean (1/255), rounded in float64 so that
            # JSON shows 0.001 and not float32's 0.0010000000474974513
            values = np.round(small.astype(np.float64), 3).tolist()
            return {"shape": list(small.shape), "original_shape": list(m.shape), "step": step,
                    "saliency": values}, "application/json"  # fmt: skip
        body = self.pipeline.encode(image, m, opts.format, with_overlay=opts.overlay,
                                    colormap=opts.colormap, alpha=opts.alpha)  # fmt: skip
        return body, f"image/{opts.format}"
