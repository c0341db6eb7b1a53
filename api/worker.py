"""``compagnon worker``: processes that run the uploads and extraction jobs sent through the broker."""

from __future__ import annotations

import logging
import multiprocessing
import signal
import sys
import threading
from types import FrameType

import dramatiq

from api.services import build_services
from capture.queue import BrokerUnavailable
from capture.settings import CaptureSettings
from retrieval.settings import RetrievalSettings

logger = logging.getLogger(__name__)
# How often a worker looks for uploads and jobs whose message was lost or whose worker died.
SWEEP_SECONDS = 60.0
# How long a stopping worker lets its current tasks finish.
STOP_TIMEOUT_MS = 60_000


def run_worker(processes: int, threads: int) -> int:
    """Consume the task queues in ``processes`` processes of ``threads`` threads each, until SIGTERM or SIGINT."""
    if processes == 1:
        return _consume(threads)
    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=_child, args=(threads,), name=f"compagnon-worker-{n}") for n in range(processes)]
    for child in children:
        child.start()

    def forward(_signum: int, _frame: FrameType | None) -> None:
        for child in children:
            if child.is_alive():
                child.terminate()  # SIGTERM: the child finishes its current tasks, then exits

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for child in children:
        child.join()
    return max((child.exitcode or 0) for child in children)


def _child(threads: int) -> None:
    sys.exit(_consume(threads))


def _consume(threads: int) -> int:
    services = build_services(RetrievalSettings(), CaptureSettings())
    tasks = services.tasks
    if tasks is None:
        services.close()
        raise BrokerUnavailable("set COMPAGNON_BROKER_URL (redis://... or amqp://...) to run a worker")
    stopping = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worker = dramatiq.Worker(tasks.broker, queues=tasks.queue_names, worker_threads=threads)
    worker.start()
    print(
        f"compagnon worker: consuming {', '.join(sorted(tasks.queue_names))} with {threads} threads",
        file=sys.stderr,
        flush=True,
    )
    try:
        while True:
            try:
                resent = tasks.sweep()
                if resent:
                    logger.warning("sent again %d uploads or jobs left waiting past their lease", resent)
            except Exception as exc:  # the database or the broker is away for now: the next sweep tries again
                logger.warning("the sweep for stranded work failed (%s)", type(exc).__name__)
            if stopping.wait(SWEEP_SECONDS):
                break
    finally:
        worker.stop(timeout=STOP_TIMEOUT_MS)
        services.close()
    return 0
