"""Data: the rendered synthetic benchmark, InterHand2.6M and HIC loaders, T-frame windows."""
