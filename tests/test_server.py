"""The streaming server, end to end: a real server on an ephemeral port, real websockets clients."""

import asyncio
import json
import math
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from sketchrnn import remote
from sketchrnn.checkpoints import load_model
from sketchrnn.core.engine import TrainConfig
from sketchrnn.model import SketchRNNConfig
from sketchrnn.server.app import run
from sketchrnn.server.protocol import Limits, ProtocolError, parse_strokes
from sketchrnn.train import SketchTrainConfig, train_sketch_model

DRAWING = [[[10, 10], [60, 12], [62, 50]], [[30, 30], [35, 40]]]


@pytest.fixture(scope="module")
def sheep():
    return {"sheep": load_model()}


@pytest.fixture
async def served(sheep):
    """Start a server; yield (app, base URL); cancel it afterwards."""
    servers = []

    async def start(limits=None, token=None, origins=None, models=None):
        ready = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(run(models or sheep, "127.0.0.1", 0, limits or Limits(), origins, token, ready))
        app, server = await ready
        servers.append(task)
        port = server.sockets[0].getsockname()[1]
        return app, f"127.0.0.1:{port}", task

    yield start
    for task in servers:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def complete(client, strokes=DRAWING, *, id: str = "r1", n: int = 1, **fields):
    """Points per alternative and the done messages, until every alternative is done."""
    completion = client.complete(strokes, id=id, n=n, **fields)
    points = await completion.collect(20)
    ended = set()
    for message in completion.messages:
        if message["type"] == "done":
            ended.add(message["k"])
        elif message["type"] == "points":
            assert not ended & {k for k, _ in remote.points_of(message)}, "points after done"
    return points, completion.done


def url(host: str, query: str = "") -> str:
    return f"ws://{host}/ws{query}"


