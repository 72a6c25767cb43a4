//! Reading a history's JSON lines quickly, with the same result as the plain way.
//!
//! The plain way ([`Op`]'s derived `Deserialize`, through its wire form `RawOp`) reads each
//! op's `value` into a `serde_json::Value` first (it cannot know the value's type before it has
//! seen `f`), then converts that tree into the type `f` names: every value is parsed twice and
//! every object built as a map of owned keys in between. Here each line is read in place (no
//! `String` per line when the line lies whole in the reader's buffer) and, when `f` comes
//! before `value` (as riptide writes them), the value is deserialized straight into its type.
//!
//! What the plain way accepts, this accepts, into the same op; what it rejects, this rejects
//! with the same error. A line the fast path cannot read (any error: a malformed line, a value
//! before its `f`, a key twice, anything) is read again the plain way, whose answer is taken as
//! it is. The fast path is only ever stricter than the plain way, never more lenient: it fails
//! where serde's derived types fail on a key given twice (the plain way's `serde_json::Value`
//! keeps the last), and falls back then too.

use std::fmt;
use std::io::BufRead;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use crate::history::{History, HistoryError, Op, OpKind, Value, F};

/// Reads JSON lines as [`History::from_jsonl`] documents it.
pub(crate) fn read<R: BufRead>(mut reader: R) -> Result<History, HistoryError> {
    let mut ops = Vec::new();
    // A line that straddles the reader's buffer is gathered here.
    let mut carry: Vec<u8> = Vec::new();
    let mut line_no = 0;
    loop {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(HistoryError::Read {
                    line: line_no + 1,
                    source,
                })
            }
        };
        if ops.capacity() == 0 && buf.len() >= 1 << 20 {
            // The whole input in memory (a slice, a file read at once): one op a line, and a
            // vector sized once rather than regrown, which would copy every op and touch twice
            // the memory (half of reading a 1M-op history was the kernel handing out pages).
            ops.reserve(memchr::memchr_iter(b'\n', buf).count() + 1);
        }
        if buf.is_empty() {
            // End of input: a last line without a newline.
            if !carry.is_empty() {
                line_no += 1;
                parse_line(&carry, line_no, &mut ops)?;
            }
            break;
        }
        let mut used = 0;
        while let Some(at) = memchr::memchr(b'\n', &buf[used..]) {
            line_no += 1;
            let end = used + at;
            if carry.is_empty() {
                parse_line(without_cr(&buf[used..end]), line_no, &mut ops)?;
            } else {
                carry.extend_from_slice(&buf[used..end]);
                parse_line(without_cr(&carry), line_no, &mut ops)?;
                carry.clear();
            }
            used = end + 1;
        }
        carry.extend_from_slice(&buf[used..]);
        let n = buf.len();
        reader.consume(n);
    }
    Ok(History { ops })
}

/// A line ended by `\n` without the `\r` before it, as `BufRead::lines` gives it (so that an
/// error's column is the same).
fn without_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// One line (without its `\n`): its op goes on the end of `ops` (a blank line has none).
fn parse_line(bytes: &[u8], line: usize, ops: &mut Vec<Op>) -> Result<(), HistoryError> {
    // As `BufRead::lines` does: the line must be UTF-8.
    let text = std::str::from_utf8(bytes).map_err(|_| HistoryError::Read {
        line,
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        ),
    })?;
    // The lines riptide writes, read without serde; any other line the serde ways below.
    if let Some(op) = crate::jsonl_fast::op(text) {
        ops.push(op);
        return Ok(());
    }
    if text.trim().is_empty() {
        return Ok(());
    }
    // The op is built in its place at the end of `ops` (an op is large: not moved through
    // every layer of the parser's results).
    let len = ops.len();
    let mut de = serde_json::Deserializer::from_str(text);
    let fast = de.deserialize_map(OpVisitor(ops)).and_then(|()| de.end());
    if fast.is_err() {
        // The plain way decides, and words the error.
        ops.truncate(len);
        let op = serde_json::from_str::<Op>(text)
            .map_err(|source| HistoryError::Parse { line, source })?;
        ops.push(op);
    }
    Ok(())
}

