"""Verdicts a person (and a CI script) can act on, through the binary: severity on the verdict
line, --allow and its exit code, coverage in sim and sweep, and histories through Jepsen's EDN
format and back. (No broker needed: simulations and files.)"""

from __future__ import annotations

import json
import pathlib
import subprocess

FIXTURE = pathlib.Path(__file__).resolve().parents[2] / "checker/tests/fixtures/jepsen-kafka.edn"


def run(riptide_bin, *args, timeout=300):
    return subprocess.run([str(riptide_bin), *map(str, args)], capture_output=True, text=True, timeout=timeout)


def test_a_history_goes_to_jepsen_format_and_back_with_the_same_findings(riptide_bin, tmp_path):
    out = tmp_path / "seed"
    p = run(riptide_bin, "sim", "--seed", 1, "--scenario", "baseline", "--bug", "mid-batch-fetch-skip",
            "--out", out)
    assert p.returncode == 1, p.stdout + p.stderr
    edn = tmp_path / "history.edn"
    p = run(riptide_bin, "check", out / "history.jsonl", "--export", "jepsen", "--output", edn, "--json")
    assert p.returncode == 1, p.stderr
    original = json.loads(p.stdout)
    # The broker's own assertion catches the skip (data loss), the checkers the poll-skip (contract).
    assert original["worst"] == "data-loss" and original["findings"]
    assert original["counts"]["broken-invariant"] > 0 and original["counts"]["poll-skip"] > 0
    text = edn.read_text()
    assert ":f :send" in text and "[[:poll {" in text and ":riptide/keys" in text
    p = run(riptide_bin, "check", edn, "--import", "jepsen", "--json")
    assert p.returncode == 1, p.stderr
    back = json.loads(p.stdout)
    assert back["findings"] == original["findings"]
    assert back["counts"] == original["counts"]


def test_a_hand_written_jepsen_history_and_allow(riptide_bin):
    p = run(riptide_bin, "check", FIXTURE, "--import", "jepsen")
    assert p.returncode == 1, p.stderr
    assert "verdict: FAIL, worst: data loss or corruption" in p.stdout, p.stdout
    assert "skipped 2 op(s) with :f :crash" in p.stderr
    kinds = ["duplicate", "inconsistent-offsets", "replay-mismatch", "poll-skip", "int-poll-skip",
             "nonmonotonic-poll", "int-nonmonotonic-poll", "nonmonotonic-send", "int-nonmonotonic-send"]
    allow = [a for k in kinds for a in ("--allow", k)]
    p = run(riptide_bin, "check", FIXTURE, "--import", "jepsen", *allow[:-2])
    assert p.returncode == 1, "one kind not allowed still fails"
    assert "worst: contract violation" in p.stdout, p.stdout
    p = run(riptide_bin, "check", FIXTURE, "--import", "jepsen", *allow)
    assert p.returncode == 0, p.stdout
    assert "verdict: PASS (only allowed findings: 12)" in p.stdout
    assert "allowed findings (--allow):" in p.stdout
    p = run(riptide_bin, "check", FIXTURE, "--import", "jepsen", "--allow", "no-such-kind")
    assert p.returncode == 2 and "--allow" in p.stderr


def test_sim_and_sweep_report_coverage(riptide_bin, tmp_path):
    p = run(riptide_bin, "sim", "--seed", 2, "--scenario", "crashes", "--json", "--out", tmp_path / "s")
    assert p.returncode == 0, p.stderr
    cov = json.loads(p.stdout)["coverage"]
    assert cov["broker/log.claimed"] > 0 and "faults/in_flight.crash" in cov
    assert json.loads((tmp_path / "s" / "coverage.json").read_text()) == cov
    p = run(riptide_bin, "sweep", "--scenario", "crashes", "--seeds", "1..=3", "--jobs", 2,
            "--failures", tmp_path / "f.txt")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "coverage     " in p.stdout and "points reached over 3 seeds" in p.stdout
    assert "NEVER REACHED by any of the 3 seeds" in p.stdout
    p = run(riptide_bin, "sweep", "--scenario", "crashes", "--seeds", "1..=3", "--jobs", 2, "--json",
            "--failures", tmp_path / "f.txt")
    tally = json.loads(p.stdout)["coverage"]
    assert tally["seeds"] == 3
    claimed = tally["points"]["broker/log.claimed"]
    assert claimed["seeds"] == 3 and claimed["first_seed"] == 1
    p = run(riptide_bin, "sweep", "--scenario", "crashes", "--seeds", "1..=2", "--json", "--no-coverage",
            "--failures", tmp_path / "f.txt")
    assert json.loads(p.stdout)["coverage"] is None
