"""ONNX Runtime inference: fp32 graphs built from weights, or saved (e.g. int8) graphs."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from msinet.engine.base import check_batch
from msinet.engine.device import onnx_providers
from msinet.engine.probe import PROBE_KEY, PROBE_MIN_CC, Probe, SelfCheck
from msinet.weights.onnx_file import load_onnx
from msinet.weights.onnx_graph import props
from msinet.weights.store import WeightsError

log = logging.getLogger("msinet")


def all_cores() -> int:
    return os.cpu_count() or 1


def session_options(threads: int, float_path: bool = False):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle ORT threads would spin for a while after each run, taking the cores that decoding,
    # resizing and PNG encoding need in a server; let them sleep instead.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # No arena: it keeps the largest batch's buffers for good (a server's RSS went from 290 MB
    # to 2 GB under load and stayed); without it a batch of 8 peaks ~350 MB lower and the
    # memory goes back, at no measured cost in speed (docs/serving.md).
    so.enable_cpu_mem_arena = False
    if float_path:
        # Q/DQ pairs stay as they are instead of fusing into integer kernels: float arithmetic
        # on the int8 file's (dequantized) weights.
        so.add_session_config_entry("session.disable_quant_qdq", "1")
    return so


class OnnxEngine:
    """`onnx` (fp32) from a weights file, or any msinet .onnx file (e.g. the int8 one);
    `float_path` runs an int8 file's graph in float arithmetic."""

    def __init__(self, path: Path, threads: int | None = None, name: str = "onnx",
                 float_path: bool = False, device: str = "cpu") -> None:  # fmt: skip
        import onnxruntime as ort

        from msinet.weights.onnx_graph import meta_of

        model = load_onnx(Path(path))
        self.name = name
        self.path = Path(path)
        self.threads = threads or all_cores()
        self.float_path = float_path
        self.device = device
        self.meta = meta_of(model)
        self.props = props(model)
        self.self_check: SelfCheck | None = None
        blob = model.SerializeToString()
        del model  # one copy of the weights fewer while the session builds its own
        self.session = ort.InferenceSession(
            blob, session_options(self.threads, float_path), providers=onnx_providers(device)
        )

    def single_threaded(self) -> OnnxEngine | None:
        """The same weights in a session whose calls each run on their caller's thread alone.
        Several such calls at once use the cores better than calls that split each operator
        across threads (docs/serving.md: 6-10% more images per second on 2 cores); a lone call
        is faster split. None when this engine has one thread already (it is that)."""
        if self.threads == 1 or self.device != "cpu":
            return None
        sibling = OnnxEngine(self.path, 1, self.name, self.float_path)
        sibling.self_check = self.self_check  # same file, same CPU
        return sibling

    def predict(self, batch: np.ndarray) -> np.ndarray:
        check_batch(batch)
        x = np.ascontiguousarray(batch, dtype=np.float32)
        return self.session.run(["saliency"], {"images": x})[0][:, 0]


def fp32_source(int8: OnnxEngine) -> Path | None:
    """The fp32 weights an int8 file was quantized from, where installed: the shipped model,
    or `<name>.safetensors` beside `<name>-int8.onnx`; matched by content hash."""
    from msinet.weights.store import SHIPPED, read_header, weights_dir

    wanted = int8.props.get("source_content_sha256")
    if not wanted:
        return None
    stem = int8.path.name.removesuffix(".onnx").removesuffix("-int8")
    candidates = [int8.path.with_name(stem + ".safetensors")]
    candidates += [weights_dir() / s.file for s in SHIPPED.values()]
    for path in candidates:
        try:
            if read_header(path).get("content_sha256") == wanted:
                return path
        except WeightsError:
            continue
    return None


def load_int8(path: Path, threads: int | None = None) -> OnnxEngine:
    """The int8 engine, checked on this CPU against the probe its file carries. If its maps are
    off, the fp32 engine runs instead (the source weights where installed, else the file's own
    graph in float arithmetic), with a warning; `engine.self_check` says what happened."""
    from msinet.engine.cpu import cpu_info

    cpu = cpu_info().describe()
    engine = OnnxEngine(path, threads, name="onnx-int8")
    if PROBE_KEY not in engine.props:
        engine.self_check = SelfCheck(cpu, None, True, "int8")
        log.warning("msinet: %s: %s", path, engine.self_check.summary())
        return engine
    probe = Probe.decode(engine.props[PROBE_KEY])
    cc = probe.cc(engine.predict)
    if cc >= PROBE_MIN_CC:
        engine.self_check = SelfCheck(cpu, cc, True, "int8")
        return engine
    fallbacks = []
    source = fp32_source(engine)
    if source is not None:
        fallbacks.append((f"onnx fp32 ({source.name})", lambda: OnnxEngine(source, threads)))
    fallbacks.append(("the int8 file's graph in float arithmetic",
                      lambda: OnnxEngine(path, threads, float_path=True)))  # fmt: skip
    del engine
    tried = []
    for label, make in fallbacks:
        fallback = make()
        fallback_cc = probe.cc(fallback.predict)
        if fallback_cc >= PROBE_MIN_CC:
            fallback.self_check = SelfCheck(cpu, cc, False, label)
            log.warning("msinet: %s: %s", path, fallback.self_check.summary())
            return fallback
        tried.append(f"{label}: CC {fallback_cc:.4f}")
    raise WeightsError(
        f"{path} fails its int8 self-check on this CPU (CC {cc:.4f} < {PROBE_MIN_CC}) and no "
        f"fallback reproduces its probe ({'; '.join(tried)}): the file is damaged or its "
        "quantization is too coarse for this model; re-export it (msinet export --int8) or run "
        "its fp32 weights with --engine onnx"
    )
