//! A strict reader for the lines riptide itself writes, without serde.
//!
//! [`op`] reads one line only when it has exactly the shape [`Op`]'s `Serialize` gives (see
//! `History::to_jsonl`): the op's keys in their written order, no spaces, no escapes, no
//! `null`s, and a value of one of the common kinds (send, poll, commit, seek, assign,
//! final_read, txn) whose
//! keys come in their declared order, each at most once. Anything else (an unknown key, a key
//! out of order or twice, an escape, a number that is not a plain integer in its type's range,
//! a value of another kind) gives `None`, and the caller reads the line the serde way, whose
//! answer is then taken as it is. So what this reads, serde reads into the same op; it only
//! saves the time.

use crate::history::{
    AssignValue, CommitValue, FinalReadValue, Hidden, HiddenRange, HiddenSpan, MicroOp,
    OffsetValue, Op, OpKind, PartitionHwm, PartitionLso, PartitionOffset, PollValue, PolledRecord,
    SeekReason, SeekValue, SendValue, TopicPartition, TxnEnd, TxnValue, Value, F,
};

/// The op of one line (without its line end), if the line has the exact shape riptide writes.
pub(crate) fn op(line: &str) -> Option<Op> {
    // No escapes and no control characters anywhere: every string ends at its next quote.
    // (A backslash or a control character outside a string is not JSON anyway.)
    if !plain(line.as_bytes()) {
        return None;
    }
    let mut c = Cursor { s: line, i: 0 };
    c.lit(b"{\"index\":")?;
    let index = c.u64()?;
    c.lit(b",\"kind\":\"")?;
    let kind = if c.try_lit(b"invoke\"") {
        OpKind::Invoke
    } else if c.try_lit(b"ok\"") {
        OpKind::Ok
    } else if c.try_lit(b"fail\"") {
        OpKind::Fail
    } else if c.try_lit(b"info\"") {
        OpKind::Info
    } else {
        return None;
    };
    c.lit(b",\"process\":")?;
    let process = c.u64()?;
    let invoke = if c.try_lit(b",\"invoke\":") {
        Some(c.u64()?)
    } else {
        None
    };
    c.lit(b",\"time_ns\":")?;
    let time_ns = c.u64()?;
    c.lit(b",\"f\":")?;
    let f = match c.str()? {
        "send" => F::Send,
        "poll" => F::Poll,
        "commit" => F::Commit,
        "seek" => F::Seek,
        "assign" => F::Assign,
        "final_read" => F::FinalRead,
        "txn" => F::Txn,
        _ => return None,
    };
    let value = if c.try_lit(b",\"value\":") {
        match f {
            F::Send => Value::Send(send(&mut c, false)?),
            F::Poll => Value::Poll(poll(&mut c, false)?),
            F::Commit => Value::Commit(commit(&mut c)?),
            F::Seek => Value::Seek(seek(&mut c)?),
            F::Assign => Value::Assign(assign(&mut c)?),
            F::FinalRead => Value::FinalRead(final_read(&mut c)?),
            F::Txn => Value::Txn(txn(&mut c)?),
            _ => return None,
        }
    } else {
        // Absent: read as `{}`, as serde does.
        match f {
            F::Poll => Value::Poll(PollValue::default()),
            F::Commit => Value::Commit(CommitValue::default()),
            F::Assign => Value::Assign(AssignValue::default()),
            _ => return None,
        }
    };
    let error = if c.try_lit(b",\"error\":") {
        Some(c.str()?.to_owned())
    } else {
        None
    };
    c.lit(b"}")?;
    if c.i != line.len() {
        return None;
    }
    Some(Op {
        index,
        kind,
        process,
        invoke,
        time_ns,
        value,
        error,
    })
}

/// Whether `bytes` hold no backslash and no control character (eight bytes at a time).
fn plain(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        // A byte below 0x20, or (xor 0x5c) a zero byte: the high bit of its lane is set.
        // (Lanes above a true one may be flagged falsely, which does not matter: any flag
        // fails the whole line.) Bytes of 0x80 and up never flag: `!x` clears their lane.
        let below = x.wrapping_sub(ONES * 0x20) & !x;
        let y = x ^ (ONES * b'\\' as u64);
        let zero = y.wrapping_sub(ONES) & !y;
        if (below | zero) & HIGH != 0 {
            return false;
        }
    }
    !chunks.remainder().iter().any(|&b| b == b'\\' || b < 0x20)
}