async def wait_until_idle(app, seconds: float) -> None:
    """Until no connection, stream or row is left (a cut-off stream is freed at the next step), or
    ``seconds`` have passed; the test then asserts what it expects."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        workers = app.workers.values()
        if app.connections == 0 and all(w.rows == 0 and not w.streams for w in workers):
            return
        await asyncio.sleep(0.02)


async def hello(ws):
    message = json.loads(await ws.recv())
    assert message["type"] == "hello"
    return message


async def test_hello_lists_models_and_limits(served):
    app, host, _ = await served(Limits(max_n=5))
    async with remote.connect(url(host)) as client:
        message = client.hello
    assert message["protocol"] == 1 and message["models"][0]["name"] == "sheep"
    assert message["models"][0]["mode"] == "decoder" and message["limits"]["max_n"] == 5


async def test_completion_streams_points_then_done_per_alternative(served):
    app, host, _ = await served()
    async with remote.connect(url(host)) as client:
        points, done = await complete(client, n=3, max_points=30, seed=5)
    for k in range(3):
        assert done[k].reason in ("end", "max_points") and done[k].points == len(points[k])
        assert all(len(p) == 3 and p[2] in (0, 1) for p in points[k])
    assert any(points[0] != points[k] for k in (1, 2)), "alternatives should differ"


async def test_seeded_requests_repeat_whatever_else_is_in_the_batch(served):
    app, host, _ = await served()
    async with remote.connect(url(host)) as a, remote.connect(url(host)) as b:
        first, _ = await complete(a, n=2, max_points=40, seed=11)
        neighbour = await b.send_complete(DRAWING, n=4, max_points=60, seed=3)  # a busy neighbour this time
        again, _ = await complete(a, n=2, max_points=40, seed=11)
        await neighbour.collect(20)
    assert first == again


async def test_seeded_repeats_under_concurrent_load_are_identical(served):
    """Ten repeats of one seeded request, each while three other clients draw with other seeds
    and sizes: the same points to the bit every time."""
    app, host, _ = await served()
    async with remote.connect(url(host)) as client:
        alone, _ = await complete(client, n=2, max_points=60, seed=11)

    async def neighbour(i: int, round_: int):
        async with remote.connect(url(host)) as other:
            await complete(other, [[[0, 0], [50, 20 * i], [90, 5]]], n=1 + i, seed=100 * round_ + i, max_points=80)

    async def mine():
        await asyncio.sleep(0.01 * (len(repeats) % 3))  # join at different points of the others' streams
        async with remote.connect(url(host)) as client:
            return (await complete(client, n=2, max_points=60, seed=11))[0]

    repeats = []
    for round_ in range(10):
        *_, points = await asyncio.gather(*(neighbour(i, round_) for i in range(3)), mine())
        repeats.append(points)
    assert all(points == alone for points in repeats)


async def test_chaos_leaks_nothing_and_the_server_still_answers(served):
    """Dozens of clients connecting, asking, cancelling, drawing again and dropping the TCP
    connection mid-stream (some refused busy, on a slow machine): afterwards no stream, row or
    connection is left, and a new client is served as usual."""
    app, host, _ = await served()
    rng = np.random.default_rng(0)

    async def client(i: int):
        async with remote.connect(url(host)) as client:
            for j in range(int(rng.integers(1, 6))):
                completion = await client.send_complete(DRAWING, id=f"r{j}", n=int(rng.integers(1, 10)),
                                                        max_points=int(rng.integers(1, 250)), seed=i * 10 + j)
                action = rng.choice(["wait", "cancel", "again", "abort", "close"])
                await asyncio.sleep(float(rng.uniform(0, 0.05)))
                if action == "cancel":
                    await client.cancel(completion.id)
                elif action == "abort":
                    client.ws.transport.abort()  # the TCP connection dropped, no close frame
                    return
                elif action == "close":
                    return
                elif action == "wait":
                    try:  # for its next point
                        await asyncio.wait_for(anext(aiter(completion), None), 5)
                    except remote.RemoteError as e:  # a loaded machine may refuse it: that is no leak
                        assert e.code == "busy", e
                    except (ConnectionClosed, ConnectionError):
                        return

    await asyncio.gather(*(client(i) for i in range(40)), return_exceptions=False)
    worker = app.workers["sheep"]
    await wait_until_idle(app, 10)
    assert worker.rows == 0 and not worker.streams and app.connections == 0
    async with remote.connect(url(host)) as client:
        points, done = await complete(client, n=2, max_points=20, seed=1)
    assert all(done[k].reason in ("end", "max_points") for k in range(2))


async def test_a_trained_vae_completes_over_the_websocket(served, sketches_dir, tmp_path):
    """A VAE's z comes from the encoder of the drawing so far; it completes like any model."""
    config = SketchRNNConfig(mode="vae", hidden=32, mixtures=3, encoder_hidden=16, z_size=8)
    train_sketch_model([str(sketches_dir / "quickdraw" / "simplified" / "cat.ndjson")], tmp_path,
                       SketchTrainConfig(config, TrainConfig(steps=20, eval_every=20), batch_size=16), progress=False)
    app, host, _ = await served(models={"cat-vae": load_model(tmp_path / "best.pt")})
    async with remote.connect(url(host)) as client:
        assert client.hello["models"][0]["mode"] == "vae"
        points, done = await complete(client, n=2, max_points=30, seed=1)
    assert all(done[k].reason in ("end", "max_points") for k in range(2))
    assert sum(len(p) for p in points.values()) > 0


async def test_auto_guesses_the_model_and_says_so_first(served, shared_data):
    from sketchrnn.strokes import read_ndjson, resample, stroke3_to_polylines

    models = {"monkey": load_model(shared_data / "models" / "monkey.gen.json"), "sheep": load_model()}
    app, host, _ = await served(models=models)
    drawing = read_ndjson(shared_data / "sketches" / "quickdraw" / "monkey-1000.ndjson")[0][0].strokes
    strokes = [resample(p * 2.0, 2.0).round(1).tolist() for p in stroke3_to_polylines(drawing)]
    async with remote.connect(url(host)) as client:
        completion = client.complete(strokes, id="g", model="auto", n=2, seed=1, max_points=30)
        points = await completion.collect(20)
        guess = completion.messages[0]
        assert guess["type"] == "guess" and guess["id"] == "g" and isinstance(guess["sure"], bool)
        assert [t["model"] for t in guess["top"]] == ["monkey", "sheep"] and guess["model"] == "monkey"
        assert guess["top"][0]["p"] >= guess["top"][1]["p"] and abs(sum(t["p"] for t in guess["top"]) - 1) < 1e-3
        assert completion.guess == guess and sum(len(p) for p in points.values()) > 0
        with pytest.raises(remote.RemoteError) as error:
            await complete(client, strokes, id="x", model="cat")
        assert error.value.code == "unknown_model" and "auto, monkey, sheep" in error.value.message


