//! Histories in the shape Jepsen's Kafka workload records them (`jepsen.tests.kafka`), as EDN,
//! both ways: `riptide check --export jepsen` and `--import jepsen`.
//!
//! One op per line, a map: `:index`, `:type` (`:invoke` `:ok` `:fail` `:info`), `:process` (an
//! integer, or `:nemesis`), `:time` (ns), `:f`, `:value`, `:error`. Sends and polls are Jepsen's
//! micro-ops on integer keys: `:f :send` with `[[:send k v]]` (completed `[[:send k [offset v]]]`),
//! `:f :poll` with `[[:poll]]` (completed `[[:poll {k [[offset v] ...]}]]`), `:f :txn` with several
//! of them, `:f :assign`/`:subscribe` with a vector of keys. Keys are topic-partitions, values
//! integers.
//!
//! What only riptide records travels in extra keys under the `riptide` namespace, which Jepsen's
//! checker ignores: `:riptide/keys` (key → `["topic" partition]`), `:riptide/values` (integer →
//! the record's string), `:riptide/invoke` (the invoke a completion answers),
//! `:riptide/f :final_read` (a final read, a poll to Jepsen), and `:riptide/extra` (the rest of
//! the op's value: high watermarks, fetch offsets, batches, attempts...). Ops Jepsen has no
//! shape for (commits, seeks, list-offsets, client descriptions, protocol violations, broken
//! invariants) keep riptide's `:f` and carry their value as EDN; a violation is also tagged
//! `:riptide/f :violation`. Importing a file written by hand or by Jepsen: key `k` is topic `t{k}`
//! partition 0 (as Jepsen's client names topics), values are their decimal text, `:nemesis` ops
//! are faults named by their `:f`, and `:crash` and other client ops riptide cannot represent are
//! skipped (and counted). An op with several micro-ops becomes one riptide op per micro-op; the
//! sends of one op carry `jepsen_op` (the first new index of its invoke), so riptide judges them
//! as one op where Jepsen does (`int-nonmonotonic-send`).
//!
//! A riptide transaction (`f = txn`) is exported as Jepsen's `:f :txn` with its `[:send k v]`
//! and `[:poll {...}]` micro-ops, and its whole value (transactional id, end, group, offsets,
//! hidden ranges...) under `:riptide/txn`, from which [`import`] restores it as one op. A
//! `:txn` without that key is Jepsen's own and is split as above.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use edn_format::{Keyword, Value as Edn};
use serde_json::{json, Map as JsonMap, Value as Json};

use crate::history::{
    AssignValue, FaultValue, FinalReadValue, History, MicroOp, Op, OpKind, PollValue, SendValue,
    TopicPartition, TxnValue, Value,
};

/// riptide's nemesis process (faults in histories of `sim` and `certify`).
pub const NEMESIS: u64 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum JepsenError {
    #[error("op {op}: {reason}")]
    Op { op: usize, reason: String },
    #[error("EDN: {0}")]
    Parse(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn kw(name: &str) -> Edn {
    Edn::Keyword(Keyword::from_name(name))
}

fn rkw(name: &str) -> Edn {
    Edn::Keyword(Keyword::from_namespace_and_name("riptide", name))
}

fn kind_name(k: OpKind) -> &'static str {
    match k {
        OpKind::Invoke => "invoke",
        OpKind::Ok => "ok",
        OpKind::Fail => "fail",
        OpKind::Info => "info",
    }
}

fn json_to_edn(v: &Json) -> Edn {
    match v {
        Json::Null => Edn::Nil,
        Json::Bool(b) => Edn::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Edn::Integer(i),
            None => Edn::Float(n.as_f64().unwrap_or_default().into()),
        },
        Json::String(s) => Edn::String(s.clone()),
        Json::Array(a) => Edn::Vector(a.iter().map(json_to_edn).collect()),
        Json::Object(m) => Edn::Map(m.iter().map(|(k, v)| (kw(k), json_to_edn(v))).collect()),
    }
}

fn edn_to_json(v: &Edn) -> Json {
    match v {
        Edn::Nil => Json::Null,
        Edn::Boolean(b) => json!(b),
        Edn::Integer(i) => json!(i),
        Edn::Float(f) => json!(f.into_inner()),
        Edn::String(s) => json!(s),
        Edn::Keyword(k) => json!(k.name()),
        Edn::Vector(a) | Edn::List(a) => Json::Array(a.iter().map(edn_to_json).collect()),
        Edn::Set(s) => Json::Array(s.iter().map(edn_to_json).collect()),
        Edn::Map(m) => Json::Object(
            m.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Edn::Keyword(k) => k.name().to_string(),
                        Edn::String(s) => s.clone(),
                        other => edn_format::emit_str(other),
                    };
                    (key, edn_to_json(v))
                })
                .collect(),
        ),
        other => json!(edn_format::emit_str(other)),
    }
}

/// The JSON of `v` without the fields the Jepsen shape already carries.
fn extra(v: &impl serde::Serialize, native: &[&str]) -> Option<Edn> {
    let Ok(Json::Object(mut m)) = serde_json::to_value(v) else {
        return None;
    };
    for k in native {
        m.remove(*k);
    }
    (!m.is_empty()).then(|| json_to_edn(&Json::Object(m)))
}

/// Integer keys for topic-partitions and integers for record values, the same for the whole
/// history; each op names the ones it uses, so it can be read on its own.
struct Names {
    keys: BTreeMap<(String, i32), i64>,
    values: BTreeMap<String, i64>,
}

