#!/usr/bin/env python3
"""Broker memory under a produce flood (issue 17, item 6). Not a test: it prints figures.

Starts a release `riptide broker --data DIR` (LocalFileSystem in a temporary directory, fsync on)
on a free port, creates a topic, and has confluent-kafka (librdkafka) produce N records of S bytes
as fast as it can: acks=all, the client's default batching (linger.ms 5, batch.size 1 MB, as many
requests in flight as it likes). Meanwhile it samples the broker's VmRSS; at the end it prints the
broker's peak RSS (VmHWM, and the highest VmRSS sampled), the produce throughput, the broker's CPU
time, and checks that the topic's high watermarks add up to the records produced.

    .venv-ci/bin/python bench/produce_flood.py                       # 1,000,000 x 1 KiB, 4 partitions
    .venv-ci/bin/python bench/produce_flood.py --messages 200000 --partitions 1
    bash ci/bench.sh --flood                                         # builds, then runs this
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from client_bench import BrokerProc, locate_binary  # noqa: E402


def status_kb(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class RssSampler(threading.Thread):
    """Polls a process's VmRSS; keeps the highest value and a coarse timeline."""

    def __init__(self, pid: int, every_s: float):
        super().__init__(daemon=True)
        self.pid, self.every_s = pid, every_s
        self.max_kb = 0
        self.samples: list[tuple[float, int]] = []
        self.stop_flag = threading.Event()
        self.t0 = time.perf_counter()

    def run(self):
        while not self.stop_flag.is_set():
            kb = status_kb(self.pid, "VmRSS")
            if kb is not None:
                self.max_kb = max(self.max_kb, kb)
                self.samples.append((time.perf_counter() - self.t0, kb))
            time.sleep(self.every_s)

    def stop(self):
        self.stop_flag.set()
        self.join()


def flood(bootstrap: str, topic: str, n: int, size: int, partitions: int, producers: int, extra: dict) -> dict:
    from confluent_kafka import Producer

    payload = os.urandom(size)
    delivered = [0]
    errors: list = []
    last = [0.0]

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
            return
        delivered[0] += 1
        last[0] = time.perf_counter()

    conf = {"bootstrap.servers": bootstrap, "acks": "all"}
    conf.update(extra)
    started = time.perf_counter()
    ps = [Producer(conf) for _ in range(producers)]
    # Warm-up outside the timing: connection, ApiVersions, the topic's metadata and leaders.
    for p in ps:
        for part in range(partitions):
            p.produce(topic, value=payload, partition=part)
    if any(p.flush(30) != 0 for p in ps):
        raise RuntimeError("warm-up produce did not complete")
    t0 = time.perf_counter()
    warmup_s = t0 - started
    for i in range(n):
        p = ps[i % producers]
        while True:
            try:
                p.produce(topic, value=payload, on_delivery=on_delivery)
                break
            except BufferError:  # the client's own queue is full: let it send
                p.poll(0.001)
        p.poll(0)
    left = sum(p.flush(600) for p in ps)
    elapsed = (last[0] or time.perf_counter()) - t0
    del p, ps  # closes the clients' connections before the broker stops
    ok = delivered[0]
    return {"messages": ok, "errors": len(errors), "first_error": str(errors[0]) if errors else None,
            "undelivered": left, "seconds": elapsed, "msgs_per_s": ok / elapsed,
            "mb_per_s": ok * size / elapsed / 1e6, "warmup": partitions * producers,
            "warmup_s": warmup_s}


