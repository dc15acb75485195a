"""Shared fixtures: the real datasets in ../shared/data, Magenta's own sketch-rnn-js in Node.js
(each skipped with a reason where absent), and what the tests that start servers share."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def user_cache(tmp_path_factory) -> Path:
    """The catalog's cache (downloads, learned extents) in a folder of the test session's own,
    never the user's ~/.cache; servers the tests start inherit it."""
    path = tmp_path_factory.mktemp("cache")
    previous = os.environ.get("SKETCHRNN_CACHE")
    os.environ["SKETCHRNN_CACHE"] = str(path)
    yield path
    if previous is None:
        del os.environ["SKETCHRNN_CACHE"]
    else:
        os.environ["SKETCHRNN_CACHE"] = previous


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA} (they come with the project's shared/ folder)")
    return SHARED_DATA


@pytest.fixture
def sketches_dir(shared_data) -> Path:
    return shared_data / "sketches"


@pytest.fixture
def magenta_sketch() -> Path:
    """tests/js, where .ci/run installs @magenta/sketch (Magenta's own sketch-rnn-js) and our
    Node.js scripts that drive it."""
    js = Path(__file__).resolve().parent / "js"
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed")
    if not (js / "node_modules" / "@magenta" / "sketch").is_dir():
        pytest.skip("@magenta/sketch is not installed in tests/js (.ci/run runs npm ci there)")
    return js


@pytest.fixture
def reference(magenta_sketch):
    """Samples from a .gen.json with @magenta/sketch (tests/js/sample_stats.js): points and pen
    lifts per drawing."""

    def run(model: Path, temperature: float, max_points: int, count: int = 200) -> dict:
        out = subprocess.run(["node", str(magenta_sketch / "sample_stats.js"), str(model), str(count), str(temperature),
                              str(max_points)], capture_output=True, text=True, timeout=600, check=True).stdout
        return json.loads(next(line for line in reversed(out.splitlines()) if line.startswith("{")))

    return run


@pytest.fixture(scope="session")
def free_port():
    """A function returning a loopback TCP port that nothing listens on now."""

    def pick() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    return pick


@pytest.fixture(scope="session")
def health():
    """A function returning a server's /healthz answer on a loopback port."""

    def ask(port: int) -> dict:
        return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read())

    return ask


def _wait_for_answer(url: str, process: subprocess.Popen, seconds: float) -> None:
    """Return once ``url`` answers; AssertionError saying why if ``process`` exits first or
    ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while (exited := process.poll()) is None and time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{process.args[0]} exited with {exited}" if exited is not None
                         else f"{url} did not answer within {seconds:g} s")


@pytest.fixture(scope="session")
def wait_for_answer():
    """A function that returns once a URL answers, or fails saying why (its process exited, or
    the given seconds passed)."""
    return _wait_for_answer


@pytest.fixture(scope="session")
def start_server(tmp_path_factory):
    """A function that starts ``sketchrnn serve --port PORT ARGS`` (``program``: how sketchrnn is
    run) and returns the process once /healthz answers. Its output goes to a log that a failed start
    quotes. A start takes 2 s alone on 2 cores but over 20 s beside two busy processes (torch's
    import and the model's typical extent, on threads that spin): hence the generous deadline."""

    def start(port: int, *args: str, program=(sys.executable, "-m", "sketchrnn"), seconds: float = 120,
              **popen) -> subprocess.Popen:
        arguments = ["serve", "--port", str(port), *args]
        log_path = tmp_path_factory.mktemp("serve") / "output.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen([*program, *arguments], stdout=log, stderr=subprocess.STDOUT, **popen)
        try:
            _wait_for_answer(f"http://127.0.0.1:{port}/healthz", process, seconds)
        except AssertionError as failed:
            process.kill()
            process.wait()
            raise AssertionError(f"sketchrnn {' '.join(arguments)}: {failed}; its output:\n"
                                 f"{log_path.read_text()[-3000:]}") from None
        return process

    return start
