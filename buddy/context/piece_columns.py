"""A context piece over many rows kept as columns, its objects built only when asked.

A provider's batch form may return a ``PieceColumn`` in place of the object array of pieces:
per row the number of its distinct piece (-1 where the piece is missing), the provider's
column form of the distinct pieces (what the modules read, as arrays), and how to build
distinct piece j as the object the scalar provider returns. Rows that share a snapshot share
one number, so one object, built at most once (``pack(i)``, a module without a column form,
a scalar caller). Taking rows shares the built objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

__all__ = ["PieceColumn"]

_NOT_BUILT = object()


class PieceColumn:
    """Per row, the number of its distinct piece (-1: missing), with the distinct pieces'
    ``columns`` and ``make(j)``, which builds distinct piece j (once; the object is kept)."""

    __slots__ = ("_made", "code", "columns", "make")

    def __init__(self, code: np.ndarray, count: int, make: Callable[[int], Any],
                 columns: Any = None, *, _made: list[Any] | None = None) -> None:
        self.code = np.asarray(code, dtype=np.int64)
        self.make = make
        self.columns = columns
        self._made = [_NOT_BUILT] * count if _made is None else _made

    @property
    def count(self) -> int:
        """Distinct pieces (the rows' numbers are below it)."""
        return len(self._made)

    def piece(self, j: int) -> Any:
        """Return distinct piece ``j``, built on first use."""
        made = self._made[j]
        if made is _NOT_BUILT:
            made = self._made[j] = self.make(j)
        return made

    def present(self) -> np.ndarray:
        """Return a bool array: the row has the piece."""
        return self.code >= 0

    def __len__(self) -> int:
        return len(self.code)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, int | np.integer):
            j = int(self.code[key])
            return None if j < 0 else self.piece(j)
        return PieceColumn(self.code[key], 0, self.make, self.columns, _made=self._made)

    def __iter__(self) -> Iterator[Any]:
        for j in self.code.tolist():
            yield None if j < 0 else self.piece(j)

    def objects(self) -> np.ndarray:
        """Return the pieces as an object array (None where missing): every piece built."""
        out = np.empty(len(self.code), dtype=object)
        for i, j in enumerate(self.code.tolist()):
            out[i] = None if j < 0 else self.piece(j)
        return out
