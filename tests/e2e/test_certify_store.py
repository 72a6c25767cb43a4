"""`riptide certify` with object-store faults (issue 15): the S3 fault proxy between each broker and
its bucket.

One moto server holds the bucket. `riptide store-proxy` runs three proxies in endpoint mode, one per
broker, and the brokers (`riptide broker --s3`, started by ci/riptide-cluster.sh) use them as their
S3 endpoints; certify attaches to the running proxies (`--store-proxy HOST:PORT`) and drives their
faults from the seed. The brokers run with `--s3-retries 0`, so every fault reaches the broker as
it does in the simulator (object_store's default ten retries hide a storm of a few seconds).

1. Three healthy brokers pass `certify --scenario chaos` with every store fault kind applied and
   each of them hitting requests.
2. From store faults alone (no hooks), `--bug ack-before-commit` fails with lost-write and
   `--bug reserve-then-write` with offset-gap, exit 1.
3. Through the proxy, two racing create-if-absent PUTs on moto give one success and one 412, and a
   PUT with a stale If-Match is refused.
"""

from __future__ import annotations

import json
import threading
import urllib.request
import uuid

import pytest

from e2e_util import MOTO_ENV, certify, free_port, hooks_flags, port_accepts

STORE_KINDS = {"store-errors", "store-ambiguous", "store-late", "store-slow", "store-cut"}
# Seeds whose schedules are recorded here on purpose: `riptide certify --plan` shows them.
# chaos seed 34 (60 s, 15 s recovery) has all five store kinds, crashes and pauses.
CHAOS_SEED = 34
# store seed for the planted bugs (30 s, 8 s recovery).
BUG_SEED = 3


class StoreRig:
    """moto, one bucket, and a store proxy per broker in one `riptide store-proxy` process."""

    def __init__(self, harness, riptide_bin):
        self.moto = harness.moto()
        self.bucket = self.moto.create_bucket(f"certify-{uuid.uuid4().hex[:8]}")
        self.ports = [free_port() for _ in range(3)]
        specs = [f"127.0.0.1:{p}={self.moto.endpoint}" for p in self.ports]
        self.proc = harness.raw([str(riptide_bin), "store-proxy", *specs, "--seed", "5"],
                                "store-proxy")
        for p in self.ports:
            for _ in range(100):
                if port_accepts(p):
                    break
                if not self.proc.alive():
                    pytest.fail(f"store-proxy exited:\n{self.proc.log_tail(40)}", pytrace=False)
                threading.Event().wait(0.1)
            else:
                pytest.fail(f"store proxy on {p} never listened", pytrace=False)

    def broker_env(self) -> dict:
        endpoints = ",".join(f"http://127.0.0.1:{p}" for p in self.ports)
        return dict(MOTO_ENV, S3_URL=f"s3://{self.bucket}", S3_ENDPOINTS=endpoints)

    def flags(self) -> list[str]:
        out = []
        for p in self.ports:
            out += ["--store-proxy", f"127.0.0.1:{p}"]
        return out


def run_certify(riptide_bin, cluster, rig, tmp_path, *extra):
    out = tmp_path / f"report-{uuid.uuid4().hex[:6]}"
    r = certify(riptide_bin, cluster.bootstrap(), out, *rig.flags(), *extra, env=cluster.env)
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").exists() else None
    return r, report, out