async def test_a_guess_request_says_what_the_drawing_looks_like_and_draws_nothing(served, shared_data):
    from sketchrnn.strokes import read_ndjson, stroke3_to_polylines

    models = {"monkey": load_model(shared_data / "models" / "monkey.gen.json"), "sheep": load_model()}
    app, host, _ = await served(models=models)
    drawing = read_ndjson(shared_data / "sketches" / "quickdraw" / "monkey-1000.ndjson")[0][0].strokes
    async with remote.connect(url(host)) as client:
        guess = await client.guess(stroke3_to_polylines(drawing), id="q")
        assert guess["type"] == "guess" and guess["id"] == "q" and guess["model"] == "monkey"
        assert [t["model"] for t in guess["top"]] == ["monkey", "sheep"]
        with pytest.raises(remote.RemoteError) as error:
            await client.guess([], id="bad")
        assert error.value.code == "bad_request"
        assert error.value.message == "strokes must be a non-empty list of strokes [[x, y], ...]"
        assert app.workers["monkey"].rows == app.workers["sheep"].rows == 0  # guessing steps no model


async def test_empty_strokes_draw_a_whole_sketch_from_scratch(served):
    app, host, _ = await served()
    async with remote.connect(url(host)) as client:
        points, done = await complete(client, [], id="s", n=2, seed=3)
        assert all(len(points[k]) > 10 for k in range(2)), "a whole drawing, not a stroke"
        with pytest.raises(remote.RemoteError) as error:
            await complete(client, [], id="a", model="auto")
    assert error.value.code == "bad_request" and "auto needs strokes" in error.value.message


@pytest.mark.parametrize("strokes", [
    [[[5, 5]]],  # a tap
    [[[5, 5], [5, 5], [5, 5]]],  # a stroke of one point repeated
    [[[float(x), float((x * 37) % 101)] for x in range(2000)]],  # 2,000 points
    [[[9e5, 9e5], [9.5e5, 9e5], [9e5, 9.6e5]]],  # far from the origin
], ids=["one-point", "identical-points", "2000-points", "far-away"])
async def test_odd_drawings_get_a_completion(served, strokes):
    app, host, _ = await served()
    async with remote.connect(url(host)) as client:
        points, done = await complete(client, strokes, n=2, max_points=40, seed=3)
    assert all(done[k].reason in ("end", "max_points") for k in range(2))
    assert all(len(points[k]) >= 1 for k in range(2))  # the first step cannot end a completion
    assert all(math.isfinite(v) for k in range(2) for p in points[k] for v in p)


async def test_a_drawing_larger_than_any_screen_is_refused_by_name(served):
    app, host, _ = await served()
    async with remote.connect(url(host)) as client:
        for model in ("sheep", "auto"):  # also when every model is to guess first: none can read it
            with pytest.raises(remote.RemoteError) as error:
                await complete(client, [[[1e6, 1e6], [-1e6, 1e6]]], model=model)
            assert error.value.code == "bad_request"
            assert error.value.message == "strokes: offset 2e+06 beyond the limit 1e+06"


async def test_cancel_and_supersede(served):
    app, host, _ = await served()
    async with remote.connect(url(host)) as client:
        first = await client.send_complete(DRAWING, id="r1", n=2, max_points=250, temperature=1.5)
        await client.cancel("r1")
        await first.collect(20)
        assert {d.reason for d in first.done.values()} <= {"cancelled", "end"}
        old = await client.send_complete(DRAWING, id="r2", max_points=250, temperature=1.5)
        _, new = await complete(client, id="r3", max_points=5)
        await old.collect(20)
        assert old.done[0].reason in ("cancelled", "end") and new[0].reason in ("max_points", "end")


