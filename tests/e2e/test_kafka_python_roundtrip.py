"""Acceptance 2: kafka-python round trip of 10,000 keyed messages (acks=all) through a new
4-partition topic created with CreateTopics; read back exactly those, in order per partition,
offsets contiguous from 0, each at the offset the broker acknowledged.

Run twice: idempotence off, and kafka-python's defaults (kafka-python 3 turns idempotence on when
the broker's ApiVersions say it can: InitProducerId + sequence numbers).
"""

from __future__ import annotations

import time

import pytest

from e2e_util import check_log, kp_create_topic, kp_read_all, make_messages, unique_topic

N = 10_000
PARTITIONS = 4
TAG = "kp"


@pytest.mark.parametrize("idempotent", [False, None], ids=["plain", "client-defaults"])
def test_kafka_python_roundtrip_10k(harness, idempotent):
    from kafka import KafkaProducer

    b = harness.broker()
    topic = unique_topic("kpy")
    kp_create_topic(b.bootstrap, topic, PARTITIONS)

    msgs = make_messages(N, tag=TAG)
    cfg = dict(bootstrap_servers=b.bootstrap, acks="all", linger_ms=5, client_id="riptide-e2e-kp",
               request_timeout_ms=30000)
    if idempotent is not None:
        cfg["enable_idempotence"] = idempotent
    prod = KafkaProducer(**cfg)
    print("kafka-python", __import__("kafka").__version__, "idempotence:", prod.config.get("enable_idempotence"))
    t0 = time.monotonic()
    futs = [prod.send(topic, key=k, value=v) for k, v in msgs]
    prod.flush(timeout=60)
    acked, failed = {}, {}
    for i, f in enumerate(futs):
        try:
            md = f.get(timeout=30)
            acked[i] = (md.partition, md.offset)
        except Exception as e:  # noqa: BLE001 - collected and reported below
            failed[i] = repr(e)
    prod.close(timeout=10)
    print(f"produced {len(acked)}/{N} in {time.monotonic() - t0:.2f}s")
    assert not failed, f"{len(failed)} sends failed, e.g. {list(failed.items())[:5]}"

    recs = kp_read_all(b.bootstrap, topic, PARTITIONS, timeout=60)
    res = check_log(msgs, recs, TAG, acked=acked, exact=True, partitions=PARTITIONS)
    print(f"read back {len(recs)} records; per partition {res.per_partition}")
    assert res.ok(), res.summary()
    assert len(recs) == N
    assert all(res.per_partition.get(p, 0) > 0 for p in range(PARTITIONS)), res.per_partition
