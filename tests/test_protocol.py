"""The protocol's rules message by message, without a socket (server/protocol.py is pure)."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sketchrnn.server import protocol
from sketchrnn.server.protocol import Cancel, Complete, Guess, Limits, ProtocolError

MODELS = ("sheep", "cat")


def parse(message: dict):
    return protocol.parse(message, Limits(), MODELS, "sheep")


def refused(message: dict) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        parse(message)
    return caught.value


def test_a_complete_gets_every_default():
    request = parse({"type": "complete", "id": "1", "strokes": [[[1, 2], [3, 4]]]})
    assert isinstance(request, Complete)
    assert (request.model, request.n, request.temperature, request.max_points, request.seed) == ("sheep", 1, 0.25,
                                                                                                  250, None)
    assert request.strokes[0].tolist() == [[1, 2], [3, 4]]


@pytest.mark.parametrize("field, value, code, says", [
    ("id", "", "bad_request", "id must be a string of 1 to 64"),
    ("id", "x" * 65, "bad_request", "id must be a string of 1 to 64"),
    ("model", "dog", "unknown_model", "served: auto, sheep, cat"),
    ("model", 3, "bad_request", "model must be a string"),
    ("n", 10, "too_large", "n must be between 1 and 9, got 10"),
    ("n", 0, "bad_request", "n must be between 1 and 9, got 0"),
    ("n", 1.5, "bad_request", "n must be an integer"),
    ("temperature", 3, "bad_request", "temperature must be between 0.01 and 2, got 3"),
    ("temperature", "hot", "bad_request", "temperature must be a finite number"),
    ("max_points", 251, "too_large", "max_points must be between 1 and 250"),
    ("seed", -1, "bad_request", "seed must be between 0 and"),
    ("scale", 0, "bad_request", "scale must be between 1e-06 and 1e+06"),
    ("greedy", 1, "bad_request", "greedy must be true or false"),
    ("strokes", [[[1, 2]], [[1e7, 0]]], "bad_request", "strokes[1][0] must be finite, within ±1e+06"),
    ("strokes", [[[1, True]]], "bad_request", "strokes[0][0] must be [x, y] with numbers"),
    ("strokes", [[[0, 0]] * 2001], "too_large", "strokes hold 2001 points; the limit is 2000"),
    ("strokes", {}, "bad_request", "strokes must be a non-empty list of strokes"),
])
def test_each_field_is_checked_by_name(field, value, code, says):
    error = refused({"type": "complete", "id": "1", "strokes": [[[1, 2]]], field: value})
    assert error.code == code and says in error.message


def test_empty_strokes_draw_from_scratch_but_auto_needs_a_drawing():
    assert parse({"type": "complete", "id": "1", "model": "cat", "strokes": []}).strokes == []
    assert "auto needs strokes" in refused({"type": "complete", "id": "1", "model": "auto", "strokes": []}).message


def test_guess_and_cancel_and_unknown_types():
    request = parse({"type": "guess", "id": "g", "strokes": [[[0, 0], [5, 5]]]})
    assert isinstance(request, Guess) and request.id == "g"
    assert refused({"type": "guess", "id": "g", "strokes": []}).code == "bad_request"
    assert parse({"type": "cancel", "id": 7}) == Cancel(7)
    assert "unknown message type 'draw'" in refused({"type": "draw"}).message


def test_decode_refuses_what_is_not_one_json_object():
    for raw, says in [(b"{}", "binary frames"), ("{", "not valid JSON"), ("[1]", "must be a JSON object"),
                      ("1" * 5000, "not valid JSON")]:
        with pytest.raises(ProtocolError, match=says):
            protocol.decode(raw)
    assert protocol.id_of({"id": "x"}) == "x" and protocol.id_of({"id": 3}) is None and protocol.id_of(None) is None


def test_a_guess_message_lists_the_top_three_and_says_when_it_is_not_sure():
    ranked = [("bird", 0.62), ("duck", 0.2), ("owl", 0.1), ("cat", 0.08)]
    message = protocol.guess("g", ranked)
    assert message["model"] == "bird" and message["sure"] is True
    assert message["top"] == [{"model": "bird", "p": 0.62}, {"model": "duck", "p": 0.2}, {"model": "owl", "p": 0.1}]
    assert protocol.guess("g", [("bird", 0.3), ("duck", 0.29), ("owl", 0.2)])["sure"] is False


def test_a_frames_points_of_a_request_go_in_one_message_before_its_done():
    messages = [protocol.points("1", {0: [[1, 1, 0]]}), protocol.points("1", {0: [[2, 2, 1]]}),
                protocol.points("1", {1: [[3, 3, 0]]}), protocol.done("1", 0, "end", 2, 12.34),
                protocol.points("2", {0: [[4, 4, 0]]})]
    merged = protocol.merge_points(messages)
    assert [m["type"] for m in merged] == ["points", "done", "points"]
    assert merged[0]["alternatives"] == [{"k": 0, "points": [[1, 1, 0], [2, 2, 1]]}, {"k": 1, "points": [[3, 3, 0]]}]
    assert merged[1]["ms"] == 12.3 and merged[2] == {"type": "points", "id": "2", "k": 0, "points": [[4, 4, 0]]}


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                      max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({"type": st.sampled_from(["complete", "guess", "cancel", "auth"]) | json_values},
                             optional={"id": json_values | st.text(max_size=70), "strokes": json_values,
                                       "n": json_values, "model": st.sampled_from(["sheep", "auto"]) | json_values,
                                       "temperature": json_values, "scale": json_values, "seed": json_values}))
def test_any_message_is_a_request_or_a_protocol_error(message):
    """Whatever a client sends, the parser answers with a typed request or a ProtocolError whose
    code is documented: never another exception."""
    try:
        request = parse(json.loads(json.dumps(message)))
    except ProtocolError as e:
        assert e.code in protocol.ERROR_CODES and e.message
    else:
        assert type(request).__name__ in ("Complete", "Guess", "Cancel", "Auth")