@pytest.mark.parametrize("fields, code, words", [
    ({"n": 10}, "too_large", "n must be between 1 and 9"),
    ({"max_points": 251}, "too_large", "max_points must be between 1 and 250"),
    ({"strokes": [[[i, i] for i in range(2001)]]}, "too_large", "limit is 2000"),
    ({"model": "unicorn"}, "unknown_model", "'unicorn' is not served"),
    ({"temperature": "hot"}, "bad_request", "temperature must be a finite number"),
    ({"temperature": 0}, "bad_request", "temperature must be between"),
    ({"strokes": [], "model": "auto"}, "bad_request", "auto needs strokes"),
    ({"strokes": [[]]}, "bad_request", "strokes[0] must be a non-empty"),
    ({"strokes": [[[1, 2, 3]]]}, "bad_request", "strokes[0][0] must be [x, y]"),
    ({"strokes": [[[1, 1e300]]]}, "bad_request", "finite, within"),
    ({"strokes": [[[[[[1]]]]]]}, "bad_request", "must be [x, y]"),
    ({"seed": -1}, "bad_request", "seed must be between"),
    ({"id": 7}, "bad_request", "id must be a string"),
    ({"model": []}, "bad_request", "model must be a string"),
    ({"model": {}}, "bad_request", "model must be a string"),
    ({"temperature": 10**400}, "bad_request", "temperature must be a finite number"),
    ({"scale": 10**400}, "bad_request", "scale must be a finite number"),
    ({"strokes": [[[10**400, 1]]]}, "bad_request", "finite, within"),
    ({"pen_temperature": "cold"}, "bad_request", "pen_temperature must be a finite number"),
    ({"n": 0}, "bad_request", "n must be between 1 and 9"),
    ({"max_points": -5}, "bad_request", "max_points must be between 1 and 250"),
])
async def test_bad_requests_get_an_error_and_the_connection_keeps_working(served, fields, code, words):
    app, host, _ = await served()
    async with remote.connect(url(host)) as client:
        request = {"id": "r1", "strokes": DRAWING, **fields}
        if isinstance(request["id"], str):
            with pytest.raises(remote.RemoteError) as raised:
                await client.complete(request.pop("strokes"), **request).collect(5)
            error = raised.value
        else:  # an error that can name no request
            await client.send({"type": "complete", **request})
            error = await asyncio.wait_for(client.errors.get(), 5)
        assert error.code == code and words in error.message, error
        _, done = await complete(client, id="r2", max_points=3, seed=0)
        assert done[0].points <= 3


async def test_points_of_drawing_per_second_are_budgeted_per_connection(served):
    """A client resending a 2,000-point drawing as fast as it may would take the server from
    everyone else (bench/fairness.py): past its budget it gets rate_limited, others do not."""
    app, host, _ = await served(Limits(points_per_second=2000, requests_per_second=100))
    big = [[[float(i), float(i % 7)] for i in range(2000)]]
    async with remote.connect(url(host)) as heavy, remote.connect(url(host)) as light:
        requests = [await heavy.send_complete(big, id=str(i), max_points=1) for i in range(4)]
        codes = []
        for request in requests:
            try:
                await request.collect(10)
                codes.append(request.done[0].reason)
            except remote.RemoteError as e:
                codes.append(e.code)
        assert codes.count("rate_limited") == 2, codes  # a burst of twice the rate, then no more
        await complete(light, max_points=3)


async def test_an_integer_of_5000_digits_is_a_bad_request(served):
    app, host, _ = await served()
    async with connect(f"ws://{host}/ws") as ws:
        await hello(ws)
        await ws.send('{"type": "complete", "id": "1", "seed": ' + "9" * 5000 + "}")
        error = json.loads(await ws.recv())
        assert error["code"] == "bad_request" and "not valid JSON" in error["message"]


async def test_malformed_frames(served):
    app, host, _ = await served()
    async with connect(f"ws://{host}/ws") as ws:
        await hello(ws)
        for raw, words in [("{", "not valid JSON"), ("[1]", "JSON object"), (b"\x00\x01", "binary"),
                           ('{"type": "draw"}', "unknown message type"), ("[" * 100_000 + "]" * 100_000, "JSON")]:
            await ws.send(raw)
            error = json.loads(await ws.recv())
            assert error["code"] == "bad_request" and words in error["message"]


