"""`riptide certify --scenario elastic` against real `riptide broker` processes (issue 30).

The simulator's elastic events as hook sequences of ci/riptide-cluster.sh: spares started several
at once (their start hook), half the brokers killed for good, a traffic spike (the producers'
pace, no hook), and every serving broker killed and started again in turn. The cluster must
come through with nothing lost, and the report must carry the windows these events opened.
"""

from __future__ import annotations

import json

from e2e_util import certify, hooks_flags


def test_certify_elastic_events_as_hook_sequences(riptide_bin, tmp_path, cluster_factory):
    c = cluster_factory()
    spares = ",".join(f"127.0.0.1:{c.base + i}" for i in (3, 4))
    out = tmp_path / "report"
    # Seed 1 of `elastic` with two spares (see `--plan`): every broker replaced in turn from
    # 6.7 s, both spares started at 21 s, spikes (x5, x3) from 27.6 s to 38.6 s, half the
    # brokers (the two spares) killed for good at 45 s.
    args = ["--scenario", "elastic", "--seed", "1", "--duration", "60s", "--recovery", "12s",
            "--spare", spares, *hooks_flags()]
    plan = certify(riptide_bin, c.bootstrap(), out, *args, "--plan", env=c.env)
    assert plan.returncode == 0, plan.stderr[-2000:]
    r = certify(riptide_bin, c.bootstrap(), out, *args, env=c.env, timeout=600)
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr[-3000:]}\n{c.logs()}"
    rep = json.loads((out / "report.json").read_text())
    assert rep["verdict"] == "pass"
    applied = rep["faults_applied"]
    kinds = {a["fault"]["kind"] for a in applied}
    assert {"scale-out-many", "scale-in-half", "spike", "replace"} <= kinds, (kinds, plan.stdout)
    # Every hook ran: spares started, brokers killed and started again.
    hooks = [a["hook"] for a in applied if a.get("hook")]
    assert hooks and all(h["ok"] for h in hooks), hooks
    commands = " ".join(h["command"] for h in hooks)
    assert " start 3" in commands and " start 4" in commands, commands
    # A rolling replacement replaced each broker serving then, one at a time.
    replaced = [a for a in applied if a["fault"]["kind"] == "replace"]
    starts = [a["at_ms"] for a in replaced if a["phase"] == "start"]
    heals = [a["at_ms"] for a in replaced if a["phase"] == "heal"]
    assert len(starts) == len(heals) >= 3 and all(h <= s for h, s in zip(heals, starts[1:])), replaced
    # The spike sped producers up: more sends while it lasted than as long before it began.
    spike = next(a for a in applied if a["fault"]["kind"] == "spike" and a["phase"] == "start")
    heal = next(a for a in applied if a["id"] == spike["id"] and a["phase"] == "heal")
    begin, end = spike["at_ms"] * 10**6, heal["at_ms"] * 10**6
    sends = [op["time_ns"] for op in map(json.loads, (out / "history.jsonl").open())
             if op["kind"] == "invoke" and op["f"] == "send"]
    during = sum(begin <= t < end for t in sends)
    before = sum(2 * begin - end <= t < begin for t in sends)
    assert during > 2 * before, (before, during)
    counts = rep["report"]["summary"]["by_f"]
    assert counts["send"]["ok"] > 500 and counts["final_read"]["ok"] == 4, counts
