"""Shared helpers for riptide's end-to-end tests (imported by conftest.py and the tests).

Nothing here builds anything: the tests run a prebuilt `riptide` binary (see conftest.py).
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# Dummy credentials for moto; the broker reads the usual AWS env vars.
MOTO_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ALLOW_HTTP": "true",
    "AWS_EC2_METADATA_DISABLED": "true",
}


# --------------------------------------------------------------------------------------------
# binary, ports, processes
# --------------------------------------------------------------------------------------------


def locate_binary() -> Path | None:
    """RIPTIDE_BIN if set, else release/riptide, else debug/riptide under $CARGO_TARGET_DIR (default
    target/)."""
    env = os.environ.get("RIPTIDE_BIN")
    if env:
        p = Path(env)
        if not p.is_absolute():
            p = REPO_ROOT / p
        return p if p.is_file() else None
    target = REPO_ROOT / os.environ.get("CARGO_TARGET_DIR", "target")
    for sub in ("release", "debug"):
        p = target / sub / "riptide"
        if p.is_file():
            return p
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def port_accepts(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path, n: int = 80) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    return "\n".join(data.splitlines()[-n:])


class Proc:
    """A child process whose output goes to a log file; killed for sure at teardown."""

    def __init__(self, name: str, argv: list[str], log_path: Path, cwd: Path, env: dict):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.cwd = cwd
        self.env = env
        self.popen: subprocess.Popen | None = None

    def start(self):
        self.cwd.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        log.write(f"\n===== [{time.strftime('%H:%M:%S')}] start: {' '.join(self.argv)} (cwd {self.cwd})\n".encode())
        log.flush()
        self.popen = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def returncode(self):
        return None if self.popen is None else self.popen.poll()

    def kill(self, sig=signal.SIGKILL, wait: float = 10.0):
        """Send `sig` to this process (by pid) and reap it."""
        if not self.alive():
            return
        os.kill(self.popen.pid, sig)
        try:
            self.popen.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)

    def stop(self):
        """SIGTERM, then SIGKILL if it does not exit within 5 s."""
        if self.alive():
            try:
                self.kill(signal.SIGTERM, wait=5.0)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        if self.alive():
            self.kill(signal.SIGKILL)

    def log_tail(self, n: int = 80) -> str:
        return tail(self.log_path, n)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text("utf-8", "replace")
        except OSError:
            return ""


class Broker(Proc):
    def __init__(self, binary: Path, port: int, args: list[str], log_path: Path, cwd: Path, env: dict,
                 name: str | None = None):
        self.port = port
        self.args = list(args)
        self.binary = binary
        argv = [str(binary), "broker", "--listen", f"127.0.0.1:{port}", *self.args]
        super().__init__(name or f"broker:{port}", argv, log_path, cwd, env)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(
                    f"{self.name} exited with code {self.returncode()} before accepting connections; "
                    f"log tail:\n{self.log_tail(40)}")
            if port_accepts(self.port):
                return self
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not accept connections on port {self.port} within {timeout}s; "
                           f"log tail:\n{self.log_tail(40)}")

    def restart(self, cwd: Path | None = None, args: list[str] | None = None, timeout: float = 30.0):
        """Start a new process on the same port (optionally with a new working dir / args)."""
        if self.alive():
            raise RuntimeError(f"{self.name} is still running")
        if cwd is not None:
            self.cwd = cwd
        if args is not None:
            self.args = list(args)
            self.argv = [str(self.binary), "broker", "--listen", f"127.0.0.1:{self.port}", *self.args]
        # the port may linger for a moment after SIGKILL
        deadline = time.monotonic() + 10
        while port_in_use(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.start()
        return self.wait_ready(timeout)


class MotoServer(Proc):
    def __init__(self, port: int, log_path: Path, cwd: Path):
        env = dict(os.environ, **MOTO_ENV)
        argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        super().__init__(f"moto:{port}", argv, log_path, cwd, env)
        self.port = port

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30.0):
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"moto server exited early; log tail:\n{self.log_tail(40)}")
            try:
                with urllib.request.urlopen(self.endpoint + "/", timeout=1):
                    return self
            except Exception:  # noqa: BLE001 - any failure means not ready yet
                time.sleep(0.2)
        raise RuntimeError(f"moto server not ready within {timeout}s; log tail:\n{self.log_tail(40)}")

    def s3(self):
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing")

    def create_bucket(self, name: str) -> str:
        self.s3().create_bucket(Bucket=name)
        return name

    def object_count(self, bucket: str) -> int:
        n = 0
        for page in self.s3().get_paginator("list_objects_v2").paginate(Bucket=bucket):
            n += len(page.get("Contents", []))
        return n


# --------------------------------------------------------------------------------------------
# a cluster of `riptide broker` processes for certify (ci/riptide-cluster.sh), and certify itself
# --------------------------------------------------------------------------------------------

CLUSTER = REPO_ROOT / "ci" / "riptide-cluster.sh"


def free_base(n: int = 3) -> int:
    """The first of n consecutive free ports."""
    for base in range(21092, 29000, 17):
        if not any(port_in_use(base + i) for i in range(n)):
            return base
    raise RuntimeError("no free port range for the cluster")


class Cluster:
    """Three brokers started by ci/riptide-cluster.sh, which is also certify's node hook."""

    def __init__(self, binary: Path, dir: Path, broker_args: str = "", env: dict | None = None):
        # Two ports past the three brokers, for spares a scale-out starts (certify --spare).
        self.base = free_base(5)
        self.dir = dir
        self.env = dict(os.environ, RIPTIDE_BIN=str(binary), CLUSTER_DIR=str(dir),
                        BASE_PORT=str(self.base), BROKER_ARGS=broker_args, NO_COLOR="1",
                        **(env or {}))

    def sh(self, *args: str):
        subprocess.run([str(CLUSTER), *args], env=self.env, check=True, timeout=60)

    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.base + i}" for i in range(3))

    def logs(self) -> str:
        out = []
        for p in sorted(self.dir.glob("broker-*.log")):
            lines = p.read_text(errors="replace").splitlines()[-30:]
            out.append(f"--- {p.name}\n" + "\n".join(lines))
        return "\n".join(out)


