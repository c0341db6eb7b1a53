"""``make load``: the locust mix against a demo server on loopback, then whether a 50 MB upload stalls the others.

Bounded: ``LOAD_USERS`` simulated users (20) for ``LOAD_SECONDS`` (60), then about 20 s of probes. Everything runs
on a temporary data directory with the embedded stores; the ask rate limit is lifted, since every simulated user
comes from 127.0.0.1.
"""

from __future__ import annotations

import csv
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
BIG_UPLOAD_BYTES = 50 * 1024 * 1024
BIG_UPLOAD_CHUNK = 256 * 1024
BIG_UPLOAD_PAUSE = 0.05  # seconds between chunks: about 10 s of streaming at most
PROBES = 15


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _compagnon(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def _wait_healthy(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}")
        try:
            httpx.get(f"{url}/healthz", timeout=2).raise_for_status()
            return
        except httpx.HTTPError:
            time.sleep(0.5)
    raise SystemExit("the server did not answer /healthz in 300 s")


def warm_up(url: str, reader: str) -> None:
    """One search and one question before measuring: the models load and the lexical index builds lazily."""
    headers = {"Authorization": f"Bearer {reader}"}
    httpx.get(f"{url}/api/search", params={"q": "changement de format"}, headers=headers, timeout=300)
    httpx.post(
        f"{url}/api/ask", json={"question": "Comment préparer un changement de format ?"}, headers=headers, timeout=300
    )


def run_locust(url: str, env: dict[str, str], users: int, seconds: int, out: Path) -> list[dict[str, str]]:
    """Run the mix headless; returns locust's per-request-type statistics rows."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(HERE / "locustfile.py"),
            "--headless",
            "--users",
            str(users),
            "--spawn-rate",
            str(max(1, users // 4)),
            "--run-time",
            f"{seconds}s",
            "--stop-timeout",
            "15",
            "--host",
            url,
            "--csv",
            str(out / "load"),
            "--only-summary",
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        check=False,  # locust exits 1 when any request failed: the failures are counted below
    )
    with (out / "load_stats.csv").open(encoding="utf-8") as stats:
        return list(csv.DictReader(stats))


def print_mix(rows: list[dict[str, str]], users: int, seconds: int) -> None:
    """p50/p95/p99 and the error rate of each request type."""
    print(f"\nload mix: {users} users for {seconds} s on loopback")
    print(f"{'request':10} {'count':>7} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>8}")
    for row in rows:
        count, failures = int(row["Request Count"]), int(row["Failure Count"])
        rate = f"{100 * failures / count:.1f}%" if count else "-"
        print(
            f"{row['Name']:10} {count:7d} {float(row['Requests/s']):7.1f} {row['50%']:>8} {row['95%']:>8} "
            f"{row['99%']:>8} {rate:>8}"
        )


def _timed(client: httpx.Client, path: str, headers: dict[str, str], params: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    client.get(path, headers=headers, params=params).raise_for_status()
    return (time.perf_counter() - start) * 1000


def _big_body(boundary: str) -> Iterator[bytes]:
    fields = {"kind": "pair", "community": "maintenance", "date": "2026-06-01"}
    for name, value in fields.items():
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    line = b"Karim Benali : on consigne la machine avant toute intervention sur la remplisseuse.\n"
    chunk = (line * (BIG_UPLOAD_CHUNK // len(line) + 1))[:BIG_UPLOAD_CHUNK]
    for _ in range(BIG_UPLOAD_BYTES // BIG_UPLOAD_CHUNK):
        time.sleep(BIG_UPLOAD_PAUSE)
        yield chunk
    yield f"\r\n--{boundary}--\r\n".encode()


def big_upload_check(url: str, reader: str, uploader: str) -> None:
    """Latency of /healthz and of a search, idle and while a 50 MB upload streams in slowly."""
    headers = {"Authorization": f"Bearer {reader}"}
    search = {"q": "changement de format", "k": "10"}
    with httpx.Client(base_url=url, timeout=60) as client:
        idle_health = [_timed(client, "/healthz", headers) for _ in range(PROBES)]
        idle_search = [_timed(client, "/api/search", headers, search) for _ in range(PROBES)]
        outcome: list[str] = []

        def stream() -> None:
            boundary = "compagnonloadboundary"
            try:
                answer = httpx.post(
                    f"{url}/api/notes",
                    content=_big_body(boundary),
                    headers={
                        "Authorization": f"Bearer {uploader}",
                        "Content-Type": f"multipart/form-data; boundary={boundary}",
                    },
                    timeout=120,
                )
                outcome.append(f"{answer.status_code} {answer.json().get('error_code', '')}".strip())
            except httpx.HTTPError as exc:  # the server may close the connection once it has refused the body
                outcome.append(f"connection closed by the server ({type(exc).__name__})")

        uploading = threading.Thread(target=stream)
        started = time.monotonic()
        uploading.start()
        busy_health: list[float] = []
        busy_search: list[float] = []
        while uploading.is_alive():
            busy_health.append(_timed(client, "/healthz", headers))
            busy_search.append(_timed(client, "/api/search", headers, search))
        uploading.join()
        streamed = time.monotonic() - started
    print(f"\n50 MB upload streamed for {streamed:.1f} s, answered: {outcome[0]}")
    for name, idle, busy in (("healthz", idle_health, busy_health), ("search", idle_search, busy_search)):
        if not busy:
            print(f"{name:8} idle p50 {statistics.median(idle):7.1f} ms; no request finished while it streamed")
            continue
        ratio = statistics.median(busy) / statistics.median(idle)
        print(
            f"{name:8} idle p50 {statistics.median(idle):7.1f} ms, during the upload p50 {statistics.median(busy):7.1f} ms "
            f"(max {max(busy):7.1f} ms, {len(busy)} requests): ratio {ratio:.2f}"
        )


def main() -> None:
    """Start a demo server, run the mix, run the big-upload check, stop the server."""
    users = int(os.environ.get("LOAD_USERS", "20"))
    seconds = int(os.environ.get("LOAD_SECONDS", "60"))
    with tempfile.TemporaryDirectory(prefix="compagnon-load-") as tmp:
        out = Path(tmp)
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("COMPAGNON_DATABASE_URL", "COMPAGNON_CHROMA_URL", "COMPAGNON_BROKER_URL")
        }
        env.update({"COMPAGNON_DATA_DIR": str(out / "data"), "COMPAGNON_ASK_RATE_LIMIT": "1000000"})
        print("loading the demo corpus...", flush=True)
        _compagnon(env, "demo")
        readers = [_compagnon(env, "users", "token", login) for login in ("julie", "rh", "karim")]
        uploader = _compagnon(env, "users", "token", "karim")
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        log = (out / "server.log").open("wb")
        server = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_healthy(url, server)
            warm_up(url, readers[0])
            locust_env = {
                **env,
                "COMPAGNON_LOAD_READER_TOKENS": ",".join(readers),
                "COMPAGNON_LOAD_UPLOADER_TOKEN": uploader,
            }
            print_mix(run_locust(url, locust_env, users, seconds, out), users, seconds)
            big_upload_check(url, readers[0], uploader)
        finally:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:  # an extraction job still running: the data directory is temporary
                server.kill()
                server.wait()
            log.close()


if __name__ == "__main__":
    main()
