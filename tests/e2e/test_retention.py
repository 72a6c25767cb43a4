"""Retention and DeleteRecords with real clients.

Acceptance: confluent-kafka's AdminClient creates a topic with `retention.ms` and calls
DeleteRecords; old records go within the window; kcat and kafka-python consumers from the beginning
start at the log start.

1. Topic settings: CreateTopics with configs, DescribeConfigs (values, defaults, sources),
   IncrementalAlterConfigs SET/DELETE/validate_only, and refusals (bad value, unknown name,
   cleanup.policy=compact) with INVALID_CONFIG; kafka-python's admin client reads and changes them too.
2. DeleteRecords: the low watermark it answers, ListOffsets earliest/latest, consumers from the
   beginning (kcat, kafka-python, confluent-kafka) that start at the log start, consumers seeking
   below it that are reset to it (or told OFFSET_OUT_OF_RANGE with no reset policy), offsets that go
   on after it, kafka-python's DeleteRecords, and a log start that survives a broker restart.
3. Retention by time (records stamped now and records stamped days ago), by size, and after
   IncrementalAlterConfigs lowers retention.ms; the broker runs with `--retention-check-ms 500`
   (default 30 s) so the window is seconds.
4. Objects below the log start are deleted after `--delete-delay-ms` once a checkpoint covers them,
   and a broker opening the partition afterwards (from the checkpoint) serves the same log.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from e2e_util import unique_topic

# `riptide broker --retention-check-ms` (default 30 s) for the retention tests
CHECK_INTERVAL_S = 0.5
INVALID_CONFIG = 40
UNKNOWN_TOPIC_OR_PARTITION = 3
OFFSET_OUT_OF_RANGE = 1
# DescribeConfigs config_source (confluent-kafka hands it over as a plain int)
TOPIC_SOURCE = 1  # DYNAMIC_TOPIC_CONFIG
DEFAULT_SOURCE = 5  # DEFAULT_CONFIG


def kcat_bin() -> str:
    k = shutil.which("kcat") or shutil.which("kafkacat")
    if not k:
        pytest.fail("kcat is not installed (apt-get install -y kcat; ci/test.sh does it)", pytrace=False)
    return k


def admin_for(bootstrap: str):
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(admin, topic: str, partitions: int = 1, config: dict | None = None):
    from confluent_kafka.admin import NewTopic

    fs = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1,
                                       config=config or {})], operation_timeout=30)
    fs[topic].result(timeout=30)


def describe(admin, topic: str) -> dict:
    from confluent_kafka.admin import ConfigResource

    fs = admin.describe_configs([ConfigResource("topic", topic)], request_timeout=15)
    return next(iter(fs.values())).result(timeout=15)


def alter(admin, topic: str, *entries, validate_only: bool = False):
    from confluent_kafka.admin import ConfigResource

    fs = admin.incremental_alter_configs([ConfigResource("topic", topic, incremental_configs=list(entries))],
                                         validate_only=validate_only, request_timeout=15)
    return next(iter(fs.values())).result(timeout=15)


def kafka_error_code(exc: BaseException) -> int | None:
    """The Kafka error code inside a confluent-kafka KafkaException."""
    arg = exc.args[0] if getattr(exc, "args", None) else None
    return arg.code() if hasattr(arg, "code") else None


def produce(bootstrap: str, topic: str, values: list[bytes], partition: int = 0,
            timestamp_ms: int | None = None, one_per_request: bool = False) -> list[int]:
    """Produce `values` (acks=all) and flush; returns their offsets in order. `one_per_request`:
    flush after each record, so each is a produce request (and a commit) of its own."""
    from confluent_kafka import Producer

    offsets: dict[int, int] = {}
    errors: list[str] = []

    def cb(err, m, i):
        if err is not None:
            errors.append(str(err))
        else:
            offsets[i] = m.offset()

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "message.timeout.ms": 30000})
    for i, v in enumerate(values):
        kw = {"timestamp": timestamp_ms} if timestamp_ms is not None else {}
        p.produce(topic, value=v, partition=partition, on_delivery=lambda err, m, i=i: cb(err, m, i), **kw)
        if one_per_request:
            assert p.flush(30) == 0, f"produce to {topic}: record {i} undelivered"
    left = p.flush(30)
    assert left == 0 and not errors, f"produce to {topic}: {left} undelivered, errors {errors[:5]}"
    return [offsets[i] for i in range(len(values))]


def watermarks(bootstrap: str, topic: str, partition: int = 0) -> tuple[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"wm-{uuid.uuid4().hex[:8]}"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
    finally:
        c.close()


def list_offsets(admin, topic: str, partition: int = 0) -> tuple[int, int]:
    """(earliest, latest) from AdminClient.list_offsets (ListOffsets)."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec

    tp = TopicPartition(topic, partition)
    out = []
    for spec in (OffsetSpec.earliest(), OffsetSpec.latest()):
        fs = admin.list_offsets({tp: spec}, request_timeout=15)
        out.append(next(iter(fs.values())).result(timeout=15).offset)
    return out[0], out[1]


