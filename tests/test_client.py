"""The drawing page in a real browser (Playwright driving the system Chromium) against a real
`sketchrnn serve` with the default model."""

import json
from pathlib import Path

import pytest

from sketchrnn.checkpoints import DEFAULT_MODEL

CHROMIUM = "/usr/bin/chromium"
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
if not Path(CHROMIUM).exists():
    pytest.skip(f"no system Chromium at {CHROMIUM} (.ci/run installs it with apt-get)", allow_module_level=True)

SCREENSHOTS = Path(__file__).resolve().parents[1] / "runs" / "screenshots"
MODEL_RED = (214, 39, 40)  # COLORS[0] in client/app.js


@pytest.fixture(scope="module")
def server(free_port, start_server):
    port = free_port()
    proc = start_server(port)
    state = {"port": port, "proc": proc}
    yield state
    state["proc"].terminate()
    state["proc"].wait(10)


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield b
        b.close()


def hold_back_done_of_request_1(route):
    """A WebSocket route (Playwright) that passes every message but request 1's ``done``: the page
    then sees that request still drawing however fast the server finished it."""
    upstream = route.connect_to_server()
    route.on_message(upstream.send)

    def from_server(message):
        answer = json.loads(message)
        if not (answer.get("id") == "1" and answer["type"] == "done"):
            route.send(message)

    upstream.on_message(from_server)


@pytest.fixture
def page(browser, server, request):
    context = browser.new_context(viewport={"width": 900, "height": 600}, accept_downloads=True)
    if getattr(request, "param", None) == "hold_back_done":
        context.route_web_socket("**/ws", hold_back_done_of_request_1)
    page = context.new_page()
    page.sent = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: page.sent.append(json.loads(payload))))
    page.goto(f"http://127.0.0.1:{server['port']}/")
    page.wait_for_selector("#connection[data-ok=yes]", timeout=15000)
    page.wait_for_function("document.getElementById('status').textContent.startsWith('draw')")
    yield page
    context.close()


def draw_cloud(page, x=300, y=250):
    """A scalloped outline, drawn as one stroke with the mouse."""
    box = page.locator("#canvas").bounding_box()
    page.mouse.move(box["x"] + x, box["y"] + y)
    page.mouse.down()
    for dx, dy in [(60, -30), (140, -35), (220, -5), (230, 60), (160, 100), (60, 95), (0, 40), (0, 0)]:
        page.mouse.move(box["x"] + x + dx, box["y"] + y + dy, steps=6)
    page.mouse.up()


def model_pixels(page) -> int:
    return page.evaluate("""([r, g, b]) => {
        const c = document.getElementById('canvas');
        const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < data.length; i += 4)
            if (Math.abs(data[i] - r) < 30 && Math.abs(data[i+1] - g) < 30 && Math.abs(data[i+2] - b) < 30
                && data[i+3] > 200) n++;
        return n;
    }""", list(MODEL_RED))


ENDINGS_WAITING = "[...document.querySelectorAll('#alternatives button')].map(b => b.disabled)"


def test_draw_and_watch_the_model_finish(page):
    assert page.evaluate(ENDINGS_WAITING) == [True] * 3  # keep buttons wait: the header will not grow
    canvas_before = page.locator("#canvas").bounding_box()
    draw_cloud(page)
    page.wait_for_function("document.getElementById('status').textContent.startsWith('done')", timeout=30000)
    assert page.locator("#canvas").bounding_box() == canvas_before, "the endings came without moving the canvas"
    complete = [m for m in page.sent if m["type"] == "complete"][-1]
    assert complete["model"] == "sheep" and len(complete["strokes"]) == 1 and len(complete["strokes"][0]) > 20
    assert complete["n"] == 3 and complete["temperature"] == 0.25 and complete["pen_temperature"] == 1
    assert model_pixels(page) > 50, "the continuation should be on the canvas in its colour"
    assert page.locator("#alternatives button").count() == 3
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "completion.png"))
    # Keeping an ending makes it part of the drawing.
    page.locator("#alternatives button").first.click()
    assert page.evaluate(ENDINGS_WAITING) == [True] * 3


