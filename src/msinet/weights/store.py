"""Weights on disk: safetensors with metadata and a content hash, never pickle.

Everything here works on numpy arrays, so the torch-free engines read the same files; the torch
model's side (load_model, save_model, init_from_vgg16) is msinet.weights.torch_io.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from msinet.density import DensityCalibration, DensityError
from msinet.imaging.files import written_whole
from msinet.model.arch import MSINetConfig, parameter_shapes

FORMAT = "msinet"
ARCH_VERSION = "1"  # bump when the module layout changes in a way old files cannot load into


class WeightsError(Exception):
    """A weights file that is missing, corrupt, or not an MSI-Net of this architecture."""


@dataclass(frozen=True)
class WeightsMeta:
    """What a weights file says about itself (all stored as strings in the safetensors header).

    The model's input convention comes from its `MSINetConfig` (`from_config`) and goes back to
    one (`config`), so a file always reloads as the model that was saved."""

    input_order: str = MSINetConfig.input_order  # see MSINetConfig
    mean: tuple[float, float, float] = MSINetConfig.mean
    training_size: tuple[int, int] = (240, 320)  # (H, W) the model was trained at
    dataset: str = "none"
    version: str = "0"
    arch_version: str = ARCH_VERSION
    description: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    density: DensityCalibration | None = None  # map -> fixation density (msinet calibrate)

    @classmethod
    def from_config(cls, config: MSINetConfig, **fields) -> WeightsMeta:
        return cls(input_order=config.input_order, mean=tuple(config.mean), **fields)

    def config(self) -> MSINetConfig:
        if self.input_order not in ("bgr", "rgb"):
            raise WeightsError(f"unknown input_order {self.input_order!r}")
        return MSINetConfig(input_order=self.input_order, mean=tuple(self.mean))  # type: ignore[arg-type]

    def to_header(self) -> dict[str, str]:
        d = asdict(self)
        extra = d.pop("extra")
        d.pop("density")
        header = {k: json.dumps(v) if isinstance(v, tuple | list) else str(v) for k, v in d.items()}
        header["extra"] = json.dumps(extra)
        if self.density is not None:
            header["density"] = self.density.to_json()
        header["format"] = FORMAT
        return header

    @classmethod
    def from_header(cls, header: dict[str, str]) -> WeightsMeta:
        try:
            return cls(
                input_order=header["input_order"],
                mean=tuple(json.loads(header["mean"])),
                training_size=tuple(json.loads(header["training_size"])),
                dataset=header.get("dataset", "none"),
                version=header.get("version", "0"),
                arch_version=header["arch_version"],
                description=header.get("description", ""),
                extra=json.loads(header.get("extra", "{}")),
                density=DensityCalibration.from_json(header["density"])
                if "density" in header
                else None,
            )
        except DensityError as e:
            raise WeightsError(f"weights metadata: {e}") from e
        except (KeyError, ValueError, TypeError) as e:
            raise WeightsError(f"weights metadata is incomplete or malformed: {e!r}") from e


def content_hash(tensors: dict[str, np.ndarray]) -> str:
    """sha256 over names, dtypes, shapes and bytes, independent of the file's header layout."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = np.ascontiguousarray(tensors[name])
        h.update(f"{name}|{t.dtype.str}|{t.shape}|".encode())
        h.update(t.tobytes())
    return h.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_arrays(path: str | os.PathLike, tensors: dict[str, np.ndarray], meta: WeightsMeta) -> str:
    """Write tensors with metadata and their content hash; returns the hash."""
    header = meta.to_header()
    header["content_sha256"] = content_hash(tensors)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with written_whole(path) as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp), header)
    return header["content_sha256"]


def read_header(path: str | os.PathLike) -> dict[str, str]:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), "np") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        with open(path, "rb") as f:
            start = f.read(4)
        if start[:1] == b"\x80" or start == b"PK\x03\x04":  # pickle, or torch.save's zip
            raise WeightsError(
                f"{path} is not a safetensors file but a pickle (torch.save or similar): "
                "msinet refuses pickles on purpose, since loading one can run code; save the "
                "tensors with safetensors instead"
            ) from None
        raise WeightsError(f"{path} is not a safetensors file: {e}") from e


def load_arrays(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], WeightsMeta]:
    """Read an msinet weights file, verifying its format, architecture and content hash."""
    path = Path(path)
    header = read_header(path)
    if header.get("format") != FORMAT:
        raise WeightsError(
            f"{path} is not an msinet weights file (format={header.get('format')!r}); "
            "official TF weights need `msinet convert-official` first"
        )
    meta = WeightsMeta.from_header(header)
    if meta.arch_version != ARCH_VERSION:
        raise WeightsError(
            f"{path} is for architecture version {meta.arch_version}, "
            f"this msinet reads version {ARCH_VERSION}"
        )
    try:
        with safe_open(str(path), "np") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{path} is corrupted: {e}") from e
    expected = header.get("content_sha256")
    if expected is None:
        raise WeightsError(f"{path} carries no content_sha256; refusing unverified weights")
    if content_hash(tensors) != expected:
        raise WeightsError(f"{path} is corrupted: content hash does not match its metadata")
    # Checked here, for every engine: a hash proves the file is what was written, not that
    # what was written fits the model (one reshaped tensor used to reach ONNX Runtime).
    try:
        check_state(tensors, parameter_shapes(meta.config()))
    except WeightsError as e:
        raise WeightsError(f"{path}: {e}") from None
    check_finite(tensors, path)
    return tensors, meta


