"""``sketchrnn serve``: the drawing page and completions streamed over a WebSocket."""

import argparse
import asyncio
import logging
import sys

import torch

from sketchrnn.checkpoints import load_models
from sketchrnn.cli import flags
from sketchrnn.core.engine import resolve_device
from sketchrnn.sampler import set_threads
from sketchrnn.server.app import Limits, run
from sketchrnn.server.processes import check_workers, default_workers, supervise


def _server_options(args: argparse.Namespace) -> dict:
    limits = Limits(max_message_bytes=args.max_message_bytes, max_input_points=args.max_input_points,
                    max_points=args.max_points, max_n=args.max_n, requests_per_second=args.rate,
                    max_connections=args.max_connections, max_batch=args.max_batch,
                    points_per_second=args.points_rate)
    origins = None if args.origins is None else [None if o == "none" else o for o in args.origins]
    return {"host": args.host, "port": args.port, "limits": limits, "origins": origins, "token": args.token}


def load_served_models(args: argparse.Namespace) -> dict:
    """The models to serve, on --device (every stream of every connection steps in one batch there)."""
    device = resolve_device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: no CUDA GPU is visible to this process")
    models = load_models(args.model or [None])
    for loaded in models.values():
        loaded.model.to(device)
    return models


def serve_worker(args: argparse.Namespace, index: int, count: int, ready) -> None:
    """One of ``--workers`` processes: its share of the cores, its own models, the shared port;
    ``ready`` is set once it listens."""
    set_threads(max(1, default_workers() // count))  # the cores this process may use, shared
    models = load_served_models(args)

    async def serve_until_stopped():
        listening = asyncio.get_running_loop().create_future()
        server = asyncio.create_task(run(models, **_server_options(args), ready=listening, worker=(index, count)))
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
    models = load_served_models(args)  # with --workers each loads its own: this checks the files first
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
    print(f"serving {', '.join(models)} on http://{args.host}:{args.port}/ (WebSocket at /ws){processes}; "
          "Ctrl-C stops", flush=True)
    if args.workers == 1:
        try:
            asyncio.run(run(models, **_server_options(args)))
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
    sv.add_argument("--model", nargs="+", help="checkpoints, .gen.json files or folders of them "
                                               "(default: the shipped sheep model)")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    sv.add_argument("--port", type=flags.port, default=8765, help="port (default: 8765)")
    sv.add_argument("--origins", nargs="+", help="allowed Origin headers; 'none' admits clients without one "
                                                 "(default: this server and localhost, and none)")
    # Measured on 2 cores (BENCHMARKS.md): 2 processes serve 100 clients at 14,200 points/s, first
    # point p99 58 ms, where one process serves 9,400 points/s, p99 99 ms (seeded load; with the
    # browser's load and today's sampler, 2 processes: 13,700-15,900 points/s, p99 40-50 ms).
    # Each process costs ~260 MB.
    sv.add_argument("--workers", type=flags.count(1024), default=default_workers(),
                    help="server processes sharing the port (SO_REUSEPORT), each with its own event loop, model "
                         "thread and share of the cores, ~260 MB each; a dead one is restarted "
                         "(default: the number of cores, here %(default)s)")
    sv.add_argument("--device", default="cpu", help="where the models step: cpu, cuda, cuda:1, or auto "
                                                     "(cuda where there is one) (default: cpu)")
    sv.add_argument("--token", help="require this token: ?token= in the URL or a first {\"type\": \"auth\"} message")
    for flag, field, what in (("--max-message-bytes", "max_message_bytes", "largest message"),
                              ("--max-input-points", "max_input_points", "points in a request's strokes"),
                              ("--max-points", "max_points", "points per alternative"),
                              ("--max-n", "max_n", "alternatives per request"),
                              ("--rate", "requests_per_second", "requests per second per connection"),
                              ("--points-rate", "points_per_second", "points of drawing per second per connection"),
                              ("--max-connections", "max_connections", "concurrent connections"),
                              ("--max-batch", "max_batch", "alternatives stepped at once per model")):
        default = getattr(lim, field)
        kind = flags.count(None) if isinstance(default, int) else flags.positive
        sv.add_argument(flag, type=kind, default=default, help=f"{what} (default: {default:g})")
    sv.set_defaults(func=cmd_serve)
