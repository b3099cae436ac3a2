"""``cnnlab explore`` in a real browser: headless Chromium driven by Selenium draws a
stroke with pointer events and checks what the page shows.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them). Without
them the test is skipped, except when ``CNNLAB_REQUIRE_BROWSER=1`` (set by ``.ci/run``):
then it fails, so CI never skips it. Run it locally with

    CNNLAB_REQUIRE_BROWSER=1 python -m pytest -q -p no:cacheprovider tests/test_explore_browser.py

Screenshots go to pytest's tmp_path (the path is printed; ``-s`` shows it);
``CNNLAB_SCREENSHOT=path.png`` also writes one there (docs/images/explorer.png is made so).
"""
import os
import shutil
import threading

import numpy as np
import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import cnnlab.functional as F
from cnnlab.data import load_mnist
from cnnlab.explore import load_source, make_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
HAVE_BROWSER = os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)
if os.environ.get("CNNLAB_REQUIRE_BROWSER") == "1" and not HAVE_BROWSER:
    raise RuntimeError(f"CNNLAB_REQUIRE_BROWSER=1 but {CHROMIUM} or {CHROMEDRIVER} is missing "
                       f"(Debian packages chromium, chromium-driver)")
pytestmark = pytest.mark.skipif(not HAVE_BROWSER, reason="chromium / chromedriver not installed "
                                "(set CNNLAB_REQUIRE_BROWSER=1 to make this an error)")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1500"]

# strokes in canvas pixels (the drawing canvas is 280x280): a "1", a "7", an "0"-ish loop
STROKES = [
    [(140, 50), (142, 90), (144, 130), (145, 170), (146, 210), (147, 240)],
    [(80, 60), (140, 58), (200, 60), (180, 110), (160, 160), (145, 210), (135, 245)],
    [(140, 50), (95, 90), (90, 160), (135, 235), (185, 160), (185, 90), (140, 50)],
]


@pytest.fixture(scope="module")
def server():
    srv = make_server(load_source(None), port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    d.set_page_load_timeout(60)
    yield d
    d.quit()


def draw_stroke(driver, points):
    """Press, move through ``points`` (canvas pixels), release: W3C pointer actions."""
    canvas = driver.find_element(By.ID, "draw")
    rect = driver.execute_script("const r = arguments[0].getBoundingClientRect();"
                                 "return [r.width, r.height];", canvas)
    sx, sy = rect[0] / 280.0, rect[1] / 280.0
    # offsets are from the element's centre in Selenium 4
    px = [(int((x - 140) * sx), int((y - 140) * sy)) for x, y in points]
    chain = ActionChains(driver, duration=20)
    chain.move_to_element_with_offset(canvas, *px[0]).click_and_hold()
    for (x0, y0), (x1, y1) in zip(px, px[1:]):
        chain.move_by_offset(x1 - x0, y1 - y0)
    chain.release().perform()


def wait_for_timings(driver, n):
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script("return window.explorerTimings.length") >= n)


