"""One writer per data directory: an exclusive lock held while the embedded Chroma store is open.

Chroma's embedded store is not safe for two writing processes, so the process that opens a data directory
for writing takes an exclusive ``flock`` on ``compagnon.lock`` in it and holds it until its services close
(the kernel drops it when the process dies, however it dies). The hold is per process and re-entrant:
opening the same directory again in the same process shares it. Readers of the records alone (a backup,
a report) need no lock: ``open_records_readonly`` opens the database without migrating or writing.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from retrieval.database import create_database_engine
from retrieval.errors import RetrievalError

LOCK_FILE = "compagnon.lock"

__all__ = ["LOCK_FILE", "DataDirLock", "DataDirLocked", "holder_pid", "lock_data_dir", "open_records_readonly"]


class DataDirLocked(RetrievalError):
    """Another process has the data directory open for writing."""

    code = "data_dir_locked"


@dataclass
class _Hold:
    fd: int
    users: int


_holds: dict[Path, _Hold] = {}
_guard = threading.Lock()


def _forget_in_child() -> None:
    """A forked child does not hold its parent's lock: close its copies without unlocking the parent's."""
    for hold in _holds.values():
        os.close(hold.fd)
    _holds.clear()


os.register_at_fork(after_in_child=_forget_in_child)


class DataDirLock:
    """This process's hold on a data directory; ``release`` once per ``lock_data_dir``."""

    def __init__(self, path: Path, first: bool) -> None:
        self.path = path
        self.first = first
        self._released = False

    def release(self) -> None:
        """Give up this hold; the lock itself goes when the process's last hold does."""
        with _guard:
            if self._released:
                return
            self._released = True
            hold = _holds.get(self.path)
            if hold is None:
                return
            hold.users -= 1
            if hold.users == 0:
                del _holds[self.path]
                os.close(hold.fd)  # closing the only descriptor releases the flock


def lock_data_dir(data_dir: Path) -> DataDirLock:
    """Take (or share, within this process) the exclusive write lock of a data directory.

    Raises ``DataDirLocked`` naming the holder's pid when another process has it. ``first`` on the
    returned hold says this call took the lock, so start-up work runs once per process.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = (data_dir / LOCK_FILE).resolve()
    with _guard:
        hold = _holds.get(path)
        if hold is not None:
            hold.users += 1
            return DataDirLock(path, first=False)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = holder_pid(data_dir)
            holder = f"process {pid}" if pid else "another process"
            raise DataDirLocked(
                f"the data directory {data_dir} is open for writing by {holder}; the embedded Chroma store "
                "allows one writing process: go through that process's API, stop it first, or run every "
                "process against a Chroma server (COMPAGNON_CHROMA_URL, with COMPAGNON_DATABASE_URL on PostgreSQL)"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        _holds[path] = _Hold(fd=fd, users=1)
        return DataDirLock(path, first=True)


def holder_pid(data_dir: Path) -> int | None:
    """The pid of the process holding the data directory's write lock (this one's included), None when free.

    0 means held by a process that has not written its pid yet (it does right after locking).
    """
    path = data_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            deadline = time.monotonic() + 1.0
            while True:
                content = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                if content.isdigit():
                    return int(content)
                if time.monotonic() > deadline:
                    return 0
                time.sleep(0.01)
        return None  # the shared lock was granted, so no writer holds it; closing the descriptor drops it
    finally:
        os.close(fd)


def _read_only_sqlite(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def open_records_readonly(url: str) -> sessionmaker:  # type: ignore[type-arg]
    """Sessions on the records database that cannot write, taking no lock and running no migration.

    SQLite refuses every write on these connections (``query_only``); PostgreSQL opens each transaction
    read-only. Safe while the writing process runs: SQLite's WAL and PostgreSQL's MVCC give each read
    transaction a consistent snapshot.
    """
    if url.startswith("sqlite"):
        engine = create_database_engine(url)
        event.listen(engine, "connect", _read_only_sqlite)
    else:
        engine = create_engine(url, pool_pre_ping=True, connect_args={"options": "-c default_transaction_read_only=on"})
    return sessionmaker(bind=engine, expire_on_commit=False)
