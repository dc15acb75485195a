"""``sketchrnn serve`` in a process of its own for the benchmarks: started, waited for until it
answers /healthz, and stopped (SIGTERM, as an operator would) when the benchmark is done."""

import json
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health(port: int) -> dict:
    return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read())


@contextmanager
def serving(*flags: str, port: int | None = None):
    """Yields (port, process) of a running server started with ``flags``."""
    port = port or free_port()
    server = subprocess.Popen([sys.executable, "-m", "sketchrnn", "serve", "--port", str(port), *flags],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        seen, workers = set(), 1
        for _ in range(600):  # until every worker process answers (serve --workers)
            try:
                h = health(port)
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
