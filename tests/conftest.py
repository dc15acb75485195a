"""Shared fixtures: the real datasets in ../shared/data, Magenta's own sketch-rnn-js in Node.js
(each skipped with a reason where absent), and what the tests that start servers share."""

import json
import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
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
