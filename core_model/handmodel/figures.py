"""A figure of a hand model in named poses, both hands, for checking a model by eye and for the README."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import roma
import torch

from core_model.handmodel.layer import HandModel
from core_model.handmodel.poses import NAMED_POSES, pose_of
from core_model.render import FigurePanel, render_panels

FIGURE_POSES = ("open", "fist", "pinch", "point")


def posed_pair(model: HandModel, pose_name: str, gap: float = 0.2) -> np.ndarray:
    """Both hands in one named pose, palms toward the viewer, side by side: vertices [2, V, 3]."""
    articulation = NAMED_POSES[pose_name]
    pose = torch.stack([pose_of(layer, articulation) for layer in model.sides])
    # Canonical rest: fingers -x (right) / +x (left), palm -y. In the camera frame we want fingers up (-y)
    # and palms facing the camera (-z); columns are the images of the canonical x, y, z axes.
    right = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    left = torch.tensor([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    orient = roma.rotmat_to_rotvec(torch.stack([right, left]))
    transl = torch.tensor([[-gap / 2, 0.0, 0.0], [gap / 2, 0.0, 0.0]])
    with torch.no_grad():
        out = model(torch.zeros(2, 10), orient, pose, transl)
    return out.vertices.numpy()


def render_pose_figure(model: HandModel, path: str | Path, poses: tuple[str, ...] = FIGURE_POSES,
                       views: tuple[str, ...] = ("front", "alternative")) -> Path:
    faces = [layer.data.faces for layer in model.sides]
    panels = [FigurePanel(posed_pair(model, name), faces, title=f"{model.name}: {name} ({view})", view=view)
              for view in views for name in poses]
    return render_panels(panels, path, columns=len(poses))