impl Names {
    fn new(history: &History) -> Names {
        let mut tps = BTreeSet::new();
        let mut strings = Vec::new();
        for op in &history.ops {
            match &op.value {
                Value::Send(s) => {
                    tps.insert((s.topic.clone(), s.partition));
                    strings.push(s.value.clone());
                }
                Value::Poll(p) => {
                    for r in &p.records {
                        tps.insert((r.topic.clone(), r.partition));
                        strings.push(r.value.clone());
                    }
                }
                Value::Assign(a) => {
                    tps.extend(a.partitions.iter().map(|t| (t.topic.clone(), t.partition)));
                }
                Value::FinalRead(r) => {
                    tps.insert((r.topic.clone(), r.partition));
                    strings.extend(r.records.iter().map(|o| o.value.clone()));
                }
                Value::Txn(t) => {
                    for s in t.sends() {
                        tps.insert((s.topic.clone(), s.partition));
                        strings.push(s.value.clone());
                    }
                    for r in t.polls().flat_map(|p| &p.records) {
                        tps.insert((r.topic.clone(), r.partition));
                        strings.push(r.value.clone());
                    }
                }
                _ => {}
            }
        }
        let keys = tps.into_iter().zip(0..).collect();
        // A value that is an integer's text stays that integer; the others are numbered above
        // every such integer, in order of first appearance.
        let numeric = |s: &str| s.parse::<i64>().ok().filter(|i| i.to_string() == s);
        let mut next = strings
            .iter()
            .filter_map(|s| numeric(s))
            .max()
            .map_or(0, |m| m.saturating_add(1));
        let mut values = BTreeMap::new();
        for s in strings {
            if numeric(&s).is_none() && !values.contains_key(&s) {
                values.insert(s, next);
                next += 1;
            }
        }
        Names { keys, values }
    }

    fn key(&self, topic: &str, partition: i32, used: &mut BTreeMap<i64, (String, i32)>) -> Edn {
        let k = self.keys[&(topic.to_string(), partition)];
        used.insert(k, (topic.to_string(), partition));
        Edn::Integer(k)
    }

    fn value(&self, s: &str, used: &mut BTreeMap<i64, String>) -> Edn {
        match self.values.get(s) {
            Some(&i) => {
                used.insert(i, s.to_string());
                Edn::Integer(i)
            }
            None => Edn::Integer(s.parse().unwrap_or_default()),
        }
    }
}

/// `{k [[offset v] ...]}` in record order per key; the keys in the order they interleave, when
/// grouping changed it.
fn poll_map<'a>(
    names: &Names,
    records: impl Iterator<Item = (&'a str, i32, i64, &'a str)>,
    keys: &mut BTreeMap<i64, (String, i32)>,
    values: &mut BTreeMap<i64, String>,
) -> (Edn, Option<Edn>) {
    let mut by_key: BTreeMap<Edn, Vec<Edn>> = BTreeMap::new();
    let mut order = Vec::new();
    for (topic, partition, offset, value) in records {
        let k = names.key(topic, partition, keys);
        order.push(k.clone());
        by_key.entry(k).or_default().push(Edn::Vector(vec![
            Edn::Integer(offset),
            names.value(value, values),
        ]));
    }
    let grouped: Vec<Edn> = by_key
        .iter()
        .flat_map(|(k, rs)| std::iter::repeat_n(k.clone(), rs.len()))
        .collect();
    let order = (grouped != order).then_some(Edn::Vector(order));
    let map = by_key
        .into_iter()
        .map(|(k, v)| (k, Edn::Vector(v)))
        .collect();
    (Edn::Map(map), order)
}

