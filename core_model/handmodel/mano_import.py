"""Import the official MANO pickles without chumpy, into plain ``.npz`` files of MANO's layout.

The pickles from mano.is.tue.mpg.de hold numpy arrays, a scipy sparse ``J_regressor`` and ``chumpy.ch.Ch``
objects (chumpy does not install on Python 3.11 / numpy 2). ``RestrictedUnpickler`` rebuilds exactly those:
numpy arrays through numpy's own reconstructor, chumpy objects and sparse matrices as inert stubs that only
keep their pickled state, and refuses every other class, so a pickle whose ``__reduce__`` names a callable
such as ``os.system`` fails before anything runs.
"""

from __future__ import annotations

import builtins
import codecs
import copyreg
import io
import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse

from core_model.geometry.closed_mesh import cap_holes, signed_volume
from core_model.handmodel.data import HandModelData, HandModelFileError
from core_model.handmodel.registry import MANO_FILES, mano_dir

log = logging.getLogger(__name__)

MANO_HELP = ("Download MANO (models_v1_2, 'Models & Code') from https://mano.is.tue.mpg.de after accepting its "
             "licence, then run: interhand mano-import PATH/TO/mano_v1_2/models")

# The fingertip vertices that InterHand2.6M, IntagHand and most of the field append to MANO's 16 joints.
MANO_FINGERTIP_IDS = (745, 317, 444, 556, 673)
MANO_SHAPES = {"v_template": (778, 3), "shapedirs": (778, 3, 10), "posedirs": (778, 3, 135),
               "J_regressor": (16, 778), "weights": (778, 16), "kintree_table": (2, 16), "f": (1538, 3),
               "hands_components": (45, 45), "hands_mean": (45,)}


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a class or callable outside what a MANO file may contain."""


class _PickledState:
    """Stand-in for a chumpy or scipy object: it only records the state the pickle gives it."""

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _ChumpyStub(_PickledState):
    pass


class _SparseStub(_PickledState):
    pass


_NUMPY_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]
_NUMPY_SCALAR = np.float64(0).__reduce__()[0]
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _NUMPY_RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _NUMPY_RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _NUMPY_SCALAR,
    ("numpy._core.multiarray", "scalar"): _NUMPY_SCALAR,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("copy_reg", "_reconstructor"): copyreg._reconstructor,
    ("copyreg", "_reconstructor"): copyreg._reconstructor,
    ("_codecs", "encode"): codecs.encode,  # how Python 3 writes bytes into a protocol-2 pickle
}
# Pure data constructors that may appear inside a chumpy object's state; none has side effects.
_ALLOWED |= {(module, name): getattr(builtins, name) for module in ("__builtin__", "builtins")
             for name in ("object", "set", "frozenset", "slice", "complex")}
_SPARSE_MODULES = {"scipy.sparse.csc", "scipy.sparse._csc", "scipy.sparse.csr", "scipy.sparse._csr",
                   "scipy.sparse.compressed", "scipy.sparse._compressed"}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for MANO files: numpy, chumpy (as stubs) and scipy sparse matrices (as stubs), nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[module, name]
        if module == "chumpy" or module.startswith("chumpy."):
            return _ChumpyStub
        if module in _SPARSE_MODULES and name in ("csc_matrix", "csr_matrix"):
            return _SparseStub
        raise UnsafePickleError(f"refused to load {module}.{name}: a MANO file holds only numpy, chumpy and "
                                "scipy.sparse arrays")


def _chumpy_array(key: str, stub: _ChumpyStub) -> np.ndarray:
    """The value of a chumpy expression from its pickled state: a ``Ch`` keeps it in ``x``, a
    ``reordering.Select`` in ``a`` (another Ch) indexed by ``idxs``; both may carry the result in ``_cache``."""
    state = getattr(stub, "state", None)
    if not isinstance(state, dict):
        raise HandModelFileError(f"{key}: a chumpy object without state; not a MANO model file")
    if "x" in state:
        return np.asarray(state["x"])
    if "a" in state and "idxs" in state and isinstance(state["a"], _ChumpyStub):
        selected = _chumpy_array(key, state["a"]).ravel()[np.asarray(state["idxs"])]
        shape = state.get("preferred_shape")
        return selected.reshape(shape) if shape is not None else selected
    cached = state.get("_cache")
    if isinstance(cached, dict) and isinstance(cached.get("r"), np.ndarray):
        return cached["r"]
    raise HandModelFileError(f"{key}: a chumpy object whose array cannot be recovered; not a MANO model file")


def _to_array(key: str, value: Any) -> np.ndarray:
    if isinstance(value, _ChumpyStub):
        value = _chumpy_array(key, value)
    elif isinstance(value, _SparseStub):
        state = getattr(value, "state", None)
        try:
            shape = state.get("_shape", state.get("shape"))
            cls = scipy.sparse.csc_matrix if state.get("format", "csc") == "csc" else scipy.sparse.csr_matrix
            value = cls((state["data"], state["indices"], state["indptr"]), shape=shape).toarray()
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise HandModelFileError(f"{key}: malformed sparse matrix ({exc})") from exc
    if not isinstance(value, np.ndarray):
        raise HandModelFileError(f"{key}: expected an array, got {type(value).__name__}")
    return value


def read_mano_pickle(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of one official MANO pickle, checked against MANO's shapes; errors name the key."""
    path = Path(path)
    if not path.is_file():
        raise HandModelFileError(f"MANO file not found: {path}. {MANO_HELP}")
    try:
        raw = RestrictedUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except UnsafePickleError as exc:
        raise HandModelFileError(f"{path}: {exc}") from exc
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise HandModelFileError(f"{path}: not a MANO pickle ({type(exc).__name__}: {exc})") from exc
    if not isinstance(raw, dict):
        raise HandModelFileError(f"{path}: expected a dict of MANO arrays, got {type(raw).__name__}")
    arrays = {}
    for key, shape in MANO_SHAPES.items():
        if key not in raw:
            raise HandModelFileError(f"{path}: missing key {key!r}")
        array = _to_array(key, raw[key])
        if array.shape != shape:
            raise HandModelFileError(f"{path}: {key}: expected shape {shape}, got {array.shape}")
        arrays[key] = array
    return arrays


