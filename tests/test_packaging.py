"""The package as a user installs it: a wheel built from this tree, installed into a fresh
virtual environment, serves the drawing page and a completion with the model inside it."""

import asyncio
import os
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

from sketchrnn import remote

ROOT = Path(__file__).resolve().parents[1]


def run(*command, **kw):
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=300, **kw)


def test_a_wheel_in_a_fresh_venv_serves_the_page_and_completes(tmp_path, free_port, start_server):
    # No build isolation and no dependencies fetched: torch and the rest come from this
    # interpreter's site-packages (--system-site-packages), the package itself from the wheel.
    run(sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-w", str(tmp_path))
    wheel = next(tmp_path.glob("sketchrnn-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for inside in ("sketchrnn/client/index.html", "sketchrnn/client/app.js", "sketchrnn/models/sheep.pt",
                   "sketchrnn/server/app.py", "sketchrnn/server/__init__.py"):
        assert inside in names, f"{inside} missing from the wheel"
    assert not any(n.startswith(("server/", "client/", "data/")) for n in names), "top-level folders leaked"
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--system-site-packages", str(venv))
    run(str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel))
    where = run(str(venv / "bin" / "python"), "-c", "import sketchrnn.server.app as a; print(a.__file__)",
                cwd=tmp_path).stdout.strip()
    assert where.startswith(str(venv)), f"imported {where}, not the installed wheel"

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    server = start_server(port, program=(str(venv / "bin" / "sketchrnn"),), cwd=tmp_path, env=env)
    try:
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
        assert "<canvas" in page
        assert b"WebSocket" in urllib.request.urlopen(f"http://127.0.0.1:{port}/app.js", timeout=5).read()

        async def complete():
            async with remote.connect(f"ws://127.0.0.1:{port}/ws") as client:
                completion = client.complete([[[100, 100], [160, 90], [230, 100], [260, 140]]], seed=1, max_points=20)
                return client.hello, (await completion.collect(30))[0]

        hello, points = asyncio.run(complete())
        assert hello["models"][0]["name"] == "sheep" and len(points) > 0
    finally:
        server.terminate()
        server.wait(10)