async def test_a_too_big_message_closes_with_1009_and_others_keep_streaming(served):
    app, host, _ = await served(Limits(max_message_bytes=1000))
    async with remote.connect(url(host)) as other, connect(url(host)) as abuser:
        await hello(abuser)
        streaming = await other.send_complete(DRAWING, max_points=100, seed=1)
        await abuser.send("x" * 5000)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(abuser.recv(), 5)
        assert closed.value.rcvd.code == 1009
        await streaming.collect(20)
        assert streaming.done[0].reason in ("end", "max_points")


async def test_rate_limit(served):
    app, host, _ = await served(Limits(requests_per_second=2))
    async with remote.connect(url(host)) as client:
        for _ in range(6):
            await client.cancel("none")
        error = await asyncio.wait_for(client.errors.get(), 5)
        assert error.code == "rate_limited" and "2 requests per second" in error.message


async def test_connection_limit_answers_503(served):
    app, host, _ = await served(Limits(max_connections=1))
    async with remote.connect(url(host)):
        with pytest.raises(InvalidStatus) as refused:
            async with remote.connect(url(host)):
                pass
        assert refused.value.response.status_code == 503


async def test_origins(served):
    app, host, _ = await served(origins=["http://good.example"])
    async with remote.connect(url(host), origin="http://good.example"):
        pass
    with pytest.raises(InvalidStatus) as refused:
        async with remote.connect(url(host), origin="http://evil.example"):
            pass
    assert refused.value.response.status_code == 403


async def test_token_in_query_or_first_message(served):
    app, host, _ = await served(token="s3cret")
    for auth in ("url", "message"):
        async with remote.connect(url(host), "s3cret", auth=auth) as client:
            await complete(client, max_points=2)
    with pytest.raises(InvalidStatus) as refused:
        async with remote.connect(url(host), "wrong"):
            pass
    assert refused.value.response.status_code == 401
    async with remote.connect(url(host)) as client:
        with pytest.raises(remote.RemoteError) as error:
            await complete(client)
        assert error.value.code == "unauthorized"
    assert client.ws.close_code == 1008


async def test_auth_is_the_first_message_within_a_deadline_and_strangers_take_no_seats(served, monkeypatch):
    monkeypatch.setattr("sketchrnn.server.app.AUTH_SECONDS", 0.5)
    app, host, _ = await served(Limits(max_connections=3), token="s3cret")
    for first in ("not json", json.dumps([1]), json.dumps({"type": "complete"})):
        async with connect(f"ws://{host}/ws") as ws:
            await hello(ws)
            await ws.send(first)
            assert json.loads(await ws.recv())["code"] == "unauthorized"
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd.code == 1008
    strangers = [await connect(f"ws://{host}/ws") for _ in range(3)]  # idle, never authenticating
    async with remote.connect(url(host), "s3cret") as client:  # the real user still gets in
        await complete(client, max_points=2)
    for stranger in strangers:  # and the strangers are shown out after the deadline
        await hello(stranger)
        assert json.loads(await asyncio.wait_for(stranger.recv(), 5))["code"] == "unauthorized"
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(stranger.recv(), 5)
    assert app.unauthenticated == 0


async def test_token_holders_by_first_message_are_never_starved_by_strangers(served):
    """Strangers holding every place for unauthenticated connections do not lock out a person
    who sends the token as a first message: the oldest stranger makes room."""
    app, host, _ = await served(Limits(max_connections=3, max_unauthenticated=3), token="s3cret")
    strangers = [await connect(url(host)) for _ in range(3)]  # never authenticating
    for _ in range(3):
        async with remote.connect(url(host), "s3cret", auth="message") as client:
            await complete(client, max_points=2)
    await hello(strangers[0])
    assert json.loads(await asyncio.wait_for(strangers[0].recv(), 5))["code"] == "unauthorized"
    for stranger in strangers:
        await stranger.close()