def kcat_read(bootstrap: str, topic: str, partition: int = 0, offset: str = "beginning") -> list[tuple[int, bytes]]:
    """`kcat -C -o <offset> -e` on one partition: (offset, value) of every record it printed."""
    kcat = kcat_bin()
    c = subprocess.run([kcat, "-C", "-b", bootstrap, "-t", topic, "-p", str(partition), "-o", offset, "-e", "-q",
                        "-f", r"%o\t%s\n"], capture_output=True, timeout=60)
    err = c.stderr.decode(errors="replace")
    assert c.returncode == 0, f"kcat -C -o {offset} exited with {c.returncode}; stderr:\n{err[-3000:]}"
    out = []
    for line in c.stdout.splitlines():
        if line:
            o, v = line.split(b"\t", 1)
            out.append((int(o), v))
    return out


def kp_read(bootstrap: str, topic: str, end: int, partition: int = 0, seek: int | None = None,
            reset: str = "earliest", timeout: float = 30.0) -> list[tuple[int, bytes]]:
    """kafka-python: assign one partition with no committed offset (so `auto_offset_reset` decides
    where it starts), or seek to `seek`; read up to `end`."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset=reset, fetch_max_wait_ms=100, request_timeout_ms=15000,
                      client_id="riptide-e2e-retention")
    try:
        tp = TopicPartition(topic, partition)
        c.assign([tp])
        if seek is not None:
            c.seek(tp, seek)
        out: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (not out or out[-1][0] < end - 1):
            for msgs in c.poll(timeout_ms=300).values():
                out += [(m.offset, m.value) for m in msgs]
        return out
    finally:
        c.close()


def ck_read(bootstrap: str, topic: str, end: int, start: int, partition: int = 0,
            timeout: float = 30.0) -> list[tuple[int, bytes]]:
    """confluent-kafka: assign at offset `start` (auto.offset.reset=earliest), read up to `end`."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"ret-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100})
    try:
        c.assign([TopicPartition(topic, partition, start)])
        out: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (not out or out[-1][0] < end - 1):
            for m in c.consume(num_messages=1000, timeout=0.3):
                if m.error():
                    raise KafkaException(m.error())
                out.append((m.offset(), m.value()))
        return out
    finally:
        c.close()


def values(n: int, tag: str, first: int = 0) -> list[bytes]:
    return [f"{tag}-{i}".encode() for i in range(first, first + n)]


# --------------------------------------------------------------------------------------------
# 1. topic settings
# --------------------------------------------------------------------------------------------


