"""Exactly-once with a real client (issue 16): confluent-kafka's transactional producer and a
read_committed consumer run a consume-transform-produce loop on three `riptide broker`s sharing
one data directory, and one broker is killed with SIGKILL (and restarted) in the middle.

The test writes its own history in riptide's format (input sends, one `txn` op per transaction
with its poll and send micro-ops and the offsets it committed, read_committed final reads) and
runs it through `riptide check` with the transactional checkers: against a healthy cluster the
verdict is pass; against brokers with a planted marker bug it is fail.
"""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from e2e_util import unique_topic

PARTITIONS = 3
INPUTS = 600
TXNS_BEFORE_KILL = 8
CHECKERS = ("exactly-once", "aborted-read", "torn-transaction", "txn-lost-write")


class History:
    """Ops in riptide's JSON-lines history format, numbered in the order they are written."""

    def __init__(self):
        self.ops: list[dict] = []
        self.t0 = time.monotonic_ns()

    def add(self, kind: str, process: int, f: str, value: dict) -> None:
        self.ops.append({"index": len(self.ops), "kind": kind, "process": process,
                         "time_ns": time.monotonic_ns() - self.t0, "f": f, "value": value})

    def write(self, path: Path) -> None:
        path.write_text("".join(json.dumps(op) + "\n" for op in self.ops))


def start_cluster(harness, tmp_path: Path, extra: tuple[str, ...]):
    data = tmp_path / "data"
    return [harness.broker(data=data, partitions=PARTITIONS,
                           extra=["--node-id", str(i + 1), *extra]) for i in range(3)]


def produce_inputs(bootstrap: str, topic: str, h: History) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    h.add("ok", 0, "client", {"role": "producer", "name": "inputs", "idempotent": True})
    acked: dict[str, int] = {}

    def on_delivery(err, msg):
        if err is None:
            acked[msg.value().decode()] = msg.offset()

    values = [f"in-{i}" for i in range(INPUTS)]
    for i, v in enumerate(values):
        p.produce(topic, value=v.encode(), partition=i % PARTITIONS, on_delivery=on_delivery)
        p.poll(0)
    assert p.flush(30) == 0
    # Written as if sent one at a time: the checkers need each input's offset only.
    for i, v in enumerate(values):
        send = {"topic": topic, "partition": i % PARTITIONS, "value": v}
        h.add("invoke", 0, "send", send)
        h.add("ok", 0, "send", {**send, "offset": acked[v]})


def pipeline(bootstrap: str, tin: str, tout: str, group: str, h: History, kill) -> int:
    """Consume `tin`, write `out:<value>` to `tout` in transactions (one in four aborted), commit
    the input offsets in each; `kill()` is called after TXNS_BEFORE_KILL transactions. Returns
    how many transactions it ran."""
    txn_id = "pipe-" + group
    process = 1
    h.add("ok", process, "client", {"role": "pipeline", "name": txn_id, "read_committed": True})
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "session.timeout.ms": 10000})
    consumer.subscribe([tin])
    conf = {"bootstrap.servers": bootstrap, "transactional.id": txn_id,
            "transaction.timeout.ms": 20000, "message.timeout.ms": 20000}
    producer = Producer(conf)
    producer.init_transactions(60)
    rng = random.Random(16)
    n, idle, killed = 0, 0, False

    def rewind():
        committed = consumer.committed(consumer.assignment(), 30)
        for tp in committed:
            consumer.seek(TopicPartition(tp.topic, tp.partition, max(tp.offset, 0)))

    while idle < 20:
        msgs = [m for m in consumer.consume(20, 0.5) if m.error() is None]
        if not msgs:
            idle += 1
            continue
        idle = 0
        if n == TXNS_BEFORE_KILL and not killed:
            kill()
            killed = True
        end = "abort" if rng.random() < 0.25 else "commit"
        polled = {"f": "poll", "records": [
            {"topic": m.topic(), "partition": m.partition(), "offset": m.offset(),
             "value": m.value().decode()} for m in msgs]}
        # Outputs spread over every output partition: most transactions span several.
        sends = [{"f": "send", "topic": tout, "partition": k % PARTITIONS,
                  "value": "out:" + m.value().decode(), "source": m.value().decode()}
                 for k, m in enumerate(msgs)]
        offsets: list[dict] = []
        h.add("invoke", process, "txn", {"transactional_id": txn_id, "end": end,
                                          "ops": [polled, *sends], "group": group})
        acked: dict[str, int] = {}

        def on_delivery(err, msg):
            if err is None:
                acked[msg.value().decode()] = msg.offset()

        kind = "info"
        try:
            producer.begin_transaction()
            for s in sends:
                producer.produce(tout, value=s["value"].encode(), partition=s["partition"],
                                 on_delivery=on_delivery)
            positions = consumer.position(consumer.assignment())
            offsets = [{"topic": tp.topic, "partition": tp.partition, "offset": tp.offset}
                       for tp in positions if tp.offset >= 0]
            producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 60)
            if end == "commit":
                producer.commit_transaction(60)
            else:
                producer.abort_transaction(60)
                rewind()
            kind = "ok"
        except KafkaException as e:
            err: KafkaError = e.args[0]
            if err.txn_requires_abort():
                # The transaction was not committed: abort it and read its inputs again.
                producer.abort_transaction(60)
                kind = "fail"
                rewind()
            elif err.fatal():
                # Fenced or fatal: a new producer with the same id fences this one.
                producer = Producer(conf)
                producer.init_transactions(60)
                rewind()
            else:
                rewind()
        done_sends = [{**s, "offset": acked[s["value"]]} if s["value"] in acked else s
                      for s in sends]
        value = {"transactional_id": txn_id, "end": end, "ops": [polled, *done_sends],
                 "group": group, "offsets": offsets}
        if kind == "ok" and end == "commit":
            value["ops"] = [polled, *[s for s in done_sends if "offset" in s]]
        h.add(kind, process, "txn", value)
        n += 1
    consumer.close()
    return n


