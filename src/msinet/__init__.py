"""MSI-Net visual saliency prediction.

>>> import msinet
>>> saliency = msinet.load().predict("photo.jpg")  # (H, W) float32 in 0..1

`msinet.load` and `msinet.Pipeline` live in msinet.pipeline, imported on first use so that
`import msinet` (and the CLI's start) stays light.
"""

__version__ = "0.1.0"
__all__ = ["Pipeline", "load"]


def __getattr__(name: str):
    if name in __all__:
        from msinet import pipeline

        return getattr(pipeline, name)
    if name == "aoi":  # msinet.aoi.report(...) after a bare `import msinet`
        import importlib

        return importlib.import_module("msinet.aoi")
    raise AttributeError(f"module 'msinet' has no attribute {name!r}")
