"""The saliency HTTP service."""
