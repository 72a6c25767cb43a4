"""Acceptance 6: 1,000 malformed or truncated frames and random byte streams; the broker stays up and
serves a normal client afterwards.

Every case opens its own TCP connection. Cases are generated from a seed (RIPTIDE_GARBAGE_SEED,
printed on failure) so that a failing run can be replayed exactly. After every 100 cases the broker
process must still be running and must still answer a well-formed ApiVersions v0 request.
"""

from __future__ import annotations

import collections
import os
import random
import socket
import struct
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

from e2e_util import (
    api_versions_v0,
    check_log,
    frame,
    kp_create_topic,
    kp_read_all,
    kstr,
    make_messages,
    port_accepts,
    request_header_v1,
    unique_topic,
)

CASES = 1000
SEED = int(os.environ.get("RIPTIDE_GARBAGE_SEED", "20240611"))
API_PRODUCE, API_FETCH, API_LIST_OFFSETS, API_METADATA, API_API_VERSIONS = 0, 1, 2, 3, 18


def record_batch(rng: random.Random, n: int = 3) -> bytes:
    from kafka.record.default_records import DefaultRecordBatchBuilder

    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                  producer_id=-1, producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    for i in range(n):
        b.append(i, 1_700_000_000_000 + i, b"k%d" % i, rng.randbytes(rng.randint(0, 64)), [])
    return bytes(b.build())


def produce_payload(topic: str, batch: bytes, version: int = 7, cid: int = 1, partition: int = 0) -> bytes:
    """Header + body of a (non-flexible, v3..v8) Produce request, without the length prefix."""
    body = (kstr(None) + struct.pack(">hi", -1, 5000) + struct.pack(">i", 1) + kstr(topic)
            + struct.pack(">i", 1) + struct.pack(">i", partition) + struct.pack(">i", len(batch)) + batch)
    return request_header_v1(API_PRODUCE, version, cid) + body


# ---- case generators: each returns (label, list of byte chunks to send, close_mid_frame, read_reply)


def c_valid_len_garbage(rng, topic):
    return "valid length + garbage", [frame(rng.randbytes(rng.randint(0, 300)))], False, True


def c_negative_len(rng, topic):
    n = -rng.randint(1, 2**31)
    return "negative length", [struct.pack(">i", n) + rng.randbytes(rng.randint(0, 64))], False, True


def c_huge_len(rng, topic):
    n = rng.choice([2**31 - 1, 2**30, 1 << 28, 100_000_000, 1 << 24, 16_777_217])
    # announce a huge frame, send a little of it, then hang up
    return "huge length", [struct.pack(">i", n) + request_header_v1(API_METADATA, 1, 7)
                           + rng.randbytes(rng.randint(0, 512))], True, False


def c_zero_len(rng, topic):
    return "zero length frames", [struct.pack(">i", 0) * rng.randint(1, 5)], False, True


def c_truncated_header(rng, topic):
    hdr = request_header_v1(rng.choice([API_API_VERSIONS, API_METADATA, API_PRODUCE, API_FETCH]),
                            rng.randint(0, 12), rng.randint(0, 2**31 - 1), "truncated-client")
    k = rng.randint(1, len(hdr) - 1)
    return "truncated header", [frame(hdr[:k])], False, True


def c_client_id_overrun(rng, topic):
    # client_id length claims more bytes than the frame holds
    hdr = struct.pack(">hhi", API_API_VERSIONS, 0, 5) + struct.pack(">h", rng.randint(10, 32767)) + b"abc"
    return "client_id longer than frame", [frame(hdr)], False, True


def c_unknown_api_key(rng, topic):
    key = rng.choice([999, 999, 32767, -1, -32768, 75 + rng.randint(0, 900)])
    payload = request_header_v1(key, rng.randint(0, 20), rng.randint(0, 2**31 - 1)) + rng.randbytes(rng.randint(0, 64))
    return "unknown api key", [frame(payload)], False, True


