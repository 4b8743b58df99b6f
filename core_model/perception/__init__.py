"""Two-hand perception: right / left / background segmentation, both hands' keypoints with confidences, and a
presence score per hand, on the frame encoder STCNet shares (DESIGN section 5a)."""
