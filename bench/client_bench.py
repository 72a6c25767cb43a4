#!/usr/bin/env python3
"""Client benchmark for `riptide broker` on loopback with a standard client (confluent-kafka, i.e.
librdkafka). Not a test: it prints figures.

For each store (--memory, and the default LocalFileSystem --data dir) it starts a release broker on a
free port, creates a topic, and measures:
  * produce throughput (MB/s of payload, msgs/s) with acks=all, pipelined;
  * produce latency p50/p99 under that load (librdkafka's per-message latency: produce() call to
    delivery report);
  * produce latency p50/p99 with one message in flight at a time (acks=all round trip);
  * consume throughput (MB/s, msgs/s) reading everything back from offset 0.

    python bench/client_bench.py                   # 200,000 x 100 B, both stores
    python bench/client_bench.py --messages 1000000 --size 1024 --stores memory
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def locate_binary(arg: str | None) -> Path:
    for cand in ([arg] if arg else []) + [os.environ.get("RIPTIDE_BIN"), ROOT / "target/release/riptide"]:
        if cand and Path(cand).is_file():
            return Path(cand)
    sys.exit("riptide binary not found: build it with `cargo build --release -p riptide-cli` or pass --bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(sorted_vals: list[float], q: float) -> float:
    if not sorted_vals:
        return float("nan")
    k = min(len(sorted_vals) - 1, max(0, int(round(q * (len(sorted_vals) - 1)))))
    return sorted_vals[k]


class BrokerProc:
    def __init__(self, binary: Path, store: str, workdir: Path, partitions: int, extra_args: list[str] = ()):
        self.port = free_port()
        self.workdir = workdir
        args = [str(binary), "broker", "--listen", f"127.0.0.1:{self.port}", "--partitions", str(partitions)]
        if store == "memory":
            args.append("--memory")
        elif store == "data":
            args += ["--data", str(workdir / "riptide-data")]
        else:
            raise ValueError(store)
        args += list(extra_args)
        self.log_path = workdir / f"broker-{store}.log"
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"broker exited with {self.proc.returncode}; log: {self.log_path}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        sys.exit(f"broker did not start listening within 30 s; log: {self.log_path}")

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def peak_rss_mb(self) -> float | None:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def cpu_seconds(self) -> float:
        """user+system CPU the broker process has used so far."""
        try:
            f = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return float("nan")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def produce_throughput(bootstrap: str, topic: str, n: int, size: int, linger_ms: int, partitions: int) -> dict:
    from confluent_kafka import Producer

    payload = os.urandom(size)
    lat: list[float] = []
    errors = [0]
    last = [0.0]

    def on_delivery(err, msg):
        if err is not None:
            errors[0] += 1
            return
        lat.append(msg.latency())
        last[0] = time.perf_counter()

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": linger_ms,
                  "queue.buffering.max.messages": 1_000_000, "queue.buffering.max.kbytes": 1 << 20,
                  "message.timeout.ms": 120_000, "compression.type": "none"})
    # warm-up outside the timing: connection, ApiVersions, the topic's metadata and leaders
    for part in range(partitions):
        p.produce(topic, value=payload, partition=part)
    if p.flush(30) != 0:
        raise RuntimeError("warm-up produce did not complete")
    lat.clear()
    errors[0] = 0
    t0 = time.perf_counter()
    for _ in range(n):
        while True:
            try:
                p.produce(topic, value=payload, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.001)
        p.poll(0)
    left = p.flush(120)
    elapsed = (last[0] or time.perf_counter()) - t0
    lat.sort()
    ok = len(lat)
    return {
        "messages": ok, "errors": errors[0], "undelivered": left, "seconds": elapsed,
        "msgs_per_s": ok / elapsed, "mb_per_s": ok * size / elapsed / 1e6,
        "p50_ms": pct(lat, 0.50) * 1e3, "p99_ms": pct(lat, 0.99) * 1e3, "max_ms": (lat[-1] * 1e3 if lat else float("nan")),
    }


def produce_sequential(bootstrap: str, topic: str, n: int, size: int) -> dict:
    from confluent_kafka import Producer

    payload = os.urandom(size)
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)

    p.produce(topic, value=payload, on_delivery=on_delivery)
    p.flush(30)  # connection + metadata warm-up
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        p.produce(topic, value=payload, on_delivery=on_delivery)
        if p.flush(30) != 0:
            raise RuntimeError("sequential produce did not complete within 30 s")
        lat.append(time.perf_counter() - t)
    if errors:
        raise RuntimeError(f"{len(errors)} sequential produces failed, e.g. {errors[0]}")
    lat.sort()
    return {"messages": n, "p50_ms": pct(lat, 0.5) * 1e3, "p99_ms": pct(lat, 0.99) * 1e3,
            "mean_ms": statistics.fmean(lat) * 1e3}


def consume_all(bootstrap: str, topic: str, partitions: int, size_hint: int) -> dict:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{os.getpid()}-{time.time_ns()}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  # librdkafka postpones the next fetch by fetch.queue.backoff.ms (default 1000 ms) whenever
                  # its local queue holds more than queued.min.messages (100,000): with a Python loop draining
                  # the queue that measures the client's back-off, not the broker.
                  "fetch.queue.backoff.ms": 10})
    hw = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
    total = sum(hw.values())
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got = nbytes = 0
    t_first = None
    deadline = time.monotonic() + 300
    while got < total and time.monotonic() < deadline:
        # consume(n, timeout) waits out the timeout unless n messages are ready: take what is
        # ready without waiting, block (briefly) only when nothing is.
        batch = c.consume(num_messages=10_000, timeout=0) or c.consume(num_messages=1, timeout=0.5)
        for m in batch:
            if m.error():
                continue
            if t_first is None:
                t_first = time.perf_counter()
            got += 1
            nbytes += len(m.value() or b"")
    elapsed = time.perf_counter() - (t_first or time.perf_counter())
    elapsed = max(elapsed, 1e-9)
    c.close()
    return {"messages": got, "expected": total, "seconds": elapsed, "msgs_per_s": got / elapsed,
            "mb_per_s": nbytes / elapsed / 1e6}


def consume_kcat(bootstrap: str, topic: str, expected: int) -> dict | None:
    """The same read with kcat (C, librdkafka) to separate broker fetch speed from Python overhead."""
    import shutil

    kcat = shutil.which("kcat")
    if not kcat:
        return None
    t0 = time.perf_counter()
    p = subprocess.run([kcat, "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q",
                        "-X", "fetch.wait.max.ms=10", "-f", "%o\\n"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
    elapsed = time.perf_counter() - t0
    got = p.stdout.count(b"\n")
    if p.returncode != 0 or got == 0:
        print(f"kcat consume failed (exit {p.returncode}): {p.stderr.decode(errors='replace')[-500:]}", file=sys.stderr)
        return None
    return {"messages": got, "expected": expected, "seconds": elapsed, "msgs_per_s": got / elapsed}


def bench_store(binary: Path, store: str, args) -> dict:
    from confluent_kafka.admin import AdminClient, NewTopic

    with tempfile.TemporaryDirectory(prefix=f"riptide-bench-{store}-") as tmp:
        b = BrokerProc(binary, store, Path(tmp), args.partitions)
        try:
            topic = f"bench-{store}-{time.time_ns()}"
            admin = AdminClient({"bootstrap.servers": b.bootstrap})
            fs = admin.create_topics(
                [NewTopic(topic, num_partitions=args.partitions, replication_factor=1)], operation_timeout=30)
            fs[topic].result(timeout=30)
            produce_throughput(b.bootstrap, topic, min(5000, args.messages), args.size, args.linger_ms,
                               args.partitions)  # warm-up of the broker
            runs = []
            for r in range(args.repeat):
                t = f"{topic}-{r}"
                fs = admin.create_topics(
                    [NewTopic(t, num_partitions=args.partitions, replication_factor=1)], operation_timeout=30)
                fs[t].result(timeout=30)
                c0 = b.cpu_seconds()
                pr = produce_throughput(b.bootstrap, t, args.messages, args.size, args.linger_ms, args.partitions)
                pr["broker_cpu_s"] = b.cpu_seconds() - c0
                runs.append((pr, t))
            runs.sort(key=lambda pr: pr[0]["mb_per_s"])
            prod, topic = runs[len(runs) // 2]  # the median run (by throughput)
            prod["runs_mb_per_s"] = [round(pr[0]["mb_per_s"], 2) for pr in runs]
            seq = produce_sequential(b.bootstrap, topic + "-seq", args.latency_messages, args.size) \
                if args.latency_messages else None
            conss = []
            for _ in range(args.repeat):
                c0 = b.cpu_seconds()
                cr = consume_all(b.bootstrap, topic, args.partitions, args.size)
                cr["broker_cpu_s"] = b.cpu_seconds() - c0
                conss.append(cr)
            conss.sort(key=lambda c: c["mb_per_s"])
            cons = conss[len(conss) // 2]
            cons["runs_mb_per_s"] = [round(c["mb_per_s"], 2) for c in conss]
            kc = consume_kcat(b.bootstrap, topic, cons["expected"])
            if kc:
                kc["mb_per_s"] = kc["messages"] * args.size / kc["seconds"] / 1e6
            rss = b.peak_rss_mb()
        finally:
            b.stop()
        return {"store": store, "produce": prod, "sequential": seq, "consume": cons, "consume_kcat": kc,
                "peak_rss_mb": rss}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", help="riptide binary (default: $RIPTIDE_BIN or target/release/riptide)")
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=100, help="payload bytes per message")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--linger-ms", type=int, default=5)
    ap.add_argument("--latency-messages", type=int, default=500,
                    help="messages for the one-in-flight latency run (0 to skip)")
    ap.add_argument("--stores", default="memory,data", help="comma list of: memory, data")
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure; the median run is reported")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    import confluent_kafka

    binary = locate_binary(args.bin)
    results = [bench_store(binary, s.strip(), args) for s in args.stores.split(",") if s.strip()]

    print()
    print(f"riptide client benchmark: {args.messages:,} x {args.size} B, {args.partitions} partitions, acks=all, "
          f"linger.ms={args.linger_ms}, median of {args.repeat} runs; confluent-kafka {confluent_kafka.version()[0]} "
          f"(librdkafka {confluent_kafka.libversion()[0]}); {platform.machine()}, {os.cpu_count()} CPUs; loopback")
    hdr = (f"{'store':8} | {'produce MB/s':>12} {'msgs/s':>9} {'p50 ms':>8} {'p99 ms':>8} | "
           f"{'1-in-flight p50':>15} {'p99':>7} | {'consume MB/s':>12} {'msgs/s':>9} | {'peak RSS':>8}")
    print(hdr)
    print("-" * len(hdr))
    for r in results:
        p, s, c = r["produce"], r["sequential"], r["consume"]
        seq = f"{s['p50_ms']:>12.2f} ms {s['p99_ms']:>7.2f}" if s else f"{'-':>15} {'-':>7}"
        rss = f"{r['peak_rss_mb']:.0f} MB" if r["peak_rss_mb"] else "?"
        print(f"{r['store']:8} | {p['mb_per_s']:>12.2f} {p['msgs_per_s']:>9,.0f} {p['p50_ms']:>8.2f} {p['p99_ms']:>8.2f} | "
              f"{seq} | {c['mb_per_s']:>12.2f} {c['msgs_per_s']:>9,.0f} | {rss:>8}")
        k = r.get("consume_kcat")
        if k:
            print(f"{'':8}   consume with kcat (C client, whole process incl. startup): {k['mb_per_s']:.2f} MB/s, "
                  f"{k['msgs_per_s']:,.0f} msgs/s ({k['messages']:,}/{k['expected']:,} in {k['seconds']:.2f}s)")
        print(f"{'':8}   runs: produce MB/s {p['runs_mb_per_s']}, consume MB/s {c['runs_mb_per_s']}; broker CPU "
              f"{p['broker_cpu_s']:.2f} s over the {p['seconds']:.2f} s produce run, "
              f"{c['broker_cpu_s']:.2f} s during the consume run")
        if p["errors"] or p["undelivered"] or c["messages"] != c["expected"]:
            print(f"  !! {r['store']}: {p['errors']} produce errors, {p['undelivered']} undelivered, "
                  f"consumed {c['messages']}/{c['expected']}")
    print("produce p50/p99: per-message latency under the pipelined load (produce() to delivery report);")
    print("1-in-flight: one message at a time, produce + flush, i.e. the acks=all round trip.")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=2))


if __name__ == "__main__":
    main()
