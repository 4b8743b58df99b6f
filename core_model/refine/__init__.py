"""Test-time refinement of the network's two hands against the detector's 2D landmarks (issue 11).

Entry points: :class:`Refiner` (tensors in, tensors out, any device), :func:`refine_result_arrays` (a result
file's arrays in, the ``refined_*`` arrays out; ``refine_result_arrays_steps`` the same one piece of the fit at a
time, with its progress) and :class:`RefineConfig`.
"""

from core_model.refine.arrays import REFITTED_ARRAYS, refine_result_arrays, refine_result_arrays_steps
from core_model.refine.config import RefineConfig
from core_model.refine.fit import RefineInput, Refiner, RefineResult
from core_model.refine.gating import REASONS, gate_detections

__all__ = ["REASONS", "REFITTED_ARRAYS", "RefineConfig", "RefineInput", "RefineResult", "Refiner", "gate_detections",
           "refine_result_arrays", "refine_result_arrays_steps"]
