"""Protocol v1 (``docs/protocol.md``), pure: every message a client sends decoded and validated
into a typed request, every message the server sends built here, with the limits and the error
codes. No sockets, no asyncio: each rule is testable on a plain string."""

import json
import math
from collections.abc import Collection
from dataclasses import asdict, dataclass

import numpy as np

from sketchrnn.strokes import MAX_COORDINATE

PROTOCOL = 1
MAX_ID_CHARS = 64  # the client's name for a request: a counter or a UUID, never a document
MAX_SEED = 2**63 - 1  # numpy's SeedSequence takes any integer; JSON readers keep 64 bits
TEMPERATURE = (0.01, 2.0)  # beyond 2 every sample is noise; below 0.01 use greedy
SCALE = (1e-6, 1e6)  # client units per model unit, from a thousandth of a pixel to a building
DEFAULT_TEMPERATURE = 0.25  # sketch-rnn-js's demos draw at 0.25
GUESS_TOP = 3  # guesses a guess message lists (every model's, when fewer are served)
# A guess is "sure" from this probability of its top model on. The recognizer's top-1 is right
# about 4 times in 5 above it and about 1 in 3 below it (BENCHMARKS.md): below, the page says
# "not sure" rather than bluff.
SURE = 0.5

# code -> when the server answers it (docs/protocol.md's table says the same, for people).
ERROR_CODES = {
    "bad_request": "not JSON, not an object, unknown type, a binary frame, a field of the wrong type or range",
    "unknown_model": "model names no served model and is not auto",
    "too_large": "strokes over max_input_points, n over max_n, max_points over the limit",
    "rate_limited": "more than requests_per_second messages or points_per_second points on this connection",
    "overloaded": "the model's batch is already stepping max_batch alternatives",
    "busy": "the request could not start within start_budget seconds, or would slow drawings below min_pace; "
            "ask again after retry_after",
    "unauthorized": "a token is required and the first message was not a valid auth",
    "internal": "the server failed on this request",
}


@dataclass
class Limits:
    max_message_bytes: int = 256 * 1024  # a long drawing is a few tens of KB of JSON
    max_input_points: int = 2000  # points in one request's strokes
    max_points: int = 250  # points per alternative (Magenta's max_seq_len)
    max_n: int = 9  # alternatives per request
    requests_per_second: float = 10.0  # per connection, sustained; bursts of twice that
    # Points of drawing a connection may send per second (bursts of twice that). Reading them
    # costs the server time on its event loop (simplifying) and the model's (priming): a client
    # that resent a long drawing many times a second would slow everyone else's completions.
    points_per_second: float = 4000.0
    max_connections: int = 1000  # beyond: HTTP 503 at the handshake
    max_batch: int = 1024  # alternatives stepped at once per batch (one per model shape); beyond: "overloaded"
    # Connections still to send their auth message (with --token): a pool of their own, so
    # strangers never take the places of people with the token. When it is full the oldest
    # waiting one is closed to let the newcomer try: a client that authenticates at once always can.
    max_unauthenticated: int = 16
    idle_timeout: float = 300.0  # seconds without a message from the client: closed with 4000
    # Seconds within which a request must be able to draw its first point (three of its model's
    # steps at the pace its batch would have with it); beyond: "busy" at once, with retry_after.
    # 0.75: a person's first point stays under a second with the event loop's own delay on top;
    # tighter budgets refuse people on a machine that is merely busy, not overloaded.
    start_budget: float = 0.75
    # Points a second every drawing keeps getting once started: a request that would slow its
    # batch's steps below this is "busy" too. 30: a 30-point ending is drawn within a second of
    # its first point, with room for the pace's swings (at 25, a quarter of the newcomers under
    # bench/chaos.py took just over 1.5 s); an ending drawn slower than a person draws looks stuck.
    min_pace: float = 30.0
    # Points an ending may draw before it can be cut short (done "shed") to let a new request
    # start when the batch is too busy for both: under overload the least served go first, and
    # a person's first 60 points (most of a typical ending) are never cut for a request as wide
    # (one holding more alternatives than the newcomer asks for may be). Above max_points: never.
    shed_after: int = 60


class ProtocolError(Exception):
    """A request the server answers with an ``error`` message (the connection stays open)."""

    def __init__(self, code: str, message: str, retry_after: float | None = None):
        assert code in ERROR_CODES, code
        super().__init__(message)
        self.code, self.message, self.retry_after = code, message, retry_after


