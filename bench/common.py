"""What the server benchmarks share: ``sketchrnn serve`` in a process of its own (started, waited
for until every worker answers /healthz, stopped with SIGTERM as an operator would), its memory,
and percentiles of timings."""

import json
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health(port: int, token: str | None = None) -> dict:
    query = "" if token is None else f"?token={token}"
    return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz{query}", timeout=5).read())


@contextmanager
def serving(*flags: str, port: int | None = None, token: str | None = None, log=subprocess.DEVNULL,
            wait: float = 300):
    """Yields (port, process) of a running server started with ``flags`` (and ``--token``), once
    every worker answers (or ``wait`` seconds have passed)."""
    port = port or free_port()
    flags = (*flags, "--token", token) if token is not None else flags
    server = subprocess.Popen([sys.executable, "-m", "sketchrnn", "serve", "--port", str(port), *flags],
                              stdout=log, stderr=subprocess.STDOUT if log is not subprocess.DEVNULL else log)
    try:
        seen, workers, deadline = set(), 1, time.monotonic() + wait
        while time.monotonic() < deadline:  # until every worker process answers (serve --workers)
            try:
                h = health(port, token)
                seen.add(h["worker"])
                workers = h["workers"]
                if len(seen) == workers:
                    break
            except OSError:
                if server.poll() is not None:
                    raise RuntimeError(f"sketchrnn serve exited with {server.returncode}") from None
                time.sleep(0.1)
        yield port, server
    finally:
        server.terminate()
        server.wait(30)


def percentile(values, q: float) -> float:
    """The ``q``th percentile of ``values`` (nan for none)."""
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q / 100 * len(values)))]


def resident_mb(pid: int) -> float:
    """Resident memory of a process and its children (the --workers processes), in MB (Linux)."""
    total, pids = 0.0, [pid]
    while pids:
        p = pids.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024
        pids += [int(c) for c in children]
    return total


def settle(port: int, seconds: float = 10) -> dict:
    """/healthz once no connection or stream is left (or after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while (state := health(port))["connections"] or state["streams"]:
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return state
