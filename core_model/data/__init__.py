"""Data: the rendered synthetic benchmark, InterHand2.6M and HIC loaders, T-frame windows.

``synth`` (generator and on-disk layout), ``motion`` (interaction prior, smooth motion), ``pose_prior``,
``appearance`` (skin, lights, backgrounds), ``renderer`` (VTK offscreen), ``capsules`` (fast separation proxy),
``windows`` (:class:`~core_model.data.windows.WindowDataset`, :class:`~core_model.data.windows.Window`,
augmentation), ``synthetic`` / ``interhand`` / ``hic`` (loaders), ``camera``, ``preview``, ``synth_cli``.
"""
