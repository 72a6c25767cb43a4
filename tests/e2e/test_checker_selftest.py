"""The end-to-end tests are only as good as their checker: feed check_log logs with known defects.
(No broker needed.)"""

from __future__ import annotations

from e2e_util import Rec, check_log, make_messages

TAG = "st"


def good_log(n=40, parts=4):
    msgs = make_messages(n, nkeys=7, tag=TAG)
    nxt = [0] * parts
    recs, acked = [], {}
    for i, (k, v) in enumerate(msgs):
        p = int(k[-4:]) % parts
        recs.append(Rec(p, nxt[p], k, v))
        acked[i] = (p, nxt[p])
        nxt[p] += 1
    return msgs, recs, acked


def test_clean_log_passes():
    msgs, recs, acked = good_log()
    res = check_log(msgs, recs, TAG, acked=acked, exact=True, partitions=4)
    assert res.ok(), res.summary()
    # a consumer that re-read a record is not a duplicate in the log
    assert check_log(msgs, recs + recs[:3], TAG, acked=acked, exact=True).ok()


def test_detects_loss_gap_dup_reorder_and_bad_offsets():
    msgs, recs, acked = good_log()
    lost = [r for r in recs if r.value != msgs[5][1]]
    s = check_log(msgs, lost, TAG, acked=acked, exact=False).summary()
    assert "LOST: message 5" in s and "offset gap" in s

    p0 = [r for r in recs if r.partition == 0]
    dup = recs + [Rec(0, len(p0), p0[0].key, p0[0].value)]
    res = check_log(msgs, dup, TAG, acked=acked, exact=False, allowed_dups=set())
    assert "DUPLICATE" in res.summary()
    i0 = next(i for i, (k, v) in enumerate(msgs) if v == p0[0].value)
    assert check_log(msgs, dup, TAG, acked=acked, exact=False, allowed_dups={i0}).ok()
    assert not check_log(msgs, dup, TAG, acked=acked, exact=True).ok()

    swapped = [Rec(r.partition, 1 - r.offset if r.partition == 0 and r.offset < 2 else r.offset, r.key, r.value)
               for r in recs]
    s = check_log(msgs, swapped, TAG, exact=True).summary()
    assert "order broken" in s

    shifted = [Rec(r.partition, r.offset + 1, r.key, r.value) for r in recs]
    s = check_log(msgs, shifted, TAG, acked=acked, exact=True).summary()
    assert "first offset is 1" in s and "acked at" in s

    clash = recs + [Rec(recs[0].partition, recs[0].offset, recs[0].key, b"st-0000039")]
    assert "different contents" in check_log(msgs, clash, TAG, exact=True).summary()

    stranger = recs + [Rec(1, 10_000, b"x", b"garbage")]
    assert "unexpected record" in check_log(msgs, stranger, TAG, exact=True).summary()
