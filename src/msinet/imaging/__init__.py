"""Images in and out: decoding, the official resize kernels, preprocessing, mapping back,
encoding, and output files written whole."""