async def test_auth_answers_as_the_protocol_says(served):
    app, host, _ = await served(token="s3cret")
    with pytest.raises(InvalidStatus) as refused:  # an empty token is a wrong token
        async with remote.connect(url(host, "?token=")):
            pass
    assert refused.value.response.status_code == 401
    async with remote.connect(url(host), "s3cret") as client:
        await client.send({"type": "auth", "token": "s3cret"})  # already in: nothing to say
        await complete(client, max_points=2)
        await client.send({"type": "auth", "token": "nope"})
        error = await asyncio.wait_for(client.errors.get(), 5)
        assert error.code == "unauthorized" and "wrong token" in error.message
        await complete(client, max_points=2)  # still in
    async with remote.connect(url(host), "nope", auth="message") as client:
        with pytest.raises(remote.RemoteError) as error:
            await complete(client)
        assert error.value.code == "unauthorized" and error.value.message == "wrong token"
    app, host, _ = await served()  # no token needed: an auth message is no error
    async with remote.connect(url(host), "anything", auth="message") as client:
        await complete(client, max_points=2)
        assert client.errors.empty()


async def test_idle_connections_are_closed_with_a_reason(served):
    app, host, _ = await served(Limits(idle_timeout=0.5))
    async with remote.connect(url(host)) as client:
        await complete(client, max_points=2)  # a message resets the clock
        await asyncio.wait_for(client.reader, 5)
        assert client.ws.close_code == 4000 and "idle" in client.ws.close_reason
    await wait_until_idle(app, 5)
    assert app.connections == 0


@pytest.mark.parametrize("limits", [Limits(start_budget=1e-9), Limits(min_pace=1e9)], ids=["start_budget", "min_pace"])
async def test_a_request_that_cannot_start_in_time_is_refused_busy_at_once(served, limits):
    """With a budget (first point) or a pace (every drawing's points a second) no step can meet,
    a request beside a running one as wide is answered busy within 300 ms; a request alone, or
    one that replaces its connection's own, still starts."""
    app, host, _ = await served(limits)
    async with remote.connect(url(host)) as first, remote.connect(url(host)) as second:
        running = await first.send_complete(DRAWING, n=9, max_points=250, pen_temperature=0.01)
        async for _ in running:
            break  # it steps
        asked = asyncio.get_running_loop().time()
        with pytest.raises(remote.RemoteError) as busy:
            await complete(second, n=9, max_points=30)
        assert asyncio.get_running_loop().time() - asked < 0.3
        assert busy.value.code == "busy" and 0 < busy.value.retry_after <= 2
        points, done = await complete(first, id="again", n=9, max_points=5)  # replaces its own: admitted
        assert all(d.reason in ("end", "max_points") for d in done.values())


async def test_under_overload_the_most_served_ending_is_shed_so_a_newcomer_starts(served):
    """With a budget no step can meet, a newcomer still starts when a running ending has drawn
    shed_after points: that one ends "shed" (not busy for the newcomer); one that has drawn
    fewer, and holds no more alternatives than the newcomer asks for, is never cut: the
    newcomer is then busy."""
    app, host, _ = await served(Limits(start_budget=1e-9, shed_after=20))
    async with (remote.connect(url(host)) as first, remote.connect(url(host)) as second,
                remote.connect(url(host)) as third):
        running = await first.send_complete(DRAWING, n=2, max_points=250, pen_temperature=0.01, seed=1)
        drawn = 0
        async for _ in running:
            drawn += 1
            if drawn == 60:  # both alternatives past 20 points (they draw in step)
                break
        points, done = await complete(second, max_points=5)
        assert sum(map(len, points.values())) == 5 and done[0].reason == "max_points"
        async for _ in running:
            pass
        assert {d.reason for d in running.done.values()} == {"shed"}
        assert all(20 <= d.points < 250 for d in running.done.values())
        while app.workers["sheep"].rows:  # the newcomer's row leaves just after its done is sent
            await asyncio.sleep(0.01)
        young = await third.send_complete(DRAWING, n=2, max_points=250, pen_temperature=0.01, seed=1)
        async for _ in young:
            break  # it steps, far from 20 points
        with pytest.raises(remote.RemoteError) as busy:
            await complete(second, id="again", n=2, max_points=5)
        assert busy.value.code == "busy"


