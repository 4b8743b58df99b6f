"""The result file (DESIGN section 7): one ``.npz`` per reconstructed video, written atomically, read with
``allow_pickle=False``.

Why a flat npz of plain arrays plus one JSON string: it opens in any numpy without this package, cannot run
code when loaded, and is cheap to read one array of (the viewer maps frames lazily through ``np.load``).
The schema version says how to read a file; loading checks every array's shape against the frame count N and
the vertex count V, and names the first that does not fit.

Schema versions: 1, the network's result; 2 adds the optional test-time refinement (``core_model.refine``) as
``refined_<name>`` arrays beside the network's (:data:`REFINED_ARRAYS`); 3 adds the optional ``camera`` [N, 2, 3],
the network's weak-perspective camera per hand, from which refinement starts; 4 adds the optional ``witness``
[N, 2], which witness each hand's landmarks come from (MediaPipe or the project's perception), and ``masks``
[N, M, M], the perception's segmentation over each frame's crop. Older files load as
results without what their version could not hold (:data:`MIGRATIONS`).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
import os
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from core_model import __version__
from core_model.fileio import atomic_path

SCHEMA_VERSION = 4
FORMAT = "interhand-result"


class ResultFileError(ValueError):
    """A result file that cannot be read: not one, a schema this software does not know, or arrays that do not fit."""


@dataclasses.dataclass
class ResultMeta:
    """What the arrays are a result of. source_sha256: of the video file (empty for an image folder).
    checkpoint_sha256: of the checkpoint file the model was loaded from (empty for random weights).
    created: ISO 8601 UTC. extra: anything else plain (JSON) the producer wants to keep."""

    source_path: str
    source_sha256: str
    fps: float
    frame_count: int
    model_preset: str
    checkpoint_sha256: str
    hand_model: str
    software_version: str = __version__
    created: str = dataclasses.field(
        default_factory=lambda: datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


# name -> (shape with symbols, dtype kind). N frames, V vertices, W windows, the rest free per file.
FRAME_ARRAYS: dict[str, tuple[tuple[int | str, ...], str]] = {
    "betas": (("N", 2, 10), "f"),
    "global_orient": (("N", 2, 3), "f"),
    "hand_pose": (("N", 2, 45), "f"),
    "transl": (("N", 2, 3), "f"),
    "keypoints": (("N", 2, 21, 3), "f"),
    "vertices": (("N", 2, "V", 3), "f"),
    "inside": (("N", 2, "V"), "b"),
    "depth": (("N", 2, "V"), "f"),
    "bbox": (("N", 4), "f"),
    "keypoints2d": (("N", 2, 21, 2), "f"),
    "det_keypoints2d": (("N", 2, 21, 2), "f"),
    "det_score": (("N", 2), "f"),
    "valid": (("N", 2), "b"),
    "chirality_maps": (("N", 2, "H", "H"), "f"),
}
OPTIONAL_ARRAYS: dict[str, tuple[tuple[int | str, ...], str]] = {
    "region_source": (("N", 2), "i"),
    "camera": (("N", 2, 3), "f"),
    "witness": (("N", 2), "i"),
    "masks": (("N", "M", "M"), "i"),
    "window_frames": (("W", 2), "i"),
    "mhsa_attention": (("W", "K", "A", "2T", "2T"), "f"),
    "mhca_attention": (("W", "K", 2, "A", "T", "T"), "f"),
}
GT_ARRAYS: dict[str, tuple[tuple[int | str, ...], str]] = {
    "keypoints": (("N", 2, 21, 3), "f"),
    "vertices": (("N", 2, "G", 3), "f"),  # G: the ground truth's hand model's vertex count (may differ from V)
}
"""Ground truth the viewer and the figures use, by name without the ``gt_`` prefix; other ``gt_*`` arrays need only
hold numbers with N frames first."""
REFINED_PREFIX = "refined_"
REFINED_ARRAYS: dict[str, tuple[tuple[int | str, ...], str]] = {
    **{name: FRAME_ARRAYS[name] for name in ("betas", "global_orient", "hand_pose", "transl", "keypoints",
                                              "vertices", "inside", "depth", "keypoints2d")},
    "gate": (("N", 2), "i"),
}
"""The test-time refinement's arrays (schema 2), by name without the ``refined_`` prefix they carry in the file:
the network's per-frame arrays of the same names and shapes, refined (NaN / False where a hand was not refined),
plus ``gate`` [N, 2] int8, why each hand's detected landmarks were or were not fitted
(``core_model.refine.gating.REASONS``). All or none of them are in a file."""


@dataclasses.dataclass
class Reconstruction:
    """A reconstructed sequence of N frames. Hand 0 = right, 1 = left; metres, camera axes (OpenCV); frames
    without a region hold NaN in the float arrays and False in ``valid``.

    betas [N,2,10], global_orient [N,2,3] and hand_pose [N,2,45] (axis-angle), transl [N,2,3]: hand-model
    parameters. keypoints [N,2,21,3] and vertices [N,2,V,3]: the posed hands. inside [N,2,V] bool and depth
    [N,2,V] metres: each vertex inside the other hand and how deep. bbox [N,4]: the square crop (x, y, side, side)
    in frame pixels. keypoints2d [N,2,21,2]: the model's keypoints in frame pixels. det_keypoints2d [N,2,21,2] and
    det_score [N,2]: the hand detector's own landmarks and confidence (NaN where it saw no such hand). valid
    [N,2] bool: the hand was reconstructed. chirality_maps [N,2,H,H]: the hand-chirality weight maps over the
    crop. region_source [N,2] int8 (optional): 0 no hand, 1 placed from its track, 2 detected. camera [N,2,3]
    (optional, schema 3): the network's weak-perspective camera per hand (s, tx, ty) in the crop, which maps the
    hand's wrist-relative keypoints to normalised crop coordinates, ``uv = s * xy + t`` (the crop spans [-1, 1]).
    witness [N,2] int8 (optional, schema 4): where ``det_keypoints2d`` come from per hand: 0 no witness, 1
    MediaPipe's hand landmarker, 2 the project's two-hand perception (where MediaPipe missed the hand); absent:
    MediaPipe wherever there are landmarks. masks [N,M,M] int8 (optional, schema 4): the perception's labels over
    the crop ``bbox`` (0 background, 1 right hand, 2 left hand; M = 80 for the shipped perception; 0 everywhere
    on a frame without a region).
    window_frames [W,2] int (optional): each window's [start, stop) frames; mhsa_attention [W,K,heads,2T,2T] and
    mhca_attention [W,K,2,heads,T,T] (optional): that window's attention maps. gt: ground truth arrays by name
    without the ``gt_`` prefix (each with N first). refined: the test-time refinement's arrays by name without the
    ``refined_`` prefix (:data:`REFINED_ARRAYS`: all of them, or empty when the run did not refine); the fields
    above stay the network's own result.
    """

    meta: ResultMeta
    betas: np.ndarray
    global_orient: np.ndarray
    hand_pose: np.ndarray
    transl: np.ndarray
    keypoints: np.ndarray
    vertices: np.ndarray
    inside: np.ndarray
    depth: np.ndarray
    bbox: np.ndarray
    keypoints2d: np.ndarray
    det_keypoints2d: np.ndarray
    det_score: np.ndarray
    valid: np.ndarray
    chirality_maps: np.ndarray
    region_source: np.ndarray | None = None
    camera: np.ndarray | None = None
    witness: np.ndarray | None = None
    masks: np.ndarray | None = None
    window_frames: np.ndarray | None = None
    mhsa_attention: np.ndarray | None = None
    mhca_attention: np.ndarray | None = None
    gt: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    refined: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[2])

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array by its file name (optional ones only when present; ground truth as ``gt_*``, refinement as
        ``refined_*``)."""
        out = {name: getattr(self, name) for name in FRAME_ARRAYS}
        out.update({name: getattr(self, name) for name in OPTIONAL_ARRAYS if getattr(self, name) is not None})
        out.update({f"gt_{k}": v for k, v in self.gt.items()})
        out.update({f"{REFINED_PREFIX}{k}": v for k, v in self.refined.items()})
        return out

    def validate(self) -> None:
        """Check every shape and type against N and V; ResultFileError naming the first array that is off."""
        _validate(self.arrays(), self.meta)