/// The keys of an op's line.
enum Key {
    Index,
    Kind,
    Process,
    Invoke,
    TimeNs,
    F,
    Value,
    Error,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key of an op")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key, E> {
                Ok(match s {
                    "index" => Key::Index,
                    "kind" => Key::Kind,
                    "process" => Key::Process,
                    "invoke" => Key::Invoke,
                    "time_ns" => Key::TimeNs,
                    "f" => Key::F,
                    "value" => Key::Value,
                    "error" => Key::Error,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

/// One op, its value read as the type its `f` names when `f` comes first; pushed onto the
/// vector.
struct OpVisitor<'v>(&'v mut Vec<Op>);

/// Fails the fast path (the plain way then reads the line and words the error).
fn twice<E: de::Error>(key: &'static str) -> E {
    E::duplicate_field(key)
}

impl<'de> Visitor<'de> for OpVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an op")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut index: Option<u64> = None;
        let mut kind: Option<OpKind> = None;
        let mut process: Option<u64> = None;
        let mut invoke: Option<Option<u64>> = None;
        let mut time_ns: Option<u64> = None;
        let mut f: Option<F> = None;
        let mut value: Option<Option<Value>> = None;
        let mut error: Option<Option<String>> = None;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Index if index.is_none() => index = Some(map.next_value()?),
                Key::Kind if kind.is_none() => kind = Some(map.next_value()?),
                Key::Process if process.is_none() => process = Some(map.next_value()?),
                Key::Invoke if invoke.is_none() => invoke = Some(map.next_value()?),
                Key::TimeNs if time_ns.is_none() => time_ns = Some(map.next_value()?),
                Key::F if f.is_none() => f = Some(map.next_value()?),
                // Before `f`, the value's type is unknown: the plain way reads it.
                Key::Value if value.is_none() => match f {
                    Some(f) => value = Some(map.next_value_seed(ValueSeed(f))?),
                    None => return Err(de::Error::custom("value before f")),
                },
                Key::Error if error.is_none() => error = Some(map.next_value()?),
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
                _ => return Err(twice("a key")),
            }
        }
        let missing = de::Error::missing_field;
        let f = f.ok_or_else(|| missing("f"))?;
        let value = match value.flatten() {
            Some(v) => v,
            // Absent or null: read as `{}`, as the plain way does.
            None => Value::from_json(f, serde_json::Value::Null).map_err(de::Error::custom)?,
        };
        self.0.push(Op {
            index: index.ok_or_else(|| missing("index"))?,
            kind: kind.ok_or_else(|| missing("kind"))?,
            process: process.ok_or_else(|| missing("process"))?,
            invoke: invoke.flatten(),
            time_ns: time_ns.ok_or_else(|| missing("time_ns"))?,
            value,
            error: error.flatten(),
        });
        Ok(())
    }
}

