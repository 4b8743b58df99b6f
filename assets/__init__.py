"""Shipped data files (OpenHand, checkpoint, demo clip, icons); installed as the package ``interhand_assets``."""