@dataclass(frozen=True)
class Complete:
    id: str
    model: str  # a served model's name, or "auto"
    strokes: list[np.ndarray]  # absolute polylines, (N, 2) float64 each, in the client's units; [] from scratch
    temperature: float
    pen_temperature: float | None
    n: int
    max_points: int
    seed: int | None
    greedy: bool
    scale: float | None  # client units per model unit; None: read from the drawing


@dataclass(frozen=True)
class Guess:
    id: str
    strokes: list[np.ndarray]  # as Complete's: the drawing so far


@dataclass(frozen=True)
class Cancel:
    id: object  # whatever the client sent: cancelling what is not running does nothing


@dataclass(frozen=True)
class Auth:
    token: object


def decode(raw) -> dict:
    """A text frame -> its JSON object, or a ProtocolError saying what it is instead."""
    if isinstance(raw, bytes):
        raise ProtocolError("bad_request", "binary frames are not part of the protocol; send JSON text")
    try:
        message = json.loads(raw)
    except (ValueError, RecursionError) as e:  # ValueError: also integers of over 4,300 digits
        raise ProtocolError("bad_request", f"message is not valid JSON ({e})") from None
    if not isinstance(message, dict):
        raise ProtocolError("bad_request", "message must be a JSON object")
    return message


def id_of(message: dict | None) -> str | None:
    """The request id to echo in an error: only a string the client sent as ``id``."""
    value = message.get("id") if isinstance(message, dict) else None
    return value if isinstance(value, str) else None


def parse(message: dict, limits: Limits, models: Collection[str],
          default_model: str) -> Complete | Guess | Cancel | Auth:
    """A decoded message -> a typed request, every field checked against ``limits``."""
    kind = message.get("type")
    if kind == "complete":
        return parse_complete(message, limits, models, default_model)
    if kind == "guess":
        return Guess(parse_id(message), parse_strokes(message.get("strokes"), limits.max_input_points))
    if kind == "cancel":
        return Cancel(message.get("id"))
    if kind == "auth":
        return Auth(message.get("token"))
    raise ProtocolError("bad_request", f"unknown message type {kind!r}; expected complete, guess, cancel or auth")


def parse_id(message: dict) -> str:
    request_id = message.get("id")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_ID_CHARS:
        raise ProtocolError("bad_request", f"id must be a string of 1 to {MAX_ID_CHARS} characters")
    return request_id


def parse_complete(message: dict, limits: Limits, models: Collection[str], default_model: str) -> Complete:
    """A ``complete``; empty ``strokes`` ask for a whole drawing from scratch (of a named model:
    "auto" has nothing to guess from)."""
    request_id = parse_id(message)
    name = message.get("model", default_model)
    if not isinstance(name, str):
        raise ProtocolError("bad_request", "model must be a string: a served model's name, or auto")
    if name != "auto" and name not in models:
        raise ProtocolError("unknown_model", f"model {name!r} is not served; served: auto, {', '.join(models)}")
    strokes = message.get("strokes")
    if strokes == [] and name == "auto":
        raise ProtocolError("bad_request", "model auto needs strokes to guess from; name a model to draw from scratch")
    strokes = [] if strokes == [] else parse_strokes(strokes, limits.max_input_points)
    pen_temperature = message.get("pen_temperature")
    seed, scale = message.get("seed"), message.get("scale")
    greedy = message.get("greedy", False)
    if not isinstance(greedy, bool):
        raise ProtocolError("bad_request", "greedy must be true or false")
    return Complete(
        id=request_id,
        model=name,
        strokes=strokes,
        temperature=_number(message.get("temperature", DEFAULT_TEMPERATURE), "temperature", *TEMPERATURE),
        pen_temperature=None if pen_temperature is None else _number(pen_temperature, "pen_temperature", *TEMPERATURE),
        n=_integer(message.get("n", 1), "n", 1, limits.max_n, "too_large"),
        max_points=_integer(message.get("max_points", limits.max_points), "max_points", 1, limits.max_points,
                            "too_large"),
        seed=None if seed is None else _integer(seed, "seed", 0, MAX_SEED),
        greedy=greedy,
        scale=None if scale is None else _number(scale, "scale", *SCALE),
    )