async def test_the_pace_is_the_whole_turn_between_steps(served):
    """Admission judges the pace a stream sees between its points: time spent between steps
    (here 30 ms a turn outside the step; in a loaded server priming arrivals and waiting for
    the cores) counts, not the step alone."""
    app, host, _ = await served()
    worker = app.workers["sheep"]
    cancel = worker._cancel

    def slow_cancel(streams):
        time.sleep(0.03)
        cancel(streams)

    worker._cancel = slow_cancel
    async with remote.connect(url(host)) as client:
        drawn = 0
        async for _ in client.complete(DRAWING, max_points=250, temperature=0.01, pen_temperature=0.01, seed=3):
            drawn += 1
            if drawn == 40:  # the running pace has seen ~40 turns
                break
        assert worker.step_seconds(1) > 0.02


async def test_under_overload_a_request_wider_than_the_newcomers_is_shed(served):
    """Connections share the rows: with a budget no step can meet, a newcomer asking for one
    ending starts by cutting a young request of three (more than its share), not one of one."""
    app, host, _ = await served(Limits(start_budget=1e-9, shed_after=250))
    async with (remote.connect(url(host)) as wide, remote.connect(url(host)) as narrow,
                remote.connect(url(host)) as newcomer):
        running = await wide.send_complete(DRAWING, n=3, max_points=250, pen_temperature=0.01, seed=1)
        async for _ in running:
            break  # it steps
        points, done = await complete(newcomer, max_points=5)
        assert sum(map(len, points.values())) == 5 and done[0].reason == "max_points"
        async for _ in running:
            pass
        assert {d.reason for d in running.done.values()} == {"shed"}
        while app.workers["sheep"].rows:
            await asyncio.sleep(0.01)
        one = await narrow.send_complete(DRAWING, n=1, max_points=250, pen_temperature=0.01, seed=1)
        async for _ in one:
            break
        with pytest.raises(remote.RemoteError) as busy:
            await complete(newcomer, id="again", max_points=5)
        assert busy.value.code == "busy"


async def test_points_of_all_alternatives_come_at_most_once_per_frame(served):
    """n=9: each message carries every alternative's new points, about 60 messages a second."""
    app, host, _ = await served()
    async with remote.connect(url(host)) as client:
        completion = client.complete(DRAWING, n=9, max_points=250, temperature=1.0, pen_temperature=0.1, seed=2)
        arrivals = []
        async for _ in completion:
            if len(completion.messages) > len(arrivals):
                arrivals.append(asyncio.get_running_loop().time())
    messages = [m for m in completion.messages if m["type"] == "points"]
    seconds = arrivals[-1] - arrivals[0]
    drawn = sum(len(p) for m in messages for p in remote.points_of(m))
    assert len(messages) <= 3 + 60 * seconds * 1.25, (len(messages), seconds, drawn)
    assert drawn / len(messages) > 9, "several alternatives' points per message"


async def test_healthz_with_a_token_says_only_ok_and_a_body_gets_413(served):
    app, host, _ = await served(token="s3cret")
    assert json.loads((await get(f"http://{host}/healthz"))[2]) == {"status": "ok"}
    assert json.loads((await get(f"http://{host}/healthz?token=s3cret"))[2])["connections"] == 0
    reader, writer = await asyncio.open_connection(*host.split(":"))
    writer.write(f"GET /ws HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\n\r\nhello".encode())
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 413 ") and answer.endswith(b"requests with a body are not served here\n")