def final_reads(bootstrap: str, topics: list[str], h: History) -> None:
    process = 2
    h.add("ok", process, "client", {"role": "reader", "name": "final-read", "read_committed": True})
    for topic in topics:
        for p in range(PARTITIONS):
            # The end of the log: a read_committed consumer's watermark query answers the last
            # stable offset instead, which a stuck transaction holds back.
            w = Consumer({"bootstrap.servers": bootstrap, "group.id": "ends-" + topic,
                          "isolation.level": "read_uncommitted", "enable.auto.commit": False})
            tp = TopicPartition(topic, p)
            _, hwm = w.get_watermark_offsets(tp, timeout=30)
            w.close()
            c = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader-" + topic,
                          "isolation.level": "read_committed", "enable.auto.commit": False})
            c.assign([TopicPartition(topic, p, 0)])
            records = []
            deadline = time.monotonic() + 15
            # Up to the end of the log (markers included) or until nothing more comes.
            while time.monotonic() < deadline:
                m = c.poll(0.5)
                if m is None:
                    if c.position([tp])[0].offset >= hwm:
                        break
                    continue
                if m.error() is None:
                    records.append({"offset": m.offset(), "value": m.value().decode()})
            c.close()
            h.add("invoke", process, "final_read", {"topic": topic, "partition": p})
            h.add("ok", process, "final_read", {"topic": topic, "partition": p, "hwm": hwm,
                                                 "records": records})


def run_pipeline(riptide_bin, harness, tmp_path: Path, extra: tuple[str, ...] = ()):
    brokers = start_cluster(harness, tmp_path, extra)
    bootstrap = ",".join(b.bootstrap for b in brokers)
    tin, tout = unique_topic("in"), unique_topic("out")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(tin, PARTITIONS, 1), NewTopic(tout, PARTITIONS, 1)]).values():
        f.result(30)
    h = History()
    produce_inputs(bootstrap, tin, h)
    victim = brokers[1]

    def kill():
        fault = {"kind": "crash", "broker": victim.bootstrap}
        h.add("invoke", 3, "fault", fault)
        h.add("ok", 3, "fault", fault)
        victim.kill(signal.SIGKILL)
        time.sleep(2)
        victim.restart()

    n = pipeline(bootstrap, tin, tout, "ctp-" + tin, h, kill)
    final_reads(bootstrap, [tin, tout], h)
    path = tmp_path / "history.jsonl"
    h.write(path)
    only = [a for c in CHECKERS for a in ("--only", c)]
    r = subprocess.run([str(riptide_bin), "check", *only, str(path)], capture_output=True,
                       text=True, timeout=120)
    return n, r, h


def outputs_of(h: History) -> list[str]:
    return [rec["value"] for op in h.ops if op["f"] == "final_read" and op["kind"] == "ok"
            and op["value"]["topic"].startswith("out") for rec in op["value"]["records"]]


def test_consume_transform_produce_is_exactly_once_across_a_sigkill(riptide_bin, harness, tmp_path):
    n, r, h = run_pipeline(riptide_bin, harness, tmp_path)
    assert n > TXNS_BEFORE_KILL, f"only {n} transactions ran"
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    ends = {(op["kind"], op["value"]["end"]) for op in h.ops if op["f"] == "txn"}
    assert ("ok", "commit") in ends and ("ok", "abort") in ends, ends
    assert any(op["f"] == "fault" for op in h.ops), "the broker was never killed"
    outs = outputs_of(h)
    assert len(outs) == len(set(outs)) == INPUTS, (len(outs), len(set(outs)))


def test_a_broker_that_skips_a_marker_fails_the_check(riptide_bin, harness, tmp_path):
    # The coordinator writes no marker in the last partition of each multi-partition
    # transaction: outputs stay invisible to read_committed readers, or get committed by a later
    # transaction's marker although theirs aborted.
    _, r, _ = run_pipeline(riptide_bin, harness, tmp_path, ("--bug", "marker-skips-partition"))
    assert r.returncode == 1, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    # A numbered finding of a transactional kind, not just the kind's row in the counts.
    assert re.search(r"\d+\. (torn-transaction|txn-lost-write|exactly-once|aborted-read) ",
                     r.stdout), r.stdout
