"""Vector stores: the ``VectorStore`` seam and its Chroma implementation.

Only ids, vectors and filterable metadata go to the vector store: the text stays in SQL,
so a delete there is the single place text has to disappear from.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import numpy as np

from retrieval.embedders import Vectors
from retrieval.errors import StoreUnavailable
from retrieval.heap import zero_new_allocations

Metadata = Mapping[str, str | int | float | bool]
Where = dict[str, Any]

__all__ = ["ChromaVectorStore", "Metadata", "VectorHit", "VectorStore", "Where"]


@dataclass(frozen=True)
class VectorHit:
    """One nearest neighbour: its id, cosine similarity and metadata."""

    id: str
    similarity: float
    metadata: dict[str, Any]


class VectorStore(Protocol):
    """Stores vectors with metadata and answers nearest-neighbour queries."""

    def upsert(self, ids: Sequence[str], vectors: Vectors, metadatas: Sequence[Metadata]) -> None:
        """Insert or replace vectors by id."""
        ...

    def delete(self, ids: Sequence[str]) -> None:
        """Remove vectors by id; unknown ids are ignored."""
        ...

    def query(self, vector: Vectors, k: int, where: Where | None = None) -> list[VectorHit]:
        """The k nearest vectors (optionally among those whose metadata match ``where``)."""
        ...

    def get_vectors(self, ids: Sequence[str]) -> dict[str, Vectors]:
        """The stored vectors of these ids (missing ids are left out)."""
        ...

    def all_ids(self) -> set[str]:
        """Every id stored."""
        ...

    def count(self) -> int:
        """How many vectors are stored."""
        ...


class ChromaVectorStore:
    """Chroma collection with cosine space and HNSW tuned for recall; embedded or on a server."""

    def __init__(
        self,
        collection: str,
        path: Path | None = None,
        url: str | None = None,
        ef_search: int = 400,
        ef_construction: int = 400,
        max_neighbors: int = 32,
    ) -> None:
        os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
        self._name = collection
        self._path = None if url else path
        self._configuration = {
            "hnsw": {
                "space": "cosine",
                "ef_search": ef_search,
                "ef_construction": ef_construction,
                "max_neighbors": max_neighbors,
            }
        }
        try:
            if url:
                parsed = urlparse(url)
                self._client: Any = chromadb.HttpClient(
                    host=parsed.hostname or "127.0.0.1",
                    port=parsed.port or (443 if parsed.scheme == "https" else 8000),
                    ssl=parsed.scheme == "https",
                    settings=chroma_settings,
                )
            elif path is not None:
                zero_new_allocations()
                path.mkdir(parents=True, exist_ok=True)
                self._client = chromadb.PersistentClient(path=str(path), settings=chroma_settings)
            else:
                self._client = chromadb.EphemeralClient(settings=chroma_settings)
            self._collection = self._client.get_or_create_collection(
                name=collection, embedding_function=None, configuration=self._configuration
            )
        except Exception as exc:  # chromadb raises many unrelated types for an unreachable store
            raise StoreUnavailable(f"cannot open the Chroma collection {collection!r}: {exc}") from exc
        self._batch = int(self._client.get_max_batch_size())

    def upsert(self, ids: Sequence[str], vectors: Vectors, metadatas: Sequence[Metadata]) -> None:
        """Insert or replace vectors by id, in batches the server accepts."""
        for start in range(0, len(ids), self._batch):
            stop = start + self._batch
            self._collection.upsert(
                ids=list(ids[start:stop]),
                embeddings=np.asarray(vectors[start:stop], dtype=np.float32),
                metadatas=[dict(m) for m in metadatas[start:stop]],
            )

    def delete(self, ids: Sequence[str]) -> None:
        """Remove vectors by id."""
        for start in range(0, len(ids), self._batch):
            self._collection.delete(ids=list(ids[start : start + self._batch]))

    def query(self, vector: Vectors, k: int, where: Where | None = None) -> list[VectorHit]:
        """Nearest neighbours by cosine similarity."""
        if k <= 0:
            return []
        result = self._collection.query(
            query_embeddings=np.asarray([vector], dtype=np.float32),
            n_results=k,
            where=where,
            include=["metadatas", "distances"],
        )
        ids = result["ids"][0]
        distances = (result["distances"] or [[]])[0]
        metadatas = (result["metadatas"] or [[]])[0]
        return [
            VectorHit(id=i, similarity=1.0 - float(d), metadata=dict(m or {}))
            for i, d, m in zip(ids, distances, metadatas, strict=True)
        ]

    def get_vectors(self, ids: Sequence[str]) -> dict[str, Vectors]:
        """Stored vectors by id."""
        found: dict[str, Vectors] = {}
        for start in range(0, len(ids), self._batch):
            result = self._collection.get(ids=list(ids[start : start + self._batch]), include=["embeddings"])
            embeddings = result["embeddings"]
            if embeddings is None:
                continue
            for i, embedding in zip(result["ids"], embeddings, strict=True):
                found[i] = np.asarray(embedding, dtype=np.float32)
        return found

    def all_ids(self) -> set[str]:
        """Every id in the collection."""
        ids: set[str] = set()
        offset = 0
        while True:
            page = self._collection.get(include=[], limit=self._batch, offset=offset)["ids"]
            ids.update(page)
            if len(page) < self._batch:
                return ids
            offset += len(page)

    def count(self) -> int:
        """Number of vectors in the collection."""
        return int(self._collection.count())

    @property
    def name(self) -> str:
        """The collection's name."""
        return self._name

    def rebuild(self) -> int:
        """Copy the live vectors into a fresh collection that takes this one's name, and purge the old one's bytes.

        Chroma's delete only marks vectors deleted: their bytes stay in the HNSW segment files and in the
        SQLite log until the collection is rebuilt (measured on 1.5.9). Embedded, the orphaned segment
        folders are removed and Chroma's SQLite file is vacuumed; on a server, the operator must run
        ``chroma vacuum`` on the server's directory. Other processes holding the collection must reopen it.
        Returns the number of vectors copied.
        """
        ids: list[str] = []
        vectors: list[Vectors] = []
        metadatas: list[dict[str, Any] | None] = []
        while True:
            page = self._collection.get(include=["embeddings", "metadatas"], limit=self._batch, offset=len(ids))
            ids.extend(page["ids"])
            if page["embeddings"] is not None:
                vectors.extend(np.asarray(e, dtype=np.float32) for e in page["embeddings"])
            metadatas.extend(dict(m) if m else None for m in page["metadatas"] or [])
            if len(page["ids"]) < self._batch:
                break
        # A temporary name within Chroma's 512-character limit, unique to this rebuild.
        fresh_name = f"{self._name[:480]}-rebuild-{uuid.uuid4().hex[:16]}"
        fresh = self._client.create_collection(
            name=fresh_name, embedding_function=None, configuration=self._configuration
        )
        try:
            for start in range(0, len(ids), self._batch):
                stop = start + self._batch
                fresh.add(
                    ids=ids[start:stop],
                    embeddings=np.asarray(vectors[start:stop], dtype=np.float32),
                    metadatas=metadatas[start:stop],
                )
        except BaseException:
            self._client.delete_collection(fresh_name)
            raise
        self._client.delete_collection(self._name)
        fresh.modify(name=self._name)
        self._collection = self._client.get_collection(name=self._name, embedding_function=None)
        if self._path is not None:
            self._purge_embedded_files(self._path)
        return len(ids)

    @staticmethod
    def _purge_embedded_files(path: Path) -> None:
        """Remove segment folders no collection uses any more, then rewrite Chroma's SQLite file without free pages."""
        database = path / "chroma.sqlite3"
        connection = sqlite3.connect(database, timeout=30, isolation_level=None)
        try:
            live = {str(row[0]) for row in connection.execute("SELECT id FROM segments")}
            for folder in path.iterdir():
                if folder.is_dir() and _is_uuid(folder.name) and folder.name not in live:
                    shutil.rmtree(folder)
            connection.execute("VACUUM")
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            connection.close()


def _is_uuid(name: str) -> bool:
    try:
        uuid.UUID(name)
    except ValueError:
        return False
    return True