/// A position in a line that holds no backslash and no control character.
struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a [u8] {
        &self.s.as_bytes()[self.i..]
    }

    /// Skips `lit` if the line goes on with it.
    fn try_lit(&mut self, lit: &[u8]) -> bool {
        let yes = self.rest().starts_with(lit);
        if yes {
            self.i += lit.len();
        }
        yes
    }

    fn lit(&mut self, lit: &[u8]) -> Option<()> {
        self.try_lit(lit).then_some(())
    }

    /// A string (without escapes: the line has no backslash).
    fn str(&mut self) -> Option<&'a str> {
        self.lit(b"\"")?;
        // Strings here are short: a plain loop beats memchr's setup.
        let len = self.rest().iter().position(|&b| b == b'"')?;
        let start = self.i;
        self.i += len + 1;
        // Both ends are ASCII quotes: char boundaries.
        self.s.get(start..start + len)
    }

    fn string(&mut self) -> Option<String> {
        self.str().map(str::to_owned)
    }

    /// A key and its colon: `"key":`.
    fn key(&mut self) -> Option<&'a str> {
        let k = self.str()?;
        self.lit(b":")?;
        Some(k)
    }

    /// An unsigned integer as serde_json reads one: no sign, no leading zero, no fraction or
    /// exponent (the caller's next literal fails on `.` or `e`), and in range.
    fn u64(&mut self) -> Option<u64> {
        let rest = self.rest();
        let mut n: u64 = 0;
        let mut digits = 0;
        for &b in rest {
            if !b.is_ascii_digit() {
                break;
            }
            n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
            digits += 1;
        }
        if digits == 0 || (digits > 1 && rest[0] == b'0') {
            return None;
        }
        self.i += digits;
        Some(n)
    }

    fn i64(&mut self) -> Option<i64> {
        if self.try_lit(b"-") {
            let m = self.u64()?;
            // serde_json reads `-0` as a float.
            if m == 0 {
                return None;
            }
            0i64.checked_sub_unsigned(m)
        } else {
            i64::try_from(self.u64()?).ok()
        }
    }

    fn i32(&mut self) -> Option<i32> {
        i32::try_from(self.i64()?).ok()
    }

    /// `[...]` of what `item` reads, separated by commas.
    fn array<T>(&mut self, mut item: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        self.lit(b"[")?;
        let mut out = Vec::new();
        if self.try_lit(b"]") {
            return Some(out);
        }
        loop {
            out.push(item(self)?);
            if !self.try_lit(b",") {
                self.lit(b"]")?;
                return Some(out);
            }
        }
    }

    /// `{...}`: each key with its number among `keys` (which must increase: in order, none
    /// twice, none unknown) handed to `field` to read its value.
    fn object(
        &mut self,
        keys: &[&str],
        field: impl FnMut(&mut Self, usize) -> Option<()>,
    ) -> Option<()> {
        self.lit(b"{")?;
        if self.try_lit(b"}") {
            return Some(());
        }
        self.fields(keys, field)
    }

    /// The keys and values of an object after its `{` (at least one) and its `}`, as
    /// [`Cursor::object`] reads them.
    fn fields(
        &mut self,
        keys: &[&str],
        mut field: impl FnMut(&mut Self, usize) -> Option<()>,
    ) -> Option<()> {
        let mut next = 0;
        loop {
            let k = self.key()?;
            let at = next
                + keys[next..]
                    .iter()
                    .position(|&x| x.len() == k.len() && x == k)?;
            field(self, at)?;
            next = at + 1;
            if !self.try_lit(b",") {
                return self.lit(b"}");
            }
        }
    }

    /// `"topic":"...","partition":N` (the start of most of a value's objects).
    fn topic_partition(&mut self) -> Option<(String, i32)> {
        self.lit(b"\"topic\":")?;
        let topic = self.string()?;
        self.lit(b",\"partition\":")?;
        Some((topic, self.i32()?))
    }
}

