"""Models and drawings by class name: a folder of model files, the user's cache (XDG), and
downloads into it (Magenta's hosted decoders, Quick, Draw!'s drawings), resumable and checked
before they replace anything. One name, one file: a clash is an error naming both."""

import functools
import hashlib
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from sketchrnn.checkpoints import DEFAULT_MODEL, LoadedModel, ModelFileError, import_gen_json, load_model
from sketchrnn.core.checkpoint import atomic_file
from sketchrnn.drawing_input import remember_extent, typical_extent
from sketchrnn.strokes import StrokeFormatError, parse_ndjson_line

MAGENTA_MODELS_URL = "https://storage.googleapis.com/quickdraw-models/sketchRNN/large_models"
QUICKDRAW_URL = "https://storage.googleapis.com/quickdraw_dataset/full/simplified"
# The decoders Magenta hosts (@magenta/sketch's README lists them); several are trained on two or
# more classes at once (catpig, crabrabbitfacepig), and "everything" on all of them.
MAGENTA_MODELS = (
    "alarm_clock ambulance angel ant antyoga backpack barn basket bear bee beeflower bicycle bird book brain "
    "bridge bulldozer bus butterfly cactus calendar castle cat catbus catpig chair couch crab crabchair "
    "crabrabbitfacepig cruise_ship diving_board dog dogbunny dolphin duck elephant elephantpig eye face fan "
    "fire_hydrant firetruck flamingo flower floweryoga frog frogsofa garden hand hedgeberry hedgehog helicopter "
    "kangaroo key lantern lighthouse lion lionsheep lobster map mermaid monapassport monkey mosquito octopus owl "
    "paintbrush palm_tree parrot passport peas penguin pig pigsheep pineapple pool postcard power_outlet rabbit "
    "rabbitturtle radio radioface rain rhinoceros rifle roller_coaster sandwich scorpion sea_turtle sheep skull "
    "snail snowflake speedboat spider squirrel steak stove strawberry swan swing_set the_mona_lisa tiger "
    "toothbrush toothpaste tractor trombone truck whale windmill yoga yogabicycle everything"
).split()
MODEL_SUFFIXES = (".gen.json", ".pt")
RECOGNIZER_FILE = "recognizer.pt"  # in a folder of models: the recognizer built for them, not a model
EXTENTS_FILE = "extents.json"  # what each model file's drawings span, learned once (sampling costs ~1 s a model)


class DownloadError(OSError):
    """A download that failed; the message names the URL and why."""


