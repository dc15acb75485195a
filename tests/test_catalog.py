"""The catalog: models found by name in folders and the user cache, name clashes refused, and
models and drawings downloaded (resumably) from a local HTTP server standing in for Google's."""

import http.server
import json
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

from sketchrnn import catalog, drawing_input
from sketchrnn.catalog import default_model_files, download_drawings, download_models, load_catalog, model_files
from sketchrnn.checkpoints import DEFAULT_MODEL, ModelFileError
from sketchrnn.cli import main
from sketchrnn.strokes import read_ndjson


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """A static server that honours ``Range: bytes=N-`` as storage servers do (and logs what it
    was asked, for the tests to read)."""

    asked: list = []

    def send_head(self):
        wanted = self.headers.get("Range")
        self.asked.append((self.path, wanted))
        path = Path(self.translate_path(self.path))
        if not wanted or not path.is_file():
            return super().send_head()
        start = int(wanted.removeprefix("bytes=").rstrip("-"))
        body = path.read_bytes()
        if start >= len(body):
            self.send_error(416)
            return None
        self.send_response(206)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        f = path.open("rb")
        f.seek(start)
        return f

    def log_message(self, *args):
        pass


@contextmanager
def serving(folder: Path):
    RangeHandler.asked = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: RangeHandler(*a, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_a_folder_serves_every_model_by_its_file_name(shared_data):
    files = model_files([shared_data / "models"])
    assert len(files) == 22 and files["palm_tree"].name == "palm_tree.gen.json"
    assert catalog.model_name(Path("runs/cat/best.pt")) == "cat"


def test_two_models_of_one_name_are_an_error_naming_both_files(shared_data, tmp_path):
    shutil.copy(shared_data / "models" / "sheep.gen.json", tmp_path / "sheep.gen.json")
    with pytest.raises(ModelFileError, match=r"two models named 'sheep': .*sheep\.pt and .*sheep\.gen\.json"):
        model_files([DEFAULT_MODEL, tmp_path])
    assert main(["serve", "--model", str(DEFAULT_MODEL), str(tmp_path), "--workers", "1"]) == 2


def test_serve_without_model_serves_the_shipped_model_and_the_cache(shared_data, user_cache):
    assert list(default_model_files()) == ["sheep"]
    (user_cache / "models").mkdir(exist_ok=True)
    shutil.copy(shared_data / "models" / "bird.gen.json", user_cache / "models" / "bird.gen.json")
    try:
        assert default_model_files() == {"sheep": DEFAULT_MODEL, "bird": user_cache / "models" / "bird.gen.json"}
    finally:
        (user_cache / "models" / "bird.gen.json").unlink()


def test_a_models_extent_is_learned_once_and_kept(shared_data, user_cache, monkeypatch):
    files = {"rabbit": shared_data / "models" / "rabbit.gen.json"}
    first = load_catalog(files)["rabbit"]
    extents = json.loads((user_cache / catalog.EXTENTS_FILE).read_text())
    assert drawing_input.typical_extent(first.model) in extents.values()

    def no_sampling(*args, **kwargs):
        raise AssertionError("start-up sampled a model whose extent the cache holds")

    monkeypatch.setattr(drawing_input, "sample", no_sampling)
    again = load_catalog(files)["rabbit"]
    assert drawing_input.typical_extent(again.model) == drawing_input.typical_extent(first.model)


def test_models_download_resumes_and_checks_what_it_fetched(shared_data, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(shared_data / "models" / "rabbit.gen.json", served / "rabbit.gen.json")
    (served / "broken.gen.json").write_text("[]")
    cache = tmp_path / "cache"
    cache.mkdir()
    whole = (served / "rabbit.gen.json").read_bytes()
    (cache / "rabbit.gen.json.download.part").write_bytes(whole[:100_000])  # an interrupted download
    with serving(served) as base:
        [path] = download_models(["rabbit"], cache, base, progress=False)
        assert ("/rabbit.gen.json", "bytes=100000-") in RangeHandler.asked
        assert path.read_bytes() == whole
        with pytest.raises(ModelFileError, match="broken: the download is not a model"):
            download_models(["broken"], cache, base, progress=False)
        with pytest.raises(OSError, match="unicorn.gen.json: HTTP 404"):
            download_models(["unicorn"], cache, base, progress=False)
        assert main(["models", "download", "--dir", str(cache), "--base-url", base, "--quiet"]) == 2
    assert sorted(p.name for p in cache.iterdir()) == ["rabbit.gen.json"]
    assert load_catalog(model_files([cache]))["rabbit"].classes == ["rabbit"]


def test_data_download_streams_the_first_drawings_of_a_class(shared_data, tmp_path, capsys):
    simplified = shared_data / "sketches" / "quickdraw" / "simplified"
    with serving(simplified) as base:
        # Google's file is "palm tree.ndjson"; the class is palm_tree, as its model's name.
        assert main(["data", "download", "palm_tree", "cat", "--max", "10", "--dir", str(tmp_path),
                     "--base-url", base, "--quiet"]) == 0
    assert "palm_tree.ndjson, cat.ndjson" in capsys.readouterr().out
    records, _ = read_ndjson(tmp_path / "palm_tree.ndjson")
    originals, _ = read_ndjson(simplified / "palm tree.ndjson")
    assert len(records) == 10 and [r.key_id for r in records] == [r.key_id for r in originals[:10]]
    assert not list(tmp_path.glob("*.download*")), "no partial files left"


def test_a_partial_drawings_download_resumes(shared_data, tmp_path):
    simplified = shared_data / "sketches" / "quickdraw" / "simplified"
    whole = (simplified / "cat.ndjson").read_bytes()
    (tmp_path / "cat.ndjson.download.part").write_bytes(whole[:5000])  # cut mid-line
    with serving(simplified) as base:
        download_drawings(["cat"], 20, tmp_path, base, progress=False)
    assert ("/cat.ndjson", "bytes=5000-") in RangeHandler.asked
    assert (tmp_path / "cat.ndjson").read_bytes() == b"".join(whole.splitlines(keepends=True)[:20])