/// A send's value; `tagged`: a transaction's micro-op, `{"f":"send",` before its fields.
fn send(c: &mut Cursor<'_>, tagged: bool) -> Option<SendValue> {
    const KEYS: [&str; 12] = [
        "topic",
        "partition",
        "key",
        "value",
        "offset",
        "batch",
        "request",
        "attempts",
        "broker",
        "jepsen_op",
        "source",
        "timestamp",
    ];
    let (mut topic, mut partition, mut value) = (None, None, None);
    let mut s = SendValue::new(String::new(), 0, String::new());
    let field = |c: &mut Cursor<'_>, k| {
        match k {
            0 => topic = Some(c.string()?),
            1 => partition = Some(c.i32()?),
            2 => s.key = Some(c.string()?),
            3 => value = Some(c.string()?),
            4 => s.offset = Some(c.i64()?),
            5 => s.batch = Some(c.u64()?),
            6 => s.request = Some(c.u64()?),
            7 => s.attempts = Some(u32::try_from(c.u64()?).ok()?),
            8 => s.broker = Some(c.string()?),
            9 => s.jepsen_op = Some(c.u64()?),
            10 => s.source = Some(c.string()?),
            _ => s.timestamp = Some(c.i64()?),
        }
        Some(())
    };
    if tagged {
        c.lit(b"{\"f\":\"send\",")?;
        c.fields(&KEYS, field)?;
    } else {
        c.object(&KEYS, field)?;
    }
    s.topic = topic?;
    s.partition = partition?;
    s.value = value?;
    Some(s)
}

/// A poll's value; `tagged`: a transaction's micro-op, `{"f":"poll"` before its fields.
fn poll(c: &mut Cursor<'_>, tagged: bool) -> Option<PollValue> {
    const KEYS: [&str; 5] = [
        "records",
        "high_watermarks",
        "fetch_offsets",
        "hidden",
        "last_stable_offsets",
    ];
    let mut p = PollValue::default();
    let field = |c: &mut Cursor<'_>, k| {
        match k {
            0 => {
                p.records = c.array(|c| {
                    c.lit(b"{")?;
                    let (topic, partition) = c.topic_partition()?;
                    c.lit(b",\"offset\":")?;
                    let offset = c.i64()?;
                    c.lit(b",\"value\":")?;
                    let value = c.string()?;
                    c.lit(b"}")?;
                    Some(PolledRecord {
                        topic,
                        partition,
                        offset,
                        value,
                    })
                })?
            }
            1 => {
                p.high_watermarks = c.array(|c| {
                    c.lit(b"{")?;
                    let (topic, partition) = c.topic_partition()?;
                    c.lit(b",\"hwm\":")?;
                    let hwm = c.i64()?;
                    c.lit(b"}")?;
                    Some(PartitionHwm {
                        topic,
                        partition,
                        hwm,
                    })
                })?
            }
            2 => p.fetch_offsets = c.array(partition_offset)?,
            3 => {
                p.hidden = c.array(|c| {
                    c.lit(b"{")?;
                    let (topic, partition) = c.topic_partition()?;
                    c.lit(b",\"from\":")?;
                    let from = c.i64()?;
                    c.lit(b",\"to\":")?;
                    let to = c.i64()?;
                    c.lit(b",\"why\":")?;
                    let why = hidden(c)?;
                    c.lit(b"}")?;
                    Some(HiddenRange {
                        topic,
                        partition,
                        from,
                        to,
                        why,
                    })
                })?
            }
            _ => {
                p.last_stable_offsets = c.array(|c| {
                    c.lit(b"{")?;
                    let (topic, partition) = c.topic_partition()?;
                    c.lit(b",\"lso\":")?;
                    let lso = c.i64()?;
                    c.lit(b"}")?;
                    Some(PartitionLso {
                        topic,
                        partition,
                        lso,
                    })
                })?
            }
        }
        Some(())
    };
    if tagged {
        c.lit(b"{\"f\":\"poll\"")?;
        if c.try_lit(b",") {
            c.fields(&KEYS, field)?;
        } else {
            c.lit(b"}")?;
        }
    } else {
        c.object(&KEYS, field)?;
    }
    Some(p)
}

fn partition_offset(c: &mut Cursor<'_>) -> Option<PartitionOffset> {
    c.lit(b"{")?;
    let (topic, partition) = c.topic_partition()?;
    c.lit(b",\"offset\":")?;
    let offset = c.i64()?;
    c.lit(b"}")?;
    Some(PartitionOffset {
        topic,
        partition,
        offset,
    })
}

