"""Training: the datasets' training parts and caches, losses, and the training loop."""