@pytest.mark.parametrize("page", ["hold_back_done"], indirect=True)
def test_drawing_again_cancels_undo_clear_and_settings(page):
    page.select_option("#model", "sheep")
    page.fill("#n", "2")
    page.locator("#temperature").fill("0.5")
    page.locator("#pen-temperature").fill("0.75")
    draw_cloud(page)
    page.wait_for_function("document.getElementById('status').textContent.includes('drawing')")
    draw_cloud(page, 350, 300)  # starts while the first ending may still stream
    page.wait_for_function("document.getElementById('status').textContent.startsWith('done')", timeout=30000)
    completes = [m for m in page.sent if m["type"] == "complete"]
    assert completes[-1]["n"] == 2 and completes[-1]["temperature"] == 0.5 and len(completes[-1]["strokes"]) == 2
    assert completes[-1]["pen_temperature"] == 0.75
    assert completes[0]["id"] == "1" and {"type": "cancel", "id": "1"} in page.sent  # it was still drawing
    page.click("#undo")
    assert page.evaluate(ENDINGS_WAITING) == [True] * 2  # as many as asked for, none to keep
    page.keyboard.press("Escape")  # clear
    assert model_pixels(page) == 0


def test_export_svg_and_png(page, tmp_path):
    draw_cloud(page)
    page.wait_for_function("document.getElementById('status').textContent.startsWith('done')", timeout=30000)
    with page.expect_download() as svg:
        page.click("#export-svg")
    text = Path(svg.value.path()).read_text()
    assert text.startswith("<svg") and text.count("<path") >= 2 and "#d62728" in text
    with page.expect_download() as png:
        page.click("#export-png")
    assert Path(png.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_server_gone_then_back(page, server, start_server):
    server["proc"].terminate()
    server["proc"].wait(10)
    page.wait_for_selector("#connection[data-ok=no]", timeout=10000)
    # It says so between its tries to reconnect ("connecting…" while one is under way).
    page.wait_for_function("document.getElementById('connection').textContent.includes('disconnected')",
                           timeout=10000)
    server["proc"] = start_server(server["port"])
    page.wait_for_selector("#connection[data-ok=yes]", timeout=20000)


def test_with_several_models_auto_guesses_and_says_so(browser, shared_data, free_port, start_server):
    """Two models served: the page offers auto as its default and shows the server's guess."""
    port = free_port()
    proc = start_server(port, "--model", str(shared_data / "models" / "monkey.gen.json"), str(DEFAULT_MODEL))
    context = browser.new_context(viewport={"width": 900, "height": 600})
    try:
        page = context.new_page()
        page.sent = []
        page.on("websocket", lambda ws: ws.on("framesent", lambda payload: page.sent.append(json.loads(payload))))
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("#connection[data-ok=yes]", timeout=15000)
        assert page.eval_on_selector("#model", "s => s.value") == "auto"
        draw_cloud(page)
        page.wait_for_function("document.getElementById('status').textContent.includes('done')", timeout=30000)
        status = page.text_content("#status")
        assert status.startswith("looks like: ") and status.split(":")[1].split(";")[0].strip() in ("monkey", "sheep")
        assert [m for m in page.sent if m["type"] == "complete"][-1]["model"] == "auto"
        assert model_pixels(page) > 50
    finally:
        context.close()
        proc.terminate()
        proc.wait(10)


def draw_quickdraw(page, drawing, x=150, y=40, size=380):
    """A real Quick, Draw! drawing (0-255 frame), stroke by stroke with the mouse."""
    box = page.locator("#canvas").bounding_box()
    for xs, ys in drawing:
        points = [(box["x"] + x + px * size / 255, box["y"] + y + py * size / 255) for px, py in zip(xs, ys)]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=3)
        page.mouse.up()


