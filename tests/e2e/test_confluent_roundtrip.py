"""The acceptance-2 round trip with confluent-kafka (a librdkafka 2.x wheel, much newer than the
librdkafka 2.0.2 inside Debian's kcat: old and new librdkafka negotiate versions differently).

10,000 keyed messages, acks=all, into a new 4-partition topic created with the admin client; read back
exactly those, in order per partition, offsets contiguous from 0, each at its acknowledged offset.
Run with idempotence off (librdkafka's default) and on.
"""

from __future__ import annotations

import time

import pytest

from e2e_util import advertised_apis, check_log, ck_read_all, make_messages, unique_topic

INIT_PRODUCER_ID = 22

N = 10_000
PARTITIONS = 4
TAG = "ck"


@pytest.mark.parametrize("idempotent", [False, True], ids=["plain", "idempotent"])
def test_confluent_kafka_roundtrip_10k(harness, idempotent):
    import confluent_kafka
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    print("confluent-kafka", confluent_kafka.version(), "librdkafka", confluent_kafka.libversion())
    b = harness.broker()
    if idempotent and INIT_PRODUCER_ID not in advertised_apis(b.port):
        pytest.skip("the broker does not advertise InitProducerId (api key 22): no idempotent producer yet")
    topic = unique_topic("ck")
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    fs = admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)],
                             operation_timeout=30)
    fs[topic].result(timeout=30)

    msgs = make_messages(N, tag=TAG)
    acked, failed = {}, {}

    def on_delivery(err, m, i):
        if err is not None:
            failed[i] = str(err)
        else:
            acked[i] = (m.partition(), m.offset())

    prod = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5,
                     "enable.idempotence": idempotent, "message.timeout.ms": 60000})
    t0 = time.monotonic()
    for i, (k, v) in enumerate(msgs):
        while True:
            try:
                prod.produce(topic, key=k, value=v, on_delivery=lambda err, m, i=i: on_delivery(err, m, i))
                break
            except BufferError:
                prod.poll(0.05)
        prod.poll(0)
    left = prod.flush(90)
    print(f"produced {len(acked)}/{N} in {time.monotonic() - t0:.2f}s")
    assert left == 0, f"{left} messages still undelivered after flush"
    assert not failed, f"{len(failed)} deliveries failed, e.g. {list(failed.items())[:5]}"
    assert len(acked) == N

    recs = ck_read_all(b.bootstrap, topic, PARTITIONS, timeout=60)
    res = check_log(msgs, recs, TAG, acked=acked, exact=True, partitions=PARTITIONS)
    print(f"read back {len(recs)} records; per partition {res.per_partition}")
    assert res.ok(), res.summary()
    assert len(recs) == N
    assert all(res.per_partition.get(p, 0) > 0 for p in range(PARTITIONS)), res.per_partition
