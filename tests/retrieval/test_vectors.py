"""The Chroma store, embedded and as a server, and filtered retrieval equal to Chroma's own filter."""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from capture.ingestion import NoteMetadata
from retrieval.access import AccessScope, Viewer
from retrieval.search import dense_candidates
from retrieval.vectors import ChromaVectorStore
from tests.byte_scan import float_bytes_in
from tests.conftest import ServicesFactory


def test_overfetch_then_filter_returns_what_a_filtered_query_returns() -> None:
    rng = np.random.default_rng(7)
    store = ChromaVectorStore("equivalence")
    centres = rng.normal(size=(8, 32))
    vectors = (centres[rng.integers(0, 8, 3000)] + 0.3 * rng.normal(size=(3000, 32))).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    visibilities = rng.choice(["public", "community", "private"], size=3000, p=[0.2, 0.5, 0.3])
    communities = rng.choice(["maintenance", "qualite", "commercial", "data"], size=3000)
    metadatas = [
        {"visibility": str(v), "community": str(c), "note_id": f"n{i // 10}"}
        for i, (v, c) in enumerate(zip(visibilities, communities, strict=True))
    ]
    store.upsert([f"c{i}" for i in range(3000)], vectors, metadatas)
    scopes = [
        AccessScope(False, frozenset({"qualite"}), frozenset({"n3", "n77"})),
        AccessScope(False, frozenset(), frozenset({"n12"})),
        AccessScope(False, frozenset({"maintenance", "data"}), frozenset()),
    ]
    for scope in scopes:
        for query in vectors[rng.integers(0, 3000, 5)]:
            expected = [hit.id for hit in store.query(query, 20, scope.where())]
            got = dense_candidates(
                lambda n, w, q=query: store.query(q, n, w), 3000, 20, scope.allows_metadata, scope.where()
            )
            assert [hit.id for hit in got] == expected
            assert all(scope.allows_metadata(hit.metadata) for hit in got)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[str]:
    executable = shutil.which("chroma") or str(Path(__file__).parents[2] / ".venv" / "bin" / "chroma")
    port = _free_port()
    process = subprocess.Popen(
        [executable, "run", "--path", str(tmp_path / "server"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the Chroma server did not start") from None
                time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.chroma_server
def test_notes_are_stored_and_searched_through_a_chroma_server(
    make_services: ServicesFactory, chroma_server: str, tmp_path: Path
) -> None:
    services = make_services(chroma_url=chroma_server)
    metadata = NoteMetadata(kind="circle", community="qualite", session_date=dt.date(2026, 1, 9), visibility="public")
    result = services.ingestor.ingest_text("Sophie : on nettoie l'objectif de la caméra à chaque poste.", metadata)
    assert not (tmp_path / "data" / "chroma").exists()
    assert services.knowledge.store.count() == result.chunk_count
    hits = services.searcher.search("cleaning the camera lens", Viewer.public(), k=3, mode="dense")
    assert hits[0].note_id == result.note_id
    again = make_services(chroma_url=chroma_server, data_dir=tmp_path / "data")
    assert again.knowledge.store.count() == result.chunk_count


def _holds(directory: Path, vector: np.ndarray) -> bool:
    """Whether any file under the directory holds the vector's float32 bytes, as given or as HNSW normalises it."""
    return any(path.is_file() and float_bytes_in(path.read_bytes(), vector) for path in directory.rglob("*"))


@pytest.mark.parametrize("size", [40, 1500])  # below and above the size at which Chroma writes HNSW segment files
def test_rebuild_keeps_the_live_vectors_and_drops_the_bytes_of_deleted_ones(tmp_path: Path, size: int) -> None:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(size, 24)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store = ChromaVectorStore("rebuilt_chunks", path=tmp_path)
    ids = [f"c{i}" for i in range(size)]
    store.upsert(ids, vectors, [{"note_id": f"n{i % 7}", "i": i} for i in range(size)])
    store.delete(["c3", "c4"])
    assert _holds(tmp_path, vectors[3])  # Chroma's delete leaves the bytes on disk

    assert store.rebuild() == size - 2

    assert not _holds(tmp_path, vectors[3]) and not _holds(tmp_path, vectors[4])
    assert _holds(tmp_path, vectors[0])
    assert store.count() == size - 2 and store.all_ids() == set(ids) - {"c3", "c4"}
    kept = store.get_vectors(["c0", f"c{size - 1}"])
    # Vectors Chroma already compacted into HNSW come back as HNSW normalised them: equal to within rounding.
    assert np.allclose(kept["c0"], vectors[0], atol=1e-6) and np.allclose(kept[f"c{size - 1}"], vectors[-1], atol=1e-6)
    [hit] = store.query(vectors[5], 1, {"note_id": "n5"})
    assert (hit.id, hit.metadata) == ("c5", {"note_id": "n5", "i": 5})
    store.upsert(["new"], vectors[3:4], [{"note_id": "n0", "i": -1}])  # the same object keeps working
    assert ChromaVectorStore("rebuilt_chunks", path=tmp_path).count() == size - 1
    live_segments = {p.name for p in tmp_path.iterdir() if p.is_dir()}
    assert len(live_segments) <= 1  # the old collection's segment folder is gone


@pytest.mark.chroma_server
def test_rebuild_through_a_chroma_server(chroma_server: str) -> None:
    rng = np.random.default_rng(4)
    vectors = rng.normal(size=(30, 16)).astype(np.float32)
    store = ChromaVectorStore("served_chunks", url=chroma_server)
    store.upsert([f"c{i}" for i in range(30)], vectors, [{"i": i} for i in range(30)])
    store.delete(["c0"])
    assert store.rebuild() == 29
    assert store.all_ids() == {f"c{i}" for i in range(1, 30)}
    assert ChromaVectorStore("served_chunks", url=chroma_server).count() == 29
    assert store.query(vectors[7], 1)[0].id == "c7"


# Frees blocks full of a marker from many threads (so every malloc arena holds some), after raising glibc's
# dynamic mmap threshold so that blocks the size of an HNSW buffer come from those arenas; then writes vectors.
_DIRTY_HEAP_THEN_WRITE = """
import ctypes, sys, threading
import numpy as np
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.free(libc.malloc(4 << 20))
MARKER = b"Dubreuil-private-note-"
SIZES = (150_000, 180_000, 200_000, 250_000, 400_000, 800_000)

def dirty():
    blocks = [libc.malloc(size) for size in SIZES]
    for block, size in zip(blocks, SIZES):
        ctypes.memmove(block, (MARKER * (size // len(MARKER) + 1))[:size], size)
    for block in blocks:
        libc.free(block)

threads = [threading.Thread(target=dirty) for _ in range(32)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
dirty()
vectors = np.random.default_rng(0).random((20, 384), dtype=np.float32)
ids = [str(i) for i in range(20)]
if sys.argv[2] == "store":
    from pathlib import Path
    from retrieval.vectors import ChromaVectorStore
    ChromaVectorStore("dirty_heap", path=Path(sys.argv[1])).upsert(ids, vectors, [{"i": i} for i in range(20)])
else:
    import chromadb
    client = chromadb.PersistentClient(path=sys.argv[1])
    client.create_collection("dirty_heap", configuration={"hnsw": {"space": "cosine", "max_neighbors": 32}}).add(
        ids=ids, embeddings=vectors
    )
"""


def _marker_files(directory: Path, how: str) -> dict[str, int]:
    subprocess.run([sys.executable, "-c", _DIRTY_HEAP_THEN_WRITE, str(directory), how], check=True, timeout=300)
    files = [path for path in directory.rglob("*") if path.is_file()]
    counts = {str(path.relative_to(directory)): path.read_bytes().count(b"Dubreuil-private-note-") for path in files}
    return {name: count for name, count in counts.items() if count}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's M_PERTURB")
def test_hnsw_files_never_carry_bytes_the_process_freed_before(tmp_path: Path) -> None:
    # Bare Chroma persists its HNSW buffer at full capacity, unused slots as malloc left them: the freed marker.
    bare = _marker_files(tmp_path / "bare", "bare")
    assert any(name.endswith("data_level0.bin") for name in bare), bare

    assert _marker_files(tmp_path / "store", "store") == {}
