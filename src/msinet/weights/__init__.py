"""Weights on disk: the safetensors store with metadata and hashes and the shipped files
(store), torch load and save (torch_io), and the official TF weights' importer (official)."""
