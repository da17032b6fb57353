"""MSI-Net itself: the architecture written once (arch), its configuration, and the torch
modules (net)."""