fn export_op(names: &Names, op: &Op) -> Edn {
    let mut m: BTreeMap<Edn, Edn> = BTreeMap::new();
    let mut keys = BTreeMap::new();
    let mut values = BTreeMap::new();
    m.insert(kw("index"), Edn::Integer(op.index as i64));
    m.insert(kw("type"), kw(kind_name(op.kind)));
    m.insert(kw("time"), Edn::Integer(op.time_ns as i64));
    let nemesis = matches!(op.value, Value::Fault(_)) && op.process == NEMESIS;
    m.insert(
        kw("process"),
        if nemesis {
            kw("nemesis")
        } else {
            Edn::Integer(op.process as i64)
        },
    );
    if let Some(i) = op.invoke {
        m.insert(rkw("invoke"), Edn::Integer(i as i64));
    }
    if let Some(e) = &op.error {
        m.insert(kw("error"), Edn::String(e.clone()));
    }
    let (f, value, more) = match &op.value {
        Value::Send(s) => {
            let k = names.key(&s.topic, s.partition, &mut keys);
            let v = names.value(&s.value, &mut values);
            let native_offset = op.kind == OpKind::Ok && s.offset.is_some();
            let v = match s.offset {
                Some(o) if native_offset => Edn::Vector(vec![Edn::Integer(o), v]),
                _ => v,
            };
            let native: &[&str] = if native_offset {
                &["topic", "partition", "value", "offset"]
            } else {
                &["topic", "partition", "value"]
            };
            let micro = Edn::Vector(vec![kw("send"), k, v]);
            ("send", Edn::Vector(vec![micro]), extra(s, native))
        }
        Value::Poll(p) => {
            let records = p
                .records
                .iter()
                .map(|r| (r.topic.as_str(), r.partition, r.offset, r.value.as_str()));
            let (map, order) = poll_map(names, records, &mut keys, &mut values);
            if let Some(order) = order {
                m.insert(rkw("order"), order);
            }
            let micro = if op.kind == OpKind::Invoke && p.records.is_empty() {
                Edn::Vector(vec![kw("poll")])
            } else {
                Edn::Vector(vec![kw("poll"), map])
            };
            ("poll", Edn::Vector(vec![micro]), extra(p, &["records"]))
        }
        Value::FinalRead(r) => {
            m.insert(rkw("f"), kw("final_read"));
            let records = r
                .records
                .iter()
                .map(|o| (r.topic.as_str(), r.partition, o.offset, o.value.as_str()));
            let (map, _) = poll_map(names, records, &mut keys, &mut values);
            let micro = if r.records.is_empty() {
                Edn::Vector(vec![kw("poll")])
            } else {
                Edn::Vector(vec![kw("poll"), map])
            };
            // The partition stays in the extra too: a read of nothing names no key.
            ("poll", Edn::Vector(vec![micro]), extra(r, &["records"]))
        }
        Value::Assign(a) => {
            let ks = a
                .partitions
                .iter()
                .map(|t| names.key(&t.topic, t.partition, &mut keys))
                .collect();
            ("assign", Edn::Vector(ks), None)
        }
        Value::Fault(v) => {
            let detail = serde_json::to_value(&v.detail).unwrap_or_default();
            m.insert(rkw("f"), kw("fault"));
            (v.kind.as_str(), json_to_edn(&detail), None)
        }
        Value::Txn(t) => {
            let micro =
                t.ops
                    .iter()
                    .map(|mop| match mop {
                        MicroOp::Send(s) => {
                            let k = names.key(&s.topic, s.partition, &mut keys);
                            let v = names.value(&s.value, &mut values);
                            let v = match s.offset {
                                Some(o) if op.kind != OpKind::Invoke => {
                                    Edn::Vector(vec![Edn::Integer(o), v])
                                }
                                _ => v,
                            };
                            Edn::Vector(vec![kw("send"), k, v])
                        }
                        MicroOp::Poll(p) if op.kind == OpKind::Invoke && p.records.is_empty() => {
                            Edn::Vector(vec![kw("poll")])
                        }
                        MicroOp::Poll(p) => {
                            let records = p.records.iter().map(|r| {
                                (r.topic.as_str(), r.partition, r.offset, r.value.as_str())
                            });
                            let (map, _) = poll_map(names, records, &mut keys, &mut values);
                            Edn::Vector(vec![kw("poll"), map])
                        }
                    })
                    .collect();
            // All of it, for riptide to read back as one op.
            let json = serde_json::to_value(t).unwrap_or_default();
            m.insert(rkw("txn"), json_to_edn(&json));
            ("txn", Edn::Vector(micro), None)
        }
        Value::Violation(v) => {
            // Jepsen's checker passes over an `:f` it has no use for; the tag says whose it is.
            m.insert(rkw("f"), kw("violation"));
            let json = serde_json::to_value(v).unwrap_or_default();
            ("violation", json_to_edn(&json), None)
        }
        other => {
            let f = other.f().as_str();
            let json = serde_json::to_value(other).unwrap_or_default();
            (f, json_to_edn(&json), None)
        }
    };
    m.insert(kw("f"), kw(f));
    m.insert(kw("value"), value);
    if let Some(more) = more {
        m.insert(rkw("extra"), more);
    }
    if !keys.is_empty() {
        let keys = keys
            .into_iter()
            .map(|(k, (t, p))| {
                let tp = Edn::Vector(vec![Edn::String(t), Edn::Integer(p.into())]);
                (Edn::Integer(k), tp)
            })
            .collect();
        m.insert(rkw("keys"), Edn::Map(keys));
    }
    if !values.is_empty() {
        let values = values
            .into_iter()
            .map(|(i, s)| (Edn::Integer(i), Edn::String(s)))
            .collect();
        m.insert(rkw("values"), Edn::Map(values));
    }
    Edn::Map(m)
}

/// Writes `history` as Jepsen's Kafka workload would have recorded it, one op per line.
pub fn export(history: &History, out: &mut impl Write) -> std::io::Result<()> {
    let names = Names::new(history);
    for op in &history.ops {
        writeln!(out, "{}", edn_format::emit_str(&export_op(&names, op)))?;
    }
    Ok(())
}

/// What [`import`] read, and what it had to leave out.
#[derive(Debug)]
pub struct Imported {
    pub history: History,
    /// Ops riptide has no shape for (`:crash`, debug ops...), by `:f`.
    pub skipped: BTreeMap<String, usize>,
}

/// One op map being read: its fields, and the names it brings.
struct Reading<'a> {
    n: usize,
    m: &'a BTreeMap<Edn, Edn>,
    keys: BTreeMap<i64, (String, i32)>,
    values: BTreeMap<i64, String>,
}

