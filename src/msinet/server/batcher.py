"""Dynamic batching: concurrent requests share one model call, off the event loop.

A bounded queue holds preprocessed images; one task takes the first waiting image, waits up to
`max_wait_ms` for more (up to `max_batch_size`; no wait when no model call is running), and
runs the engine in a worker thread. Up to `inflight` batches run at once. A call that is the
only work (nothing running, nothing queued behind it) gets every intra-op thread, which is the
fastest for one image; any other call runs on the engine's single-threaded sibling where it has
one (ONNX Runtime), so that under load each core runs a whole call instead of every call
splitting its operators across the cores, which costs 6-10% of the throughput on 2 cores
(docs/serving.md). A full queue refuses at once (the caller answers 503); a caller that gives up
(504) leaves its slot, and an abandoned image is skipped, not computed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from msinet.engine import Engine

if TYPE_CHECKING:
    from msinet.server.settings import Settings


class QueueFull(Exception):
    """The service is saturated; retry later."""


def make_batcher(engine: Engine, settings: Settings, observe: Callable[..., None],
                 narrow: Engine | None, calls: int) -> Batcher:  # fmt: skip
    """`narrow` and `calls`: how calls run side by side on `engine` (`engine.under_load`);
    `--inflight-batches` overrides the number."""
    s = settings
    return Batcher(engine, s.max_batch_size, s.max_wait_ms, s.max_queue, observe,
                   s.inflight_batches or calls, narrow)  # fmt: skip


@dataclass
class Job:
    image: np.ndarray  # (3, H, W) float32 model input (Pipeline.prepare)
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


class Batcher:
    def __init__(self, engine: Engine, max_batch_size: int, max_wait_ms: float, max_queue: int,
                 observe=None, inflight: int = 1,
                 narrow: Engine | None = None) -> None:  # fmt: skip
        self.engine = engine
        self.narrow = narrow  # single-threaded calls, for all but a lone call (None: engine)
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.inflight = inflight
        self.queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=max_queue)
        self.executor = ThreadPoolExecutor(max_workers=inflight, thread_name_prefix="msinet-model")
        self.observe = observe or (lambda **_: None)
        self._task: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()  # model calls under way
        self.running_images = 0
        # model seconds per image, a moving average over recent calls (with `inflight` calls
        # at once, as under load); None until the first call (the service's warm-up)
        self.seconds_per_image: float | None = None

    def expected_wait(self, images: int) -> float:
        """Seconds until `images` more images would be done: all that is queued or running
        ahead of them, and them, at the measured rate with every call slot busy."""
        if self.seconds_per_image is None:
            return 0.0
        ahead = self.depth + self.running_images + images
        return ahead * self.seconds_per_image / self.inflight

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        while not self.queue.empty():
            await asyncio.sleep(0.01)
        await asyncio.gather(*self._running, return_exceptions=True)
        if self._task:
            self._task.cancel()
        self.executor.shutdown(wait=True)

    @property
    def depth(self) -> int:
        return self.queue.qsize()

    async def submit(self, image: np.ndarray, timeout: float) -> tuple[np.ndarray, float, float]:
        """The model-size map for one preprocessed image, the seconds it waited for the model
        and the seconds of its model call (its whole batch); QueueFull or TimeoutError."""
        future = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait(Job(image, future))
        except asyncio.QueueFull:
            raise QueueFull from None
        self.observe(queue_depth=self.depth)
        return await asyncio.wait_for(future, timeout)  # cancels the future on timeout

    async def _next_batch(self) -> list[Job]:
        jobs = [await self.queue.get()]
        # An idle model never waits: it takes what is queued and starts, since waiting would only
        # leave the cores idle. While another call runs, the batch waits up to max_wait to fill.
        wait = self.max_wait if self._running else 0.0
        deadline = time.perf_counter() + wait
        while len(jobs) < self.max_batch_size:
            remaining = deadline - time.perf_counter()
            try:
                jobs.append(self.queue.get_nowait() if remaining <= 0 else
                            await asyncio.wait_for(self.queue.get(), remaining))  # fmt: skip
            except (asyncio.QueueEmpty, TimeoutError):
                break
        return [j for j in jobs if not j.future.done()]  # drop callers that gave up

    async def _run(self) -> None:
        while True:
            if len(self._running) >= self.inflight:  # every slot busy: meanwhile the queue fills
                await asyncio.wait(self._running, return_when=asyncio.FIRST_COMPLETED)
                continue
            jobs = await self._next_batch()
            self.observe(queue_depth=self.depth)
            if not jobs:
                continue
            alone = not self._running and self.queue.empty()
            engine = self.engine if alone or self.narrow is None else self.narrow
            task = asyncio.get_running_loop().create_task(self._predict(jobs, engine))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _predict(self, jobs: list[Job], engine: Engine) -> None:
        loop = asyncio.get_running_loop()
        # one shape per engine call: group by input size (one size per server, normally)
        groups: dict[tuple[int, ...], list[Job]] = {}
        for j in jobs:
            groups.setdefault(j.image.shape, []).append(j)
        for group in groups.values():
            start = time.perf_counter()
            self.running_images += len(group)
            try:
                maps = await loop.run_in_executor(
                    self.executor, engine.predict, np.stack([j.image for j in group])
                )
            except Exception as e:  # the model failed: every caller in the batch hears it
                for j in group:
                    if not j.future.done():
                        j.future.set_exception(e)
                continue
            finally:
                self.running_images -= len(group)
            elapsed = time.perf_counter() - start
            per_image = elapsed / len(group)
            previous = self.seconds_per_image
            self.seconds_per_image = per_image if previous is None else (
                0.8 * previous + 0.2 * per_image)  # fmt: skip
            threads = "one" if engine is self.narrow else "all"
            self.observe(batch_size=len(group), inference_s=elapsed, threads=threads)
            for j, m in zip(group, maps, strict=True):
                if not j.future.done():
                    j.future.set_result((m, start - j.enqueued, elapsed))