fn commit(c: &mut Cursor<'_>) -> Option<CommitValue> {
    let mut v = CommitValue::default();
    c.object(&["group", "offsets"], |c, k| {
        match k {
            0 => v.group = Some(c.string()?),
            _ => v.offsets = c.array(partition_offset)?,
        }
        Some(())
    })?;
    Some(v)
}

fn seek(c: &mut Cursor<'_>) -> Option<SeekValue> {
    c.lit(b"{")?;
    let (topic, partition) = c.topic_partition()?;
    c.lit(b",\"offset\":")?;
    let mut v = SeekValue::new(topic, partition, c.i64()?);
    if c.try_lit(b",\"reason\":") {
        v.reason = Some(match c.str()? {
            "committed" => SeekReason::Committed,
            "back" => SeekReason::Back,
            "external" => SeekReason::External,
            "reset" => SeekReason::Reset,
            _ => return None,
        });
    }
    c.lit(b"}")?;
    Some(v)
}

fn final_read(c: &mut Cursor<'_>) -> Option<FinalReadValue> {
    const KEYS: [&str; 6] = [
        "topic",
        "partition",
        "hwm",
        "records",
        "hidden",
        "log_start",
    ];
    let (mut topic, mut partition) = (None, None);
    let mut v = FinalReadValue::new(String::new(), 0);
    c.object(&KEYS, |c, k| {
        match k {
            0 => topic = Some(c.string()?),
            1 => partition = Some(c.i32()?),
            2 => v.hwm = Some(c.i64()?),
            3 => {
                v.records = c.array(|c| {
                    c.lit(b"{\"offset\":")?;
                    let offset = c.i64()?;
                    c.lit(b",\"value\":")?;
                    let value = c.string()?;
                    c.lit(b"}")?;
                    Some(OffsetValue { offset, value })
                })?
            }
            4 => {
                v.hidden = c.array(|c| {
                    c.lit(b"{\"from\":")?;
                    let from = c.i64()?;
                    c.lit(b",\"to\":")?;
                    let to = c.i64()?;
                    c.lit(b",\"why\":")?;
                    let why = hidden(c)?;
                    c.lit(b"}")?;
                    Some(HiddenSpan { from, to, why })
                })?
            }
            _ => v.log_start = Some(c.i64()?),
        }
        Some(())
    })?;
    v.topic = topic?;
    v.partition = partition?;
    Some(v)
}

fn hidden(c: &mut Cursor<'_>) -> Option<Hidden> {
    match c.str()? {
        "control" => Some(Hidden::Control),
        "aborted" => Some(Hidden::Aborted),
        _ => None,
    }
}

fn txn(c: &mut Cursor<'_>) -> Option<TxnValue> {
    const KEYS: [&str; 6] = [
        "transactional_id",
        "end",
        "ops",
        "group",
        "offsets",
        "end_sent_ns",
    ];
    let (mut id, mut end) = (None, None);
    let mut v = TxnValue::new(String::new(), TxnEnd::Commit);
    c.object(&KEYS, |c, k| {
        match k {
            0 => id = Some(c.string()?),
            1 => {
                end = Some(match c.str()? {
                    "commit" => TxnEnd::Commit,
                    "abort" => TxnEnd::Abort,
                    _ => return None,
                })
            }
            2 => {
                v.ops = c.array(|c| {
                    if c.rest().starts_with(b"{\"f\":\"send\"") {
                        Some(MicroOp::Send(send(c, true)?))
                    } else {
                        Some(MicroOp::Poll(poll(c, true)?))
                    }
                })?
            }
            3 => v.group = Some(c.string()?),
            4 => v.offsets = c.array(partition_offset)?,
            _ => v.end_sent_ns = Some(c.u64()?),
        }
        Some(())
    })?;
    v.transactional_id = id?;
    v.end = end?;
    Some(v)
}

