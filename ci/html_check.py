"""Render a riptide report.html in headless Chromium and check it (ci/html-check.sh runs this).

    python ci/html_check.py REPORT.html [--screenshot OUT.png] [--max-one-colour 0.95]
    python ci/html_check.py --self-test REPORT.html   # the checks must fail on pages made bad

Checks, all reported (not only the first), exit 1 if any fails:
  - no JavaScript console error (level SEVERE) while the page loads;
  - one timeline per partition: the number of <svg> charts in #timelines equals the page's
    data-partitions, which must be at least 1; and, when a report.json sits beside the page
    (riptide sim's report, or certify's with it under "report"), the number of partitions its
    summary lists;
  - the windows of unavailability: bars (rect.window, each for one window or for data-n windows
    too close to draw apart) drawn with a size, for as many windows as the page declares
    (data-windows of #timelines and #group-stalls); and, when the figures sit beside the page
    (certify's report.json under "figures", sim's figures.json), as many as they list;
  - latency over time: the chart (#latency svg) is there and has a size, with one p99 point
    (circle.p99) per point the page declares (data-points), as many as the figures' buckets
    measured, and at least one when the figures measured an acknowledged send;
  - the picture: a screenshot of the whole page is not more than --max-one-colour (95 %) one
    colour.
"""

import argparse
import io
import json
import os
import pathlib
import re
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


def figures_beside(page: pathlib.Path):
    """The figures beside the page (certify: report.json's "figures"; sim: figures.json), or None."""
    for name, key in (("report.json", "figures"), ("figures.json", None)):
        f = page.parent / name
        if not f.exists():
            continue
        try:
            data = json.loads(f.read_text())
        except ValueError:
            continue
        data = data.get(key) if key else data
        if isinstance(data, dict) and "windows" in data:
            return data
    return None


def declared(d, selector: str, attribute: str):
    """The number an element declares in an attribute: 0 without the element, None if not a number."""
    found = d.find_elements(By.CSS_SELECTOR, selector)
    if not found:
        return 0
    value = found[0].get_attribute(attribute)
    return int(value) if value is not None and value.isdigit() else None


# How many of the elements a selector finds, how many of them the browser drew with no size, and
# how many things they stand for (data-n: a window bar may stand for windows too close to draw
# apart; 1 without it).
SIZES = """
const all = [...document.querySelectorAll(arguments[0])];
return [all.length,
        all.filter(e => { const r = e.getBoundingClientRect(); return !(r.width > 0 && r.height > 0); }).length,
        all.reduce((n, e) => n + Number(e.getAttribute('data-n') || 1), 0)];
"""


def check_pictures(d, page: pathlib.Path):
    """The failures of the windows' bars and the latency chart."""
    failures = []
    figures = figures_beside(page)
    # Window bars: one per window declared, each with a size, as many as the figures list.
    want = [declared(d, sel, "data-windows") for sel in ("#timelines", "#group-stalls")]
    if None in want:
        failures.append(f"a data-windows that is not a number ({want})")
    else:
        bars, unsized, shown = d.execute_script(SIZES, "rect.window")
        if shown != sum(want):
            failures.append(f"{bars} window bar(s) for {shown} window(s), {sum(want)} declared")
        if unsized:
            failures.append(f"{unsized} window bar(s) drawn with no size")
        if figures is not None and len(figures["windows"]) != sum(want):
            failures.append(f"the page declares {sum(want)} window(s), the figures list "
                            f"{len(figures['windows'])}")
        if not failures:
            print(f"  windows: {shown} in {bars} bar(s)"
                  + (f", the figures list {len(figures['windows'])}" if figures is not None else ""))
    # Latency over time: a chart with a size, one p99 point per point declared.
    charts, unsized, _ = d.execute_script(SIZES, "#latency svg")
    points = declared(d, "#latency", "data-points")
    if charts != 1:
        failures.append(f"no latency chart (#latency svg: {charts})")
    elif unsized:
        failures.append("the latency chart is drawn with no size")
    elif points is None:
        failures.append("#latency has no data-points number")
    else:
        drawn = len(d.find_elements(By.CSS_SELECTOR, "#latency circle.p99"))
        if drawn != points:
            failures.append(f"{drawn} latency point(s) for {points} declared")
        if figures is not None:
            buckets = figures.get("latency_over_time", {}).get("buckets", [])
            measured = sum((b["produce"]["count"] > 0) + (b["end_to_end"]["count"] > 0) for b in buckets)
            if measured != points:
                failures.append(f"the page declares {points} latency point(s), the figures' buckets {measured}")
            sends = figures.get("produce_all", {}).get("count", 0)
            if sends > 0 and points == 0:
                failures.append(f"no latency point although the figures measured {sends} acknowledged sends")
        if not failures:
            print(f"  latency: {drawn} point(s)")
    return failures


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
        parts = found[0].get_attribute("data-partitions")
        charts = len(d.find_elements(By.CSS_SELECTOR, "#timelines svg"))
        if parts is None or not parts.isdigit():
            failures.append(f"#timelines has no data-partitions number ({parts!r})")
        else:
            parts = int(parts)
            if parts < 1:
                failures.append("the page declares no partition")
            if charts != parts:
                failures.append(f"{charts} timeline(s) for {parts} partition(s)")
            in_json = partitions_in_json(page)
            if in_json is not None and in_json != parts:
                failures.append(f"the page declares {parts} partition(s), report.json lists {in_json}")
            if not failures:
                print(f"  timelines: {charts} for {parts} partition(s)"
                      + (f", report.json lists {in_json}" if in_json is not None else ""))
    failures += check_pictures(d, page)

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
    def without_svg(text, cls):
        start = text.find(f'<svg class="{cls}"')
        if start < 0:
            return text
        end = text.find("</svg>", start) + len("</svg>")
        return text[:start] + text[end:]

    put("chart-missing", without_svg(html, "timeline"), "timeline(s) for")
    put("empty", "<!doctype html><html><head><meta charset=utf-8></head><body></body></html>",
        "no #timelines")
    put("latency-missing", without_svg(html, "latency"), "no latency chart")
    put("latency-hidden", html.replace("</head>", "<style>svg.latency{display:none}</style></head>"),
        "latency chart is drawn with no size")
    # Bars removed: only a page with windows can lose them; one without says it has one more.
    bars = re.compile(r'<rect class="window".*?</rect>', re.S)
    if bars.search(html):
        put("bars-missing", bars.sub("", html), "window bar(s) for")
        put("bars-hidden", html.replace("</head>", "<style>rect.window{display:none}</style></head>"),
            "window bar(s) drawn with no size")
    else:
        more = re.sub(r'(<div id="timelines" data-partitions="\d+" data-windows=")(\d+)',
                      lambda m: m.group(1) + str(int(m.group(2)) + 1), html)
        put("bars-missing", more, "window bar(s) for")
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