def high_watermarks(bootstrap: str, topic: str, partitions: int) -> int:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"flood-{os.getpid()}"})
    try:
        return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in range(partitions))
    finally:
        c.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", help="riptide binary (default: $RIPTIDE_BIN or target/release/riptide)")
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--size", type=int, default=1024, help="payload bytes per record")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--producers", type=int, default=1,
                    help="producer clients (each its own connection), taking records in turn")
    ap.add_argument("--store", default="data", choices=["data", "memory"])
    ap.add_argument("--sample-ms", type=float, default=10, help="VmRSS polling interval")
    ap.add_argument("--broker-arg", action="append", default=[], metavar="ARG",
                    help="extra `riptide broker` argument, e.g. --broker-arg=--cache-bytes=67108864")
    ap.add_argument("--keep-log", metavar="FILE", help="copy the broker's log (stdout and stderr) here")
    ap.add_argument("-X", action="append", default=[], metavar="KEY=VALUE",
                    help="extra producer setting (librdkafka), e.g. -X linger.ms=0")
    args = ap.parse_args()

    import confluent_kafka
    from confluent_kafka.admin import AdminClient, NewTopic

    extra = {}
    for kv in args.X:
        k, _, v = kv.partition("=")
        extra[k] = v
    binary = locate_binary(args.bin)
    with tempfile.TemporaryDirectory(prefix="riptide-flood-") as tmp:
        b = BrokerProc(binary, args.store, Path(tmp), args.partitions, args.broker_arg)
        try:
            topic = f"flood-{time.time_ns()}"
            admin = AdminClient({"bootstrap.servers": b.bootstrap})
            fs = admin.create_topics([NewTopic(topic, num_partitions=args.partitions, replication_factor=1)],
                                     operation_timeout=30)
            fs[topic].result(timeout=30)
            rss_before = status_kb(b.proc.pid, "VmRSS") or 0
            sampler = RssSampler(b.proc.pid, args.sample_ms / 1000)
            sampler.start()
            c0 = b.cpu_seconds()
            r = flood(b.bootstrap, topic, args.messages, args.size, args.partitions, args.producers, extra)
            cpu = b.cpu_seconds() - c0
            sampler.stop()
            hwm = (status_kb(b.proc.pid, "VmHWM") or 0) / 1024
            rss_end = (status_kb(b.proc.pid, "VmRSS") or 0) / 1024
            total = high_watermarks(b.bootstrap, topic, args.partitions)
        finally:
            b.stop()
            if args.keep_log:
                shutil.copyfile(b.log_path, args.keep_log)

    mib = 1024 * 1024
    v = confluent_kafka.version()
    client_version = v if isinstance(v, str) else v[0]
    print()
    print(f"riptide produce flood: {args.messages:,} x {args.size} B ({args.messages * args.size / 1e9:.2f} GB) to "
          f"--{args.store}, {args.partitions} partitions, {args.producers} producer(s), acks=all, default batching"
          f"{' ' + ' '.join(args.X) if args.X else ''}{' broker ' + ' '.join(args.broker_arg) if args.broker_arg else ''}; confluent-kafka {client_version} "
          f"(librdkafka {confluent_kafka.libversion()[0]}); {platform.machine()}, {os.cpu_count()} CPUs; loopback")
    print(f"  produce: {r['mb_per_s']:.1f} MB/s, {r['msgs_per_s']:,.0f} msgs/s ({r['messages']:,} records in "
          f"{r['seconds']:.2f} s; {r['errors']} errors, {r['undelivered']} undelivered); broker CPU {cpu:.2f} s")
    print(f"  broker RSS: peak {hwm:.0f} MiB (VmHWM; {hwm * mib / 1e6:.0f} MB), highest sampled VmRSS "
          f"{sampler.max_kb / 1024:.0f} MiB, {rss_before / 1024:.0f} MiB before the flood, {rss_end:.0f} MiB after")
    # RSS at a few points of the run, to see whether it climbs or levels off.
    s = sampler.samples
    if s:
        marks = [s[min(len(s) - 1, int(len(s) * q))] for q in (0.1, 0.25, 0.5, 0.75, 0.9)]
        print("  VmRSS during the run: " + ", ".join(f"{t:.1f} s {kb / 1024:.0f} MiB" for t, kb in marks))
        t_max, kb_max = max(s, key=lambda x: x[1])
        print(f"  highest VmRSS sampled at {t_max:.2f} s of {s[-1][0]:.2f} s sampled (the flood ended at "
              f"{r['seconds'] + r['warmup_s']:.2f} s)")
    want = args.messages + r["warmup"]
    print(f"  high watermarks add up to {total:,} (records produced, warm-up included: {want:,})"
          + ("" if total == want else "  !! MISMATCH"))
    if r["first_error"]:
        print(f"  first error: {r['first_error']}")


if __name__ == "__main__":
    main()