/// An op's value, of the type `f` names; `None` for `null`.
struct ValueSeed(F);

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Option<Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<Value>, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the value of an op with f={}", self.0.as_str())
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<Value>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<Value>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<Value>, D::Error> {
        Ok(Some(match self.0 {
            F::Send => Value::Send(Deserialize::deserialize(d)?),
            F::Poll => Value::Poll(Deserialize::deserialize(d)?),
            F::Assign => Value::Assign(Deserialize::deserialize(d)?),
            F::Seek => Value::Seek(Deserialize::deserialize(d)?),
            F::ListOffsets => Value::ListOffsets(Deserialize::deserialize(d)?),
            F::FinalRead => Value::FinalRead(Deserialize::deserialize(d)?),
            F::Commit => Value::Commit(Deserialize::deserialize(d)?),
            F::Fault => Value::Fault(Deserialize::deserialize(d)?),
            F::Client => Value::Client(Deserialize::deserialize(d)?),
            F::Violation => Value::Violation(Deserialize::deserialize(d)?),
            F::Invariant => Value::Invariant(Deserialize::deserialize(d)?),
            F::Txn => Value::Txn(Deserialize::deserialize(d)?),
            F::DeleteRecords => Value::DeleteRecords(Deserialize::deserialize(d)?),
            F::Topic => Value::Topic(Deserialize::deserialize(d)?),
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::history::{History, HistoryError};

    /// Both ways: the fast reader's answer and the plain one's (every line through `Op`'s
    /// derived `Deserialize`), as text.
    fn both(text: &str) -> (String, String) {
        let fast = match History::from_jsonl(text.as_bytes()) {
            Ok(h) => format!("{h:?}"),
            Err(e) => format!("error: {e}"),
        };
        let mut plain = Vec::new();
        let mut err = None;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(line) {
                Ok(op) => plain.push(op),
                Err(source) => {
                    err = Some(HistoryError::Parse {
                        line: i + 1,
                        source,
                    });
                    break;
                }
            }
        }
        let plain = match err {
            Some(e) => format!("error: {e}"),
            None => format!("{:?}", History::new(plain)),
        };
        (fast, plain)
    }

    #[test]
    fn odd_lines_read_as_the_plain_way_reads_them() {
        let lines = [
            // As riptide writes them.
            r#"{"index":0,"kind":"invoke","process":1,"time_ns":0,"f":"send","value":{"topic":"t","partition":0,"value":"a","batch":3}}"#,
            // The value before f; null and absent values; unknown keys; spaces; escapes.
            r#"{"value":{"topic":"t","partition":0,"value":"a","offset":0},"index":1,"kind":"ok","process":1,"time_ns":5,"f":"send"}"#,
            r#"{"index":2,"kind":"invoke","process":2,"time_ns":6,"f":"poll","value":null}"#,
            r#" { "index" : 3 , "kind" : "ok" , "process" : 2 , "time_ns" : 7 , "f" : "poll" , "extra" : [1, {"x": null}] } "#,
            r#"{"index":4,"kind":"info","process":9,"time_ns":8,"f":"fault","value":{"kind":"crash","broker":"b\u0031\n","rate":0.25,"n":-3},"error":null,"invoke":null}"#,
            // A key twice inside a value: the plain way keeps the last.
            r#"{"index":5,"kind":"invoke","process":3,"time_ns":9,"f":"send","value":{"topic":"t","partition":0,"value":"a","value":"b"}}"#,
            // A struct may be written as an array of its fields.
            r#"{"index":5,"kind":"ok","process":1,"time_ns":0,"f":"poll","value":[]}"#,
            // A client with a profile; a txn with micro-ops.
            r#"{"index":6,"kind":"ok","process":3,"invoke":5,"time_ns":9,"f":"client","value":{"role":"producer","profile":{"linger_ms":5,"codec":"zstd","p":0.01,"big":18446744073709551615}}}"#,
            r#"{"index":7,"kind":"ok","process":4,"time_ns":9,"f":"txn","value":{"transactional_id":"x","end":"commit","ops":[{"f":"poll","records":[{"topic":"t","partition":0,"offset":3,"value":"i"}]},{"value":"o","f":"send","topic":"t","partition":1,"offset":4}]}}"#,
        ];
        let text = lines.join("\n");
        let (fast, plain) = both(&text);
        assert_eq!(fast, plain);
        assert!(!fast.starts_with("error"), "{fast}");
        // With `\r\n`, blank lines and no final newline.
        let text = format!("\n{}\r\n \r\n{}", lines[0], lines[1]);
        assert_eq!(both(&text).0, both(&text).1);
        // A bad line before `\r\n`: the error's column is the one without the `\r`.
        let text = format!("{}\r\n{{\"index\":1,\r\n", lines[0]);
        let (fast, plain) = both(&text);
        assert_eq!(fast, plain);
        assert!(fast.contains("line 1 column 11"), "{fast}");
    }

    #[test]
    fn bad_lines_fail_with_the_plain_way_s_error() {
        let good = r#"{"index":0,"kind":"invoke","process":1,"time_ns":0,"f":"poll"}"#;
        let bad = [
            "not json",
            "{",
            r#"{"index":1,"kind":"ok","process":1,"time_ns":0,"f":"send","value":{"topic":"t"}}"#,
            r#"{"index":1,"kind":"ok","process":1,"time_ns":0,"f":"send"}"#,
            r#"{"index":1,"index":2,"kind":"ok","process":1,"time_ns":0,"f":"poll"}"#,
            r#"{"index":1,"kind":"ok","process":1,"time_ns":0,"f":"poll","f":"poll"}"#,
            r#"{"index":1,"kind":"ok","process":1,"time_ns":0,"f":"poll","value":{},"value":{}}"#,
            r#"{"index":1,"kind":"ok","process":1,"time_ns":0,"f":"poll"} trailing"#,
            r#"{"index":1.5,"kind":"ok","process":1,"time_ns":0,"f":"poll"}"#,
            r#"{"index":1,"kind":"ok","process":1,"time_ns":0,"f":"send","value":{"topic":"t","partition":0.5,"value":"a"}}"#,
            r#"{"index":1,"kind":"ok","process":1,"time_ns":0}"#,
            r#"[1,2]"#,
        ];
        for b in bad {
            let text = format!("{good}\n{b}\n");
            let (fast, plain) = both(&text);
            assert_eq!(fast, plain, "{b}");
            assert!(fast.starts_with("error: line 2: "), "{b}: {fast}");
        }
        // Not UTF-8: a read error naming the line, as `BufRead::lines` gives.
        let mut bytes = format!("{good}\n").into_bytes();
        bytes.extend_from_slice(b"{\"index\":\xff}\n");
        let err = History::from_jsonl(&bytes[..]).unwrap_err().to_string();
        assert_eq!(
            err,
            "line 2: read failed: stream did not contain valid UTF-8"
        );
    }

    #[test]
    fn lines_longer_than_the_reader_s_buffer_are_read_whole() {
        let value = "v".repeat(20_000);
        let line = format!(
            r#"{{"index":0,"kind":"invoke","process":1,"time_ns":0,"f":"send","value":{{"topic":"t","partition":0,"value":"{value}"}}}}"#
        );
        let text = format!("{line}\n{line}");
        let small = std::io::BufReader::with_capacity(7, text.as_bytes());
        let h = History::from_jsonl(small).unwrap();
        assert_eq!(h.ops.len(), 2);
        assert_eq!(format!("{h:?}"), both(&text).1);
    }
}
