"""Point-to-triangle closest points, written once for numpy and torch.

Hand-written because neither dependency offers it in the form needed: trimesh's ``triangles.closest_point`` is
numpy only (no gradients, about 0.4 µs per pair here) and there is no batched, differentiable version in torch
itself. Only arithmetic and ``where`` are used, so the same code runs on numpy arrays and on torch tensors (CPU or
CUDA, with autograd); ``xp`` is the module (``numpy`` or ``torch``) that provides ``where``.
"""

from __future__ import annotations

from typing import Any


def _dot(u, v):
    return (u * v).sum(-1)


def closest_point_on_triangle(p, a, b, c, xp: Any):
    """Closest point to ``p`` on triangle ``abc``; all ``[..., 3]`` (broadcasting), same result shape.

    Ericson, Real-Time Collision Detection, 5.1.5: the Voronoi region of ``p`` (vertex, edge or face) picks the
    formula. Every branch is evaluated and the right one selected, with denominators kept away from zero so
    that unused branches never put NaN into gradients.
    """
    ab, ac = b - a, c - a
    ap, bp, cp = p - a, p - b, p - c
    d1, d2 = _dot(ab, ap), _dot(ac, ap)
    d3, d4 = _dot(ab, bp), _dot(ac, bp)
    d5, d6 = _dot(ab, cp), _dot(ac, cp)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2

    def safe(x):
        return xp.where(x == 0, 1.0, x)

    def region(mask, point, out):
        return xp.where(mask[..., None], point, out)

    total = safe(va + vb + vc)
    out = a + ab * (vb / total)[..., None] + ac * (vc / total)[..., None]              # face interior
    bc_den = (d4 - d3) + (d5 - d6)
    out = region((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0),
                 b + (c - b) * ((d4 - d3) / safe(bc_den))[..., None], out)           # edge bc
    out = region((vb <= 0) & (d2 >= 0) & (d6 <= 0), a + ac * (d2 / safe(d2 - d6))[..., None], out)  # edge ac
    out = region((d6 >= 0) & (d5 <= d6), c + 0 * ap, out)                               # vertex c
    out = region((vc <= 0) & (d1 >= 0) & (d3 <= 0), a + ab * (d1 / safe(d1 - d3))[..., None], out)  # edge ab
    out = region((d3 >= 0) & (d4 <= d3), b + 0 * ap, out)                               # vertex b
    out = region((d1 <= 0) & (d2 <= 0), a + 0 * ap, out)                                # vertex a
    return out


def point_triangle_distance(p, a, b, c, xp: Any):
    """Euclidean distance from ``p`` to triangle ``abc``, shapes ``[..., 3]`` -> ``[...]``."""
    diff = p - closest_point_on_triangle(p, a, b, c, xp)
    return (diff * diff).sum(-1) ** 0.5