def c_api_versions_v99(rng, topic):
    version = rng.choice([99, 99, 4, 5, 32767, -1])
    payload = request_header_v1(API_API_VERSIONS, version, rng.randint(0, 2**31 - 1))
    if rng.random() < 0.5:  # flexible-style body: tagged fields + compact strings
        payload += b"\x00" + b"\x06riptd" + b"\x041.0" + b"\x00"
    return "ApiVersions v99", [frame(payload)], False, True


def c_truncated_produce(rng, topic):
    full = produce_payload(topic, record_batch(rng), version=rng.randint(3, 8), cid=rng.randint(0, 1 << 20))
    k = rng.randint(1, len(full) - 1)
    if rng.random() < 0.5:
        # consistent frame whose body ends early
        return "truncated Produce body", [frame(full[:k])], False, True
    # length prefix of the whole request, connection closed part-way
    return "Produce closed mid-frame", [struct.pack(">i", len(full)) + full[:k]], True, False


def c_mutated_produce(rng, topic):
    full = bytearray(produce_payload(topic, record_batch(rng), version=rng.randint(3, 8), cid=3))
    hdr_len = len(request_header_v1(0, 7, 3))
    for _ in range(rng.randint(1, 6)):
        pos = rng.randrange(hdr_len, len(full))
        if rng.random() < 0.3 and pos + 4 <= len(full):
            # a length/count field gone wild
            full[pos:pos + 4] = struct.pack(">i", rng.choice([-1, -2, 2**31 - 1, 1 << 30, 65536]))
        else:
            full[pos] ^= 1 << rng.randrange(8)
    return "mutated Produce", [frame(bytes(full))], False, True


def c_huge_array_count(rng, topic):
    api = rng.choice([API_METADATA, API_PRODUCE, API_FETCH, API_LIST_OFFSETS])
    version = {API_METADATA: 1, API_PRODUCE: 7, API_FETCH: 4, API_LIST_OFFSETS: 1}[api]
    if api == API_METADATA:
        body = struct.pack(">i", rng.choice([2**31 - 1, 1 << 28, -5]))
    elif api == API_PRODUCE:
        body = kstr(None) + struct.pack(">hi", 1, 1000) + struct.pack(">i", rng.choice([2**31 - 1, -7]))
    elif api == API_FETCH:
        body = struct.pack(">iiiib", -1, 100, 1, 1 << 20, 0) + struct.pack(">i", 2**31 - 1)
    else:
        body = struct.pack(">i", -1) + struct.pack(">i", 2**31 - 1)
    return "huge/negative array count", [frame(request_header_v1(api, version, 11) + body)], False, True


def c_random_stream(rng, topic):
    data = rng.randbytes(rng.randint(1, 4096))
    chunks = []
    while data:
        k = rng.randint(1, len(data))
        chunks.append(data[:k])
        data = data[k:]
    return "random byte stream", chunks, rng.random() < 0.5, False


def c_mid_frame_close(rng, topic):
    payload = request_header_v1(API_API_VERSIONS, 0, 9) + rng.randbytes(200)
    k = rng.randint(0, len(payload) - 1)
    return "closed mid-frame", [struct.pack(">i", len(payload)) + payload[:k]], True, False


def c_valid_then_garbage(rng, topic):
    good = frame(request_header_v1(API_API_VERSIONS, 0, 77))
    return "valid request then garbage", [good + rng.randbytes(rng.randint(1, 200))], False, True


def c_metadata_bad_topic(rng, topic):
    name = rng.choice([b"", b"\x00\xff\xfe", b"a" * 300, rng.randbytes(20), b"../../etc/passwd", b"x/../../y"])
    body = struct.pack(">i", 1) + struct.pack(">h", len(name)) + name
    version = rng.choice([0, 1, 4])
    if version >= 4:
        body += b"\x01"  # allow_auto_topic_creation
    return "Metadata with bad topic name", [frame(request_header_v1(API_METADATA, version, 12) + body)], False, True


GENERATORS = [
    c_valid_len_garbage, c_negative_len, c_huge_len, c_zero_len, c_truncated_header, c_client_id_overrun,
    c_unknown_api_key, c_api_versions_v99, c_truncated_produce, c_mutated_produce, c_huge_array_count,
    c_random_stream, c_mid_frame_close, c_valid_then_garbage, c_metadata_bad_topic,
]


