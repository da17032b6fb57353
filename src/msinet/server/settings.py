"""Server settings: CLI flags, or environment variables prefixed MSINET_ (MSINET_PORT=9000)."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from msinet.image import DEFAULT_MAX_PIXELS


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MSINET_")

    host: str = "127.0.0.1"
    port: int = 8000
    engine: str | None = None  # torch, onnx, onnx-int8; default: msinet.engine.auto_engine
    weights: str | None = None  # default: the shipped model for the engine
    threads: int | None = None  # intra-op threads per worker (default: all cores)
    workers: int = Field(1, ge=1)  # processes, one model instance each
    max_batch_size: int = Field(8, ge=1, le=64)
    max_wait_ms: float = Field(10.0, ge=0)  # how long a batch waits to fill after its first image
    # model calls at once: a lone request keeps every intra-op thread; under load a second
    # call overlaps the first's serial operators and the per-request work (docs/serving.md)
    inflight_batches: int = Field(2, ge=1, le=16)
    max_queue: int = Field(64, ge=1)  # images waiting for the model; beyond it: 503
    request_timeout_s: float = Field(30.0, gt=0)  # per request; beyond it: 504
    max_upload_mb: float = Field(20.0, gt=0)
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1)
    max_batch_images: int = Field(16, ge=1)  # images in one /v1/saliency:batch request
    api_key_env: str | None = None  # name of the environment variable holding the API key
    cors_origins: list[str] = []
    size: str | None = None  # model input size (default: the weights' training size)
    model_name: str = "msinet"
    # "asyncio": msinet's own batcher; "ray": Ray Serve's @serve.batch (inside a Serve replica)
    batching: Literal["asyncio", "ray"] = "asyncio"

    @property
    def api_key(self) -> str | None:
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ValueError(f"--api-key-env {self.api_key_env} names an unset variable")
        return key

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)
