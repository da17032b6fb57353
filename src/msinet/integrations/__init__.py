"""Bridges to other saliency tools; each needs its own optional extra."""