def _validate(arrays: dict[str, np.ndarray], meta: ResultMeta, where: str = "result", values: bool = True) -> None:
    """Every shape and dtype against N and V (and, with ``values``, the window ranges); ResultFileError naming the
    first array that is off."""
    if "vertices" not in arrays or np.ndim(arrays["vertices"]) != 4:
        raise ResultFileError(f"{where}: vertices: expected [N, 2, V, 3]")
    symbols: dict[str, int] = {"N": arrays["vertices"].shape[0], "V": arrays["vertices"].shape[2]}
    for table, required in ((FRAME_ARRAYS, True), (OPTIONAL_ARRAYS, False)):
        for name, (shape, kind) in table.items():
            if name not in arrays:
                if required:
                    raise ResultFileError(f"{where}: missing array {name!r} {_show(shape)}")
                continue
            _check_array(name, np.asarray(arrays[name]), shape, kind, symbols, where)
    refined = sorted(name[len(REFINED_PREFIX):] for name in arrays if name.startswith(REFINED_PREFIX))
    if refined:
        unknown = [f"{REFINED_PREFIX}{k}" for k in refined if k not in REFINED_ARRAYS]
        if unknown:
            raise ResultFileError(f"{where}: unknown refined arrays {unknown}; refinement stores "
                                  f"{[REFINED_PREFIX + k for k in REFINED_ARRAYS]}")
        missing = [f"{REFINED_PREFIX}{k}" for k in REFINED_ARRAYS if k not in refined]
        if missing:
            raise ResultFileError(f"{where}: refined arrays incomplete: missing {missing} (a refined result holds "
                                  "all of them)")
        for name, (shape, kind) in REFINED_ARRAYS.items():
            _check_array(REFINED_PREFIX + name, np.asarray(arrays[REFINED_PREFIX + name]), shape, kind, symbols,
                         where)
    if ("mhsa_attention" in arrays or "mhca_attention" in arrays) and "window_frames" not in arrays:
        raise ResultFileError(f"{where}: attention maps without window_frames (which frames each window covers)")
    if "window_frames" in arrays and values:
        wf = np.asarray(arrays["window_frames"])
        if len(wf) and (wf.min() < 0 or wf.max() > symbols["N"] or (wf[:, 1] <= wf[:, 0]).any()):
            raise ResultFileError(f"{where}: window_frames: expected [start, stop) ranges within 0..{symbols['N']}")
    for name, value in arrays.items():
        if not name.startswith("gt_"):
            continue
        if name[3:] in GT_ARRAYS:
            shape, kind = GT_ARRAYS[name[3:]]
            _check_array(name, np.asarray(value), shape, kind, symbols, where)
        elif np.ndim(value) < 1 or np.shape(value)[0] != symbols["N"] or np.asarray(value).dtype.kind not in "biuf":
            raise ResultFileError(f"{where}: {name}: expected numbers with N={symbols['N']} frames first, got "
                                  f"{np.asarray(value).dtype} {list(np.shape(value))}")
    if meta.frame_count != symbols["N"]:
        raise ResultFileError(f"{where}: meta frame_count {meta.frame_count} but the arrays hold {symbols['N']} "
                              "frames")