def parse_strokes(strokes, limit: int) -> list[np.ndarray]:
    """Absolute polylines from the client -> arrays, or a ProtocolError naming the problem."""
    if not isinstance(strokes, list) or not strokes:
        raise ProtocolError("bad_request", "strokes must be a non-empty list of strokes [[x, y], ...]")
    total = sum(len(s) if isinstance(s, list) else 0 for s in strokes)
    if total > limit:
        raise ProtocolError("too_large", f"strokes hold {total} points; the limit is {limit}")
    parsed = []
    for i, stroke in enumerate(strokes):
        if not isinstance(stroke, list) or not stroke:
            raise ProtocolError("bad_request", f"strokes[{i}] must be a non-empty list of [x, y] points")
        for j, point in enumerate(stroke):
            if (not isinstance(point, list) or len(point) != 2
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in point)):
                raise ProtocolError("bad_request", f"strokes[{i}][{j}] must be [x, y] with numbers")
            if not all(_finite(v) and abs(v) <= MAX_COORDINATE for v in point):
                raise ProtocolError("bad_request", f"strokes[{i}][{j}] must be finite, within ±{MAX_COORDINATE:g}")
        parsed.append(np.array(stroke, dtype=np.float64))
    return parsed


def _finite(value) -> bool:
    """A JSON number that is finite as a float (an integer of 400 digits is not)."""
    try:
        return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    except OverflowError:
        return False


def _number(value, field: str, low: float, high: float) -> float:
    if not _finite(value):
        raise ProtocolError("bad_request", f"{field} must be a finite number")
    if not low <= value <= high:
        raise ProtocolError("bad_request", f"{field} must be between {low:g} and {high:g}, got {value:g}")
    return float(value)


def _integer(value, field: str, low: int, high: int, code: str = "bad_request") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError("bad_request", f"{field} must be an integer")
    if not low <= value <= high:
        # Over the limit is "too_large"; below the least sensible value is just a bad request.
        raise ProtocolError(code if value > high else "bad_request", f"{field} must be between {low} and {high}, "
                                                                     f"got {value}")
    return value


# --- Server -> client ------------------------------------------------------------------------


def hello(models: list[dict], limits: Limits, worker: int) -> dict:
    return {"type": "hello", "protocol": PROTOCOL, "models": models, "limits": asdict(limits), "worker": worker}


def error(code: str, message: str, request_id: str | None = None, retry_after: float | None = None) -> dict:
    assert code in ERROR_CODES, code
    reply = {"type": "error", "code": code, "message": message}
    if request_id is not None:
        reply["id"] = request_id
    if retry_after is not None:
        reply["retry_after"] = retry_after
    return reply


def points(request_id: str, drawn: dict[int, list[list]]) -> dict:
    """New points of one request: ``drawn`` maps an alternative to its points. One alternative
    keeps version 1's form (``k``, ``points``); several go in ``alternatives``, in order of k."""
    if len(drawn) == 1:
        (k, only), = drawn.items()
        return {"type": "points", "id": request_id, "k": k, "points": only}
    return {"type": "points", "id": request_id,
            "alternatives": [{"k": k, "points": drawn[k]} for k in sorted(drawn)]}


def alternatives_of(message: dict) -> dict[int, list[list]]:
    """A ``points`` message's points by alternative, whichever form it has."""
    if "alternatives" in message:
        return {a["k"]: a["points"] for a in message["alternatives"]}
    return {message["k"]: message["points"]}


def done(request_id: str, k: int, reason: str, count: int, ms: float) -> dict:
    return {"type": "done", "id": request_id, "k": k, "reason": reason, "points": count, "ms": round(ms, 1)}


def guess(request_id: str, ranked: list[tuple[str, float]]) -> dict:
    """What the drawing looks like: the likeliest models, best first, with their probabilities."""
    top = [{"model": name, "p": round(float(p), 4)} for name, p in ranked[:GUESS_TOP]]
    return {"type": "guess", "id": request_id, "model": top[0]["model"], "top": top, "sure": ranked[0][1] >= SURE}


def merge_points(messages: list[dict]) -> list[dict]:
    """One frame's messages with each request's ``points`` joined into one message, where the
    request's first ``points`` stood (so every alternative's points still precede its ``done``)."""
    drawn: dict[str, dict[int, list]] = {}
    order: list[dict | str] = []  # messages, and the ids of the points messages to build
    for message in messages:
        if message["type"] != "points":
            order.append(message)
            continue
        if message["id"] not in drawn:
            drawn[message["id"]] = {}
            order.append(message["id"])
        for k, new in alternatives_of(message).items():
            drawn[message["id"]].setdefault(k, []).extend(new)
    return [points(item, drawn[item]) if isinstance(item, str) else item for item in order]


def encode(message: dict) -> str:
    return json.dumps(message, separators=(",", ":"))
