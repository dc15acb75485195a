"""The package as a user installs it: a wheel and an sdist built from this tree (the wheel from the
sdist, as ``python -m build`` does), the wheel installed into an isolated virtual environment (no
system site-packages, so nothing of this checkout or its editable install can stand in for a
missing module) beside the CPU build of torch, as .ci/run installs it; then, from a folder outside
the checkout, the command's version, its server's page and a completion, and its imports.

One module-scoped fixture builds and installs (about a minute: torch alone is most of it); the
tests below share it."""

import asyncio
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import urllib.request
import zipfile
from pathlib import Path

import pytest

from sketchrnn import remote

ROOT = Path(__file__).resolve().parents[1]
# The top-level folders the wheel maps into the package (setup.py), and what each carries.
MAPPED = {"server": ("sketchrnn/server", ("*.py",)),
          "client": ("sketchrnn/client", ("*.py", "*.html", "*.js", "*.css")),
          "data/models": ("sketchrnn/models", ("*.py", "sheep.pt"))}
# The CPU build on this project's machines' disk, the one .ci/run installs.
TORCH = "torch==2.13.0"


def run(*command, timeout=600, **kw):
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kw)
    assert done.returncode == 0, f"{' '.join(map(str, command))} exited {done.returncode}:\n{done.stdout[-3000:]}\n" \
                                 f"{done.stderr[-3000:]}"
    return done


def clean_copy(to: Path) -> Path:
    """This tree as a fresh clone with its uncommitted work would hold it: the files git tracks or
    would track, without what builds and editable installs leave behind (a stale
    sketchrnn.egg-info/SOURCES.txt makes setuptools carry files that the package list forgot)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, text=True)
    if listed.returncode != 0:  # not a git checkout (an unpacked sdist): leave out what builds leave
        return Path(shutil.copytree(ROOT, to, ignore=shutil.ignore_patterns(
            "*.egg-info", "build", "dist", "__pycache__", ".git", "node_modules", "runs", "out")))
    for name in filter(None, listed.stdout.split("\0")):
        if (ROOT / name).is_file():
            (to / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, to / name)
    return to


def tree_files(tree: Path) -> dict[str, str]:
    """Every file of the package in a tree, by the path it has in the wheel, with its path in the
    tree (what the sdist holds)."""
    files = {str(p.relative_to(tree)): str(p.relative_to(tree)) for p in (tree / "sketchrnn").rglob("*.py")}
    for folder, (package, patterns) in MAPPED.items():
        for pattern in patterns:
            for p in (tree / folder).rglob(pattern):
                files[f"{package}/{p.relative_to(tree / folder)}"] = str(p.relative_to(tree))
    return {wheel: in_tree for wheel, in_tree in files.items() if "__pycache__" not in wheel}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The wheel's and the sdist's file lists, and an isolated venv with the wheel installed."""
    tree = clean_copy(tmp_path_factory.mktemp("clone"))
    out = tmp_path_factory.mktemp("dist")
    # Build isolation: the build backend comes from pyproject's [build-system], as for a user.
    run(sys.executable, "-m", "build", "--outdir", str(out), str(tree))
    wheel, sdist = next(out.glob("sketchrnn-*.whl")), next(out.glob("sketchrnn-*.tar.gz"))
    wheel_names = set(zipfile.ZipFile(wheel).namelist())
    with tarfile.open(sdist) as tar:
        sdist_names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}

    venv = tmp_path_factory.mktemp("isolated") / "venv"
    run(sys.executable, "-m", "venv", str(venv))
    pip = (str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet")
    run(*pip, TORCH)
    run(*pip, str(wheel))  # and its other dependencies, as a user's `pip install` fetches them
    outside = tmp_path_factory.mktemp("elsewhere")  # the checkout is not the working directory
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return {"tree": tree_files(tree), "wheel": wheel_names, "sdist": sdist_names, "venv": venv, "cwd": outside,
            "env": env}


def test_the_wheel_holds_every_module_and_asset_of_the_tree(built):
    missing = sorted(set(built["tree"]) - built["wheel"])
    assert not missing, f"missing from the wheel: {', '.join(missing)}"
    leaked = sorted(n for n in built["wheel"] if n.startswith(("server/", "client/", "data/", "tests/")))
    assert not leaked, f"top-level folders in the wheel: {', '.join(leaked)}"


def test_the_sdist_holds_every_module_and_asset_of_the_tree(built):
    missing = sorted(set(built["tree"].values()) - built["sdist"])
    assert not missing, f"missing from the sdist: {', '.join(missing)}"


def test_the_installed_command_prints_the_version_of_pyproject(built):
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    done = run(str(built["venv"] / "bin" / "sketchrnn"), "--version", cwd=built["cwd"], env=built["env"])
    assert done.stdout.strip() == f"sketchrnn {expected}"


def test_the_installed_package_imports_from_the_venv_not_the_checkout(built):
    where = run(str(built["venv"] / "bin" / "python"), "-c",
                "import sketchrnn.server, sketchrnn.cli, sketchrnn.server.app as a; print(a.__file__)",
                cwd=built["cwd"], env=built["env"]).stdout.strip()
    assert where.startswith(str(built["venv"])), f"imported {where}, not the installed wheel"


def test_the_installed_server_serves_the_page_and_a_completion(built, free_port, start_server):
    port = free_port()
    # A fresh venv's first torch import reads every page from disk: on 2 busy cores it has taken
    # over conftest's 120 s; 20 s at a load of 5.
    server = start_server(port, "--workers", "1", program=(str(built["venv"] / "bin" / "sketchrnn"),),
                          cwd=built["cwd"], env=built["env"], seconds=300)
    try:
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
        assert "<canvas" in page
        assert b"WebSocket" in urllib.request.urlopen(f"http://127.0.0.1:{port}/app.js", timeout=5).read()

        async def complete():
            async with remote.connect(f"ws://127.0.0.1:{port}/ws") as client:
                strokes = [[[100, 100], [160, 90], [230, 100], [260, 140]]]
                return client.hello, await client.complete(strokes, seed=1, max_points=20).collect(30)

        hello, points = asyncio.run(complete())
        assert hello["models"][0]["name"] == "sheep" and len(points[0]) > 0
    finally:
        server.terminate()
        server.wait(10)
