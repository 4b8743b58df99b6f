"""STCNet: frame encoder, multi-scale extractor, temporal encoder, MANO decoder (paper section 3.1)."""