def run_case(port: int, chunks: list[bytes], close_mid: bool, read_reply: bool, abort: bool) -> str:
    """Send one case on a fresh connection; return what happened (for the summary)."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=3)
    except OSError as e:
        return f"connect failed: {e.__class__.__name__}"
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for c in chunks:
                s.sendall(c)
        except OSError:
            return "broker closed while sending"
        if close_mid or not read_reply:
            return "sent+closed"
        s.settimeout(0.25)
        try:
            data = s.recv(65536)
        except socket.timeout:
            return "no reply (timeout)"
        except OSError:
            return "reset"
        return "replied" if data else "closed by broker"
    finally:
        if abort:  # RST instead of FIN
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()


def broker_live(b, probe_ok: bool) -> str | None:
    if not b.alive():
        return f"broker process exited with code {b.returncode()}"
    if not port_accepts(b.port, timeout=2):
        return "broker no longer accepts connections"
    if probe_ok:
        try:
            api_versions_v0(b.port)
        except Exception as e:  # noqa: BLE001
            return f"a well-formed ApiVersions v0 request no longer gets a well-formed answer: {e!r}"
    return None


def test_garbage_frames_then_normal_client(harness):
    b = harness.broker(partitions=1)
    topic = unique_topic("garbage")
    rng = random.Random(SEED)

    try:
        err, n = api_versions_v0(b.port)
        probe_ok = True
        print(f"ApiVersions v0 probe before the garbage: error={err}, api keys {sorted(n)}")
    except Exception as e:  # noqa: BLE001 - reported, then liveness falls back to TCP
        probe_ok = False
        warnings.warn(f"riptide did not answer a raw ApiVersions v0 request before any garbage: {e!r}")

    outcomes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    cases = []
    for i in range(CASES):
        gen = GENERATORS[i % len(GENERATORS)] if i < 2 * len(GENERATORS) else rng.choice(GENERATORS)
        label, chunks, close_mid, read_reply = gen(rng, topic)
        cases.append((i, label, chunks, close_mid, read_reply, rng.random() < 0.3))

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        for start in range(0, CASES, 100):
            chunk = cases[start:start + 100]
            results = list(pool.map(lambda c: run_case(b.port, c[2], c[3], c[4], c[5]), chunk))
            for c, r in zip(chunk, results):
                outcomes[c[1]][r] += 1
            problem = broker_live(b, probe_ok)
            assert problem is None, (
                f"after garbage cases {start}..{start + len(chunk) - 1} (seed {SEED}): {problem}; "
                f"kinds in that chunk: {sorted(set(c[1] for c in chunk))}")
    elapsed = time.monotonic() - t0
    print(f"{CASES} garbage cases in {elapsed:.1f}s (seed {SEED})")
    for label in sorted(outcomes):
        print(f"  {label:32s} {dict(outcomes[label])}")

    # still up, and a normal client works
    assert b.alive(), f"broker died (exit code {b.returncode()})"
    from kafka import KafkaProducer

    normal = unique_topic("after-garbage")
    kp_create_topic(b.bootstrap, normal, 2)
    msgs = make_messages(500, nkeys=17, tag="ag")
    prod = KafkaProducer(bootstrap_servers=b.bootstrap, acks="all", enable_idempotence=False, linger_ms=5)
    futs = [prod.send(normal, key=k, value=v) for k, v in msgs]
    prod.flush(timeout=30)
    acked = {}
    for i, f in enumerate(futs):
        md = f.get(timeout=30)
        acked[i] = (md.partition, md.offset)
    prod.close(timeout=5)
    recs = kp_read_all(b.bootstrap, normal, 2, timeout=30)
    res = check_log(msgs, recs, "ag", acked=acked, exact=True, partitions=2)
    assert res.ok(), res.summary()
    assert b.alive()

    panics = [ln for ln in b.log_text().splitlines() if "panicked" in ln]
    if panics:
        warnings.warn(f"broker survived but logged {len(panics)} panic(s), e.g.: {panics[:3]}")