impl Reading<'_> {
    fn bad(&self, reason: impl Into<String>) -> JepsenError {
        JepsenError::Op {
            op: self.n,
            reason: reason.into(),
        }
    }

    fn get(&self, k: &Edn) -> Option<&Edn> {
        self.m.get(k)
    }

    fn int(&self, v: &Edn, what: &str) -> Result<i64, JepsenError> {
        match v {
            Edn::Integer(i) => Ok(*i),
            other => Err(self.bad(format!(
                "{what} is {} (an integer was expected)",
                edn_format::emit_str(other)
            ))),
        }
    }

    fn tp(&self, k: &Edn) -> Result<(String, i32), JepsenError> {
        let k = self.int(k, "a key")?;
        Ok(self
            .keys
            .get(&k)
            .cloned()
            .unwrap_or_else(|| (format!("t{k}"), 0)))
    }

    fn value(&self, v: &Edn) -> Result<String, JepsenError> {
        let i = self.int(v, "a value")?;
        Ok(self
            .values
            .get(&i)
            .cloned()
            .unwrap_or_else(|| i.to_string()))
    }

    /// `{k [[offset v] ...]}` as (topic, partition, offset, value), in `:riptide/order` if given.
    fn records(&self, map: &Edn) -> Result<Vec<(String, i32, i64, String)>, JepsenError> {
        let Edn::Map(map) = map else {
            return Err(self.bad("a poll's result is not a map of keys"));
        };
        let mut per_key: BTreeMap<Edn, std::collections::VecDeque<(i64, String)>> = BTreeMap::new();
        let mut grouped = Vec::new();
        for (k, pairs) in map {
            let (Edn::Vector(pairs) | Edn::List(pairs)) = pairs else {
                return Err(self.bad("a poll's records are not a vector"));
            };
            for pair in pairs {
                let (Edn::Vector(p) | Edn::List(p)) = pair else {
                    return Err(self.bad("a polled record is not [offset value]"));
                };
                let [o, v] = p.as_slice() else {
                    return Err(self.bad("a polled record is not [offset value]"));
                };
                let rec = (self.int(o, "an offset")?, self.value(v)?);
                per_key.entry(k.clone()).or_default().push_back(rec);
                grouped.push(k.clone());
            }
        }
        let order = match self.get(&rkw("order")) {
            Some(Edn::Vector(o)) => o.clone(),
            _ => grouped,
        };
        let mut out = Vec::new();
        for k in order {
            let (topic, partition) = self.tp(&k)?;
            let (offset, value) = per_key
                .get_mut(&k)
                .and_then(|q| q.pop_front())
                .ok_or_else(|| self.bad(":riptide/order names more records than the poll has"))?;
            out.push((topic, partition, offset, value));
        }
        Ok(out)
    }
}

/// Merges the op's `:riptide/extra` into `base` and reads it as `T`.
fn with_extra<T: serde::de::DeserializeOwned>(
    r: &Reading<'_>,
    mut base: JsonMap<String, Json>,
) -> Result<T, JepsenError> {
    if let Some(Json::Object(more)) = r.get(&rkw("extra")).map(edn_to_json) {
        base.extend(more);
    }
    serde_json::from_value(Json::Object(base)).map_err(|e| r.bad(e.to_string()))
}

/// The riptide values of one op's micro-ops (several for a `:txn`).
fn micro_ops(r: &Reading<'_>, f: &str) -> Result<Vec<Value>, JepsenError> {
    let Some(Edn::Vector(micro) | Edn::List(micro)) = r.get(&kw("value")) else {
        return Err(r.bad(format!(":f :{f} without a vector of micro-ops")));
    };
    let final_read = r.get(&rkw("f")) == Some(&kw("final_read"));
    let mut out = Vec::new();
    for m in micro {
        let (Edn::Vector(m) | Edn::List(m)) = m else {
            return Err(r.bad("a micro-op is not a vector"));
        };
        match m.as_slice() {
            [Edn::Keyword(op), k, v] if op.name() == "send" => {
                let (topic, partition) = r.tp(k)?;
                let (offset, value) = match v {
                    Edn::Vector(p) | Edn::List(p) if p.len() == 2 => {
                        (Some(r.int(&p[0], "an offset")?), r.value(&p[1])?)
                    }
                    v => (None, r.value(v)?),
                };
                let mut base = JsonMap::new();
                base.insert("topic".into(), json!(topic));
                base.insert("partition".into(), json!(partition));
                base.insert("value".into(), json!(value));
                if let Some(o) = offset {
                    base.insert("offset".into(), json!(o));
                }
                out.push(Value::Send(with_extra::<SendValue>(r, base)?));
            }
            [Edn::Keyword(op), rest @ ..] if op.name() == "poll" && rest.len() <= 1 => {
                let records = match rest.first() {
                    Some(map) => r.records(map)?,
                    None => vec![],
                };
                if final_read {
                    let mut base = JsonMap::new();
                    let offsets: Vec<Json> = records
                        .iter()
                        .map(|(_, _, o, v)| json!({"offset": o, "value": v}))
                        .collect();
                    base.insert("records".into(), Json::Array(offsets));
                    out.push(Value::FinalRead(with_extra::<FinalReadValue>(r, base)?));
                } else {
                    let mut p: PollValue = with_extra(r, JsonMap::new())?;
                    for (t, part, o, v) in &records {
                        p = p.record(t, *part, *o, v);
                    }
                    out.push(Value::Poll(p));
                }
            }
            _ => {
                return Err(r.bad(format!(
                    "unknown micro-op {}",
                    edn_format::emit_str(&Edn::Vector(m.clone()))
                )));
            }
        }
    }
    Ok(out)
}

