"""Publication figures and the per-frame series behind them, Qt-free: the GUI and ``interhand figures`` call the
same functions, so a figure made headless is the figure the app shows (DESIGN section 1, export).

- :mod:`series`: per-frame acceleration error (or magnitude) and penetration depth, millimetres;
- :mod:`overlay`: the hands drawn over a video frame (crop box, keypoints or mesh points) and the overlay mp4;
- :mod:`attention`: the window holding a frame, and the MHSA/MHCA attention figure (paper Fig. 11/12);
- :mod:`multiview`: meshes of chosen frames from two views beside the crop, one or several methods (results,
  refinements) side by side (paper Fig. 8/9);
- :mod:`accel`: the acceleration-error plot of several methods (paper Fig. 7).
"""
