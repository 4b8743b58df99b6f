"""Geometry of closed hand meshes: capping, interpenetration, alignment, rotations."""
