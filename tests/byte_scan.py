"""Finding a vector in raw bytes: what erasure and collection rebuilds must leave nowhere on disk."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def float_bytes_in(data: bytes, vector: Sequence[float] | np.ndarray) -> bool:
    """Whether a vector sits in the bytes as float32, verbatim or as Chroma's HNSW normalises it (any alignment)."""
    target = np.asarray(vector, dtype=np.float32)
    if target.tobytes() in data:
        return True
    target = target / np.linalg.norm(target)
    for shift in range(4):
        floats = np.frombuffer(data[shift : shift + (len(data) - shift) // 4 * 4], dtype=np.float32)
        if len(floats) < len(target):
            continue
        with np.errstate(invalid="ignore"):
            starts = np.flatnonzero(np.abs(floats[: len(floats) - len(target) + 1] - target[0]) < 1e-6)
        if any(np.abs(floats[i : i + len(target)] - target).max() < 1e-5 for i in starts):
            return True
    return False
