"""MSI-Net visual saliency prediction."""

__version__ = "0.1.0"