def _show(shape: tuple[int | str, ...]) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def _check_array(name: str, value: np.ndarray, shape: tuple[int | str, ...], kind: str, symbols: dict[str, int],
                 where: str) -> None:
    if value.dtype.kind not in (kind if kind != "i" else "iu") or value.dtype == object:
        expected = dict(f="a float", b="a bool", i="an integer")[kind]
        raise ResultFileError(f"{where}: {name}: expected {expected} array, got {value.dtype}")
    if value.ndim != len(shape):
        raise ResultFileError(f"{where}: {name}: expected {_show(shape)}, got {list(value.shape)}")
    for axis, (want, got) in enumerate(zip(shape, value.shape)):
        if isinstance(want, int):
            ok = got == want
        elif want.startswith("2") and want[1:] in symbols:
            ok = got == 2 * symbols[want[1:]]
        elif want.startswith("2"):
            symbols.setdefault(want[1:], got // 2)
            ok = got == 2 * symbols[want[1:]]
        else:
            ok = symbols.setdefault(want, got) == got
        if not ok:
            raise ResultFileError(f"{where}: {name}: expected {_show(shape)} with {_bind(shape, symbols)}, got "
                                  f"{list(value.shape)} (axis {axis})")


def _bind(shape: tuple[int | str, ...], symbols: dict[str, int]) -> str:
    names = sorted({s.lstrip("2") for s in shape if isinstance(s, str)} & set(symbols))
    return ", ".join(f"{k}={symbols[k]}" for k in names)


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def save_result(result: Reconstruction, path: str | os.PathLike[str], compress: bool = True,
                scratch: str | os.PathLike[str] | None = None) -> Path:
    """Validate and write ``result`` to ``path`` (``.npz``) atomically: a crash or Ctrl-C leaves no partial file.
    ``scratch``: the folder of the temporary file (default beside ``path``; on the same file system)."""
    target = Path(path)
    if target.suffix != ".npz":
        raise ValueError(f"path: a result file ends in .npz, got {target.name}")
    result.validate()
    meta = dataclasses.asdict(result.meta)
    meta["format"] = FORMAT
    payload = {"meta": np.array(json.dumps(meta))}
    payload.update(result.arrays())
    with atomic_path(target, scratch) as tmp:
        _write_npz(tmp, payload, compress)
    return target


def _write_npz(path: Path, arrays: dict[str, np.ndarray], compress: bool) -> None:
    """What ``np.savez_compressed`` writes (one ``NAME.npy`` member per array, zip64), except that an array
    memory-mapped from a whole ``.npy`` file is copied from the file in blocks rather than read through the
    map: a long video's vertices then never become resident in this process (``pipeline.store``)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED,
                         allowZip64=True) as archive:
        for name, value in arrays.items():
            source = _whole_npy_file(value)
            if source is not None:
                archive.write(source, arcname=f"{name}.npy")
                continue
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)


def _whole_npy_file(value: np.ndarray) -> Path | None:
    """The ``.npy`` file ``value`` maps in full (header and all), else None."""
    if not isinstance(value, np.memmap) or not value.filename or not value.flags.c_contiguous:
        return None
    path = Path(value.filename)
    if path.suffix != ".npy" or not path.is_file():
        return None
    with open(path, "rb") as handle:
        try:
            version = np.lib.format.read_magic(handle)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = reader(handle)
        except ValueError:
            return None
        offset = handle.tell()
    whole = (shape == value.shape and dtype == value.dtype and not fortran and value.offset == offset
             and path.stat().st_size == offset + value.nbytes)
    return path if whole else None


def _from_v1(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Version 1 -> 2: version 2 only adds the optional ``refined_*`` arrays, which a version-1 file cannot hold."""
    stray = sorted(name for name in arrays if name.startswith(REFINED_PREFIX))
    if stray:
        raise ResultFileError(f"schema version 1 holds no refined arrays, but this file has {stray}")


def _from_v2(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Version 2 -> 3: version 3 only adds the optional ``camera``, which a version-2 file cannot hold."""
    if "camera" in arrays:
        raise ResultFileError("schema version 2 holds no camera array, but this file has one")


def _from_v3(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Version 3 -> 4: version 4 only adds the optional ``witness`` and ``masks``, which a version-3 file cannot
    hold."""
    stray = [name for name in ("witness", "masks") if name in arrays]
    if stray:
        raise ResultFileError(f"schema version 3 holds no {' or '.join(stray)} array, but this file has one")


# Readers of older schema versions: version -> function turning its arrays/meta into the next version's (in
# place; a ResultFileError when the old file is inconsistent).
MIGRATIONS: dict[int, Callable[[dict[str, Any], dict[str, np.ndarray]], None]] = {1: _from_v1, 2: _from_v2, 3: _from_v3}


META_BYTES = 1 << 20
"""The most a result's ``meta`` (a JSON string) may take; more is not a result file's."""
CHUNK_FRAMES = 4096
"""Frames checked at a time for infinite values (memory stays at a chunk's)."""


def load_result(path: str | os.PathLike[str]) -> Reconstruction:
    """Read and validate a result file (``allow_pickle=False``). Everything wrong is a ResultFileError naming the
    file and what is wrong, in one line; nothing is read before the archive's table says the arrays' declared
    shapes fit the schema and the memory of this machine."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"result: no such file {file}")
    if not zipfile.is_zipfile(file):
        raise ResultFileError(f"result: {file} is not a result file (.npz is a zip archive; this is not one)")
    try:
        declared = _declared_arrays(file)
        if "meta" not in declared:
            raise ResultFileError(f"result: {file} has no 'meta' entry; not an InterHand Studio result file")
        shape, dtype = declared.pop("meta")
        if dtype.kind != "U" or shape != () or dtype.itemsize > META_BYTES:
            raise ResultFileError(f"result: {file}: meta is not a JSON string (a {dtype} array of shape {shape})")
        with np.load(file, allow_pickle=False) as data:
            meta = _read_meta(file, str(data["meta"]))
            version = meta["schema_version"]
            stubs = {name: np.lib.stride_tricks.as_strided(np.zeros((), dtype), shape, (0,) * len(shape))
                     for name, (shape, dtype) in declared.items()}
            _migrate(file, dict(meta), stubs, version)
            _validate(stubs, ResultMeta(**_meta_fields(meta)), where=f"result {file.name}", values=False)
            arrays = {name: data[name] for name in declared}
    except ResultFileError:
        raise
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as exc:
        raise ResultFileError(f"result: {file} is damaged or not a result file (.npz): {_one_line(exc)}") from exc
    _migrate(file, meta, arrays, version)
    result_meta = ResultMeta(**_meta_fields(meta))
    _validate(arrays, result_meta, where=f"result {file.name}")
    for name, value in arrays.items():
        if value.dtype.kind == "f" and _has_inf(value):
            raise ResultFileError(f"result {file.name}: {name} holds infinite values (NaN marks what is missing; "
                                  "infinity is no coordinate)")
    known = set(FRAME_ARRAYS) | set(OPTIONAL_ARRAYS)
    gt = {name[3:]: value for name, value in arrays.items() if name.startswith("gt_")}
    refined = {name[len(REFINED_PREFIX):]: value for name, value in arrays.items()
               if name.startswith(REFINED_PREFIX)}  # every name known and all there: checked by _validate
    others = sorted(set(arrays) - known - {f"gt_{k}" for k in gt} - {REFINED_PREFIX + k for k in refined})
    if others:
        raise ResultFileError(f"result: {file}: unknown arrays {others} for schema version {SCHEMA_VERSION}")
    return Reconstruction(meta=result_meta, gt=gt, refined=refined,
                          **{k: v for k, v in arrays.items() if k in known})


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:200] + "...") if len(text) > 200 else (text or type(exc).__name__)


def _declared_arrays(file: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Each member's name (without ``.npy``), shape and dtype, from its header; ResultFileError when a member is
    not a plain array, needs pickle, declares more data than it holds, or the whole would not fit in memory."""
    declared: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    total = 0
    with zipfile.ZipFile(file) as archive:
        for info in archive.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else None
            if name is None or name in declared:
                what = "a second" if name in declared else "a member that is not an array:"
                raise ResultFileError(f"result: {file} holds {what} {info.filename!r}; not a result file")
            with archive.open(info) as member:
                try:
                    version = np.lib.format.read_magic(member)
                    if version not in ((1, 0), (2, 0)):
                        raise ValueError(f"format version {version}")
                    reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                              else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = reader(member)
                except ValueError as exc:
                    raise ResultFileError(f"result: {file}: {info.filename} is not a .npy array "
                                          f"({_one_line(exc)})") from None
                header = member.tell()
            if dtype.hasobject:
                raise ResultFileError(f"result: {file} holds arrays that need pickle to load ({name}); refused")
            size = math.prod(shape) * dtype.itemsize
            if info.file_size != header + size:
                raise ResultFileError(f"result: {file}: {name} declares {list(shape)} {dtype} ({size} bytes) but holds "
                                      f"{info.file_size - header} bytes")
            declared[name] = (tuple(shape), dtype)
            total += size
    memory = _physical_memory()
    if memory and total > memory:
        raise ResultFileError(f"result: {file} needs {total / 2**30:.1f} GiB to load, more than this machine's "
                              f"{memory / 2**30:.1f} GiB of memory")
    return declared


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not POSIX: no limit known
        return 0


META_TYPES: dict[str, tuple[type, ...]] = {
    "source_path": (str,), "source_sha256": (str,), "fps": (int, float), "frame_count": (int,),
    "model_preset": (str,), "checkpoint_sha256": (str,), "hand_model": (str,), "software_version": (str,),
    "created": (str,), "schema_version": (int,), "extra": (dict,)}


def _read_meta(file: Path, text: str) -> dict[str, Any]:
    """The meta JSON, its format and schema version checked (ResultFileError otherwise)."""
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultFileError(f"result: {file}: meta is not JSON ({exc.msg} at column {exc.colno})") from exc
    except RecursionError:
        raise ResultFileError(f"result: {file}: meta is not JSON (nested too deeply)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ResultFileError(f"result: {file} is not an InterHand Studio result file (no format {FORMAT!r})")
    version = meta.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ResultFileError(f"result: {file}: schema_version missing or not an integer ({version!r})"[:300])
    if version > SCHEMA_VERSION:
        raise ResultFileError(f"result: {file} has schema version {version}, written by a newer InterHand Studio "
                              f"({str(meta.get('software_version'))[:40]}); this one ({__version__}) reads up to "
                              f"{SCHEMA_VERSION}. Update the software to open it")
    missing = sorted(f.name for f in dataclasses.fields(ResultMeta) if f.name not in meta and f.name != "extra")
    if missing:
        raise ResultFileError(f"result: {file}: meta lacks {missing}")
    for name, kinds in META_TYPES.items():
        value = meta.get(name, {} if name == "extra" else None)
        if not isinstance(value, kinds) or isinstance(value, bool):
            raise ResultFileError(f"result: {file}: meta {name}: expected "
                                  f"{' or '.join(k.__name__ for k in kinds)}, got {type(value).__name__}")
    if not (math.isfinite(meta["fps"]) and meta["fps"] > 0):
        raise ResultFileError(f"result: {file}: meta fps: expected a positive frame rate, got {meta['fps']!r}")
    if meta["frame_count"] < 0:
        raise ResultFileError(f"result: {file}: meta frame_count: expected a count, got {meta['frame_count']}")
    return meta


def _meta_fields(meta: dict[str, Any]) -> dict[str, Any]:
    """ResultMeta's arguments from a file's meta: names it does not know go to ``extra``."""
    fields = {f.name for f in dataclasses.fields(ResultMeta)}
    known = {k: v for k, v in meta.items() if k in fields and k != "extra"}
    extra = dict(meta.get("extra", {}) or {})
    extra.update({k: v for k, v in meta.items() if k not in fields and k != "format"})
    return {**known, "extra": extra}


def _migrate(file: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray], version: int) -> None:
    """Bring an older schema version's ``meta`` and ``arrays`` to this one (in place)."""
    while version < SCHEMA_VERSION:
        if version not in MIGRATIONS:
            raise ResultFileError(f"result: {file} has schema version {version}, which this software "
                                  f"({__version__}) can no longer read (it reads {sorted(MIGRATIONS)} and "
                                  f"{SCHEMA_VERSION}); reconstruct the video again")
        try:
            MIGRATIONS[version](meta, arrays)
        except ResultFileError as exc:
            raise ResultFileError(f"result: {file}: {exc}") from exc
        version += 1
        meta["schema_version"] = version


def _has_inf(value: np.ndarray) -> bool:
    """Whether ``value`` holds +-inf, looked at :data:`CHUNK_FRAMES` frames at a time."""
    if value.ndim == 0:
        return bool(np.isinf(value))
    return any(np.isinf(value[at:at + CHUNK_FRAMES]).any() for at in range(0, len(value), CHUNK_FRAMES))


def empty_arrays(num_frames: int, num_vertices: int, map_size: int = 7) -> dict[str, np.ndarray]:
    """Arrays for N frames with nothing reconstructed yet: NaN floats, False flags (filled in as windows finish)."""
    shapes = {"N": num_frames, "V": num_vertices, "H": map_size}
    out = {}
    for name, (shape, kind) in FRAME_ARRAYS.items():
        dims = tuple(shapes[s] if isinstance(s, str) else s for s in shape)
        out[name] = np.zeros(dims, bool) if kind == "b" else np.full(dims, np.nan, np.float32)
    return out
