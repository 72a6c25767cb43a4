"""Acceptance 3: three brokers on 127.0.0.1:9092, 9093 and 9094 share one data directory; partition
ownership is spread over them; one is killed with SIGKILL in the middle of a produce stream.

The producer (kafka-python: acks=all, retries on, idempotence off, one request in flight) carries on
after refreshing metadata. Afterwards a fresh consumer reads every partition from 0 and we check:
every acknowledged message is present at the offset it was acknowledged with, offsets are contiguous
from 0, and the only duplicates are of messages whose send the client retried.
"""

from __future__ import annotations

import collections
import signal
import time

import pytest

from e2e_util import (
    StreamProducer,
    check_log,
    ck_metadata,
    kp_create_topic,
    kp_read_all,
    make_messages,
    port_in_use,
    unique_topic,
)

PORTS = (9092, 9093, 9094)
PARTITIONS = 6
N = 6000
RATE = 400.0          # msgs/s: the stream lasts ~15 s
KILL_AT = 2000        # ~5 s in
TAG = "cl"


def leaders(bootstrap: str, topic: str) -> tuple[set[int], dict[int, int]]:
    md = ck_metadata(bootstrap, topic, timeout=5)
    t = md.topics.get(topic)
    parts = {} if t is None or t.error is not None else {p.id: p.leader for p in t.partitions.values()}
    return set(md.brokers), parts


def wait_for_spread(bootstrap: str, topic: str, live: set[int], timeout: float = 30.0):
    """Until metadata lists exactly the live brokers and every partition has a live leader, spread
    over more than one broker."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            brokers, parts = leaders(bootstrap, topic)
            last = (brokers, parts)
            if (brokers == live and len(parts) == PARTITIONS and all(l in live for l in parts.values())
                    and len(set(parts.values())) > 1):
                return parts
        except Exception as e:  # noqa: BLE001 - retry until the deadline
            last = repr(e)
        time.sleep(0.5)
    raise AssertionError(f"metadata never showed brokers {sorted(live)} with partition leadership spread over "
                         f">1 of them within {timeout}s; last seen (brokers, partition->leader): {last}")


def test_three_brokers_sigkill_one_mid_stream(harness, tmp_path):
    busy = [p for p in PORTS if port_in_use(p)]
    if busy:
        pytest.fail(f"ports {busy} are in use on 127.0.0.1; this test needs 9092, 9093 and 9094 free", pytrace=False)
    data = tmp_path / "shared-data"
    brokers = {p: harness.broker(port=p, data=data, fixed_port=True) for p in PORTS}
    all_ids = set(PORTS)  # --node-id defaults to the listen port
    topic = unique_topic("cluster")
    kp_create_topic(brokers[9092].bootstrap, topic, PARTITIONS)

    parts = wait_for_spread(brokers[9092].bootstrap, topic, all_ids)
    per_broker = collections.Counter(parts.values())
    print(f"leadership before the kill: {dict(sorted(parts.items()))} -> {dict(per_broker)}")
    victim_port = max(per_broker, key=lambda b: (per_broker[b], b))
    victim = brokers[victim_port]
    survivors = [p for p in PORTS if p != victim_port]

    msgs = make_messages(N, tag=TAG)
    sp = StreamProducer([brokers[p].bootstrap for p in PORTS], topic, msgs, rate=RATE)
    kill_time = {}

    def kill():
        print(f"SIGKILL broker {victim_port} (pid {victim.pid}) after {sp.sent_count} sends, "
              f"{len(sp.acked)} acked")
        kill_time["t"] = time.monotonic()
        victim.kill(signal.SIGKILL)

    sp.run(events={KILL_AT: kill})
    sp.finish(timeout=90)
    acked_at_kill = sum(1 for t in sp.ack_time.values() if t < kill_time["t"])
    stall = sp.longest_ack_gap(after=kill_time["t"])
    retried = sp.retried_indices()
    print(f"acked {len(sp.acked)}/{N} ({acked_at_kill} before the kill); longest ack pause after the kill "
          f"{stall:.2f}s; client-retried sends: {len(retried)} (kafka-python retry tracking "
          f"{'on' if sp.tracking else 'OFF: app re-sends only'}); app re-sends: {len(sp.app_resent)}")
    assert not victim.alive()

    unacked = sp.unacked()
    assert not unacked, (f"{len(unacked)} messages were never acknowledged after the kill (the client did not "
                         f"carry on); e.g. {[(i, sp.errors.get(i)) for i in unacked[:5]]}")

    live = {p for p in survivors}
    after = wait_for_spread(brokers[survivors[0]].bootstrap, topic, live, timeout=30)
    print(f"leadership after the kill: {dict(sorted(after.items()))}")

    recs = kp_read_all([brokers[p].bootstrap for p in survivors], topic, PARTITIONS, timeout=60)
    res = check_log(msgs, recs, TAG, acked=sp.acked, exact=False, allowed_dups=retried,
                    unordered_ok=sp.app_resent, partitions=PARTITIONS)
    print(f"read back {res.total_records} records; per partition {res.per_partition}; "
          f"{len(res.duplicates)} duplicated messages (all retried: {set(res.duplicates) <= retried})")
    assert res.ok(), res.summary()
