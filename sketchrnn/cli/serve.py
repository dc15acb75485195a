"""``sketchrnn serve``: the drawing page and completions streamed over a WebSocket."""

import argparse
import asyncio
import logging
import sys

import torch

from sketchrnn.catalog import default_model_files, load_catalog, model_files
from sketchrnn.cli import flags
from sketchrnn.core.engine import resolve_device
from sketchrnn.recognizer import Recognizer, load_for
from sketchrnn.sampler import set_threads
from sketchrnn.server.app import Limits, run
from sketchrnn.server.processes import check_workers, default_workers, supervise


def _server_options(args: argparse.Namespace) -> dict:
    limits = Limits(max_message_bytes=args.max_message_bytes, max_input_points=args.max_input_points,
                    max_points=args.max_points, max_n=args.max_n, requests_per_second=args.rate,
                    max_connections=args.max_connections, max_batch=args.max_batch,
                    points_per_second=args.points_rate, max_unauthenticated=args.max_unauthenticated,
                    idle_timeout=args.idle_timeout, start_budget=args.start_budget, min_pace=args.min_pace,
                    shed_after=args.shed_after)
    origins = None if args.origins is None else [None if o == "none" else o for o in args.origins]
    return {"host": args.host, "port": args.port, "limits": limits, "origins": origins, "token": args.token}


def load_served_models(args: argparse.Namespace) -> tuple[dict, Recognizer | None]:
    """The models to serve, on --device (every stream of every connection steps in one batch
    there), and the recognizer built for exactly them, if there is one."""
    device = resolve_device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: no CUDA GPU is visible to this process")
    files = model_files(args.model) if args.model else default_model_files()
    recognizer = load_for(files, args.recognizer)
    models = load_catalog(files)
    for loaded in models.values():
        loaded.model.to(device)
    return models, recognizer


def serve_worker(args: argparse.Namespace, index: int, count: int, ready) -> None:
    """One of ``--workers`` processes: its share of the cores, its own models, the shared port;
    ``ready`` is set once it listens."""
    set_threads(max(1, default_workers() // count))  # the cores this process may use, shared
    models, recognizer = load_served_models(args)

    async def serve_until_stopped():
        listening = asyncio.get_running_loop().create_future()
        server = asyncio.create_task(run(models, **_server_options(args), ready=listening, worker=(index, count),
                                         recognizer=recognizer))
        await asyncio.wait([listening, server], return_when=asyncio.FIRST_COMPLETED)
        if listening.done():
            ready.set()
        await server

    try:
        asyncio.run(serve_until_stopped())
    except OSError as e:  # the port: in use by a process that did not ask to share it, or not ours to bind
        print(f"sketchrnn: error: worker {index}: cannot listen on {args.host}:{args.port}: {e.strerror}",
              file=sys.stderr)
        sys.exit(1)


def cmd_serve(args: argparse.Namespace) -> int:
    check_workers(args.workers)
    models, recognizer = load_served_models(args)  # with --workers each loads its own: this checks the files first
    logger = logging.getLogger("sketchrnn")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    if args.host not in ("127.0.0.1", "localhost", "::1") and args.token is None:
        print(f"warning: listening on {args.host} without --token: anyone who can reach this machine can use the "
              "model. Pages from other machines are refused by the origin check unless --origins names them "
              f"(e.g. --origins http://THIS-HOST:{args.port}).", file=sys.stderr)
    processes = f" in {args.workers} processes" if args.workers > 1 else ""
    guesses = f"; guesses by {recognizer.path}" if recognizer is not None else ""
    print(f"serving {', '.join(models)} on http://{args.host}:{args.port}/ (WebSocket at /ws){processes}{guesses}; "
          "Ctrl-C stops", flush=True)
    if args.workers == 1:
        try:
            asyncio.run(run(models, **_server_options(args), recognizer=recognizer))
        except OSError as e:  # the port: in use, or not ours to bind
            raise ValueError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    elif status := supervise(args.workers, serve_worker, (args,)):
        return status
    print("stopped")
    return 0


def add_commands(commands) -> None:
    lim = Limits()
    sv = commands.add_parser("serve", help="stream completions over a WebSocket, and serve the client",
                             description="Serve the drawing client at / and completions at /ws (protocol v1, "
                                         "docs/protocol.md); /healthz lists the models.")
    sv.add_argument("--model", nargs="+", help="checkpoints, .gen.json files or folders of them, each model named by "
                                               "its file (palm_tree.gen.json: palm_tree) (default: the shipped "
                                               "sheep model and every model in the cache, see `sketchrnn models`)")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    sv.add_argument("--port", type=flags.port, default=8765, help="port (default: 8765)")
    sv.add_argument("--origins", nargs="+", help="allowed Origin headers; 'none' admits clients without one "
                                                 "(default: this server and localhost, and none)")
    # One process per core: on 2 cores, 2 processes serve 1.5x the points/s of one (BENCHMARKS.md).
    sv.add_argument("--workers", type=flags.count(1024), default=default_workers(),
                    help="server processes sharing the port (SO_REUSEPORT), each with its own event loop, model "
                         "thread and share of the cores (memory: BENCHMARKS.md); a dead one is restarted "
                         "(default: the number of cores, here %(default)s)")
    sv.add_argument("--device", default="cpu", help="where the models step: cpu, cuda, cuda:1, or auto "
                                                     "(cuda where there is one) (default: cpu)")
    sv.add_argument("--recognizer", help="a recognizer built for exactly these models (`sketchrnn recognizer "
                                         "build`) answers guesses (default: recognizer.pt beside the model files, "
                                         "if there; else the models' own likelihoods guess, slower)")
    sv.add_argument("--token", help="require this token: ?token= in the URL or a first {\"type\": \"auth\"} message")
    for flag, field, what in (("--max-message-bytes", "max_message_bytes", "largest message"),
                              ("--max-input-points", "max_input_points", "points in a request's strokes"),
                              ("--max-points", "max_points", "points per alternative"),
                              ("--max-n", "max_n", "alternatives per request"),
                              ("--rate", "requests_per_second", "requests per second per connection"),
                              ("--points-rate", "points_per_second", "points of drawing per second per connection"),
                              ("--max-connections", "max_connections", "concurrent connections"),
                              ("--max-batch", "max_batch", "alternatives stepped at once per model shape"),
                              ("--max-unauthenticated", "max_unauthenticated",
                               "connections yet to send their auth message (with --token); when full the oldest "
                               "is closed"),
                              ("--idle-timeout", "idle_timeout", "seconds without a message before a connection is "
                                                                 "closed (4000)"),
                              ("--start-budget", "start_budget", "seconds within which a request must be able to draw "
                                                                 "its first point, else it is answered busy"),
                              ("--min-pace", "min_pace", "points a second every running drawing keeps getting; a "
                                                         "request that would slow them below it is answered busy"),
                              ("--shed-after", "shed_after", "points an ending draws before it may be cut short "
                                                             "(done \"shed\") to let a new request start under "
                                                             "overload (sooner if it holds more alternatives than "
                                                             "the new one); above --max-points: never")):
        default = getattr(lim, field)
        kind = flags.count(None) if isinstance(default, int) else flags.positive
        sv.add_argument(flag, type=kind, default=default, help=f"{what} (default: {default:g})")
    sv.set_defaults(func=cmd_serve)