def certify(binary: Path, bootstrap: str, out: Path, *extra: str, env=None, timeout=400):
    argv = [str(binary), "certify", "--bootstrap", bootstrap, "--out", str(out), *extra]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)


def hooks_flags() -> list[str]:
    """certify's node hooks, run by ci/riptide-cluster.sh."""
    return [
        "--kill", f"{CLUSTER} kill {{node}}",
        "--start", f"{CLUSTER} start {{node}}",
        "--pause", f"{CLUSTER} pause {{node}}",
        "--resume", f"{CLUSTER} resume {{node}}",
    ]


def unique_topic(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def dir_is_empty(p: Path) -> bool:
    return not p.exists() or not any(p.iterdir())


def wipe(p: Path):
    shutil.rmtree(p, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# messages and the round-trip checker
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rec:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def make_messages(n: int, nkeys: int = 257, tag: str = "m", pad: int = 0) -> list[tuple[bytes, bytes]]:
    """n keyed messages; message i has key `key-(i % nkeys)` and value `<tag>-<i>`(+padding).

    Keys repeat so that key->partition stickiness can be checked."""
    out = []
    padding = "." * pad
    for i in range(n):
        out.append((f"key-{i % nkeys:04d}".encode(), f"{tag}-{i:07d}{padding}".encode()))
    return out


def msg_index(value: bytes | None, tag: str) -> int | None:
    if value is None:
        return None
    s = value.decode("utf-8", "replace")
    pre = tag + "-"
    if not s.startswith(pre):
        return None
    digits = s[len(pre):len(pre) + 7]
    return int(digits) if digits.isdigit() else None


@dataclass
class CheckResult:
    problems: list[str] = field(default_factory=list)
    per_partition: dict[int, int] = field(default_factory=dict)
    duplicates: dict[int, int] = field(default_factory=dict)   # index -> copies
    total_records: int = 0

    def ok(self) -> bool:
        return not self.problems

    def summary(self, limit: int = 25) -> str:
        head = self.problems[:limit]
        more = len(self.problems) - len(head)
        s = "\n".join("  - " + p for p in head)
        if more > 0:
            s += f"\n  ... and {more} more"
        return (f"{len(self.problems)} problem(s); records read per partition: {self.per_partition}; "
                f"duplicated indices: {len(self.duplicates)}\n{s}")


def check_log(
    sent: list[tuple[bytes, bytes]],
    records: list[Rec],
    tag: str,
    *,
    acked: dict[int, tuple[int, int]] | None = None,
    exact: bool = True,
    allowed_dups: set[int] | None = None,
    unordered_ok: set[int] | None = None,
    partitions: int | None = None,
) -> CheckResult:
    """Check what a fresh consumer read back (`records`, every partition from 0 to its high watermark).

    sent:   the messages in send order (index i = sent[i]).
    acked:  index -> (partition, offset) the broker acknowledged; every acked message must be present,
            at that very partition/offset.
    exact:  every sent message must be read exactly once and nothing else (healthy round trip).
            When False, un-acked messages may be missing, and duplicates are allowed only for the
            indices in `allowed_dups` (sends the client retried).
    unordered_ok: indices exempt from the per-partition order check (application-level re-sends).
    """
    res = CheckResult()
    P = res.problems
    allowed_dups = allowed_dups or set()
    unordered_ok = unordered_ok or set()
    acked = acked or {}

    # 1. per partition: offsets contiguous from 0, no offset with two different records
    by_part: dict[int, dict[int, Rec]] = collections.defaultdict(dict)
    for r in records:
        prev = by_part[r.partition].get(r.offset)
        if prev is not None and (prev.key, prev.value) != (r.key, r.value):
            P.append(f"p{r.partition} offset {r.offset} read twice with different contents: "
                     f"{prev.value!r} vs {r.value!r}")
        by_part[r.partition][r.offset] = r
    if partitions is not None:
        for p in by_part:
            if not 0 <= p < partitions:
                P.append(f"record from unexpected partition {p} (topic has {partitions})")
    for p in sorted(by_part):
        offs = sorted(by_part[p])
        res.per_partition[p] = len(offs)
        if offs and offs[0] != 0:
            P.append(f"p{p}: first offset is {offs[0]}, expected 0")
        gaps = [(a, b) for a, b in zip(offs, offs[1:]) if b != a + 1]
        for a, b in gaps[:10]:
            P.append(f"p{p}: offset gap between {a} and {b}")
        if len(gaps) > 10:
            P.append(f"p{p}: {len(gaps) - 10} more offset gaps")
    uniq = [r for p in sorted(by_part) for _, r in sorted(by_part[p].items())]
    res.total_records = len(uniq)

    # 2. every record is one we sent, with the right key
    occurrences: dict[int, list[Rec]] = collections.defaultdict(list)
    for r in uniq:
        i = msg_index(r.value, tag)
        if i is None or i >= len(sent):
            P.append(f"unexpected record p{r.partition}@{r.offset}: key={r.key!r} value={r.value!r:.60}")
            continue
        if r.key != sent[i][0] or r.value != sent[i][1]:
            P.append(f"p{r.partition}@{r.offset}: record {i} came back altered: key={r.key!r} "
                     f"value={r.value!r:.60} (sent key={sent[i][0]!r})")
        occurrences[i].append(r)

    # 3. presence and duplicates
    missing_acked = [i for i in sorted(acked) if i not in occurrences]
    for i in missing_acked[:20]:
        p, o = acked[i]
        P.append(f"LOST: message {i} was acked at p{p}@{o} but is not in the log")
    if len(missing_acked) > 20:
        P.append(f"LOST: {len(missing_acked) - 20} more acked messages missing")
    if exact:
        missing = [i for i in range(len(sent)) if i not in occurrences and i not in acked]
        for i in missing[:20]:
            P.append(f"missing: message {i} ({sent[i][1][:30]!r}) was sent but not read back")
        if len(missing) > 20:
            P.append(f"missing: {len(missing) - 20} more")
    for i, occ in sorted(occurrences.items()):
        if len(occ) > 1:
            res.duplicates[i] = len(occ)
            if exact or i not in allowed_dups:
                where = ", ".join(f"p{r.partition}@{r.offset}" for r in occ)
                P.append(f"DUPLICATE: message {i} appears {len(occ)} times ({where})"
                         + ("" if exact else " and its send was never retried"))

    # 4. acked offsets point at that message
    for i, (p, o) in sorted(acked.items()):
        r = by_part.get(p, {}).get(o)
        if r is not None and msg_index(r.value, tag) != i:
            P.append(f"message {i} was acked at p{p}@{o} but that offset holds {r.value!r:.40}")

    # 5. a key always lands on one partition (only meaningful without re-routing)
    key_parts: dict[bytes, set[int]] = collections.defaultdict(set)
    for r in uniq:
        key_parts[r.key].add(r.partition)
    if exact:
        for k, ps in key_parts.items():
            if len(ps) > 1:
                P.append(f"key {k!r} landed on several partitions: {sorted(ps)}")

    # 6. order per partition follows send order (first occurrences; re-sends exempt)
    for p in sorted(by_part):
        last = -1
        seen = set()
        for o, r in sorted(by_part[p].items()):
            i = msg_index(r.value, tag)
            if i is None or i in seen or i in unordered_ok:
                continue
            seen.add(i)
            if i < last:
                P.append(f"p{p}@{o}: message {i} comes after message {last}: per-partition order broken")
                break
            last = i
    return res


# --------------------------------------------------------------------------------------------
# kafka-python helpers
# --------------------------------------------------------------------------------------------


def kp_create_topic(bootstrap: str, topic: str, partitions: int, timeout: float = 30.0):
    """Create a topic with kafka-python's admin client (CreateTopics)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="riptide-e2e-admin",
                             request_timeout_ms=15000)
    try:
        try:
            admin.create_topics({topic: {"num_partitions": partitions, "replication_factor": 1}},
                                timeout_ms=int(timeout * 1000))
        except (TypeError, ValueError, AttributeError):
            from kafka.admin import NewTopic  # older kafka-python

            admin.create_topics([NewTopic(name=topic, num_partitions=partitions, replication_factor=1)],
                                timeout_ms=int(timeout * 1000))
    finally:
        admin.close()


def kp_read_all(bootstrap: str | list[str], topic: str, partitions: int, timeout: float = 60.0,
                expect_at_least: int | None = None) -> list[Rec]:
    """Read every partition from offset 0 up to its high watermark with a fresh kafka-python consumer."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="riptide-e2e-reader",
        fetch_max_wait_ms=100,
        request_timeout_ms=30000,
        metadata_max_age_ms=5000,
    )
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        end = consumer.end_offsets(tps)
        if expect_at_least is not None:
            while sum(end.values()) < expect_at_least and time.monotonic() < deadline:
                time.sleep(0.5)
                end = consumer.end_offsets(tps)
        out: list[Rec] = []
        while time.monotonic() < deadline:
            if all(consumer.position(tp) >= end[tp] for tp in tps):
                break
            batch = consumer.poll(timeout_ms=500, max_records=10000)
            for tp, msgs in batch.items():
                for m in msgs:
                    out.append(Rec(tp.partition, m.offset, m.key, m.value))
        else:
            pos = {tp.partition: consumer.position(tp) for tp in tps}
            raise AssertionError(f"kafka-python consumer did not reach the high watermarks within {timeout}s: "
                                 f"positions {pos}, end offsets { {tp.partition: o for tp, o in end.items()} }, "
                                 f"read {len(out)} records")
        return out
    finally:
        consumer.close()


# Track which record futures belonged to a batch that kafka-python retried, by patching
# ProducerBatch.retry (kafka-python 2.1+/3.x internals). Futures are kept alive by the caller,
# so their ids are stable.
_RETRY_SINKS: list[set[int]] = []
_PATCH_LOCK = threading.Lock()
_PATCHED = {"ok": None}


def _install_retry_tracking() -> bool:
    with _PATCH_LOCK:
        if _PATCHED["ok"] is not None:
            return _PATCHED["ok"]
        try:
            from kafka.producer.producer_batch import ProducerBatch
        except ImportError:
            _PATCHED["ok"] = False
            return False
        orig = getattr(ProducerBatch, "retry", None)
        if orig is None:
            _PATCHED["ok"] = False
            return False

        def retry(self, *a, **kw):
            futs = getattr(self, "_record_futures", None) or []
            for sink in list(_RETRY_SINKS):
                for f in futs:
                    sink.add(id(f))
            return orig(self, *a, **kw)

        ProducerBatch.retry = retry
        _PATCHED["ok"] = True
        return True


class _Stream:
    """A paced producer stream that records, per message index: when it was first sent, the
    (partition, offset) it was acknowledged with and when, final errors, and re-sends.

    Subclasses provide _send(i) and _flush(timeout) for one client library."""

    client = "?"

    def __init__(self, topic: str, messages: list[tuple[bytes, bytes]], rate: float):
        self.topic = topic
        self.messages = messages
        self.rate = rate
        self.send_time: dict[int, float] = {}
        self.acked: dict[int, tuple[int, int]] = {}
        self.ack_time: dict[int, float] = {}
        self.errors: dict[int, list[str]] = collections.defaultdict(list)
        self.app_resent: set[int] = set()
        self._resend: collections.deque[int] = collections.deque()
        self._lock = threading.Lock()
        self.sent_count = 0
        self.t_start = None

    # -- completion bookkeeping (may run on a client thread)
    def _ok(self, i: int, partition: int, offset: int):
        with self._lock:
            if i not in self.acked:
                self.acked[i] = (partition, offset)
                self.ack_time[i] = time.monotonic()

    def _err(self, i: int, what: str):
        with self._lock:
            self.errors[i].append(what)
            if i not in self.acked:
                self._resend.append(i)

    def _send(self, i: int):
        raise NotImplementedError

    def _flush(self, timeout: float):
        raise NotImplementedError

    def _close(self):
        pass

    def _poll(self):
        pass

    def _drain_resends(self):
        while True:
            with self._lock:
                if not self._resend:
                    return
                i = self._resend.popleft()
                if i in self.acked:
                    continue
                self.app_resent.add(i)
            self._send(i)

    def run(self, events: dict[int, callable] | None = None):
        """Send every message in order at `rate` msgs/s; events[i]() runs right before message i."""
        events = events or {}
        self.t_start = time.monotonic()
        for i in range(len(self.messages)):
            ev = events.get(i)
            if ev is not None:
                ev()
            self.send_time.setdefault(i, time.monotonic())
            self._send(i)
            self.sent_count = i + 1
            if i % 25 == 24:
                self._poll()
                self._drain_resends()
                due = self.t_start + (i + 1) / self.rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

    def finish(self, timeout: float = 60.0):
        """Flush; re-send what finally failed until everything is acked or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._drain_resends()
            try:
                self._flush(max(1.0, min(10.0, deadline - time.monotonic())))
            except Exception:  # noqa: BLE001 - flush timeout: loop and check again
                pass
            with self._lock:
                done = len(self.acked) == len(self.messages) and not self._resend
            if done:
                break
            time.sleep(0.2)
        try:
            self._close()
        except Exception:  # noqa: BLE001
            pass

    # -- reporting
    def in_flight_at(self, t: float) -> set[int]:
        """Messages sent before t and not acknowledged by t (queued in the client or on the wire)."""
        return {i for i, st in self.send_time.items() if st < t and not (i in self.ack_time and self.ack_time[i] <= t)}

    def max_latency(self, sent_after: float | None = None) -> float:
        """Longest send->ack time (s), optionally only of messages sent at or after `sent_after`."""
        lats = [self.ack_time[i] - st for i, st in self.send_time.items()
                if i in self.ack_time and (sent_after is None or st >= sent_after)]
        return max(lats, default=0.0)

    def retried_indices(self) -> set[int]:
        return set(self.app_resent)

    def unacked(self) -> list[int]:
        return [i for i in range(len(self.messages)) if i not in self.acked]


class StreamProducer(_Stream):
    """kafka-python: acks=all, retries on, idempotence off, one request in flight per connection.

    The client's own retries are tracked exactly (patched ProducerBatch.retry), so a duplicate is
    legitimate only for a message whose batch kafka-python retried or that the test re-sent."""

    client = "kafka-python"

    def __init__(self, bootstrap: str | list[str], topic: str, messages: list[tuple[bytes, bytes]], *,
                 rate: float = 1000.0, delivery_timeout_ms: int = 60000):
        from kafka import KafkaProducer

        super().__init__(topic, messages, rate)
        self.tracking = _install_retry_tracking()
        self.retried_ids: set[int] = set()
        _RETRY_SINKS.append(self.retried_ids)
        self.futures: dict[int, list] = collections.defaultdict(list)  # index -> futures (all attempts)
        self.producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            client_id="riptide-e2e-stream",
            acks="all",
            enable_idempotence=False,
            retries=1_000_000,
            max_in_flight_requests_per_connection=1,
            linger_ms=5,
            request_timeout_ms=10000,
            delivery_timeout_ms=delivery_timeout_ms,
            retry_backoff_ms=100,
            reconnect_backoff_ms=50,
            reconnect_backoff_max_ms=1000,
            metadata_max_age_ms=5000,
            max_block_ms=60000,
        )

    def _send(self, i: int):
        k, v = self.messages[i]
        fut = self.producer.send(self.topic, key=k, value=v)
        self.futures[i].append(fut)
        fut.add_callback(lambda md, i=i: self._ok(i, md.partition, md.offset))
        fut.add_errback(lambda exc, i=i: self._err(i, f"{type(exc).__name__}: {exc}"))

    def _flush(self, timeout: float):
        self.producer.flush(timeout=timeout)

    def _close(self):
        _RETRY_SINKS[:] = [s for s in _RETRY_SINKS if s is not self.retried_ids]
        self.producer.close(timeout=5)

    def retried_indices(self) -> set[int]:
        out = set(self.app_resent)
        for i, futs in self.futures.items():
            if len(futs) > 1 or any(id(f) in self.retried_ids for f in futs):
                out.add(i)
        return out


class CkStreamProducer(_Stream):
    """confluent-kafka (librdkafka): acks=all, retries on (librdkafka's default), idempotence off,
    up to 5 requests in flight per connection.

    librdkafka does not say which messages it retried, so `retried_indices` is the sound superset:
    messages that were in flight (sent, not yet acknowledged) at a given instant (the kill), plus
    application re-sends. Only those can have been retried after their first attempt reached the
    broker that died."""

    client = "confluent-kafka"

    def __init__(self, bootstrap: str | list[str], topic: str, messages: list[tuple[bytes, bytes]], *,
                 rate: float = 1000.0, message_timeout_ms: int = 60000):
        from confluent_kafka import Producer

        super().__init__(topic, messages, rate)
        if isinstance(bootstrap, (list, tuple)):
            bootstrap = ",".join(bootstrap)
        self.possibly_retried: set[int] = set()
        self.producer = Producer({
            "bootstrap.servers": bootstrap,
            "client.id": "riptide-e2e-ck-stream",
            "acks": "all",
            "enable.idempotence": False,
            "max.in.flight.requests.per.connection": 5,
            "linger.ms": 5,
            "message.timeout.ms": message_timeout_ms,
            "request.timeout.ms": 10000,
            "retry.backoff.ms": 100,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 1000,
            "topic.metadata.refresh.interval.ms": 5000,
        })

    def _send(self, i: int):
        k, v = self.messages[i]

        def cb(err, msg, i=i):
            if err is not None:
                self._err(i, str(err))
            else:
                self._ok(i, msg.partition(), msg.offset())

        while True:
            try:
                self.producer.produce(self.topic, key=k, value=v, on_delivery=cb)
                return
            except BufferError:
                self.producer.poll(0.05)

    def _poll(self):
        self.producer.poll(0)

    def _flush(self, timeout: float):
        self.producer.flush(timeout)

    def mark_possibly_retried(self, t: float):
        self.possibly_retried |= self.in_flight_at(t)

    def retried_indices(self) -> set[int]:
        return set(self.app_resent) | self.possibly_retried


# --------------------------------------------------------------------------------------------
# confluent-kafka helpers
# --------------------------------------------------------------------------------------------


def ck_metadata(bootstrap: str, topic: str | None = None, timeout: float = 10.0):
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    return admin.list_topics(topic=topic, timeout=timeout)


def ck_read_all(bootstrap: str, topic: str, partitions: int, timeout: float = 60.0) -> list[Rec]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"riptide-e2e-reader-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 100,
    })
    try:
        hw = {}
        for p in range(partitions):
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            hw[p] = hi
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        out: list[Rec] = []
        pos = {p: 0 for p in range(partitions)}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(pos[p] < hw[p] for p in hw):
            for m in c.consume(num_messages=10000, timeout=0) or c.consume(num_messages=1, timeout=0.5):
                if m.error():
                    if m.error().code() == -191:  # _PARTITION_EOF
                        continue
                    raise KafkaException(m.error())
                out.append(Rec(m.partition(), m.offset(), m.key(), m.value()))
                pos[m.partition()] = max(pos[m.partition()], m.offset() + 1)
        if any(pos[p] < hw[p] for p in hw):
            raise AssertionError(f"confluent-kafka consumer did not reach the high watermarks within {timeout}s: "
                                 f"positions {pos}, high watermarks {hw}, read {len(out)} records")
        return out
    finally:
        c.close()


class TailingConsumer:
    """A consumer that reads every partition from offset 0 in a background thread while the test
    produces and kills brokers ("the clients carry on"). Afterwards: did it see contiguous offsets,
    the same record at each offset as a fresh reader, and reach the end?"""

    def __init__(self, client: str, bootstrap: list[str], topic: str, partitions: int):
        self.client, self.bootstrap, self.topic, self.partitions = client, bootstrap, topic, partitions
        self.records: list[Rec] = []
        self.errors: list[str] = []
        self.target: dict[int, int] | None = None  # stop once every partition reaches these offsets
        self.reached = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"tail-{client}", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        try:
            if self.client == "kafka-python":
                self._run_kp()
            else:
                self._run_ck()
        except Exception as e:  # noqa: BLE001 - reported by check()
            self.errors.append(f"consumer thread died: {e!r}")

    def _note(self, pos: dict[int, int]):
        t = self.target
        if t is not None and all(pos.get(p, 0) >= t[p] for p in t):
            self.reached.set()

    def _run_kp(self):
        from kafka import KafkaConsumer, TopicPartition

        c = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                          auto_offset_reset="earliest", fetch_max_wait_ms=100, request_timeout_ms=10000,
                          reconnect_backoff_ms=50, reconnect_backoff_max_ms=1000, metadata_max_age_ms=5000,
                          client_id="riptide-e2e-tail")
        try:
            tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
            c.assign(tps)
            c.seek_to_beginning(*tps)
            pos: dict[int, int] = {}
            while not self._stop.is_set():
                try:
                    batch = c.poll(timeout_ms=200, max_records=5000)
                except Exception as e:  # noqa: BLE001 - a client error during failover: note, go on
                    self.errors.append(f"poll: {e!r}")
                    time.sleep(0.2)
                    continue
                for tp, msgs in batch.items():
                    for m in msgs:
                        self.records.append(Rec(tp.partition, m.offset, m.key, m.value))
                        pos[tp.partition] = m.offset + 1
                self._note(pos)
        finally:
            c.close()

    def _run_ck(self):
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        c = Consumer({"bootstrap.servers": ",".join(self.bootstrap), "group.id": f"tail-{uuid.uuid4().hex[:8]}",
                      "enable.auto.commit": False, "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100,
                      "topic.metadata.refresh.interval.ms": 5000})
        try:
            c.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in range(self.partitions)])
            pos: dict[int, int] = {}
            while not self._stop.is_set():
                for m in c.consume(num_messages=5000, timeout=0.2):
                    if m.error():
                        if m.error().code() != -191:
                            self.errors.append(f"consume: {m.error()}")
                        continue
                    self.records.append(Rec(m.partition(), m.offset(), m.key(), m.value()))
                    pos[m.partition()] = m.offset() + 1
                self._note(pos)
        finally:
            c.close()

    def finish(self, end_offsets: dict[int, int], timeout: float = 30.0) -> bool:
        """Wait until it has read up to end_offsets (partition -> high watermark), then stop it."""
        self.target = dict(end_offsets)
        ok = self.reached.wait(timeout)
        self._stop.set()
        self._thread.join(15)
        return ok

    def stop(self):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(15)

    def check(self, final: list[Rec]) -> list[str]:
        """Problems: offsets it skipped, or an offset whose record differs from the fresh read."""
        problems = []
        truth = {(r.partition, r.offset): (r.key, r.value) for r in final}
        by_p: dict[int, list[int]] = collections.defaultdict(list)
        for r in self.records:
            by_p[r.partition].append(r.offset)
            t = truth.get((r.partition, r.offset))
            if t is None:
                problems.append(f"tailing consumer saw p{r.partition}@{r.offset} ({r.value!r:.30}), "
                                f"which a fresh reader does not find")
            elif t != (r.key, r.value):
                problems.append(f"p{r.partition}@{r.offset}: tailing consumer saw {r.value!r:.30}, a fresh reader "
                                f"{t[1]!r:.30} (the record at an offset changed)")
        for p, offs in sorted(by_p.items()):
            uniq = sorted(set(offs))
            if uniq and uniq[0] != 0:
                problems.append(f"tailing consumer: p{p} started at offset {uniq[0]}")
            skips = [(a, b) for a, b in zip(uniq, uniq[1:]) if b != a + 1]
            if skips:
                problems.append(f"tailing consumer: p{p} skipped offsets {skips[:5]}")
        return problems[:30]


# --------------------------------------------------------------------------------------------
# raw Kafka protocol bits (for probes and the garbage test)
# --------------------------------------------------------------------------------------------


def kstr(s: str | None) -> bytes:
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def request_header_v1(api_key: int, api_version: int, correlation_id: int, client_id: str | None = "e2e") -> bytes:
    return struct.pack(">hhi", api_key, api_version, correlation_id) + kstr(client_id)


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def parse_api_versions_v0(body: bytes, correlation_id: int) -> tuple[int, dict[int, tuple[int, int]]]:
    """(error_code, {api_key: (min, max)}) from an ApiVersions response body with a v0 layout."""
    (cid,) = struct.unpack(">i", body[:4])
    if cid != correlation_id:
        raise AssertionError(f"ApiVersions: correlation id {cid}, expected {correlation_id}")
    err, n = struct.unpack(">hi", body[4:10])
    if n < 0 or 10 + 6 * n > len(body):
        raise AssertionError(f"ApiVersions: {n} api keys do not fit in a {len(body)}-byte response")
    keys = {}
    for j in range(n):
        k, lo, hi = struct.unpack(">hhh", body[10 + 6 * j:16 + 6 * j])
        keys[k] = (lo, hi)
    return err, keys


def roundtrip(port: int, payload: bytes, timeout: float = 5.0) -> bytes:
    """Send one framed request, return the response body (without its length prefix)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(frame(payload))
        (size,) = struct.unpack(">i", recv_exact(s, 4))
        return recv_exact(s, size)


def api_versions_v0(port: int, correlation_id: int = 4242, timeout: float = 5.0) -> tuple[int, dict[int, tuple[int, int]]]:
    """Send ApiVersions v0; return (error_code, {api_key: (min_version, max_version)}) from a
    well-formed response (raises if the response is malformed or the connection drops)."""
    body = roundtrip(port, request_header_v1(18, 0, correlation_id), timeout)
    return parse_api_versions_v0(body, correlation_id)


def advertised_apis(port: int) -> dict[int, tuple[int, int]]:
    return api_versions_v0(port)[1]


@contextlib.contextmanager
def timed(label: str, sink: dict | None = None):
    t = time.monotonic()
    yield
    if sink is not None:
        sink[label] = time.monotonic() - t