def test_topic_retention_configs(harness):
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry

    b = harness.broker()
    admin = admin_for(b.bootstrap)
    topic = unique_topic("ret-cfg")
    create_topic(admin, topic, partitions=2, config={"retention.ms": "3600000"})

    got = describe(admin, topic)
    print({n: (e.value, e.source, e.is_default) for n, e in got.items()})
    assert set(got) >= {"retention.ms", "retention.bytes", "cleanup.policy"}, got
    assert (got["retention.ms"].value, got["retention.ms"].source) == ("3600000", TOPIC_SOURCE)
    assert not got["retention.ms"].is_default
    assert (got["retention.bytes"].value, got["retention.bytes"].source) == ("-1", DEFAULT_SOURCE)
    assert got["retention.bytes"].is_default
    assert (got["cleanup.policy"].value, got["cleanup.policy"].source) == ("delete", DEFAULT_SOURCE)

    # SET retention.bytes; retention.ms keeps its value
    alter(admin, topic, ConfigEntry("retention.bytes", "1048576", incremental_operation=AlterConfigOpType.SET))
    got = describe(admin, topic)
    assert (got["retention.bytes"].value, got["retention.bytes"].source) == ("1048576", TOPIC_SOURCE)
    assert got["retention.ms"].value == "3600000"

    # validate_only changes nothing
    alter(admin, topic, ConfigEntry("retention.bytes", "7", incremental_operation=AlterConfigOpType.SET),
          validate_only=True)
    assert describe(admin, topic)["retention.bytes"].value == "1048576"

    # DELETE: back to the default
    alter(admin, topic, ConfigEntry("retention.bytes", None, incremental_operation=AlterConfigOpType.DELETE))
    got = describe(admin, topic)
    assert (got["retention.bytes"].value, got["retention.bytes"].source) == ("-1", DEFAULT_SOURCE)
    assert got["retention.ms"].value == "3600000"

    # refusals: a bad value, an unknown setting, a policy the broker does not have
    for name, value in [("retention.ms", "soon"), ("retention.ms", "-2"), ("segment.bytes", "1048576"),
                        ("cleanup.policy", "compact")]:
        with pytest.raises(KafkaException) as ei:
            alter(admin, topic, ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET))
        assert kafka_error_code(ei.value) == INVALID_CONFIG, f"SET {name}={value}: {ei.value!r}"
    got = describe(admin, topic)
    assert (got["retention.ms"].value, got["retention.bytes"].value, got["cleanup.policy"].value) == (
        "3600000", "-1", "delete"), {n: e.value for n, e in got.items()}

    # CreateTopics refuses the same, and creates nothing
    for config in [{"segment.bytes": "1048576"}, {"retention.ms": "soon"}, {"cleanup.policy": "compact"}]:
        bad = unique_topic("ret-bad")
        with pytest.raises(KafkaException) as ei:
            create_topic(admin, bad, config=config)
        assert kafka_error_code(ei.value) == INVALID_CONFIG, f"create with {config}: {ei.value!r}"
        assert bad not in admin.list_topics(timeout=10).topics, f"{bad} was created despite {config}"

    # kafka-python's admin client: DescribeConfigs (every setting, or only the modified ones) and
    # alter_configs (IncrementalAlterConfigs on brokers that have it)
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource as KpConfigResource
    from kafka.admin import ConfigResourceType

    kp = KafkaAdminClient(bootstrap_servers=b.bootstrap, client_id="riptide-e2e-retention", request_timeout_ms=15000)
    try:
        res = KpConfigResource(ConfigResourceType.TOPIC, topic)
        described = kp.describe_configs([res], config_filter="all")["topic"][topic]
        assert {n: (c["value"], c["config_source"]) for n, c in described.items()} == {
            "retention.ms": ("3600000", "DYNAMIC_TOPIC_CONFIG"),
            "retention.bytes": ("-1", "DEFAULT_CONFIG"),
            "cleanup.policy": ("delete", "DEFAULT_CONFIG"),
        }, described
        assert set(kp.describe_configs([res])["topic"][topic]) == {"retention.ms"}
        kp.alter_configs([KpConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.bytes": "4096"})])
        assert describe(admin, topic)["retention.bytes"].value == "4096"
    finally:
        kp.close()

    # DescribeConfigs of a topic that does not exist
    with pytest.raises(KafkaException) as ei:
        describe(admin, unique_topic("ret-none"))
    assert kafka_error_code(ei.value) == UNKNOWN_TOPIC_OR_PARTITION, repr(ei.value)


# --------------------------------------------------------------------------------------------
# 2. DeleteRecords, and consumers from the beginning
# --------------------------------------------------------------------------------------------

N = 100
K = 40
M = 25


def test_delete_records_consumers_start_at_log_start(harness):
    from confluent_kafka import OFFSET_END, KafkaException, TopicPartition

    b = harness.broker()
    admin = admin_for(b.bootstrap)
    topic = unique_topic("ret-del")
    create_topic(admin, topic, partitions=2, config={"retention.ms": "86400000"})
    sent0 = values(N, "p0")
    assert produce(b.bootstrap, topic, sent0, partition=0) == list(range(N))
    assert produce(b.bootstrap, topic, values(M, "p1"), partition=1) == list(range(M))
    assert list_offsets(admin, topic, 0) == (0, N)

    # p0 up to K, p1 everything (OFFSET_END = -1: the high watermark)
    fs = admin.delete_records([TopicPartition(topic, 0, K), TopicPartition(topic, 1, OFFSET_END)],
                              operation_timeout=30, request_timeout=30)
    lows = {tp.partition: f.result(timeout=30).low_watermark for tp, f in fs.items()}
    assert lows == {0: K, 1: M}, lows

    assert list_offsets(admin, topic, 0) == (K, N)
    assert list_offsets(admin, topic, 1) == (M, M)
    assert watermarks(b.bootstrap, topic, 0) == (K, N)
    assert watermarks(b.bootstrap, topic, 1) == (M, M)

    # below the log start: nothing changes, the answer is the log start
    fs = admin.delete_records([TopicPartition(topic, 0, K - 10)], operation_timeout=30, request_timeout=30)
    assert next(iter(fs.values())).result(timeout=30).low_watermark == K
    # past the high watermark: OFFSET_OUT_OF_RANGE
    fs = admin.delete_records([TopicPartition(topic, 0, N + 5)], operation_timeout=30, request_timeout=30)
    with pytest.raises(KafkaException) as ei:
        next(iter(fs.values())).result(timeout=30)
    assert kafka_error_code(ei.value) == OFFSET_OUT_OF_RANGE, repr(ei.value)
    assert list_offsets(admin, topic, 0) == (K, N)

    want = [(o, sent0[o]) for o in range(K, N)]

    # kcat from the beginning
    got = kcat_read(b.bootstrap, topic, 0)
    assert got == want, f"kcat -o beginning read offsets {[o for o, _ in got][:5]}..., want {K}..{N - 1}"
    assert kcat_read(b.bootstrap, topic, 1) == []

    # kafka-python, no position: auto_offset_reset='earliest' starts at the log start
    got = kp_read(b.bootstrap, topic, N)
    assert got == want, f"kafka-python (earliest) read offsets {[o for o, _ in got][:5]}..., want {K}..{N - 1}"
    # kafka-python seeking below the log start: OFFSET_OUT_OF_RANGE, reset to earliest = the log start
    got = kp_read(b.bootstrap, topic, N, seek=5)
    assert got == want, f"kafka-python (seek 5) read offsets {[o for o, _ in got][:5]}..., want {K}..{N - 1}"
    # ... and with no reset policy the fetch's OFFSET_OUT_OF_RANGE reaches the application
    from kafka.errors import OffsetOutOfRangeError

    with pytest.raises(OffsetOutOfRangeError):
        kp_read(b.bootstrap, topic, N, seek=5, reset="none", timeout=10)

    # confluent-kafka assigned below the log start: reset to it
    got = ck_read(b.bootstrap, topic, N, start=5)
    assert got == want, f"confluent-kafka (offset 5) read offsets {[o for o, _ in got][:5]}..., want {K}..{N - 1}"

    # offsets go on after the high watermark, never reused
    assert produce(b.bootstrap, topic, values(5, "p0", N), partition=0) == list(range(N, N + 5))
    assert produce(b.bootstrap, topic, values(3, "p1", M), partition=1) == list(range(M, M + 3))
    assert kcat_read(b.bootstrap, topic, 1) == [(o, b"p1-%d" % o) for o in range(M, M + 3)]

    # kafka-python's admin client moves p1's log start on; its consumer sees the log starts
    from kafka import KafkaAdminClient, KafkaConsumer
    from kafka import TopicPartition as KpTopicPartition

    kp = KafkaAdminClient(bootstrap_servers=b.bootstrap, client_id="riptide-e2e-retention", request_timeout_ms=15000)
    try:
        got = kp.delete_records({KpTopicPartition(topic, 1): M + 1})
        assert [(tp.partition, r["low_watermark"], r["error_code"]) for tp, r in got.items()] == [(1, M + 1, 0)], got
    finally:
        kp.close()
    kc = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=None, client_id="riptide-e2e-retention")
    try:
        tps = [KpTopicPartition(topic, 0), KpTopicPartition(topic, 1)]
        assert {tp.partition: o for tp, o in kc.beginning_offsets(tps).items()} == {0: K, 1: M + 1}
        assert {tp.partition: o for tp, o in kc.end_offsets(tps).items()} == {0: N + 5, 1: M + 3}
    finally:
        kc.close()
    assert kcat_read(b.bootstrap, topic, 1) == [(M + 1, b"p1-%d" % (M + 1)), (M + 2, b"p1-%d" % (M + 2))]

    # the log start is durable: a restarted broker (same store) serves it
    b.stop()
    b.restart()
    admin = admin_for(b.bootstrap)
    assert list_offsets(admin, topic, 0) == (K, N + 5)
    assert list_offsets(admin, topic, 1) == (M + 1, M + 3)
    got = kcat_read(b.bootstrap, topic, 0)
    assert [o for o, _ in got] == list(range(K, N + 5)), [o for o, _ in got][:5]


# --------------------------------------------------------------------------------------------
# 3. retention by time and size, applied by the owner every check interval
# --------------------------------------------------------------------------------------------


def wait_for(what: str, pred, timeout: float, every: float = 0.2):
    """Poll `pred` until it returns something truthy; fail with `what` (and its last value) after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f}s (last: {last!r})")
        time.sleep(every)


def wait_watermarks(bootstrap: str, topic: str, want: tuple[int, int], timeout: float = 10.0):
    last = []

    def check():
        last[:] = [watermarks(bootstrap, topic)]
        return last[0] == want

    try:
        wait_for(f"{topic}: watermarks {want}", check, timeout)
    except AssertionError as e:
        raise AssertionError(f"{e}; last seen {last[0]}") from None


RETENTION_SHORT_MS = 3000
DAY_MS = 86_400_000


def test_retention_moves_log_start(harness):
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry

    b = harness.broker(extra=["--retention-check-ms", str(int(CHECK_INTERVAL_S * 1000))])
    admin = admin_for(b.bootstrap)
    # records stamped now, kept 3 s
    t_short = unique_topic("ret-short")
    create_topic(admin, t_short, config={"retention.ms": str(RETENTION_SHORT_MS)})
    # kept a day: the records stamped two days ago are expired, the ones stamped now are not
    t_old = unique_topic("ret-old")
    create_topic(admin, t_old, config={"retention.ms": str(DAY_MS)})
    # one byte: only the newest commit is kept (Kafka keeps what the bound allows, whole segments)
    t_size = unique_topic("ret-size")
    create_topic(admin, t_size, config={"retention.bytes": "1"})
    # the default (a week) keeps two-day-old records until retention.ms is lowered
    t_alter = unique_topic("ret-alter")
    create_topic(admin, t_alter)

    two_days_ago = int(time.time() * 1000) - 2 * DAY_MS
    assert produce(b.bootstrap, t_old, values(10, "old"), timestamp_ms=two_days_ago) == list(range(10))
    assert produce(b.bootstrap, t_old, values(10, "new", 10)) == list(range(10, 20))
    assert produce(b.bootstrap, t_size, values(5, "size"), one_per_request=True) == list(range(5))
    assert produce(b.bootstrap, t_alter, values(10, "old"), timestamp_ms=two_days_ago) == list(range(10))
    assert produce(b.bootstrap, t_alter, values(5, "new", 10)) == list(range(10, 15))
    t0 = time.monotonic()  # no record of t_short is older than this
    assert produce(b.bootstrap, t_short, values(20, "short")) == list(range(20))
    t1 = time.monotonic()
    wm = watermarks(b.bootstrap, t_short)
    if time.monotonic() - t0 < RETENTION_SHORT_MS / 1000 - 0.5:
        assert wm == (0, 20), f"{t_short}: records {time.monotonic() - t0:.1f}s old are gone already: {wm}"

    # what was expired when written goes within a check interval or two
    want = {t_old: (10, 20), t_size: (4, 5)}
    for t, w in want.items():
        wait_watermarks(b.bootstrap, t, w)

    # records stamped now go once they are retention.ms old, not before
    def short_moved():
        lo, hi = watermarks(b.bootstrap, t_short)
        return (lo, hi, time.monotonic()) if lo > 0 else None

    lo, hi, at = wait_for(f"{t_short}: log start moved", short_moved, timeout=RETENTION_SHORT_MS / 1000 + 15)
    print(f"{t_short}: log start moved to {lo} {at - t0:.2f}s after the first record was produced "
          f"(retention.ms {RETENTION_SHORT_MS}, check interval {CHECK_INTERVAL_S}s)")
    assert (lo, hi) == (20, 20)
    assert at - t0 >= RETENTION_SHORT_MS / 1000 - 0.1, f"records went after {at - t0:.2f}s, before retention.ms"
    assert at - t1 <= RETENTION_SHORT_MS / 1000 + 2 * CHECK_INTERVAL_S + 5, (
        f"records went {at - t1:.2f}s after they were produced")

    # the default kept t_alter's two-day-old records through several checks; lowering retention.ms lets them go
    assert watermarks(b.bootstrap, t_alter) == (0, 15)
    alter(admin, t_alter, ConfigEntry("retention.ms", str(DAY_MS), incremental_operation=AlterConfigOpType.SET))
    wait_watermarks(b.bootstrap, t_alter, (10, 15))

    # the records kept are there; consumers from the beginning start at the log start
    kept = [(o, f"new-{o}".encode()) for o in range(10, 20)]
    assert kcat_read(b.bootstrap, t_short) == []
    assert kcat_read(b.bootstrap, t_old) == kept
    assert kcat_read(b.bootstrap, t_size) == [(4, b"size-4")]
    assert kcat_read(b.bootstrap, t_alter) == kept[:5]
    assert kp_read(b.bootstrap, t_old, 20) == kept
    assert kp_read(b.bootstrap, t_old, 20, seek=0) == kept
    assert ck_read(b.bootstrap, t_old, 20, start=0) == kept
    assert list_offsets(admin, t_old) == (10, 20)

    # the moved log starts are in the store: a restarted broker serves them
    b.stop()
    b.restart()
    for t, w in {**want, t_short: (20, 20), t_alter: (10, 15)}.items():
        assert watermarks(b.bootstrap, t) == w, t


# --------------------------------------------------------------------------------------------
# 4. objects below the log start are deleted after the delay
# --------------------------------------------------------------------------------------------

COMMITS = 80  # more than CHECKPOINT_EVERY (64): objects are deleted only below a checkpoint
TRIM = 70


def commit_objects(data: Path, topic: str, partition: int = 0) -> list[int]:
    """Sequence numbers of the partition's commit objects in a --data store."""
    meta = json.loads((data / "topics" / f"{topic}.json").read_text())
    d = data / "log" / meta["id"] / str(partition)
    return sorted(int(f.name.split(".")[0]) for f in d.glob("*.commit"))


def test_objects_below_log_start_are_deleted(harness):
    from confluent_kafka import TopicPartition

    data = harness.tmp / "data"
    b = harness.broker(data=data, extra=["--retention-check-ms", "200", "--delete-delay-ms", "1000"])
    admin = admin_for(b.bootstrap)
    topic = unique_topic("ret-gc")
    create_topic(admin, topic)
    sent = values(COMMITS, "gc")
    assert produce(b.bootstrap, topic, sent, one_per_request=True) == list(range(COMMITS))
    before = commit_objects(data, topic)
    assert len(before) >= COMMITS, before
    ckpts = wait_for("a checkpoint", lambda: sorted((data / "log").rglob("*.ckpt")), timeout=10)
    # deleted: every commit below the oldest checkpoint and below the commit holding offset TRIM
    bound = min(int(ckpts[0].name.split(".")[0]), before[-1] - (COMMITS - TRIM) + 1)

    t0 = time.monotonic()
    fs = admin.delete_records([TopicPartition(topic, 0, TRIM)], operation_timeout=30, request_timeout=30)
    assert next(iter(fs.values())).result(timeout=30).low_watermark == TRIM
    after = wait_for("commit objects below the log start deleted",
                     lambda: (lambda s: s if s[0] >= bound else None)(commit_objects(data, topic)), timeout=20)
    print(f"{len(before)} commit objects ({before[0]}..{before[-1]}); {len(after)} left "
          f"({after[0]}..{after[-1]}) {time.monotonic() - t0:.1f}s after DeleteRecords")
    # (the trim itself is a commit after the ones listed before)
    assert [q for q in after if q <= before[-1]] == before[before.index(bound):], after
    kept = [(o, sent[o]) for o in range(TRIM, COMMITS)]
    assert kcat_read(b.bootstrap, topic) == kept

    # a broker opening the partition now (from the checkpoint: the chain's start is gone)
    b.stop()
    b.restart()
    assert list_offsets(admin_for(b.bootstrap), topic) == (TRIM, COMMITS)
    assert kcat_read(b.bootstrap, topic) == kept
    assert kp_read(b.bootstrap, topic, COMMITS, seek=0) == kept
    assert produce(b.bootstrap, topic, values(3, "gc", COMMITS)) == list(range(COMMITS, COMMITS + 3))
    assert [o for o, _ in kcat_read(b.bootstrap, topic)] == list(range(TRIM, COMMITS + 3))
