"""Video to reconstruction: decoding, the two-hand region, windowed inference."""
