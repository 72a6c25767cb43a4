"""Protocol edges real clients depend on, checked with raw frames (beyond the acceptance list):
  * ApiVersions at a version the broker does not know gets a v0-layout answer with error 35
    (UNSUPPORTED_VERSION) and the supported ranges: that is how clients negotiate down.
  * Every ApiVersions version the broker advertises answers with error 0.
  * Metadata for invalid topic names answers INVALID_TOPIC_EXCEPTION (17) and writes nothing for them;
    nothing is ever written outside the --data directory.
"""

from __future__ import annotations

import struct

from e2e_util import parse_api_versions_v0, request_header_v1, roundtrip

API_VERSIONS, METADATA = 18, 3
UNSUPPORTED_VERSION, INVALID_TOPIC = 35, 17


def kstring(r: bytes, pos: int) -> tuple[str | None, int]:
    (n,) = struct.unpack(">h", r[pos:pos + 2])
    if n < 0:
        return None, pos + 2
    return r[pos + 2:pos + 2 + n].decode("utf-8", "replace"), pos + 2 + n


def metadata_v1_topic_errors(port: int, names: list[bytes]) -> dict[str, int]:
    body = struct.pack(">i", len(names)) + b"".join(struct.pack(">h", len(n)) + n for n in names)
    r = roundtrip(port, request_header_v1(METADATA, 1, 99) + body)
    pos = 4  # correlation id
    (nb,) = struct.unpack(">i", r[pos:pos + 4])
    pos += 4
    for _ in range(nb):
        pos += 4                      # node_id
        _, pos = kstring(r, pos)      # host
        pos += 4                      # port
        _, pos = kstring(r, pos)      # rack (nullable)
    pos += 4                          # controller_id
    (nt,) = struct.unpack(">i", r[pos:pos + 4])
    pos += 4
    out = {}
    for _ in range(nt):
        (err,) = struct.unpack(">h", r[pos:pos + 2])
        name, pos = kstring(r, pos + 2)
        pos += 1                      # is_internal
        (np_,) = struct.unpack(">i", r[pos:pos + 4])
        pos += 4
        for _ in range(np_):
            pos += 2 + 4 + 4          # error, index, leader
            for _arr in range(2):     # replicas, isr
                (k,) = struct.unpack(">i", r[pos:pos + 4])
                pos += 4 + 4 * max(k, 0)
        out[name] = err
    return out


def test_api_versions_negotiation(harness):
    b = harness.broker()
    err, keys = parse_api_versions_v0(roundtrip(b.port, request_header_v1(API_VERSIONS, 0, 1)), 1)
    assert err == 0 and API_VERSIONS in keys, (err, keys)
    print("advertised:", {k: v for k, v in sorted(keys.items())})
    lo, hi = keys[API_VERSIONS]
    for v in range(lo, hi + 1):
        payload = request_header_v1(API_VERSIONS, v, 100 + v)
        if v >= 3:  # header v2 (tagged fields) + compact client software name/version
            payload += b"\x00" + b"\x06riptd" + b"\x041.0" + b"\x00"
        body = roundtrip(b.port, payload)
        (cid, e) = struct.unpack(">ih", body[:6])
        assert (cid, e) == (100 + v, 0), f"ApiVersions v{v}: correlation id {cid}, error {e}"
    for v in (hi + 1, 99, 32767):
        e, supported = parse_api_versions_v0(roundtrip(b.port, request_header_v1(API_VERSIONS, v, 7)), 7)
        assert e == UNSUPPORTED_VERSION, f"ApiVersions v{v}: error {e}, expected 35 (UNSUPPORTED_VERSION)"
        assert supported.get(API_VERSIONS) == (lo, hi), (
            f"ApiVersions v{v}: the error answer must carry the supported ranges, got {supported}")


def test_invalid_topic_names_rejected_and_nothing_written_outside_data(harness, tmp_path):
    data = tmp_path / "data"
    b = harness.broker(data=data)
    bad = [b"../../escape", b"a/b", b"..", b".", b"x" * 300, b"", b"sp ace", "\u00fcmlaut".encode(), b"nul\x00byte"]
    errs = metadata_v1_topic_errors(b.port, bad + [b"good-topic"])
    print(errs)
    for n in bad:
        name = n.decode("utf-8", "replace")
        assert errs.get(name) == INVALID_TOPIC, f"Metadata for topic {n!r}: error {errs.get(name)}, expected 17"
    assert errs.get("good-topic") == 0, errs
    outside = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")
                     if not (p == data or data in p.parents or p.name.startswith(("broker-", "cwd-"))
                             or any(q.name.startswith("cwd-") for q in p.parents)))
    assert not outside, f"files appeared outside the data dir: {outside}"
    in_data = [str(p.relative_to(data)) for p in data.rglob("*")]
    assert not [p for p in in_data if "escape" in p or "umlaut" in p or "sp ace" in p], in_data
