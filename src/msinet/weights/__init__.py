"""Weights on disk: the safetensors store with metadata and hashes and the shipped files
(store), both file kinds behind one set of calls (files), torch load and save (torch_io), the
ONNX graph built from the weights and the .onnx file checked (onnx_graph, onnx_file: need
msinet[onnx]), and the official TF weights' importer (official)."""

from msinet.weights.store import WeightsError

__all__ = ["WeightsError"]
