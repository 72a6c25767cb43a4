"""Acceptance 5: the round trip works with `--s3` against a moto server started by the test.

moto is started on a free port, the bucket is created with boto3, the broker runs with
`--s3 s3://BUCKET --s3-endpoint http://127.0.0.1:PORT` and dummy credentials. confluent-kafka produces
5,000 keyed messages (acks=all) to a new 4-partition topic, kafka-python reads them back.
"""

from __future__ import annotations

import time

from e2e_util import check_log, kp_create_topic, kp_read_all, make_messages, unique_topic

N = 5000
PARTITIONS = 4
TAG = "s3"


def test_s3_moto_roundtrip(harness):
    from confluent_kafka import Producer

    moto = harness.moto()
    bucket = moto.create_bucket("riptide-e2e")
    b = harness.broker(s3=f"s3://{bucket}", s3_endpoint=moto.endpoint)
    topic = unique_topic("s3")
    kp_create_topic(b.bootstrap, topic, PARTITIONS)
    before = moto.object_count(bucket)

    msgs = make_messages(N, tag=TAG)
    acked, failed = {}, {}

    def on_delivery(err, m, i):
        if err is not None:
            failed[i] = str(err)
        else:
            acked[i] = (m.partition(), m.offset())

    prod = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5,
                     "message.timeout.ms": 60000})
    t0 = time.monotonic()
    for i, (k, v) in enumerate(msgs):
        while True:
            try:
                prod.produce(topic, key=k, value=v, on_delivery=lambda err, m, i=i: on_delivery(err, m, i))
                break
            except BufferError:
                prod.poll(0.05)
        prod.poll(0)
    assert prod.flush(90) == 0, "messages still undelivered after flush"
    print(f"produced {len(acked)}/{N} to moto-backed broker in {time.monotonic() - t0:.2f}s")
    assert not failed, f"{len(failed)} deliveries failed, e.g. {list(failed.items())[:5]}"

    after = moto.object_count(bucket)
    print(f"objects in bucket: {before} before produce, {after} after")
    assert after > before, "produce acknowledged but nothing new was written to the S3 bucket"

    recs = kp_read_all(b.bootstrap, topic, PARTITIONS, timeout=60)
    res = check_log(msgs, recs, TAG, acked=acked, exact=True, partitions=PARTITIONS)
    print(f"read back {len(recs)} records; per partition {res.per_partition}")
    assert res.ok(), res.summary()
    assert len(recs) == N