/// Reads a history written by [`export`], by Jepsen's Kafka workload, or by hand in its shape.
pub fn import(text: &str) -> Result<Imported, JepsenError> {
    let parser = edn_format::Parser::from_str(text, edn_format::ParserOptions::default());
    let mut ops: Vec<Op> = Vec::new();
    let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
    // Old index -> new indices (a split `:txn` has several), for `:riptide/invoke` and for the
    // completions of a split invoke.
    let mut renumbered: BTreeMap<i64, Vec<u64>> = BTreeMap::new();
    // Per process: the new indices of its latest split invoke, which its next completion answers.
    let mut open_split: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for (n, parsed) in parser.enumerate() {
        let parsed = parsed.map_err(|e| JepsenError::Parse(format!("op {n}: {e:?}")))?;
        let Edn::Map(m) = &parsed else {
            return Err(JepsenError::Op {
                op: n,
                reason: "not a map".into(),
            });
        };
        let mut r = Reading {
            n,
            m,
            keys: BTreeMap::new(),
            values: BTreeMap::new(),
        };
        if let Some(Edn::Map(keys)) = m.get(&rkw("keys")) {
            for (k, tp) in keys {
                let k = r.int(k, "a key")?;
                let (Edn::Vector(tp) | Edn::List(tp)) = tp else {
                    return Err(
                        r.bad(":riptide/keys maps a key to something else than [topic partition]")
                    );
                };
                let [Edn::String(t), p] = tp.as_slice() else {
                    return Err(
                        r.bad(":riptide/keys maps a key to something else than [topic partition]")
                    );
                };
                let p = r.int(p, "a partition")? as i32;
                r.keys.insert(k, (t.clone(), p));
            }
        }
        if let Some(Edn::Map(values)) = m.get(&rkw("values")) {
            for (i, s) in values {
                let i = r.int(i, "a value")?;
                let Edn::String(s) = s else {
                    return Err(r.bad(":riptide/values maps to something else than a string"));
                };
                r.values.insert(i, s.clone());
            }
        }
        let kind = match r.get(&kw("type")) {
            Some(Edn::Keyword(k)) => match k.name() {
                "invoke" => OpKind::Invoke,
                "ok" => OpKind::Ok,
                "fail" => OpKind::Fail,
                "info" => OpKind::Info,
                other => return Err(r.bad(format!("unknown :type :{other}"))),
            },
            _ => return Err(r.bad("no :type")),
        };
        let f = match r.get(&kw("f")) {
            Some(Edn::Keyword(k)) => k.name().to_string(),
            _ => return Err(r.bad("no :f")),
        };
        let process = match r.get(&kw("process")) {
            Some(Edn::Integer(p)) if *p >= 0 => *p as u64,
            Some(Edn::Keyword(k)) if k.name() == "nemesis" => NEMESIS,
            other => {
                return Err(r.bad(format!(
                    "process {} is neither a non-negative integer nor :nemesis",
                    other.map(edn_format::emit_str).unwrap_or_default()
                )))
            }
        };
        let time_ns = match r.get(&kw("time")) {
            Some(t) => r.int(t, ":time")?.max(0) as u64,
            None => 0,
        };
        let error = r.get(&kw("error")).map(|e| match e {
            Edn::String(s) => s.clone(),
            other => edn_format::emit_str(other),
        });
        let riptide_f = match r.get(&rkw("f")) {
            Some(Edn::Keyword(k)) => Some(k.name().to_string()),
            _ => None,
        };
        let values: Vec<Value> = if process == NEMESIS || riptide_f.as_deref() == Some("fault") {
            let mut v = FaultValue::new(f.clone());
            match r.get(&kw("value")).map(edn_to_json) {
                Some(Json::Object(detail)) => v.detail.extend(detail),
                Some(Json::Null) | None => {}
                Some(other) => {
                    v.detail.insert("value".into(), other);
                }
            }
            vec![Value::Fault(v)]
        } else {
            match (f.as_str(), r.get(&rkw("txn"))) {
                ("txn", Some(txn)) => {
                    let v: TxnValue = serde_json::from_value(edn_to_json(txn))
                        .map_err(|e| r.bad(format!(":riptide/txn: {e}")))?;
                    vec![Value::Txn(v)]
                }
                _ => match f.as_str() {
                    "send" | "poll" | "txn" => micro_ops(&r, &f)?,
                    "assign" | "subscribe" => {
                        let ks = match r.get(&kw("value")) {
                            Some(Edn::Vector(ks) | Edn::List(ks)) => ks.clone(),
                            Some(Edn::Set(ks)) => ks.iter().cloned().collect(),
                            _ => vec![],
                        };
                        let partitions = ks
                            .iter()
                            .map(|k| r.tp(k).map(|(t, p)| TopicPartition::new(t, p)))
                            .collect::<Result<_, _>>()?;
                        vec![Value::Assign(AssignValue { partitions })]
                    }
                    "seek" | "list_offsets" | "commit" | "client" | "violation" | "invariant"
                    | "delete_records" | "topic" => {
                        let body = match r.get(&kw("value")).map(edn_to_json) {
                            Some(Json::Object(m)) => m,
                            _ => return Err(r.bad(format!(":f :{f} without a map value"))),
                        };
                        let op = json!({"index": 0, "kind": "ok", "process": 0, "time_ns": 0,
                                    "f": f, "value": Json::Object(body)});
                        let parsed: Op =
                            serde_json::from_value(op).map_err(|e| r.bad(e.to_string()))?;
                        vec![parsed.value]
                    }
                    other => {
                        *skipped.entry(other.to_string()).or_default() += 1;
                        continue;
                    }
                },
            }
        };
        let old_index = match r.get(&kw("index")) {
            Some(i) => Some(r.int(i, ":index")?),
            None => None,
        };
        let explicit_invoke = match r.get(&rkw("invoke")) {
            Some(i) => {
                let i = r.int(i, ":riptide/invoke")?;
                let new = renumbered.get(&i).and_then(|v| v.first()).copied();
                Some(
                    new.ok_or_else(|| r.bad(format!(":riptide/invoke {i} names no op before it")))?,
                )
            }
            None => None,
        };
        let split = values.len() > 1;
        // A violation or invariant event completes nothing: its process's split invoke stays open.
        let standalone = matches!(
            values.as_slice(),
            [Value::Violation(_) | Value::Invariant(_)]
        );
        // A completion of a split invoke answers each of its micro-ops in turn.
        let answers = if kind != OpKind::Invoke && explicit_invoke.is_none() && !standalone {
            open_split.remove(&process)
        } else {
            None
        };
        // Several sends of one Jepsen op: Jepsen's int-* rules judge them together.
        let sends = values
            .iter()
            .filter(|v| matches!(v, Value::Send(_)))
            .count();
        let jepsen_op = (sends > 1).then(|| {
            explicit_invoke
                .or_else(|| answers.as_ref().and_then(|a| a.first().copied()))
                .unwrap_or(ops.len() as u64)
        });
        let mut new_indices = Vec::new();
        for (j, mut value) in values.into_iter().enumerate() {
            if let (Value::Send(s), Some(i)) = (&mut value, jepsen_op) {
                s.jepsen_op.get_or_insert(i);
            }
            let index = ops.len() as u64;
            let invoke =
                explicit_invoke.or_else(|| answers.as_ref().and_then(|a| a.get(j).copied()));
            ops.push(Op {
                index,
                kind,
                process,
                invoke,
                time_ns,
                value,
                error: error.clone(),
            });
            new_indices.push(index);
        }
        if kind == OpKind::Invoke {
            if split {
                open_split.insert(process, new_indices.clone());
            } else {
                open_split.remove(&process);
            }
        }
        if let Some(old) = old_index {
            renumbered.insert(old, new_indices);
        }
    }
    Ok(Imported {
        history: History::new(ops),
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::{self, Mutation};
    use crate::history::{CommitValue, HistoryBuilder, PartitionOffset, SeekValue};
    use crate::{check_all, CheckerConfig};

    fn round_trip(h: &History) -> History {
        let mut edn = Vec::new();
        export(h, &mut edn).unwrap();
        let back = import(std::str::from_utf8(&edn).unwrap()).unwrap();
        assert!(back.skipped.is_empty());
        back.history
    }

    fn findings(h: &History) -> Vec<crate::Finding> {
        check_all(h, &CheckerConfig::default()).findings
    }

    #[test]
    fn histories_come_back_the_same_with_the_same_findings() {
        let mut all = vec![testkit::clean()];
        for m in [
            Mutation::None,
            Mutation::IntPollSkip,
            Mutation::IntNonmonotonicPoll,
            Mutation::IntNonmonotonicSend,
            Mutation::IdempotentReorder,
            Mutation::IdempotentDuplicate,
        ] {
            all.push(testkit::pipelined(m));
        }
        for h in &all {
            let back = round_trip(h);
            assert_eq!(&back, h);
            assert_eq!(findings(&back), findings(h));
        }
        // The mutations do find something: the comparison is not of empty lists.
        assert!(all.iter().any(|h| !findings(h).is_empty()));
    }

    #[test]
    fn transactions_export_as_jepsen_txns_and_come_back_whole() {
        use crate::history::TxnEnd;
        let mut b = HistoryBuilder::new();
        testkit::rc_client(&mut b, 10);
        testkit::txn(
            &mut b,
            1,
            TxnEnd::Commit,
            OpKind::Ok,
            &[(0, "a", 0), (1, "b", 0)],
        );
        testkit::txn(&mut b, 2, TxnEnd::Abort, OpKind::Ok, &[(0, "x", 2)]);
        // An aborted read, so the findings compared are not empty.
        testkit::poll(&mut b, 10, 0, &[(0, "a"), (2, "x")], 4);
        testkit::final_read_hidden(&mut b, 20, 0, &[(0, "a")], &[(1, 4)], 4);
        testkit::final_read_hidden(&mut b, 20, 1, &[(0, "b")], &[(1, 2)], 2);
        let h = b.build();
        let mut out = Vec::new();
        export(&h, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let ok = text.lines().nth(3).unwrap();
        assert!(
            ok.contains(":f :txn") && ok.contains("[[:send 0 [0 "),
            "{ok}"
        );
        let back = round_trip(&h);
        assert_eq!(back, h);
        assert_eq!(findings(&back), findings(&h));
        assert_eq!(
            crate::checkers::testkit::anomalies(&findings(&h)),
            vec![crate::Anomaly::AbortedRead]
        );
    }

    #[test]
    fn interleaved_polls_numeric_values_faults_and_riptide_ops_survive() {
        let mut b = HistoryBuilder::new();
        testkit::send(&mut b, 1, 0, "7", 0); // an integer's text stays that integer
        testkit::send(&mut b, 1, 1, "x", 0);
        testkit::send(&mut b, 1, 0, "8", 1);
        b.invoke(2, PollValue::default());
        let poll = PollValue::default()
            .record(testkit::T, 0, 0, "7")
            .record(testkit::T, 1, 0, "x")
            .record(testkit::T, 0, 1, "8")
            .hwm(testkit::T, 0, 2);
        b.ok(2, poll);
        let seek = SeekValue::new(testkit::T, 0, 0);
        b.invoke(2, seek.clone());
        b.ok(2, seek);
        let commit = CommitValue {
            group: Some("g".into()),
            offsets: vec![PartitionOffset {
                topic: testkit::T.into(),
                partition: 0,
                offset: 2,
            }],
        };
        b.invoke(2, commit.clone());
        b.ok(2, commit);
        let fault = FaultValue::new("crash")
            .with("broker", "broker-1")
            .with("rate", 0.348_471_460_058_474_85)
            .with("phase", "start");
        b.invoke(NEMESIS, fault.clone());
        b.ok(NEMESIS, fault);
        testkit::final_read(&mut b, 9, 0, &["7", "8"]);
        b.invoke(9, FinalReadValue::new(testkit::T, 1));
        b.fail(9, FinalReadValue::new(testkit::T, 1));
        let h = b.build();
        let mut edn = Vec::new();
        export(&h, &mut edn).unwrap();
        let text = String::from_utf8(edn).unwrap();
        // Jepsen's shapes where it has them.
        assert!(text.contains("[[:send 0 [1 8]]]"), "{text}");
        assert!(
            text.contains("[[:poll {0 [[0 7] [1 8]] 1 [[0 9]]}]]"),
            "{text}"
        );
        assert!(text.contains(":process :nemesis"), "{text}");
        assert!(text.contains(":riptide/values {9 \"x\"}"), "{text}");
        assert_eq!(round_trip(&h), h);
    }

    /// A history written by hand in the shape Jepsen's Kafka workload documents (no riptide
    /// keys): what riptide's checkers find in it.
    #[test]
    fn a_hand_written_jepsen_history_gives_the_anomalies_it_holds() {
        let text = include_str!("../tests/fixtures/jepsen-kafka.edn");
        let imported = import(text).unwrap();
        assert_eq!(imported.skipped.get("crash"), Some(&2));
        let h = imported.history;
        h.validate().unwrap();
        let report = check_all(&h, &CheckerConfig::default());
        let kinds: BTreeSet<&str> = report.findings.iter().map(|f| f.anomaly.as_str()).collect();
        let want: BTreeSet<&str> = [
            "duplicate",
            "inconsistent-offsets",
            "nonmonotonic-poll",
            "poll-skip",
            "int-poll-skip",
            "int-nonmonotonic-poll",
            "nonmonotonic-send",
            "replay-mismatch",
            "int-nonmonotonic-send",
            // No liveness-after-heal: without final reads there is no read-back phase to judge.
        ]
        .into();
        assert_eq!(kinds, want, "{}", report.to_text());
        // Jepsen's name for each shape: one op's sends out of order are int-nonmonotonic-send
        // (not nonmonotonic-send), and a value acknowledged at 0 but read at 1 is a duplicate
        // (not inconsistent-offsets).
        let on = |topic: &str| -> Vec<&str> {
            report
                .findings
                .iter()
                .filter(|f| f.topic == topic)
                .map(|f| f.anomaly.as_str())
                .collect()
        };
        assert_eq!(on("t6"), vec!["nonmonotonic-send"], "{}", report.to_text());
        assert_eq!(
            on("t7"),
            vec!["int-nonmonotonic-send"],
            "{}",
            report.to_text()
        );
        assert_eq!(on("t8"), vec!["duplicate"], "{}", report.to_text());
        assert!(report.counts[&crate::Anomaly::LivenessAfterHeal] == 0);
        // Key 5 is topic t5, partition 0, as Jepsen's client names it; values are their text.
        assert!(report.findings.iter().all(|f| f.topic.starts_with('t')));
        assert!(h
            .ops
            .iter()
            .any(|o| matches!(&o.value, Value::Fault(v) if v.kind == "start-partition")));
    }

    #[test]
    fn violations_survive_the_round_trip_amid_a_split_txn() {
        use crate::history::{ViolationKind, ViolationValue};
        let mut b = HistoryBuilder::new();
        let s = SendValue::new(testkit::T, 0, "a");
        let a = b.invoke(1, s.clone());
        for (i, kind) in ViolationKind::ALL.into_iter().enumerate() {
            b.ok(
                1,
                ViolationValue {
                    kind,
                    broker: "127.0.0.1:9092".into(),
                    api: "Produce".into(),
                    version: 9,
                    partition: (i % 2 == 0).then(|| TopicPartition::new(testkit::T, 0)),
                    op: (i % 3 == 0).then_some(a),
                    detail: format!("detail {i}"),
                },
            );
        }
        b.complete(1, a, OpKind::Ok, s.acked(0));
        let h = b.build();
        h.validate().unwrap();
        let mut edn = Vec::new();
        export(&h, &mut edn).unwrap();
        let text = String::from_utf8(edn).unwrap();
        assert!(
            text.lines()
                .nth(1)
                .unwrap()
                .contains(":riptide/f :violation"),
            "{text}"
        );
        assert!(text.contains(":kind \"no-base-offset\""), "{text}");
        assert_eq!(round_trip(&h), h);
        // In a file Jepsen wrote, a violation between a :txn's invoke and its completion leaves
        // the txn's sends to that completion.
        let text = "{:index 0, :type :invoke, :process 0, :f :txn, :value [[:send 5 1] [:send 5 2]]}
{:index 1, :type :ok, :process 0, :f :violation, :riptide/f :violation, :value {:kind \"malformed\", :broker \"b\", :api \"Produce\", :version 3, :detail \"x\"}}
{:index 2, :type :ok, :process 0, :f :txn, :value [[:send 5 [0 1]] [:send 5 [1 2]]]}";
        let h = import(text).unwrap().history;
        h.validate().unwrap();
        assert_eq!(h.ops.len(), 5);
        assert!(
            matches!(&h.ops[2].value, Value::Violation(v) if v.kind == ViolationKind::Malformed)
        );
        assert_eq!((h.ops[3].invoke, h.ops[4].invoke), (Some(0), Some(1)));
    }

    /// The histories of the README's table of anomalies shared with Jepsen, in Jepsen's shape:
    /// what riptide names each (Jepsen's name in the comment).
    #[test]
    fn the_jepsen_parity_table_shapes_get_the_names_the_readme_gives() {
        let cases: [(&str, &str, &[&str]); 6] = [
            (
                "Jepsen: duplicate (acked at 0, read at 1)",
                "{:type :invoke, :process 0, :f :send, :value [[:send 8 40]]}
{:type :ok, :process 0, :f :send, :value [[:send 8 [0 40]]]}
{:type :invoke, :process 1, :f :poll, :value [[:poll]]}
{:type :ok, :process 1, :f :poll, :value [[:poll {8 [[1 40]]}]]}",
                &["duplicate"],
            ),
            (
                "Jepsen: inconsistent-offsets (two polls disagree, no ack there)",
                "{:type :invoke, :process 1, :f :poll, :value [[:poll]]}
{:type :ok, :process 1, :f :poll, :value [[:poll {5 [[0 1] [1 2]]}]]}
{:type :invoke, :process 2, :f :poll, :value [[:poll]]}
{:type :ok, :process 2, :f :poll, :value [[:poll {5 [[0 1] [1 3]]}]]}",
                &["replay-mismatch"],
            ),
            (
                "Jepsen: lost-write and unseen (acked at 0, a poll returns offset 1 only)",
                "{:type :invoke, :process 0, :f :send, :value [[:send 5 1]]}
{:type :ok, :process 0, :f :send, :value [[:send 5 [0 1]]]}
{:type :invoke, :process 1, :f :poll, :value [[:poll]]}
{:type :ok, :process 1, :f :poll, :value [[:poll {5 [[1 2]]}]]}",
                &["lost-write"],
            ),
            (
                "Jepsen: nonmonotonic-poll (re-assigned the same key, read from 0 again)",
                "{:type :invoke, :process 2, :f :assign, :value [5]}
{:type :ok, :process 2, :f :assign, :value [5]}
{:type :invoke, :process 2, :f :poll, :value [[:poll]]}
{:type :ok, :process 2, :f :poll, :value [[:poll {5 [[0 1] [1 2] [2 3]]}]]}
{:type :invoke, :process 2, :f :assign, :value [5]}
{:type :ok, :process 2, :f :assign, :value [5]}
{:type :invoke, :process 2, :f :poll, :value [[:poll]]}
{:type :ok, :process 2, :f :poll, :value [[:poll {5 [[0 1]]}]]}",
                &[],
            ),
            (
                "Jepsen: int-nonmonotonic-send (one txn's sends acked backwards)",
                "{:type :invoke, :process 0, :f :txn, :value [[:send 7 30] [:send 7 31]]}
{:type :ok, :process 0, :f :txn, :value [[:send 7 [1 30]] [:send 7 [0 31]]]}
{:type :invoke, :process 1, :f :poll, :value [[:poll]]}
{:type :ok, :process 1, :f :poll, :value [[:poll {7 [[0 31] [1 30]]}]]}",
                &["int-nonmonotonic-send"],
            ),
            (
                "Jepsen: int-send-skip, allowed (another writer's record inside one txn's sends)",
                "{:type :invoke, :process 0, :f :txn, :value [[:send 7 30] [:send 7 31]]}
{:type :ok, :process 0, :f :txn, :value [[:send 7 [0 30]] [:send 7 [2 31]]]}
{:type :invoke, :process 3, :f :send, :value [[:send 7 32]]}
{:type :ok, :process 3, :f :send, :value [[:send 7 [1 32]]]}
{:type :invoke, :process 1, :f :poll, :value [[:poll]]}
{:type :ok, :process 1, :f :poll, :value [[:poll {7 [[0 30] [1 32] [2 31]]}]]}",
                &[],
            ),
        ];
        for (what, text, want) in cases {
            let h = import(text).unwrap().history;
            h.validate().unwrap();
            let report = check_all(&h, &CheckerConfig::default());
            let got: Vec<&str> = report.findings.iter().map(|f| f.anomaly.as_str()).collect();
            assert_eq!(got, want, "{what}:\n{}", report.to_text());
        }
    }

    #[test]
    fn malformed_ops_are_errors_naming_the_op() {
        for (text, says) in [
            (
                "{:type :ok :f :send :process 0 :value [[:send :a 1]]}",
                "a key",
            ),
            ("{:type :ok :f :send :process 0}", "micro-ops"),
            (
                "{:type :sideways :f :poll :process 0 :value [[:poll]]}",
                "unknown :type",
            ),
            (
                "{:type :ok :f :poll :process \"p\" :value [[:poll]]}",
                "process",
            ),
            ("[1 2]", "not a map"),
            (
                "{:type :ok :f :poll :process 0 :value [[:poll {1 [[0]]}]]}",
                "[offset value]",
            ),
        ] {
            let e = import(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
        assert!(import("{:type :ok").is_err());
    }
}
