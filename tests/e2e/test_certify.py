"""`riptide certify` against real `riptide broker` processes (issue 6).

Three brokers share one data directory; `ci/riptide-cluster.sh` starts them and is also the
kill/start/pause/resume hook. Certification goes through the built-in proxy.

1. A healthy cluster under proxy faults plus kill/restart and pause/resume hooks passes, and the
   hooks really ran.
2. A cluster started with a planted bug fails with the finding the bug causes.
3. An unreachable target is "could not run" (exit 2), not a verdict.
"""

from __future__ import annotations

import json

from e2e_util import certify, free_base, hooks_flags

def test_certify_three_brokers_with_hooks_passes(riptide_bin, tmp_path, cluster_factory):
    c = cluster_factory()
    out = tmp_path / "report"
    # chaos seed 1 (45 s, 12 s recovery) crashes, pauses, partitions, slows links and loses
    # replies: `riptide certify ... --plan` prints its schedule.
    r = certify(riptide_bin, c.bootstrap(), out, "--scenario", "chaos", "--seed", "1",
                "--duration", "45s", "--recovery", "12s", *hooks_flags(), env=c.env)
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr[-3000:]}\n{c.logs()}"
    for name in ("report.md", "report.json", "report.html", "history.jsonl"):
        assert (out / name).stat().st_size > 0, name
    rep = json.loads((out / "report.json").read_text())
    assert rep["verdict"] == "pass"
    applied = rep["faults_applied"]
    kinds = {(a["fault"]["kind"], a["phase"]) for a in applied}
    # The seed's schedule kills and pauses nodes through the hooks, and every hook ran.
    assert ("crash", "start") in kinds and ("crash", "heal") in kinds, kinds
    assert ("pause", "start") in kinds, kinds
    hooks = [a["hook"] for a in applied if a.get("hook")]
    assert hooks and all(h["ok"] for h in hooks), hooks
    # Proxy faults too: something besides hooks was injected.
    assert any(k in ("partition", "link-slow", "replies-lost", "connections-cut")
               for k, _ in kinds), kinds
    # The workload really ran through faults and the compatibility table has no failures.
    counts = rep["report"]["summary"]["by_f"]
    assert counts["send"]["ok"] > 500 and counts["final_read"]["ok"] == 4, counts
    assert not [row for row in rep["compatibility"] if row["status"].startswith("FAILED")]
    assert rep["proxy"]["rewritten"] > 0 and rep["proxy"]["rewrite_failures"] == 0
    md = (out / "report.md").read_text()
    assert "not deterministic" in md and "## Compatibility" in md
    html = (out / "report.html").read_text()
    assert html.count('<svg class="timeline"') == 4 and "<script" not in html
    # Coverage: the points certify can see (its clients, proxy and nemesis), never a broker's.
    cov = rep["coverage"]
    assert cov and not [k for k in cov if k.startswith("broker/") or k.startswith("sim/")], sorted(cov)
    assert cov["workloads/producer.pipelined"] > 0 or cov["workloads/consumer.commit_inside_batch"] > 0, cov
    assert any(n > 0 for k, n in cov.items() if k.startswith("faults/in_flight.")), cov
    assert "## Coverage" in md and "<h2>Coverage</h2>" in html
    assert "coverage    " in r.stdout


def test_certify_catches_a_planted_bug(riptide_bin, tmp_path, cluster_factory):
    # drop-batch-tail acknowledges a group commit but drops its last batch: acknowledged writes
    # vanish, which the simulator reports as lost-write; so must certification.
    c = cluster_factory("--bug drop-batch-tail")
    out = tmp_path / "report"
    # Bursts larger than a batch go out as several batches of one partition in pipelined
    # requests, which the broker commits together: the group whose tail it drops.
    r = certify(riptide_bin, c.bootstrap(), out, "--scenario", "baseline", "--seed", "1",
                "--duration", "20s", "--batch-records", "1..=4", "--burst-records", "8..=24",
                "--max-in-flight", "5", env=c.env)
    assert r.returncode == 1, f"exit {r.returncode}\n{r.stdout}\n{r.stderr[-3000:]}"
    rep = json.loads((out / "report.json").read_text())
    assert rep["verdict"] == "fail"
    findings = rep["report"]["findings"]
    assert any(f["anomaly"] == "lost-write" for f in findings), findings[:3]
    # Ranked: a lost write is the worst class, and the verdict says so.
    assert rep["report"]["worst"] == "data-loss"
    assert "FAIL, worst: data loss or corruption" in (out / "report.md").read_text()
    # Every finding comes with the ops that prove it.
    assert len(rep["evidence"]) == len(findings)
    for f, ev in zip(findings, rep["evidence"]):
        assert ev and {e["index"] for e in ev} == set(f["ops"]), (f, ev)
    assert "lost-write" in (out / "report.md").read_text()


def test_certify_unreachable_target_is_exit_2(riptide_bin, tmp_path):
    base = free_base(1)
    r = certify(riptide_bin, f"127.0.0.1:{base}", tmp_path / "report", "--duration", "10s",
                "--scenario", "baseline", timeout=120)
    assert r.returncode == 2, f"exit {r.returncode}\n{r.stdout}\n{r.stderr[-2000:]}"
    assert "could not reach the cluster" in r.stderr


def test_certify_rejects_unknown_scenario(riptide_bin, tmp_path):
    r = certify(riptide_bin, "127.0.0.1:1", tmp_path / "report", "--scenario", "nope", timeout=30)
    # clap refuses it before anything runs, naming the flag and the scenarios it knows.
    assert r.returncode == 2, r.stderr
    assert "invalid value 'nope' for '--scenario" in r.stderr, r.stderr
    assert "baseline, network, crashes, store, transactions, chaos" in r.stderr, r.stderr
