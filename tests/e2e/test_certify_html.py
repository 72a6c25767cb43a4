"""`riptide certify`'s report.html in a real browser (issue 30).

Three reference brokers (ci/riptide-cluster.sh) certified under the `crashes` scenario with the
kill/start (and pause/resume) hooks, then the page opened in headless Chromium by
ci/html-check.sh (ci/html_check.py): one timeline per partition, window bars with a size for
every window of the figures in report.json, a latency chart with a size and a point per bucket
the figures measured, no console error, a screenshot that is not one colour (kept in tmp_path).
Skipped only when Chromium cannot be installed (html-check.sh --install-only exits 2).
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from e2e_util import REPO_ROOT, certify, hooks_flags

HTML_CHECK = REPO_ROOT / "ci" / "html-check.sh"


def html_check(*args: str, env: dict | None = None, timeout: int = 900):
    return subprocess.run(["bash", str(HTML_CHECK), *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_certify_report_of_three_brokers_with_a_crash_hook_shows_its_pictures(riptide_bin, tmp_path,
                                                                              cluster_factory):
    # Before the cluster: no browser, nothing to look with (skip); a failed install is a skip too.
    ready = html_check("--install-only")
    if ready.returncode == 2:
        pytest.skip(f"headless Chromium cannot be installed here: {ready.stderr.strip()[-500:]}")
    assert ready.returncode == 0, ready.stdout + ready.stderr

    c = cluster_factory()
    out = tmp_path / "report"
    # crashes seed 3 (30 s, 10 s recovery) on three nodes: kills and restarts two of them through
    # the hooks and pauses two (`riptide certify ... --plan` prints the schedule).
    r = certify(riptide_bin, c.bootstrap(), out, "--scenario", "crashes", "--seed", "3",
                "--duration", "30s", "--recovery", "10s", *hooks_flags(), env=c.env)
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr[-3000:]}\n{c.logs()}"
    rep = json.loads((out / "report.json").read_text())
    kinds = {(a["fault"]["kind"], a["phase"]) for a in rep["faults_applied"]}
    assert ("crash", "start") in kinds and ("crash", "heal") in kinds, kinds
    hooks = [a["hook"] for a in rep["faults_applied"] if a.get("hook")]
    assert hooks and all(h["ok"] for h in hooks), hooks

    # The figures the page must draw: a crash stops writes somewhere, and sends were acknowledged.
    fig = rep["figures"]
    assert fig["windows"], "a crash of a node opens at least one window"
    assert fig["produce_all"]["count"] > 500 and fig["latency_over_time"]["buckets"], fig["produce_all"]
    html = (out / "report.html").read_text()
    assert html.count('<svg class="timeline"') == len(rep["report"]["summary"]["partitions"])
    assert '<table id="windows">' in html and '<table id="latency-by-phase">' in html
    assert "<script" not in html

    shot = tmp_path / "report.png"
    checked = html_check(str(out / "report.html"), env={"SCREENSHOT": str(shot)})
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "html-check: OK" in checked.stdout
    assert f"windows: {len(fig['windows'])} in " in checked.stdout, checked.stdout
    assert "latency: " in checked.stdout, checked.stdout
    assert shot.stat().st_size > 10_000, "a screenshot of the whole page"
