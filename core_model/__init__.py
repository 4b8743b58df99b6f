"""InterHand Studio's Qt-free core: hand models, geometry, network, data, pipeline, metrics and file formats."""

__version__ = "0.1.0"
