"""Acceptance 3: three brokers on 127.0.0.1:9092, 9093 and 9094 share one data directory; partition
ownership is spread over them; one is killed with SIGKILL in the middle of a produce stream.

The producer (acks=all, retries on, idempotence off) carries on after refreshing metadata; run with
kafka-python (one request in flight; its retries are tracked exactly) and with confluent-kafka
(librdkafka, up to 5 in flight; "retried" = in flight when the broker died). The kill comes from
another thread while the stream is sending, so requests are in flight. Afterwards a fresh consumer reads every partition from 0 and we check:
every acknowledged message is present at the offset it was acknowledged with, offsets are contiguous
from 0, and the only duplicates are of messages whose send the client retried.
"""

from __future__ import annotations

import collections
import random
import signal
import threading
import time

import pytest

from e2e_util import (
    CkStreamProducer,
    StreamProducer,
    TailingConsumer,
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
N = 12000
RATE = 1000.0         # msgs/s: the stream lasts ~12 s
KILL_AT = 4000        # ~4 s in
RANDOM_SEED = 7
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


def make_stream(client: str, bootstrap, topic, msgs, rate):
    if client == "kafka-python":
        return StreamProducer(bootstrap, topic, msgs, rate=rate)
    return CkStreamProducer(bootstrap, topic, msgs, rate=rate)


def async_kill(proc, sp, marks: dict, threads: list, max_delay: float = 0.02):
    """SIGKILL `proc` from another thread a few ms from now, while the stream keeps sending, so
    that requests are in flight when the broker dies."""
    rng = random.Random(RANDOM_SEED)

    def do():
        time.sleep(rng.uniform(0, max_delay))
        t = time.monotonic()
        proc.kill(signal.SIGKILL)
        marks["kill"] = t
        marks["sent_at_kill"] = sp.sent_count
        marks["acked_at_kill"] = len(sp.acked)

    th = threading.Thread(target=do, name="killer")
    th.start()
    threads.append(th)


@pytest.mark.parametrize("client", ["kafka-python", "confluent-kafka"])
def test_three_brokers_sigkill_one_mid_stream(harness, tmp_path, client):
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
    sp = make_stream(client, [brokers[p].bootstrap for p in PORTS], topic, msgs, RATE)
    tail = TailingConsumer(client, [brokers[p].bootstrap for p in PORTS], topic, PARTITIONS).start()
    try:
        run_and_check(client, brokers, victim, victim_port, survivors, topic, msgs, sp, tail)
    finally:
        tail.stop()


def run_and_check(client, brokers, victim, victim_port, survivors, topic, msgs, sp, tail):
    marks, threads = {}, []
    sp.run(events={KILL_AT: lambda: async_kill(victim, sp, marks, threads)})
    for th in threads:
        th.join()
    sp.finish(timeout=90)
    assert not victim.alive()
    t_kill = marks["kill"]
    in_flight = sp.in_flight_at(t_kill)
    if isinstance(sp, CkStreamProducer):
        sp.mark_possibly_retried(t_kill)
    retried = sp.retried_indices()
    print(f"{client}: SIGKILL broker {victim_port} after {marks['sent_at_kill']} sends, {marks['acked_at_kill']} acked, "
          f"{len(in_flight)} in flight; acked {len(sp.acked)}/{N}; longest send->ack after the kill "
          f"{sp.max_latency(sent_after=t_kill):.2f}s (whole stream: {sp.max_latency():.2f}s); "
          f"retried sends {len(retried)}; app re-sends {len(sp.app_resent)}")

    unacked = sp.unacked()
    assert not unacked, (f"{len(unacked)} messages were never acknowledged after the kill (the client did not "
                         f"carry on); e.g. {[(i, sp.errors.get(i)) for i in unacked[:5]]}")

    live = set(survivors)
    after = wait_for_spread(brokers[survivors[0]].bootstrap, topic, live, timeout=30)
    print(f"leadership after the kill: {dict(sorted(after.items()))}")

    recs = kp_read_all([brokers[p].bootstrap for p in survivors], topic, PARTITIONS, timeout=60)
    res = check_log(msgs, recs, TAG, acked=sp.acked, exact=False, allowed_dups=retried,
                    unordered_ok=sp.app_resent | (retried if client == "confluent-kafka" else set()),
                    partitions=PARTITIONS)
    print(f"read back {res.total_records} records; per partition {res.per_partition}; "
          f"{len(res.duplicates)} duplicated messages (all retried: {set(res.duplicates) <= retried})")
    assert res.ok(), res.summary()

    # the consumer that was tailing the topic through the kill carries on to the end, consistently
    reached = tail.finish(res.per_partition, timeout=30)
    print(f"tailing {client} consumer read {len(tail.records)} records; client errors: {tail.errors[:3]}")
    assert reached, (f"the tailing consumer did not reach the high watermarks {res.per_partition} within 30 s "
                     f"after the produce stream ended; errors: {tail.errors[:5]}")
    problems = tail.check(recs)
    assert not problems, "tailing consumer: " + "; ".join(problems)