@pytest.fixture(scope="module")
def catalog_page(browser, shared_data, free_port, start_server):
    """The 22 shared decoders served at once, as a person meets them in the page."""
    port = free_port()
    proc = start_server(port, "--model", str(shared_data / "models"), "--workers", "1", seconds=240)
    context = browser.new_context(viewport={"width": 1000, "height": 650})
    page = context.new_page()
    page.sent = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: page.sent.append(json.loads(payload))))
    page.goto(f"http://127.0.0.1:{port}/")
    page.wait_for_selector("#connection[data-ok=yes]", timeout=15000)
    yield page
    context.close()
    proc.terminate()
    proc.wait(10)


def test_live_guesses_while_drawing_and_a_chip_finishes_as_that_class(catalog_page, shared_data):
    page = catalog_page
    names = {o for o in page.eval_on_selector_all("#model option", "os => os.map(o => o.value)")}
    assert len(names) == 23 and "palm_tree" in names  # auto and the 22 models
    assert page.is_visible("#model-search")
    page.fill("#model-search", "palm tree")  # Google's spelling finds the model's
    assert page.eval_on_selector("#model", "s => s.value") == "palm_tree"
    page.fill("#model-search", "")
    page.select_option("#model", "auto")
    canvas_before = page.locator("#canvas").bounding_box()
    line = (shared_data / "sketches" / "quickdraw" / "simplified" / "bicycle.ndjson").read_text().splitlines()[20]
    draw_quickdraw(page, json.loads(line)["drawing"])
    page.wait_for_function("document.getElementById('status').textContent.includes('done')", timeout=60000)
    assert page.locator("#canvas").bounding_box() == canvas_before, "guesses and endings came without moving the canvas"
    guesses = [m for m in page.sent if m["type"] == "guess"]
    assert len(guesses) >= 2, "guesses were asked for while the pen moved"
    assert len(guesses[0]["strokes"]) < len(guesses[-1]["strokes"]), "the first guess saw part of the drawing"
    chips = page.locator("#guesses button")
    assert chips.count() == 3
    label = page.text_content("#guesses")
    assert label.startswith(("I see:", "not sure")) and label.count("%") == 3
    chosen = chips.nth(1).get_attribute("data-model")
    assert chosen in names
    chips.nth(1).click()
    page.wait_for_function("document.getElementById('status').textContent.startsWith('done')", timeout=60000)
    assert [m for m in page.sent if m["type"] == "complete"][-1]["model"] == chosen
    assert model_pixels(page) > 50
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "guesses.png"))


def test_an_empty_canvas_gets_a_drawing_of_the_chosen_class(catalog_page):
    page = catalog_page
    page.keyboard.press("Escape")  # clear
    assert not page.is_visible("#guesses"), "the guesses about the cleared drawing are gone"
    page.select_option("#model", "key")
    page.click("#scratch")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('done')", timeout=60000)
    complete = [m for m in page.sent if m["type"] == "complete"][-1]
    assert complete["model"] == "key" and complete["strokes"] == []
    assert model_pixels(page) > 50
    page.screenshot(path=str(SCREENSHOTS / "from-scratch.png"))
    page.select_option("#model", "auto")  # nothing to guess from: any of the served classes draws
    asked = []
    for _ in range(5):
        page.keyboard.press("Escape")
        page.click("#scratch")
        page.wait_for_function("document.getElementById('status').textContent.includes('from scratch')")
        asked.append([m for m in page.sent if m["type"] == "complete"][-1]["model"])
    page.wait_for_function("document.getElementById('status').textContent.startsWith('done')", timeout=60000)
    served = set(page.eval_on_selector_all("#model option", "os => os.map(o => o.value)")) - {"auto"}
    assert set(asked) <= served and len(set(asked)) > 1, asked  # 22 classes: five alike 1 in 230,000
    assert model_pixels(page) > 50