def fix_left_shapedirs(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """MANO_LEFT.pkl ships the right hand's shapedirs unmirrored (smplx issue 48): the x component of every
    shape displacement points the wrong way, so changing betas on the left hand widens it on the wrong side
    and it stops being the mirror of a right hand of the same betas. Negating x mends it. Files where the two
    already differ (a corrected release) are left as they are."""
    if np.abs(left[:, 0, :] - right[:, 0, :]).sum() < 1.0:
        left = left.copy()
        left[:, 0, :] *= -1
    return left


def _hand_model_data(side: str, arrays: dict[str, np.ndarray], source: Path) -> HandModelData:
    faces = arrays["f"].astype(np.int32)
    closed = cap_holes(faces)
    # The MANO files share one face list between the sides although the left vertices are mirrored, which
    # turns the left surface inside out. Orient each side outward (positive volume) so inside tests hold.
    if signed_volume(arrays["v_template"], closed) < 0:
        faces, closed = faces[:, ::-1].copy(), closed[:, ::-1].copy()
    return HandModelData(
        side=side,
        v_template=arrays["v_template"].astype(np.float32),
        shapedirs=arrays["shapedirs"].astype(np.float32),
        posedirs=arrays["posedirs"].astype(np.float32),
        J_regressor=arrays["J_regressor"].astype(np.float32),
        weights=arrays["weights"].astype(np.float32),
        kintree_table=arrays["kintree_table"].astype(np.int64),
        faces=faces,
        closed_faces=closed.astype(np.int32),
        hands_components=arrays["hands_components"].astype(np.float32),
        hands_mean=arrays["hands_mean"].astype(np.float32),
        fingertip_ids=np.array(MANO_FINGERTIP_IDS, np.int64),
        meta={"name": "MANO", "licence": "MANO licence (non-commercial research; not redistributable)",
              "source": str(source.resolve()), "pose_correctives": True},
    )


def import_mano(source_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Read ``MANO_RIGHT.pkl`` and ``MANO_LEFT.pkl`` from ``source_dir``; write both ``.npz`` files."""
    source_dir = Path(source_dir)
    out = Path(out_dir) if out_dir is not None else mano_dir()
    if not source_dir.is_dir():
        raise HandModelFileError(f"source_dir: not a directory: {source_dir}. {MANO_HELP}")
    arrays = {side: read_mano_pickle(source_dir / f"MANO_{side.upper()}.pkl") for side in ("right", "left")}
    arrays["left"]["shapedirs"] = fix_left_shapedirs(arrays["left"]["shapedirs"], arrays["right"]["shapedirs"])
    written = []
    for side in ("right", "left"):
        data = _hand_model_data(side, arrays[side], source_dir / f"MANO_{side.upper()}.pkl")
        target = out / MANO_FILES[side]
        data.save(target)
        log.info("wrote %s", target)
        written.append(target)
    return written