def test_three_s3_brokers_behind_store_proxies_pass_chaos(riptide_bin, tmp_path, harness,
                                                          cluster_factory):
    rig = StoreRig(harness, riptide_bin)
    c = cluster_factory("--s3-retries 0", env=rig.broker_env())
    r, rep, out = run_certify(riptide_bin, c, rig, tmp_path, "--scenario", "chaos", "--seed",
                              str(CHAOS_SEED), "--duration", "60s", "--recovery", "15s",
                              *hooks_flags())
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr[-3000:]}\n{c.logs()}"
    assert rep["verdict"] == "pass"
    applied = rep["faults_applied"]
    # Each store kind started and healed, and hit requests while it was in force.
    hits: dict[str, int] = {}
    for a in applied:
        kind = a["fault"]["kind"]
        if kind in STORE_KINDS and a["phase"] == "heal":
            hits[kind] = hits.get(kind, 0) + (a["hits"] or 0)
    assert set(hits) == STORE_KINDS, hits
    assert all(n > 0 for n in hits.values()), hits
    # Hooks ran too: this is chaos, not store faults alone.
    kinds = {a["fault"]["kind"] for a in applied}
    assert {"crash", "pause"} <= kinds, kinds
    # What the brokers did to their store, per node: they write create-if-absent, and are not
    # flagged for it.
    store = rep["store"]
    assert len(store) == 3, store
    for node in store:
        ops = node["ops"]
        assert ops["PUT (If-None-Match)"]["requests"] > 0, ops
        assert ops["GET"]["requests"] + ops.get("GET (ranged)", {"requests": 0})["requests"] > 0
    md = (out / "report.md").read_text()
    assert "## Object store" in md and "never wrote conditionally" not in md.lower()
    html = (out / "report.html").read_text()
    assert "store-late" in html and "requests hit" in html


@pytest.mark.parametrize("bug,anomaly", [("ack-before-commit", "lost-write"),
                                         ("reserve-then-write", "offset-gap")])
def test_store_faults_alone_catch_planted_store_bugs(riptide_bin, tmp_path, harness,
                                                     cluster_factory, bug, anomaly):
    rig = StoreRig(harness, riptide_bin)
    c = cluster_factory(f"--s3-retries 0 --bug {bug}", env=rig.broker_env())
    r, rep, _ = run_certify(riptide_bin, c, rig, tmp_path, "--scenario", "store", "--seed",
                            str(BUG_SEED), "--duration", "30s", "--recovery", "8s")
    assert r.returncode == 1, f"exit {r.returncode}\n{r.stdout}\n{r.stderr[-3000:]}\n{c.logs()}"
    assert rep["verdict"] == "fail"
    found = {f["anomaly"] for f in rep["report"]["findings"]}
    assert anomaly in found, found
    # Nothing but store faults ran: no hooks, no client-link faults.
    kinds = {a["fault"]["kind"] for a in rep["faults_applied"]}
    assert kinds and kinds <= STORE_KINDS, kinds


def test_racing_conditional_puts_through_the_proxy(riptide_bin, harness):
    rig = StoreRig(harness, riptide_bin)
    import boto3
    from botocore.exceptions import ClientError

    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{rig.ports[0]}",
                      region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")

    def status(call) -> int:
        try:
            call()
            return 200
        except ClientError as e:
            return e.response["ResponseMetadata"]["HTTPStatusCode"]

    for i in range(20):
        key = f"race/{i}"
        results: list[int] = []
        barrier = threading.Barrier(2)

        def put(body: bytes, key=key, results=results, barrier=barrier):
            barrier.wait()
            results.append(status(lambda: s3.put_object(Bucket=rig.bucket, Key=key, Body=body,
                                                         IfNoneMatch="*")))

        threads = [threading.Thread(target=put, args=(b,)) for b in (b"a", b"b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(results) == [200, 412], (key, results)

    # If-Match: the current ETag replaces the object, a stale one is refused.
    etag = s3.head_object(Bucket=rig.bucket, Key="race/0")["ETag"]
    assert status(lambda: s3.put_object(Bucket=rig.bucket, Key="race/0", Body=b"c",
                                        IfMatch=etag)) == 200
    assert status(lambda: s3.put_object(Bucket=rig.bucket, Key="race/0", Body=b"d",
                                        IfMatch=etag)) == 412
    # The proxy counted what passed through it, by operation and status.
    obs = json.loads(urllib.request.urlopen(
        f"http://127.0.0.1:{rig.ports[0]}/_riptide/observed", timeout=5).read())
    ops = obs["ops"]
    assert ops["PUT (If-None-Match)"]["statuses"] == {"200": 20, "412": 20}, ops
    assert ops["PUT (If-Match)"]["statuses"] == {"200": 1, "412": 1}, ops