def check_finite(tensors: dict[str, np.ndarray], source: str | os.PathLike) -> None:
    """NaN or infinite weights give all-zero maps with exit code 0: refuse them by name."""
    bad = sorted(k for k, v in tensors.items() if not np.isfinite(v).all())
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise WeightsError(f"{source}: non-finite values (NaN or inf) in {', '.join(bad[:3])}"
                           f"{more}")  # fmt: skip


def check_state(tensors: dict[str, np.ndarray], expected: dict[str, tuple[int, ...]]) -> None:
    """Fail with every missing, unexpected and mis-shaped key named, not just the first."""
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [
        f"{k}: file {tuple(tensors[k].shape)} vs model {expected[k]}"
        for k in sorted(set(expected) & set(tensors))
        if tuple(tensors[k].shape) != tuple(expected[k])
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if unexpected:
            parts.append(f"unexpected {unexpected}")
        if wrong:
            parts.append(f"wrong shapes {wrong}")
        raise WeightsError("weights do not fit the MSI-Net architecture: " + "; ".join(parts))


def cast_weights(
    src: str | os.PathLike, dst: str | os.PathLike, dtype: str = "float16", **meta_changes: str
) -> str:
    """Copy a weights file in another float dtype (e.g. fp16 to ship), metadata kept or updated.

    Returns the new file's content hash."""
    if dtype not in ("float16", "float32"):
        raise WeightsError(f"dtype must be float16 or float32, got {dtype}")
    tensors, meta = load_arrays(src)
    if meta_changes:
        from dataclasses import replace

        meta = replace(meta, **meta_changes)
    return save_arrays(dst, {k: v.astype(dtype) for k, v in tensors.items()}, meta)


# --- shipped weights --------------------------------------------------------------------------


@dataclass(frozen=True)
class ShippedWeights:
    """A model that ships in the repository's weights/ folder, pinned by its files' hashes."""

    name: str
    file: str  # msinet safetensors (torch and onnx engines)
    sha256: str
    int8_file: str  # int8 ONNX (onnx-int8 engine)
    int8_sha256: str
    meta: dict[str, object]


SHIPPED: dict[str, ShippedWeights] = {
    "msinet-v2": ShippedWeights(
        name="msinet-v2",
        file="msinet-v2.safetensors",
        sha256="147f1c0180a2dacf72a21863b97ea781969d666fdd4e1dbe7858f42b50ae8049",
        int8_file="msinet-v2-int8.onnx",
        int8_sha256="2fdba6f8a2682ed70f89d11c628f76e32253c763309b769d705ab7b7f9e35801",
        meta={
            "num_params": 24_934_209,
            "dtype": "float16",
            "dataset": "OSIE 1001-1500, MIT1003 (official split, 803), EyeCrowd 001-320; "
            "validated on OSIE 1501-1600, MIT1003 (200), EyeCrowd 321-400",
            "training_size": (240, 320),
            "input_order": "bgr",
            "licence": "weights: MIT (OSIE and EyeCrowd data, MIT licence; MIT1003, academic "
            "use; VGG16 init, CC BY 4.0)",
            "density": "calibrated on the training splits of OSIE, MIT1003 and EyeCrowd "
            "(msinet calibrate, docs/metrics.md)",
            "model_card": "weights/MODEL_CARD.md",
        },
    )
}
DEFAULT_MODEL = "msinet-v2"


def weights_dir() -> Path:
    """`$MSINET_WEIGHTS_DIR`; else the repository's weights/ beside src/ (a checkout or an
    editable install); else the installed data package `msinet_weights` (a wheel)."""
    env = os.environ.get("MSINET_WEIGHTS_DIR")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[3] / "weights"
    if checkout.is_dir():
        return checkout
    import importlib.util

    spec = importlib.util.find_spec("msinet_weights")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return checkout  # missing: default_weights() says so


def default_weights(engine: str = "torch") -> Path:
    """The verified path of the default shipped model for `engine` (the int8 ONNX file for
    onnx-int8, the safetensors otherwise), or a clear error saying there is none."""
    entry = SHIPPED.get(DEFAULT_MODEL)
    if entry is None:
        raise WeightsError(
            "no trained weights are installed with this msinet; pass --weights FILE "
            "(an msinet .safetensors file, e.g. one written by `msinet train`)"
        )
    name, sha = (entry.int8_file, entry.int8_sha256) if engine == "onnx-int8" else (
        entry.file, entry.sha256)  # fmt: skip
    path = weights_dir() / name
    if not path.is_file():
        raise WeightsError(f"the default weights {path} are missing from this installation")
    if file_sha256(path) != sha:
        raise WeightsError(f"{path} does not match its pinned sha256 {sha}: corrupted")
    return path
