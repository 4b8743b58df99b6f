"""Reading dataset annotation files (InterHand2.6M's and HIC's JSON) so that a file that does not hold what its
format says fails with one line naming the file, the place in it and what is wrong, e.g.
``InterHand2.6M_test_data.json: images[3].frame_idx: expected an integer, got 'abc'`` -- never a KeyError or a
TypeError from deep inside a loader.

:func:`read_json` reads a file (bounded by its size; any nesting Python's parser takes); :class:`Field` wraps a
value read from it with where it came from and checks its type as it is used.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


class AnnotationError(ValueError):
    """An annotation file that does not hold what its format says; the message names the file, where in it and
    what is wrong."""


def read_json(path: str | os.PathLike[str]) -> Field:
    """The content of the JSON file ``path`` as a :class:`Field` (FileNotFoundError when it is not there)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotations: no such file {path}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AnnotationError(f"{path}: not UTF-8 text (byte {exc.start} is {exc.object[exc.start]:#04x})") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"{path}: not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise AnnotationError(f"{path}: nested too deeply to be an annotation file") from None
    return Field(value, path, "")


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


class Field:
    """A value from an annotation file, with the file and its place in it (``images[3].frame_idx``)."""

    def __init__(self, value: Any, file: Path, where: str) -> None:
        self.value, self.file, self.where = value, file, where

    def error(self, what: str) -> AnnotationError:
        return AnnotationError(f"{self.file}: {self.where or 'the top level'}: {what}")

    def _child(self, value: Any, key: str | int) -> Field:
        where = f"{self.where}[{key}]" if isinstance(key, int) else (f"{self.where}.{key}" if self.where else key)
        return Field(value, self.file, where)

    def _mapping(self) -> dict:
        if not isinstance(self.value, dict):
            raise self.error(f"expected an object, got {_show(self.value)}")
        return self.value

    def has(self, key: str) -> bool:
        return key in self._mapping()

    def __getitem__(self, key: str) -> Field:
        mapping = self._mapping()
        if key not in mapping:
            raise self.error(f"missing {key!r}")
        return self._child(mapping[key], key)

    def get(self, key: str) -> Field | None:
        """The field ``key``; None when it is missing or null."""
        mapping = self._mapping()
        return self._child(mapping[key], key) if mapping.get(key) is not None else None

    def items(self) -> Iterator[tuple[str, Field]]:
        for key, value in self._mapping().items():
            yield key, self._child(value, key)

    def list(self, nonempty: bool = False) -> list[Field]:
        if not isinstance(self.value, list):
            raise self.error(f"expected a list, got {_show(self.value)}")
        if nonempty and not self.value:
            raise self.error("expected a non-empty list, got []")
        return [self._child(value, i) for i, value in enumerate(self.value)]

    def str(self) -> str:
        if not isinstance(self.value, str):
            raise self.error(f"expected a string, got {_show(self.value)}")
        return self.value

    def int(self) -> int:
        """An integer (a whole number, or a string of digits as some files store ids), within +-2**53."""
        value = self.value
        number = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 20:
            number = int(value)
        if number is None or abs(number) > 2**53:
            raise self.error(f"expected an integer, got {_show(value)}")
        return number

    def number(self) -> float:
        """A finite number."""
        value = self.value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.error(f"expected a finite number, got {_show(value)}")
        return float(value)

    def flag(self) -> bool:
        """A true/false value (true, false, 1 or 0 as the datasets store them)."""
        if isinstance(self.value, bool) or self.value in (0, 1):
            return bool(self.value)
        raise self.error(f"expected true/false or 1/0, got {_show(self.value)}")

    def array(self, size: int, finite: bool = True) -> np.ndarray:
        """A list (possibly nested) of ``size`` numbers, flat float64."""
        try:
            array = np.asarray(self.value, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise self.error(f"expected {size} numbers, got {_show(self.value)}") from None
        if array.size != size or np.ndim(self.value) == 0:
            raise self.error(f"expected {size} numbers, got {array.size}")
        if finite and not np.isfinite(array).all():
            raise self.error("holds a number that is not finite")
        return array
