"""Beyond the acceptance list: a rolling SIGKILL + restart of every broker of a 3-broker cluster (one
shared data dir, each restart in a fresh empty working dir) during one produce stream, with a
consumer tailing the topic throughout. Ownership moves away from each dead broker and back when it
returns; nothing acknowledged may be lost, offsets stay contiguous from 0, the record at an offset
never changes, and duplicates come only from sends kafka-python retried (tracked exactly).
"""

from __future__ import annotations

import random
import signal
import threading
import time

from e2e_util import (
    StreamProducer,
    TailingConsumer,
    check_log,
    kp_create_topic,
    kp_read_all,
    make_messages,
    unique_topic,
)

PARTITIONS = 6
N = 18000
RATE = 1000.0  # ~18 s
TAG = "rr"


def test_rolling_sigkill_restart_all_three(harness, tmp_path):
    data = tmp_path / "shared-data"
    brokers = [harness.broker(data=data, cwd=tmp_path / f"b{j}-disk-0") for j in range(3)]
    bootstrap = [b.bootstrap for b in brokers]
    topic = unique_topic("rolling")
    kp_create_topic(bootstrap[0], topic, PARTITIONS)
    time.sleep(1.5)  # let membership settle (heartbeats)

    msgs = make_messages(N, tag=TAG)
    sp = StreamProducer(bootstrap, topic, msgs, rate=RATE)
    tail = TailingConsumer("kafka-python", bootstrap, topic, PARTITIONS).start()
    try:
        run_and_check(tmp_path, brokers, bootstrap, topic, msgs, sp, tail)
    finally:
        tail.stop()


def run_and_check(tmp_path, brokers, bootstrap, topic, msgs, sp, tail):
    rng = random.Random(5)
    threads: list[threading.Thread] = []
    log: list[str] = []

    def kill(j):
        def ev():
            def do():
                time.sleep(rng.uniform(0, 0.02))
                brokers[j].kill(signal.SIGKILL)
                log.append(f"t={time.monotonic() - sp.t_start:.1f}s SIGKILL {brokers[j].name} "
                           f"(sent {sp.sent_count}, acked {len(sp.acked)})")
            th = threading.Thread(target=do)
            th.start()
            threads.append(th)
        return ev

    def restart(j, gen):
        def ev():
            for th in threads:
                th.join()
            brokers[j].restart(cwd=tmp_path / f"b{j}-disk-{gen}")
            log.append(f"t={time.monotonic() - sp.t_start:.1f}s restarted {brokers[j].name} on an empty disk")
        return ev

    events = {2000: kill(0), 3500: restart(0, 1), 7000: kill(1), 8500: restart(1, 1),
              12000: kill(2), 13500: restart(2, 1)}
    sp.run(events=events)
    sp.finish(timeout=90)
    print("\n".join(log))
    retried = sp.retried_indices()
    print(f"acked {len(sp.acked)}/{N}; longest send->ack {sp.max_latency():.2f}s; retried sends {len(retried)}; "
          f"app re-sends {len(sp.app_resent)}")
    unacked = sp.unacked()
    assert not unacked, (f"{len(unacked)} messages never acknowledged; "
                         f"e.g. {[(i, sp.errors.get(i)) for i in unacked[:5]]}")
    assert all(b.alive() for b in brokers), "a restarted broker died: " + "; ".join(
        f"{b.name}: {b.returncode()}" for b in brokers if not b.alive())

    recs = kp_read_all(bootstrap, topic, PARTITIONS, timeout=60)
    res = check_log(msgs, recs, TAG, acked=sp.acked, exact=False, allowed_dups=retried,
                    unordered_ok=sp.app_resent, partitions=PARTITIONS)
    print(f"read back {res.total_records} records; per partition {res.per_partition}; "
          f"{len(res.duplicates)} duplicated messages")
    assert res.ok(), res.summary()

    reached = tail.finish(res.per_partition, timeout=30)
    print(f"tailing consumer read {len(tail.records)} records; client errors: {tail.errors[:3]}")
    assert reached, f"the tailing consumer did not reach the end; errors: {tail.errors[:5]}"
    problems = tail.check(recs)
    assert not problems, "tailing consumer: " + "; ".join(problems)
