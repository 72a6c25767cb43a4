"""Acceptance 1: kcat (Debian's, librdkafka 2.0.2) produces 10,000 keyed messages with acks=all to a
new 4-partition topic; `kcat -C -e` reads back exactly those 10,000, in order per partition, offsets
contiguous from 0.

kcat cannot create a topic with a partition count, so the broker runs with `--partitions 4` and the
topic is auto-created by kcat's Metadata request.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from e2e_util import Rec, check_log, make_messages, unique_topic

N = 10_000
PARTITIONS = 4
TAG = "kc"


def kcat_bin() -> str:
    k = shutil.which("kcat") or shutil.which("kafkacat")
    if not k:
        pytest.fail("kcat is not installed (apt-get install -y kcat; ci/test.sh does it)", pytrace=False)
    return k


def run(argv, **kw):
    p = subprocess.run(argv, capture_output=True, timeout=kw.pop("timeout", 60), **kw)
    return p


def test_kcat_roundtrip_10k_keyed_acks_all(harness):
    kcat = kcat_bin()
    version = run([kcat, "-V"]).stdout.decode(errors="replace").splitlines()
    print("kcat:", " | ".join(version[:1] + [ln for ln in version if "librdkafka" in ln]))

    b = harness.broker(partitions=PARTITIONS)
    topic = unique_topic("kcat")
    msgs = make_messages(N, tag=TAG)
    stdin = b"".join(k + b":" + v + b"\n" for k, v in msgs)

    # -- produce: keyed (key delimiter ':'), acks=all
    p = run([kcat, "-P", "-b", b.bootstrap, "-t", topic, "-K:", "-X", "acks=all",
             "-X", "message.timeout.ms=30000", "-X", "linger.ms=5"], input=stdin, timeout=90)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0, f"kcat -P exited with {p.returncode}; stderr:\n{err[-3000:]}"
    assert "Delivery failed" not in err and "ERROR" not in err, f"kcat -P reported errors:\n{err[-3000:]}"

    # -- the topic exists with 4 partitions
    meta = run([kcat, "-L", "-b", b.bootstrap, "-t", topic, "-J"], timeout=30)
    assert meta.returncode == 0, f"kcat -L failed: {meta.stderr.decode(errors='replace')[-2000:]}"
    md = json.loads(meta.stdout)
    tmeta = [t for t in md.get("topics", []) if t.get("topic") == topic]
    assert tmeta, f"topic {topic} missing from kcat -L: {md}"
    assert len(tmeta[0]["partitions"]) == PARTITIONS, f"expected {PARTITIONS} partitions: {tmeta[0]}"

    # -- consume everything and exit at the end of every partition
    c = run([kcat, "-C", "-b", b.bootstrap, "-t", topic, "-o", "beginning", "-e", "-q",
             "-f", r"%p\t%o\t%k\t%s\n"], timeout=90)
    cerr = c.stderr.decode(errors="replace")
    assert c.returncode == 0, f"kcat -C exited with {c.returncode}; stderr:\n{cerr[-3000:]}"
    recs = []
    for line in c.stdout.splitlines():
        if not line:
            continue
        part, off, key, value = line.split(b"\t", 3)
        recs.append(Rec(int(part), int(off), key, value))

    res = check_log(msgs, recs, TAG, exact=True, partitions=PARTITIONS)
    print(f"read back {len(recs)} records; per partition {res.per_partition}")
    assert res.ok(), res.summary()
    assert len(recs) == N
    assert len([p for p, n in res.per_partition.items() if n > 0]) == PARTITIONS, (
        f"keys did not spread over all {PARTITIONS} partitions: {res.per_partition}")