async def test_http_methods_other_than_get_and_head_are_refused(served):
    app, host, _ = await served()
    for method in ("DELETE", "BREW", "HEAD", "GET"):
        reader, writer = await asyncio.open_connection(*host.split(":"))
        writer.write(f"{method} /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        status = (await reader.readline()).decode()
        headers = {}
        while (line := (await reader.readline()).decode().strip()):
            name, _, value = line.partition(":")
            headers[name.lower()] = value.strip()
        body = await reader.read()  # the server closes after one response
        writer.close()
        if method in ("HEAD", "GET"):
            assert " 200 " in status and int(headers["content-length"]) > 0
            assert (body == b"") == (method == "HEAD")
        else:
            assert " 405 " in status and headers["allow"] == "GET, HEAD"


async def test_disconnect_mid_stream_leaks_nothing(served):
    app, host, _ = await served()
    async with remote.connect(url(host)) as client:
        async for _ in client.complete(DRAWING, n=9, max_points=250, temperature=2.0):
            break  # streaming has started
    worker = app.workers["sheep"]
    await wait_until_idle(app, 5)
    assert worker.rows == 0 and not worker.streams and app.connections == 0
    tasks = [t for t in asyncio.all_tasks() if "_send" in repr(t.get_coro())]
    assert not tasks, tasks


async def get(url):
    def fetch():
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.status, r.headers.get("Content-Type"), r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type"), e.read()

    return await asyncio.to_thread(fetch)


async def test_static_files_healthz_and_no_path_traversal(served):
    app, host, _ = await served()
    status, kind, body = await get(f"http://{host}/healthz")
    assert status == 200 and json.loads(body)["models"] == ["sheep"]
    status, kind, body = await get(f"http://{host}/")
    assert status == 200 and kind.startswith("text/html") and b"<canvas" in body
    for path in ("/app.js", "/style.css"):
        assert (await get(f"http://{host}{path}"))[0] == 200
    for path in ("/../pyproject.toml", "/%2e%2e/pyproject.toml", "/client/app.js", "/etc/passwd", "/app.js/.."):
        assert (await get(f"http://{host}{path}"))[0] == 404, path


async def test_graceful_shutdown_ends_streams_with_1001(served):
    app, host, task = await served()
    async with remote.connect(url(host)) as client:
        completion = client.complete(DRAWING, n=2, max_points=250, temperature=2.0)
        async for _ in completion:
            task.cancel()
            break
        await completion.collect(10)
        await asyncio.wait_for(client.reader, 10)
        assert client.ws.close_code == 1001
        assert set(completion.done) == {0, 1}
        assert {d.reason for d in completion.done.values()} <= {"cancelled", "end", "max_points"}
    await asyncio.gather(task, return_exceptions=True)
    assert not app.workers["sheep"].thread.is_alive()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_strokes_value_is_parsed_or_refused_with_a_request_error(value):
    try:
        strokes = parse_strokes(value, 2000)
    except ProtocolError as e:
        assert e.code in ("bad_request", "too_large") and e.message
    else:
        assert strokes and all(s.ndim == 2 and s.shape[1] == 2 and len(s) >= 2 for s in strokes)


CODES = {"bad_request", "unknown_model", "too_large", "rate_limited", "overloaded", "internal"}
fields = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["complete", "cancel", "auth", "nope"]) | json_values,
    "id": st.sampled_from(["a", "b"]) | json_values,
    "model": st.sampled_from(["sheep", "auto", "cat"]) | json_values,
    "strokes": st.just([[[0, 0], [30, 5], [40, 40]]]) | json_values,
    "n": st.integers(-2, 12) | json_values,
    "max_points": st.integers(-2, 300) | json_values,
    "temperature": st.floats(-1, 3) | json_values,
    "pen_temperature": st.floats(-1, 3) | json_values,
    "scale": st.floats(-1, 1e7) | json_values,
    "seed": st.integers(-5, 2**64) | json_values,
    "greedy": st.booleans() | json_values,
})
fuzzed = fields.map(json.dumps) | st.text(max_size=20) | json_values.map(json.dumps)


@settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.data_too_large])
@given(st.lists(fuzzed, min_size=30, max_size=40))
def test_fuzzed_messages_each_get_their_documented_answer(sheep, messages):
    """Each message is followed by a probe (an unknown type, id "probe"); everything that comes
    before the probe's error is the message's answer: errors with documented codes, or a stream of
    points that ends with one done per alternative. The connection stays open throughout, and
    streams and connections return to 0."""

    async def scenario():
        ready = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(run(sheep, "127.0.0.1", 0, Limits(max_points=5, requests_per_second=10_000),
                                       None, None, ready))
        app, server = await ready
        port = server.sockets[0].getsockname()[1]
        try:
            async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
                await hello(ws)
                for raw in messages:
                    await ws.send(raw)
                    await ws.send(json.dumps({"type": "probe", "id": "probe"}))
                    while (answer := json.loads(await asyncio.wait_for(ws.recv(), 20))).get("id") != "probe":
                        assert answer["type"] in ("points", "done", "guess", "error"), answer
                        if answer["type"] == "error":
                            assert answer["code"] in CODES, answer
                    assert answer["code"] == "bad_request"
            await wait_until_idle(app, 2)
            assert app.connections == 0 and sum(w.rows for w in app.workers.values()) == 0
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
