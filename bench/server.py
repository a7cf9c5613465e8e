"""The server under benchmark: ``credence serve`` as a process, and plain requests to it.

:func:`serving` starts one uvicorn worker on a free loopback port, waits until it answers
``/v1/health`` and stops it afterwards; :class:`Server` reads the CPU time the process has
used (from ``/proc``); :func:`request` sends one JSON request.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.store import OUT


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class Server:
    port: int
    pid: int

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def serving(
    url: str,
    log: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    what: str = "the server",
) -> Iterator[Server]:
    """``credence serve`` (one uvicorn worker) on a free loopback port; stopped after.
    ``env`` replaces the environment it starts from (default: this process's), and
    ``cwd`` its working directory: :mod:`bench.ab` runs another version's code so."""
    port = free_port()
    command = [sys.executable, "-c", "from credence.cli import main; main()"]
    env = {
        **(os.environ if env is None else env),
        "CREDENCE_DB_URL": url,
        # No access log line per request: the benchmark measures the API, not the terminal.
        "CREDENCE_LOG_LEVEL": "warning",
        "CREDENCE_LOG_KEY_PATH": str(OUT / "online-log.key"),
    }
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*command, "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"{what} stopped at start; see {log}")
                try:
                    status, _ = request(port, "GET", "/v1/health", None, None)
                    if status == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"{what} did not answer within 60 s; see {log}")
                time.sleep(0.2)
            yield Server(port, proc.pid)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def request(
    port: int, method: str, path: str, body: Any, key: str | None, *, timeout: float = 30
) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        conn.request(method, path, orjson.dumps(body) if body is not None else None, headers)
        response = conn.getresponse()
        return response.status, orjson.loads(response.read() or b"null")
    finally:
        conn.close()
