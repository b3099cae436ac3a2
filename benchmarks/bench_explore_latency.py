"""Latency of ``cnnlab explore``: a drawn stroke to redrawn layers, in headless Chromium.

    python benchmarks/bench_explore_latency.py [--strokes 30] [MODEL]

Starts the explorer on a free port, draws ``--strokes`` strokes with Selenium pointer
actions (clearing between them) and reads the page's own timings (``performance.now()``
from the pointer's release to the last layer redrawn, ``window.explorerTimings``) and the
breakdown of the last stroke (waiting for a live request still in flight, preprocessing,
encoding, the HTTP request, rendering). Prints median / 90th percentile / max and the load
average: on a shared machine the numbers move with the load.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from cnnlab.explore import load_source, make_server  # noqa: E402

STROKES = [
    [(140, 50), (142, 90), (144, 130), (145, 170), (146, 210), (147, 240)],
    [(80, 60), (140, 58), (200, 60), (180, 110), (160, 160), (145, 210), (135, 245)],
    [(140, 50), (95, 90), (90, 160), (135, 235), (185, 160), (185, 90), (140, 50)],
    [(90, 80), (140, 50), (190, 80), (150, 150), (95, 230), (195, 230)],
]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", default=None)
    p.add_argument("--strokes", type=int, default=30)
    a = p.parse_args(argv)
    srv = make_server(load_source(a.model), port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--window-size=1400,1500",
                 f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}"]:
        opts.add_argument(flag)
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    breakdowns = []
    try:
        d.get(srv.url)
        WebDriverWait(d, 30).until(
            lambda d: d.execute_script("return document.body.dataset.ready === '1'"))
        canvas = d.find_element(By.ID, "draw")
        for k in range(a.strokes):
            d.find_element(By.ID, "clear").click()
            pts = STROKES[k % len(STROKES)]
            chain = ActionChains(d, duration=20)
            chain.move_to_element_with_offset(canvas, pts[0][0] - 140, pts[0][1] - 140)
            chain.click_and_hold()
            for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
                chain.move_by_offset(x1 - x0, y1 - y0)
            chain.release().perform()
            WebDriverWait(d, 30).until(
                lambda d, k=k: d.execute_script("return window.explorerTimings.length") > k)
            breakdowns.append(d.execute_script("return window.explorerBreakdown"))
        t = np.array(d.execute_script("return window.explorerTimings"))
    finally:
        d.quit()
        srv.shutdown()
        srv.server_close()
    load = os.getloadavg()
    warm = t[1:] if len(t) > 1 else t
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')}, {platform.node()}, {os.cpu_count()} CPUs, "
          f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(f"stroke end -> redrawn layers, {len(t)} strokes (first, cold: {t[0]:.0f} ms); "
          f"the other {len(warm)}: median {np.median(warm):.0f} ms, 90th percentile "
          f"{np.percentile(warm, 90):.0f} ms, max {warm.max():.0f} ms")
    keys = ["wait", "preprocess", "encode", "request", "render"]
    med = {k: float(np.median([b.get(k, 0) for b in breakdowns[1:] or breakdowns])) for k in keys}
    print("median breakdown (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in med.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