fn assign(c: &mut Cursor<'_>) -> Option<AssignValue> {
    let mut v = AssignValue::default();
    c.object(&["partitions"], |c, _| {
        v.partitions = c.array(|c| {
            c.lit(b"{")?;
            let (topic, partition) = c.topic_partition()?;
            c.lit(b"}")?;
            Some(TopicPartition { topic, partition })
        })?;
        Some(())
    })?;
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::op;
    use crate::history::*;

    /// Ops of every kind and shape the bench's chaos-like history has among the kinds read
    /// here, as riptide writes them.
    fn written() -> Vec<String> {
        let mut b = HistoryBuilder::new();
        let mut s = SendValue::new("riptide-1", 3, "p4-17");
        s.batch = Some(9);
        let i = b.invoke(4, s.clone());
        let mut done = s.clone().acked(1234);
        done.request = Some(7);
        done.attempts = Some(2);
        done.broker = Some("broker-3:9092".into());
        b.complete(4, i, OpKind::Ok, done);
        let i = b.invoke(4, s.clone());
        b.complete(4, i, OpKind::Info, s.clone());
        let mut every = s.clone().acked(-5);
        every.key = Some("k".into());
        every.request = Some(u64::MAX);
        every.attempts = Some(u32::MAX);
        every.jepsen_op = Some(0);
        every.source = Some("i3".into());
        every.timestamp = Some(i64::MIN);
        every.partition = i32::MIN;
        b.ok(5, every);
        b.invoke(6, PollValue::default());
        b.ok(
            6,
            PollValue::default()
                .record("riptide", 0, 3, "p1-1")
                .record("riptide-2", 7, 4, "p1-2")
                .hwm("riptide", 0, 5)
                .fetch_offset("riptide", 0, 3)
                .hidden("riptide", 0, 5, 6, Hidden::Control)
                .hidden("riptide", 0, 6, 9, Hidden::Aborted)
                .lso("riptide", 0, 9),
        );
        b.invoke(6, PollValue::default());
        b.fail(6, PollValue::default());
        let commit = CommitValue {
            group: Some("g-1".into()),
            offsets: vec![PartitionOffset {
                topic: "riptide".into(),
                partition: 0,
                offset: 12,
            }],
        };
        b.call(6, commit.clone(), OpKind::Ok, commit);
        b.call(
            6,
            CommitValue::default(),
            OpKind::Ok,
            CommitValue::default(),
        );
        for reason in [
            None,
            Some(SeekReason::Committed),
            Some(SeekReason::Back),
            Some(SeekReason::External),
            Some(SeekReason::Reset),
        ] {
            let mut v = SeekValue::new("riptide", 2, 0);
            v.reason = reason;
            b.call(7, v.clone(), OpKind::Ok, v);
        }
        let assigned = AssignValue {
            partitions: vec![
                TopicPartition::new("riptide", 0),
                TopicPartition::new("x", 1),
            ],
        };
        b.call(7, AssignValue::default(), OpKind::Ok, assigned);
        b.call(
            7,
            AssignValue::default(),
            OpKind::Fail,
            AssignValue::default(),
        );
        let mut read = FinalReadValue::new("riptide", 4).contiguous(&["a", "b", "c"]);
        b.call(
            8,
            FinalReadValue::new("riptide", 4),
            OpKind::Ok,
            read.clone(),
        );
        read.hidden = vec![HiddenSpan {
            from: 3,
            to: 4,
            why: Hidden::Control,
        }];
        read.log_start = Some(1);
        read.records.remove(0);
        b.call(8, FinalReadValue::new("riptide", 4), OpKind::Ok, read);
        let txn = TxnValue::new("txn-pipeline-9", TxnEnd::Commit)
            .poll(PollValue::default())
            .send(SendValue::new("riptide-out", 1, "o1"));
        let mut done = TxnValue::new("txn-pipeline-9", TxnEnd::Commit)
            .poll(
                PollValue::default()
                    .record("riptide-2", 0, 3, "p1-3")
                    .hidden("riptide-2", 0, 4, 5, Hidden::Control)
                    .lso("riptide-2", 0, 5),
            )
            .send(SendValue::new("riptide-out", 1, "o1").acked(7));
        done.group = Some("pipeline".into());
        done.offsets = vec![PartitionOffset {
            topic: "riptide-2".into(),
            partition: 0,
            offset: 4,
        }];
        done.end_sent_ns = Some(55);
        b.call(9, txn.clone(), OpKind::Ok, done);
        let mut aborted = txn;
        aborted.end = TxnEnd::Abort;
        b.call(9, aborted.clone(), OpKind::Fail, aborted);
        let mut h = b.build();
        // An error on every kind of completion, and the largest numbers.
        h.ops[3].error = Some("request timed out".into());
        h.ops[8].error = Some("connect to broker-1:9092: timed out".into());
        let last = h.ops.len() - 1;
        h.ops[last].error = Some("JoinGroup: broker error 27 (RebalanceInProgress)".into());
        h.ops[last].index = u64::MAX;
        h.ops[last].time_ns = u64::MAX;
        h.ops[last].process = u64::MAX;
        h.ops
            .iter()
            .map(|op| serde_json::to_string(op).unwrap())
            .collect()
    }

    #[test]
    fn plain_finds_every_backslash_and_control_character() {
        for len in 0..20 {
            for at in 0..len {
                for b in [
                    b'\\', 0, 0x1f, b'\n', 0x20, 0x5b, 0x5d, 0x7f, 0x80, 0xdc, 0xff,
                ] {
                    let mut v = vec![b'a'; len];
                    v[at] = b;
                    let naive = !v.iter().any(|&x| x == b'\\' || x < 0x20);
                    assert_eq!(super::plain(&v), naive, "{v:?}");
                }
            }
        }
    }

    fn serde(line: &str) -> Option<Op> {
        serde_json::from_str::<Op>(line).ok()
    }

    #[test]
    fn reads_what_riptide_writes_as_serde_does() {
        for line in written() {
            let fast = op(&line);
            assert!(fast.is_some(), "not read: {line}");
            assert_eq!(fast, serde(&line), "{line}");
        }
    }

    #[test]
    fn leaves_other_lines_to_serde() {
        let lines = [
            // Escapes, spaces, unknown keys, reordered keys, nulls, absent required values.
            r#"{"index":0,"kind":"invoke","process":1,"time_ns":0,"f":"send","value":{"topic":"t\u0031","partition":0,"value":"a"}}"#,
            r#"{"index":0,"kind":"invoke","process":1,"time_ns":0,"f":"send","value":{"topic":"t","partition":0,"value":"a\n"}}"#,
            r#"{"index":0, "kind":"invoke","process":1,"time_ns":0,"f":"poll"}"#,
            r#" {"index":0,"kind":"invoke","process":1,"time_ns":0,"f":"poll"}"#,
            r#"{"index":0,"kind":"invoke","process":1,"time_ns":0,"f":"poll"} "#,
            r#"{"index":0,"kind":"invoke","process":1,"time_ns":0,"f":"poll","extra":1}"#,
            r#"{"index":0,"kind":"invoke","process":1,"time_ns":0,"f":"poll","value":{"records":[],"x":1}}"#,
            r#"{"kind":"invoke","index":0,"process":1,"time_ns":0,"f":"poll"}"#,
            r#"{"index":0,"kind":"invoke","process":1,"time_ns":0,"f":"send","value":{"partition":0,"topic":"t","value":"a"}}"#,
            r#"{"index":0,"kind":"ok","process":1,"time_ns":0,"f":"poll","value":{"records":[{"partition":0,"topic":"t","offset":1,"value":"a"}]}}"#,
            r#"{"index":0,"kind":"ok","process":1,"time_ns":0,"f":"poll","value":{"hidden":[],"records":[]}}"#,
            r#"{"index":0,"kind":"ok","process":1,"time_ns":0,"f":"poll","value":{"records":[],"records":[]}}"#,
            r#"{"index":0,"kind":"invoke","process":1,"time_ns":0,"f":"poll","value":null}"#,
            r#"{"index":0,"kind":"invoke","process":1,"time_ns":0,"f":"poll","error":null}"#,
            r#"{"index":0,"kind":"invoke","process":1,"invoke":null,"time_ns":0,"f":"poll"}"#,
            r#"{"index":0,"kind":"invoke","process":1,"time_ns":0,"f":"send","value":{"topic":"t","partition":0,"value":"a","key":null}}"#,
            r#"{"index":0,"kind":"invoke","process":1,"time_ns":0,"f":"seek","value":{"topic":"t","partition":0,"offset":1,"reason":null}}"#,
            r#"{"index":0,"kind":"invoke","process":1,"time_ns":0,"f":"send"}"#,
            r#"{"index":0,"kind":"invoke","process":1,"time_ns":0,"f":"seek"}"#,
            r#"{"index":0,"kind":"invoke","process":1,"time_ns":0,"f":"send","value":{"topic":"t","partition":0}}"#,
            r#"{"index":0,"kind":"invoke","process":1,"time_ns":0,"f":"send","value":{"topic":"t","partition":0,"value":"a","value":"b"}}"#,
            r#"{"index":0,"kind":"invoke","process":1,"time_ns":0,"value":{"topic":"t","partition":0,"value":"a"},"f":"send"}"#,
            // Numbers serde reads otherwise: floats, exponents, leading zeros, -0, out of range.
            r#"{"index":1.0,"kind":"invoke","process":1,"time_ns":0,"f":"poll"}"#,
            r#"{"index":1e3,"kind":"invoke","process":1,"time_ns":0,"f":"poll"}"#,
            r#"{"index":01,"kind":"invoke","process":1,"time_ns":0,"f":"poll"}"#,
            r#"{"index":-1,"kind":"invoke","process":1,"time_ns":0,"f":"poll"}"#,
            r#"{"index":18446744073709551616,"kind":"invoke","process":1,"time_ns":0,"f":"poll"}"#,
            r#"{"index":0,"kind":"invoke","process":1,"time_ns":0,"f":"send","value":{"topic":"t","partition":2147483648,"value":"a"}}"#,
            r#"{"index":0,"kind":"invoke","process":1,"time_ns":0,"f":"seek","value":{"topic":"t","partition":0,"offset":-0}}"#,
            r#"{"index":0,"kind":"invoke","process":1,"time_ns":0,"f":"seek","value":{"topic":"t","partition":0,"offset":9223372036854775808}}"#,
            r#"{"index":0,"kind":"ok","process":1,"time_ns":0,"f":"send","value":{"topic":"t","partition":0,"value":"a","attempts":4294967296}}"#,
            // Unknown names; kinds read the serde way.
            r#"{"index":0,"kind":"bogus","process":1,"time_ns":0,"f":"poll"}"#,
            r#"{"index":0,"kind":"ok","process":1,"time_ns":0,"f":"seek","value":{"topic":"t","partition":0,"offset":1,"reason":"later"}}"#,
            r#"{"index":0,"kind":"ok","process":1,"time_ns":0,"f":"poll","value":{"hidden":[{"topic":"t","partition":0,"from":1,"to":2,"why":"other"}]}}"#,
            r#"{"index":4,"kind":"info","process":9,"time_ns":8,"f":"fault","value":{"kind":"crash"}}"#,
            r#"{"index":0,"kind":"ok","process":1,"time_ns":0,"f":"client","value":{"role":"reader"}}"#,
            r#"{"index":0,"kind":"ok","process":1,"time_ns":0,"f":"txn","value":{"transactional_id":"x","end":"commit","ops":[{"topic":"t","f":"send","partition":0,"value":"a"}]}}"#,
            // Broken lines.
            r#"{"index":0,"kind":"invoke","process":1,"time_ns":0,"f":"poll""#,
            r#"{"index":0,"kind":"invoke","process":1,"time_ns":0,"f":"poll"}}"#,
            r#"{"index":0,"kind":"invoke","process":1,"time_ns":0,"f":"poll","value":{"records":[}}"#,
            r#"{"index":0,"kind":"invoke","process":1,"time_ns":0,"f":"poll","value":{"records":[{"topic":"t"]}}"#,
            "",
        ];
        for line in lines {
            assert_eq!(op(line), None, "{line}");
        }
        // What serde reads of them, from_jsonl reads too (through its serde ways).
        let text = lines.join("\n");
        for line in text.lines().filter(|l| serde(l).is_some()) {
            let h = History::from_jsonl(line.as_bytes()).unwrap();
            assert_eq!(Some(&h.ops[0]), serde(line).as_ref(), "{line}");
        }
    }

    /// Every line riptide writes, with one byte changed or removed anywhere: what the fast
    /// way reads of it, serde reads the same.
    #[test]
    fn never_reads_a_line_otherwise_than_serde() {
        let mut read = 0;
        for line in written() {
            let bytes = line.as_bytes();
            for at in 0..bytes.len() {
                let mut variants = vec![[&bytes[..at], &bytes[at + 1..]].concat()];
                for b in b"0159-.e\"\\{}[],:n x" {
                    let mut v = bytes.to_vec();
                    v[at] = *b;
                    variants.push(v);
                }
                for v in variants {
                    let Ok(v) = String::from_utf8(v) else {
                        continue;
                    };
                    if let Some(fast) = op(&v) {
                        read += 1;
                        assert_eq!(Some(fast), serde(&v), "{v}");
                    }
                }
            }
        }
        assert!(read > 1000, "{read}");
    }
}
