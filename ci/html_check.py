"""Render a riptide report.html in headless Chromium and check it (ci/html-check.sh runs this).

    python ci/html_check.py REPORT.html [--screenshot OUT.png] [--max-one-colour 0.95]
    python ci/html_check.py --self-test REPORT.html   # the checks must fail on pages made bad

Checks, all reported (not only the first), exit 1 if any fails:
  - no JavaScript console error (level SEVERE) while the page loads;
  - one timeline per partition: the number of <svg> charts in #timelines equals the page's
    data-partitions, which must be at least 1; and, when a report.json sits beside the page
    (riptide sim's report, or certify's with it under "report"), the number of partitions its
    summary lists;
  - the picture: a screenshot of the whole page is not more than --max-one-colour (95 %) one
    colour.
"""

import argparse
import io
import json
import os
import pathlib
import shutil
import sys
import tempfile
from collections import Counter

from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

WIDTH = 1280
MAX_HEIGHT = 16384


def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("CHROMIUM", shutil.which("chromium") or "chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--hide-scrollbars", f"--window-size={WIDTH},800"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = os.environ.get("CHROMEDRIVER", shutil.which("chromedriver") or "chromedriver")
    # An explicit driver: Selenium Manager would otherwise try the network.
    return webdriver.Chrome(options=opts, service=Service(executable_path=driver))


def partitions_in_json(page: pathlib.Path):
    """How many partitions report.json beside the page lists, or None without one."""
    j = page.parent / "report.json"
    if not j.exists():
        return None
    try:
        data = json.loads(j.read_text())
    except ValueError:
        return None
    report = data.get("report", data)
    summary = report.get("summary") if isinstance(report, dict) else None
    if not isinstance(summary, dict) or "partitions" not in summary:
        return None
    return len(summary["partitions"])


def check(d, page: pathlib.Path, max_one_colour: float, screenshot=None):
    """The failures of one page, as sentences (empty: it passes)."""
    failures = []
    d.get(page.resolve().as_uri())
    errors = [e for e in d.get_log("browser") if e.get("level") == "SEVERE"]
    for e in errors:
        failures.append(f"JavaScript error: {e.get('message')}")

    found = d.find_elements(By.CSS_SELECTOR, "#timelines")
    if not found:
        failures.append("no #timelines element")
    else:
        declared = found[0].get_attribute("data-partitions")
        charts = len(d.find_elements(By.CSS_SELECTOR, "#timelines svg"))
        if declared is None or not declared.isdigit():
            failures.append(f"#timelines has no data-partitions number ({declared!r})")
        else:
            declared = int(declared)
            if declared < 1:
                failures.append("the page declares no partition")
            if charts != declared:
                failures.append(f"{charts} timeline(s) for {declared} partition(s)")
            in_json = partitions_in_json(page)
            if in_json is not None and in_json != declared:
                failures.append(f"the page declares {declared} partition(s), report.json lists {in_json}")
            if not failures:
                print(f"  timelines: {charts} for {declared} partition(s)"
                      + (f", report.json lists {in_json}" if in_json is not None else ""))

    height = d.execute_script(
        "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)")
    d.set_window_size(WIDTH, min(max(int(height or 0), 600), MAX_HEIGHT))
    png = d.get_screenshot_as_png()
    if screenshot:
        pathlib.Path(screenshot).write_bytes(png)
    img = Image.open(io.BytesIO(png)).convert("RGB")
    pixels = img.get_flattened_data() if hasattr(img, "get_flattened_data") else img.getdata()
    counts = Counter(pixels)
    colour, n = counts.most_common(1)[0]
    share = n / (img.width * img.height)
    print(f"  picture: {img.width}x{img.height}, {len(counts)} colours, "
          f"most common #{colour[0]:02x}{colour[1]:02x}{colour[2]:02x} {share:.1%}")
    if share > max_one_colour:
        failures.append(f"the picture is {share:.1%} one colour (at most {max_one_colour:.0%})")
    d.set_window_size(WIDTH, 800)
    return failures


def bad_pages(page: pathlib.Path, into: pathlib.Path):
    """Pages the checks must refuse, made from a good one: (name, path, the failure expected)."""
    html = page.read_text()
    made = []

    def put(name, text, expect):
        d = into / name
        d.mkdir()
        p = d / "report.html"
        p.write_text(text)
        made.append((name, p, expect))

    put("js-error", html.replace("</body>", "<script>throw new Error('planted')</script></body>"),
        "JavaScript error")
    put("blank", html.replace("</head>", "<style>body{visibility:hidden}</style></head>"),
        "one colour")
    start = html.find("<svg")
    end = html.find("</svg>", start) + len("</svg>")
    put("chart-missing", html[:start] + html[end:], "timeline(s) for")
    put("empty", "<!doctype html><html><head><meta charset=utf-8></head><body></body></html>",
        "no #timelines")
    return made


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("page", type=pathlib.Path)
    ap.add_argument("--screenshot")
    ap.add_argument("--max-one-colour", type=float, default=0.95)
    ap.add_argument("--self-test", action="store_true",
                    help="also check that pages made bad from PAGE fail, each for its reason")
    a = ap.parse_args()
    if not a.page.is_file():
        print(f"html-check: FAIL: {a.page} does not exist")
        return 1
    d = browser()
    try:
        print(f"html-check: {a.page}")
        failures = check(d, a.page, a.max_one_colour, a.screenshot)
        for f in failures:
            print(f"  FAIL: {f}")
        ok = not failures
        if a.self_test:
            with tempfile.TemporaryDirectory() as tmp:
                for name, p, expect in bad_pages(a.page, pathlib.Path(tmp)):
                    print(f"self-test: a page made bad ({name}) must fail with '{expect}'")
                    got = check(d, p, a.max_one_colour)
                    for f in got:
                        print(f"  fails as it should: {f}")
                    if not any(expect in f for f in got):
                        print(f"  FAIL: the check let the {name} page through")
                        ok = False
    finally:
        d.quit()
    print(f"html-check: {'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
