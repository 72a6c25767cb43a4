"""Acceptance 4: a broker killed with SIGKILL during a produce stream and restarted on an empty local
disk, pointing at the same object store, serves every acknowledged message.

Two setups where the object store outlives the broker's local disk:
  * s3:         `--s3` against a moto server; each broker process runs in a fresh empty working dir.
  * shared-dir: `--data` points at a directory that plays the object store; the broker's working
                directory (its "local disk") is a fresh empty temp dir on each start.

The producer (kafka-python or confluent-kafka; acks=all, retries on, idempotence off) keeps sending through the outage
and carries on once the broker is back; then every acknowledged message must be read back at its
acknowledged offset, offsets contiguous from 0, duplicates only of retried sends.
"""

from __future__ import annotations

import random
import signal
import threading
import time

import pytest

from e2e_util import (
    CkStreamProducer,
    StreamProducer,
    check_log,
    dir_is_empty,
    kp_create_topic,
    kp_read_all,
    make_messages,
    unique_topic,
)

PARTITIONS = 4
N = 8000
RATE = 1000.0       # ~8 s of stream
KILL_AT = 3000
RESTART_AT = 4000   # ~1 s after the kill
TAG = "rs"


@pytest.mark.parametrize("client", ["kafka-python", "confluent-kafka"])
@pytest.mark.parametrize("store", ["s3", "shared-dir"])
def test_sigkill_then_restart_on_empty_disk(harness, tmp_path, store, client):
    disk1 = tmp_path / "disk-1"
    disk2 = tmp_path / "disk-2"
    if store == "s3":
        moto = harness.moto()
        bucket = moto.create_bucket("riptide-restart")
        b = harness.broker(s3=f"s3://{bucket}", s3_endpoint=moto.endpoint, cwd=disk1)
    else:
        moto = None
        b = harness.broker(data=tmp_path / "object-store", cwd=disk1)
    topic = unique_topic("restart")
    kp_create_topic(b.bootstrap, topic, PARTITIONS)

    msgs = make_messages(N, tag=TAG)
    if client == "kafka-python":
        sp = StreamProducer(b.bootstrap, topic, msgs, rate=RATE)
    else:
        sp = CkStreamProducer(b.bootstrap, topic, msgs, rate=RATE)
    marks, killer = {}, []
    rng = random.Random(11)

    def kill():
        # from another thread, a few ms from now, while the stream keeps sending
        def do():
            time.sleep(rng.uniform(0, 0.02))
            marks["kill"] = time.monotonic()
            marks["sent"], marks["acked"] = sp.sent_count, len(sp.acked)
            b.kill(signal.SIGKILL)
        killer.append(threading.Thread(target=do, name="killer"))
        killer[0].start()

    def restart():
        killer[0].join()
        disk2.mkdir()
        assert dir_is_empty(disk2)
        b.restart(cwd=disk2)
        marks["restart"] = time.monotonic()
        print(f"SIGKILL after {marks['sent']} sends ({marks['acked']} acked); restarted as pid {b.pid} in "
              f"empty dir {disk2.name} {marks['restart'] - marks['kill']:.2f}s after the kill")

    sp.run(events={KILL_AT: kill, RESTART_AT: restart})
    sp.finish(timeout=90)
    t_kill = marks["kill"]
    in_flight = sp.in_flight_at(t_kill)
    if isinstance(sp, CkStreamProducer):
        sp.mark_possibly_retried(t_kill)
    acked_before = sum(1 for t in sp.ack_time.values() if t < t_kill)
    retried = sp.retried_indices()
    print(f"{client}: acked {len(sp.acked)}/{N} ({acked_before} before the kill, {len(in_flight)} in flight at it); "
          f"longest send->ack after the restart {sp.max_latency(sent_after=marks['restart']):.2f}s; "
          f"retried sends {len(retried)}; app re-sends {len(sp.app_resent)}")
    if moto is not None:
        print(f"objects in the bucket: {moto.object_count(bucket)}")
    assert acked_before > 0, "nothing was acknowledged before the kill; the test proves nothing"

    unacked = sp.unacked()
    assert not unacked, (f"{len(unacked)} messages never acknowledged after the restart; "
                         f"e.g. {[(i, sp.errors.get(i)) for i in unacked[:5]]}")

    recs = kp_read_all(b.bootstrap, topic, PARTITIONS, timeout=60)
    unordered_ok = sp.app_resent | (retried if client == "confluent-kafka" else set())
    res = check_log(msgs, recs, TAG, acked=sp.acked, exact=False, allowed_dups=retried,
                    unordered_ok=unordered_ok, partitions=PARTITIONS)
    print(f"read back {res.total_records} records; per partition {res.per_partition}; "
          f"{len(res.duplicates)} duplicated messages")
    assert res.ok(), res.summary()

    # a second fresh process on yet another empty disk, nothing produced: still serves everything
    b.kill(signal.SIGKILL)
    disk3 = tmp_path / "disk-3"
    disk3.mkdir()
    b.restart(cwd=disk3)
    recs2 = kp_read_all(b.bootstrap, topic, PARTITIONS, timeout=60)
    res2 = check_log(msgs, recs2, TAG, acked=sp.acked, exact=False, allowed_dups=retried,
                     unordered_ok=unordered_ok, partitions=PARTITIONS)
    assert res2.ok(), "after a second SIGKILL + restart on an empty disk: " + res2.summary()
    assert sorted((r.partition, r.offset, r.value) for r in set(recs2)) == \
        sorted((r.partition, r.offset, r.value) for r in set(recs)), "the log changed across a restart"