def test_draw_predict_every_layer_no_console_errors(server, driver, tmp_path):
    driver.get(server.url)
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script("return document.body.dataset.ready === '1'"))
    info = driver.execute_script("return state.model")
    for k, stroke in enumerate(STROKES):
        driver.find_element(By.ID, "clear").click()
        draw_stroke(driver, stroke)
        wait_for_timings(driver, k + 1)
        pred = driver.find_element(By.ID, "prediction").text
        assert pred in info["classes"], pred

    # every layer panel rendered, with its shape, as tiles (C, H, W) or bars (D,)
    panels = driver.find_elements(By.CSS_SELECTOR, "#layers .layer-panel")
    assert len(panels) == len(info["layers"]) == 12
    for panel, layer in zip(panels, info["layers"]):
        assert "rendered" in panel.get_attribute("class"), layer["name"]
        assert "\u00d7".join(map(str, layer["output_shape"])) in panel.text
        canvases = panel.find_elements(By.CSS_SELECTOR, ".tiles canvas" if len(
            layer["output_shape"]) == 3 else "canvas.bars")
        assert len(canvases) == (layer["output_shape"][0] if len(layer["output_shape"]) == 3
                                 else 1), layer["name"]

    # the page's preprocessing is MNIST's: ink fitted into 20x20, centre of mass at the centre
    seen = np.array(driver.execute_script("return Array.from(state.forward.input.values)"))
    seen = seen.reshape(28, 28)
    rows, cols = np.nonzero(seen > 0)
    assert max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) in (19, 20, 21)
    mass = seen.sum()
    cy = (seen.sum(axis=1) * (np.arange(28) + 0.5)).sum() / mass
    cx = (seen.sum(axis=0) * (np.arange(28) + 0.5)).sum() / mass
    assert abs(cy - 14) <= 0.75 and abs(cx - 14) <= 0.75, (cy, cx)

    # click the bar of the predicted class in the score layer: its weighted sum
    pred = int(driver.find_element(By.ID, "prediction").text)
    bars = driver.find_element(By.CSS_SELECTOR, "#layer-11 canvas.bars")
    bw = int(bars.get_attribute("data-bar-width"))
    scale = bars.size["width"] / int(bars.get_attribute("width"))
    xoff = (1 + (pred + 0.5) * bw) * scale - bars.size["width"] / 2
    ActionChains(driver).move_to_element_with_offset(bars, round(xoff), 0).click().perform()
    WebDriverWait(driver, 30).until(
        lambda d: f"dense_2 (Dense) unit {pred}" in d.find_element(By.ID, "unit-body").text)
    assert "sum of all 84 products" in driver.find_element(By.ID, "unit-body").text

    # click a unit of conv2d_1: the arithmetic panel shows the model's own value
    tile = driver.find_elements(By.CSS_SELECTOR, "#layer-3 .tiles canvas")[5]
    cell = tile.size["width"] / 10.0     # a quarter cell past the centre: inside (5, 5)
    ActionChains(driver).move_to_element_with_offset(tile, round(cell / 4), round(cell / 4)) \
        .click().perform()
    WebDriverWait(driver, 30).until(
        lambda d: "conv2d_1 (Conv2D)" in d.find_element(By.ID, "unit-body").text)
    text = driver.find_element(By.ID, "unit-body").text
    assert "conv2d_1 (Conv2D) channel 5, row 5, col 5" in text
    assert "receptive field on the input: rows" in text

    # Grad-CAM, filters and the conv-arithmetic panel (an invalid case, then valid ones)
    driver.find_element(By.ID, "attr-run").click()
    WebDriverWait(driver, 30).until(
        lambda d: "Grad-CAM at" in d.find_element(By.ID, "attr-info").text)
    driver.find_element(By.ID, "filters-run").click()
    WebDriverWait(driver, 30).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#filters-body canvas")) == 6)

    def set_arith(values):
        for key, v in zip("nkpsd", values):
            box = driver.find_element(By.ID, f"ca-{key}")
            box.clear()
            box.send_keys(str(v))

    set_arith((5, 7, 0, 1, 1))
    WebDriverWait(driver, 30).until(lambda dr: dr.find_elements(By.ID, "ca-error"))
    assert "larger than the padded input" in driver.find_element(By.ID, "ca-error").text
    for (n, k, p, s, d) in [(28, 5, 2, 1, 1), (10, 3, 0, 1, 2), (7, 3, 1, 2, 1)]:
        set_arith((n, k, p, s, d))
        want = F.conv_output_size(n, k, padding=p, stride=s, dilation=d)
        WebDriverWait(driver, 30).until(lambda dr, want=want: dr.find_elements(By.ID, "ca-output")
                                        and dr.find_element(By.ID, "ca-output").text == f"= {want}")

    driver.execute_script("window.scrollTo(0, 0)")
    shot = tmp_path / "explorer.png"
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    print(f"\nscreenshot: {shot}")
    extra = os.environ.get("CNNLAB_SCREENSHOT")
    if extra:
        shutil.copyfile(shot, extra)
    timings = driver.execute_script("return window.explorerTimings")
    print(f"stroke end -> redrawn layers (ms): {[round(t, 1) for t in timings]}; last one: "
          f"{driver.execute_script('return window.explorerBreakdown')}")
    assert all(t < 5000 for t in timings)    # sanity only: CI machines are shared

    # upload: an MNIST test digit as a 28x28 PNG is classified as model.predict says
    x, y = load_mnist(None, "test", dtype=np.uint8, limit=1)
    digit = tmp_path / "digit.png"
    Image.fromarray(x[0, 0]).save(digit)
    want = str(int(server.em.model.predict(x[:1].astype(np.float32) / 255).argmax()))
    assert want == str(y[0])
    driver.find_element(By.ID, "clear").click()
    driver.find_element(By.ID, "upload").send_keys(str(digit))
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script("return window.explorerTimings.length") > len(timings))
    assert driver.find_element(By.ID, "prediction").text == want

    # no console errors (a missing favicon would be one); warnings are printed (Chromium
    # versions differ in what they warn about)
    logs = driver.get_log("browser")
    for e in logs:
        print("console:", e["level"], e["message"])
    assert not [e for e in logs if e["level"] == "SEVERE"], logs