def cache_dir() -> Path:
    """``$SKETCHRNN_CACHE``, else ``$XDG_CACHE_HOME/sketchrnn``, else ``~/.cache/sketchrnn``."""
    if os.environ.get("SKETCHRNN_CACHE"):
        return Path(os.environ["SKETCHRNN_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sketchrnn"


def class_name(text: str) -> str:
    """One spelling of a class: Google's file names have spaces (``palm tree.ndjson``), model
    names underscores (``palm_tree.gen.json``); both are ``palm_tree``."""
    return text.strip().replace(" ", "_")


def model_name(path: Path) -> str:
    """A model file's name: its stem (``palm_tree.gen.json`` -> ``palm_tree``); a run's
    ``best.pt`` / ``last.pt`` is named by its run folder."""
    stem = path.name.removesuffix(".gen.json").removesuffix(".pt")
    return class_name(path.parent.name if stem in ("best", "last") else stem)


def model_files(paths: list[str | Path]) -> dict[str, Path]:
    """Model files by name, from files and folders of them (every .gen.json and .pt inside)."""
    found: dict[str, Path] = {}
    for given in map(Path, paths):
        if given.is_dir():
            files = sorted(p for p in given.iterdir()
                           if p.is_file() and p.name.endswith(MODEL_SUFFIXES) and p.name != RECOGNIZER_FILE)
            if not files:
                raise ModelFileError(f"{given}: no .pt or .gen.json models in this folder")
        elif given.is_file():
            files = [given]
        else:
            raise ModelFileError(f"{given}: no such model file or folder")
        for path in files:
            name = model_name(path)
            if name in found and found[name].resolve() != path.resolve():
                raise ModelFileError(f"two models named {name!r}: {found[name]} and {path}; rename one of the files")
            found[name] = path
    return found


def cached_model_files(directory: Path | None = None) -> dict[str, Path]:
    directory = directory or cache_dir() / "models"
    return model_files([directory]) if directory.is_dir() and any(directory.glob("*.gen.json")) else {}


def default_model_files() -> dict[str, Path]:
    """What ``serve`` serves without ``--model``: the shipped model and whatever the cache holds
    (a downloaded model of the shipped one's name replaces it: the user asked for it)."""
    return {model_name(DEFAULT_MODEL): DEFAULT_MODEL, **cached_model_files()}


def file_sha256(path: str | Path) -> str:
    """What a model file is, whatever its name: keys its cached extent, and ties a recognizer to it.
    Read once per file version: serving with a recognizer asks twice for each model."""
    path = Path(path).resolve()
    stat = path.stat()
    return _sha256(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=1024)
def _sha256(path: Path, size: int, mtime_ns: int) -> str:  # size and time: a rewritten file is read again
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_catalog(files: dict[str, Path], progress: bool = False) -> dict[str, LoadedModel]:
    """Load each model under its catalog name, with its typical extent from the cache's
    ``extents.json`` (keyed by the file's sha256), learning and keeping those it lacks."""
    extents_path = cache_dir() / EXTENTS_FILE
    try:
        extents = json.loads(extents_path.read_text())
    except (OSError, ValueError):
        extents = {}
    models, learned = {}, False
    for name, path in tqdm(files.items(), desc="loading models", unit="model", disable=not progress):
        loaded = load_model(path)
        loaded.name = name
        key = file_sha256(path)
        if isinstance(extents.get(key), float):
            remember_extent(loaded.model, extents[key])
        else:
            extents[key], learned = typical_extent(loaded.model), True
        models[name] = loaded
    if learned:
        try:
            with atomic_file(extents_path, "w") as f:
                json.dump(extents, f, indent=0)
        except OSError:
            pass  # a read-only cache costs the next start-up time, nothing else
    return models


def download(url: str, target: Path, progress: bool = True, timeout: float = 60, max_lines: int | None = None) -> None:
    """Fetch ``url`` to ``target`` through ``target.part``: an interrupted download resumes where
    it stopped (HTTP Range). With ``max_lines`` only that many lines are read (the stream is closed
    after them). ``target`` itself appears only once the whole file is there."""
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the part is already whole
            part.replace(target)
            return
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        raise DownloadError(f"{url}: {getattr(e, 'reason', e)}") from None
    with response:
        if response.status != 206:  # the server sends the whole file: start the part afresh
            have = 0
        size = response.headers.get("Content-Length")
        total = have + int(size) if size and max_lines is None else None
        with part.open("ab" if have else "wb") as out, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                                             desc=target.name, disable=not progress) as bar:
            lines = part.read_bytes().count(b"\n") if have and max_lines else 0
            while max_lines is None or lines < max_lines:
                chunk = response.readline() if max_lines else response.read(1 << 16)
                if not chunk:
                    break
                out.write(chunk)
                lines += chunk.endswith(b"\n")
                bar.update(len(chunk))
    part.replace(target)


def download_models(names: list[str], directory: Path | None = None, base_url: str = MAGENTA_MODELS_URL,
                    progress: bool = True) -> list[Path]:
    """Magenta's decoders ``NAME.gen.json`` into the cache; one already there (and loading) is kept.
    Each download must load as a model before it takes its name."""
    directory = directory or cache_dir() / "models"
    directory.mkdir(parents=True, exist_ok=True)
    saved = []
    for name in map(class_name, names):
        target = directory / f"{name}.gen.json"
        if not target.exists():
            fetched = directory / f"{name}.gen.json.download"
            download(f"{base_url.rstrip('/')}/{urllib.parse.quote(name)}.gen.json", fetched, progress)
            try:
                import_gen_json(fetched)
            except ModelFileError as e:
                fetched.unlink()
                raise ModelFileError(f"{name}: the download is not a model ({e})") from None
            fetched.replace(target)
        saved.append(target)
    return saved


def download_drawings(names: list[str], max_drawings: int, directory: Path | None = None,
                      base_url: str = QUICKDRAW_URL, progress: bool = True) -> list[Path]:
    """The first ``max_drawings`` drawings of each class from Quick, Draw!'s simplified ndjson
    (streamed: the rest of a 100 MB file is never read), as ``<class>.ndjson``; each line is
    checked to parse as a drawing."""
    directory = directory or cache_dir() / "drawings"
    directory.mkdir(parents=True, exist_ok=True)
    saved = []
    for name in map(class_name, names):
        target = directory / f"{name}.ndjson"
        if not target.exists() or target.read_bytes().count(b"\n") < max_drawings:
            target.unlink(missing_ok=True)
            fetched = directory / f"{name}.ndjson.download"
            google_name = urllib.parse.quote(name.replace("_", " "))  # Google's files are named with spaces
            download(f"{base_url.rstrip('/')}/{google_name}.ndjson", fetched, progress, max_lines=max_drawings)
            lines = fetched.read_text().splitlines()
            for i, line in enumerate(lines[:max_drawings], 1):
                try:
                    parse_ndjson_line(line, f"{fetched}:{i}")
                except StrokeFormatError as e:
                    fetched.unlink()
                    raise StrokeFormatError(f"{name}: the download is not Quick, Draw! drawings ({e})") from None
            fetched.write_text("".join(line + "\n" for line in lines[:max_drawings]))
            fetched.replace(target)
        saved.append(target)
    return saved
