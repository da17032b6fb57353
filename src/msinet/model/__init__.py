"""MSI-Net itself: the architecture written once, torch-free (arch), and the torch modules
(net)."""
