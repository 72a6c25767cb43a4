//! What serverless promises, measured from any history (simulated or certify): how long
//! partitions could not be written or read, how long a consumer group stood still, and how
//! long writes took to be acknowledged and then read, split by the faults around them.
//!
//! - A **write window** of a partition opens at the first send whose attempt went unanswered
//!   or failed (a send not acknowledged, or acknowledged only after its batch was sent again)
//!   and closes when a send invoked since then is acknowledged.
//! - A **read window** of a partition opens at the first poll (of a consumer it is assigned to)
//!   that failed or came back empty while acknowledged records past the consumer's position
//!   existed, and closes when a poll returns records of it.
//! - A **group stall** opens when a member of a formed group starts rejoining (its assignment
//!   is void until it is assigned again) and closes once every partition the group consumes is
//!   assigned again and has been read (or polled at its end) since the stall opened.
//!
//! A window the history ends inside is reported as never closed, up to the last attempt made
//! in it (a send, a poll, a member's op); one with no attempt after the one that opened it is
//! not reported (the clients stopped: nothing says the system was unavailable).
//!
//! A window is attributed to the fault active when it opened (the latest-started if several),
//! else to the first fault that started while it was open, else to none. Faults that never
//! heal (scale events, a zone that stays lost) count as active for [`PERMANENT_SPAN_NS`].
//!
//! Latencies: produce acknowledgement (invoke to ack) and end to end (ack to the first poll
//! that returns the record; 0 when a poll returned it before the ack arrived), each split by
//! [`Phase`] at the send's invoke, and per partition and per broker; and over time
//! ([`LatencyOverTime`]: produce latency by the send's invoke, end to end by its ack, in at most
//! [`MAX_BUCKETS`] buckets of the run, so the reports can draw where a fault slowed them).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::checkers::{Anomaly, Finding};
use crate::history::{History, OpKind, Pair, Value, F};
use crate::report::{fault_events, FaultEvent};

/// How long a fault that never heals counts as active, for attribution.
pub const PERMANENT_SPAN_NS: u64 = 10_000_000_000;
/// How long after a heal a send counts as [`Phase::AfterHeal`].
pub const AFTER_HEAL_NS: u64 = 5_000_000_000;
/// At most this many buckets in [`LatencyOverTime`]: the picture stays the same size for a
/// 1M-op history as for a short one.
pub const MAX_BUCKETS: u64 = 200;

/// Which promise a window broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WindowKind {
    /// A partition accepted no write.
    Write,
    /// A partition with something to read gave nothing.
    Read,
    /// A consumer group did not own and consume all its partitions.
    GroupStall,
}

impl WindowKind {
    /// Its name in reports and `--slo` bounds.
    pub fn as_str(self) -> &'static str {
        match self {
            WindowKind::Write => "write-window",
            WindowKind::Read => "read-window",
            WindowKind::GroupStall => "group-stall",
        }
    }
}

/// One span of unavailability.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// What was unavailable.
    pub kind: WindowKind,
    /// `topic/partition`, or the group's name for a stall.
    pub subject: String,
    /// When it opened and closed (ns since the run began).
    pub start_ns: u64,
    /// For a window still open when the history ends: the history's last time.
    pub end_ns: u64,
    /// False when it never closed.
    pub closed: bool,
    /// The kind of fault it is attributed to, if any.
    pub fault: Option<String>,
}

impl Window {
    /// Its length.
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }
}

/// When a send was invoked, relative to the faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// No fault active, none healed in the last [`AFTER_HEAL_NS`].
    Steady,
    /// During a fault.
    Fault,
    /// Within [`AFTER_HEAL_NS`] after a heal, no fault active.
    AfterHeal,
}

/// A latency distribution (nearest-rank quantiles).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    /// How many measurements.
    pub count: u64,
    /// Median, 99th percentile and maximum, in ns.
    pub p50_ns: u64,
    /// See [`Latency::p50_ns`].
    pub p99_ns: u64,
    /// See [`Latency::p50_ns`].
    pub max_ns: u64,
}

impl Latency {
    /// The distribution of `values` (in any order).
    pub fn of(mut values: Vec<u64>) -> Latency {
        if values.is_empty() {
            return Latency::default();
        }
        values.sort_unstable();
        let rank =
            |q: f64| values[((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
        Latency {
            count: values.len() as u64,
            p50_ns: rank(0.50),
            p99_ns: rank(0.99),
            max_ns: values[values.len() - 1],
        }
    }
}

/// The latencies of one span of time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyBucket {
    /// Where the span starts (ns since the run began); it lasts [`LatencyOverTime::bucket_ns`].
    pub start_ns: u64,
    /// Produce acknowledgement latency of the sends invoked in it.
    pub produce: Latency,
    /// End-to-end latency of the sends acknowledged in it.
    pub end_to_end: Latency,
}

/// Latencies over the run, in buckets of equal length (only those with a measurement).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyOverTime {
    /// Each bucket's length: 1, 2 or 5 times a power of ten ns, at least 1 ms, so that the run
    /// needs at most [`MAX_BUCKETS`].
    pub bucket_ns: u64,
    /// By start time.
    pub buckets: Vec<LatencyBucket>,
}

impl LatencyOverTime {
    /// A bucket length for a run of `span_ns`.
    fn bucket_for(span_ns: u64) -> u64 {
        let want = span_ns.div_ceil(MAX_BUCKETS).max(1_000_000);
        let mut decade = 1u64;
        loop {
            for m in [1, 2, 5] {
                if decade.saturating_mul(m) >= want {
                    return decade.saturating_mul(m);
                }
            }
            decade = decade.saturating_mul(10);
        }
    }

    /// The buckets of `produce` and `end_to_end`, lists of (when, latency).
    fn of(span_ns: u64, produce: &[(u64, u64)], end_to_end: &[(u64, u64)]) -> LatencyOverTime {
        let bucket_ns = Self::bucket_for(span_ns);
        let mut by: BTreeMap<u64, (Vec<u64>, Vec<u64>)> = BTreeMap::new();
        for &(t, took) in produce {
            by.entry(t / bucket_ns).or_default().0.push(took);
        }
        for &(t, took) in end_to_end {
            by.entry(t / bucket_ns).or_default().1.push(took);
        }
        LatencyOverTime {
            bucket_ns,
            buckets: by
                .into_iter()
                .map(|(i, (p, e))| LatencyBucket {
                    start_ns: i * bucket_ns,
                    produce: Latency::of(p),
                    end_to_end: Latency::of(e),
                })
                .collect(),
        }
    }
}

/// Every figure of one history.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Every window, by kind, then subject, then start.
    pub windows: Vec<Window>,
    /// Produce acknowledgement latency, all phases together.
    pub produce_all: Latency,
    /// End-to-end latency, all phases together.
    pub end_to_end_all: Latency,
    /// Produce acknowledgement latency by phase.
    pub produce: BTreeMap<Phase, Latency>,
    /// End-to-end latency (ack to first read) by phase of the send.
    pub end_to_end: BTreeMap<Phase, Latency>,
    /// Produce acknowledgement latency by partition (`topic/partition`).
    pub produce_by_partition: BTreeMap<String, Latency>,
    /// Produce acknowledgement latency by the broker that answered.
    pub produce_by_broker: BTreeMap<String, Latency>,
    /// End-to-end latency by partition.
    pub end_to_end_by_partition: BTreeMap<String, Latency>,
    /// Both latencies over the run.
    #[serde(default)]
    pub latency_over_time: LatencyOverTime,
}

impl Figures {
    /// The longest window of `kind`, if any.
    pub fn worst(&self, kind: WindowKind) -> Option<&Window> {
        self.windows
            .iter()
            .filter(|w| w.kind == kind)
            .max_by_key(|w| (w.duration_ns(), std::cmp::Reverse(w.start_ns)))
    }
}

/// A fault's active span.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultSpan<'e> {
    /// The fault's kind (`crash`, `scale-in`, ...).
    pub kind: String,
    /// When it started, and healed (`None`: never; an event without a phase heals at once).
    pub start_ns: u64,
    /// See [`FaultSpan::start_ns`].
    pub heal_ns: Option<u64>,
    /// The event that started it.
    pub event: &'e FaultEvent,
}

impl FaultSpan<'_> {
    /// When it stops counting as active.
    fn end_ns(&self) -> u64 {
        self.heal_ns
            .unwrap_or(self.start_ns.saturating_add(PERMANENT_SPAN_NS))
    }

    fn active_at(&self, t: u64) -> bool {
        self.start_ns <= t && t < self.end_ns()
    }
}

/// The nemesis's faults as spans, in start order: a `start` event paired with the next `heal`
/// of the same fault (same kind and detail but the phase); an event without a phase heals at
/// once. Events that failed are left out. The one pairing of fault events: the reports' fault
/// bands are drawn from it too.
pub fn fault_spans(events: &[FaultEvent]) -> Vec<FaultSpan<'_>> {
    let mut spans: Vec<FaultSpan> = Vec::new();
    let mut open: Vec<(String, usize)> = Vec::new();
    for e in events.iter().filter(|e| e.kind != OpKind::Fail) {
        let mut detail = e.detail.clone();
        let phase = detail.remove("phase");
        let identity = format!(
            "{}{}",
            e.fault,
            serde_json::to_string(&detail).unwrap_or_default()
        );
        let span = FaultSpan {
            kind: e.fault.clone(),
            start_ns: e.time_ns,
            heal_ns: None,
            event: e,
        };
        match phase.as_ref().and_then(|p| p.as_str()) {
            Some("heal") => {
                if let Some(i) = open.iter().position(|(id, _)| *id == identity) {
                    let (_, at) = open.remove(i);
                    spans[at].heal_ns = Some(e.time_ns);
                }
            }
            Some("start") => {
                open.push((identity, spans.len()));
                spans.push(span);
            }
            _ => spans.push(FaultSpan {
                heal_ns: Some(e.time_ns),
                ..span
            }),
        }
    }
    spans
}

/// The fault a window opened at `start` and closed at `end` is attributed to.
fn attribute(spans: &[FaultSpan], start: u64, end: u64) -> Option<String> {
    spans
        .iter()
        .filter(|s| s.active_at(start))
        .max_by_key(|s| s.start_ns)
        .or_else(|| {
            spans
                .iter()
                .find(|s| s.start_ns > start && s.start_ns <= end)
        })
        .map(|s| s.kind.clone())
}

fn phase_at(spans: &[FaultSpan], t: u64) -> Phase {
    if spans.iter().any(|s| s.active_at(t)) {
        Phase::Fault
    } else if spans
        .iter()
        .filter_map(|s| s.heal_ns)
        .any(|h| h <= t && t < h + AFTER_HEAL_NS)
    {
        Phase::AfterHeal
    } else {
        Phase::Steady
    }
}

fn tp(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

/// A send: partition, invoke time, completion time and outcome, broker, and its value.
struct SendRec<'a> {
    tp: String,
    invoke_ns: u64,
    done_ns: Option<u64>,
    outcome: OpKind,
    offset: Option<i64>,
    broker: Option<&'a str>,
    value: &'a str,
    /// Its batch was sent more than once: an earlier attempt went unanswered or failed.
    retried: bool,
}

/// Computes every figure of `history`.
pub fn figures(history: &History) -> Figures {
    let pairs = history.pairs();
    let events = fault_events(&pairs);
    let spans = fault_spans(&events);

    // Sends, from their invoke/completion pairs.
    let mut sends: Vec<SendRec> = Vec::new();
    for p in &pairs {
        let Value::Send(s) = &p.invoke.value else {
            continue;
        };
        let done = p.completion.filter(|c| c.kind != OpKind::Invoke);
        let offset = match done.map(|c| &c.value) {
            Some(Value::Send(c)) => c.offset,
            _ => None,
        };
        let (broker, attempts) = match done.map(|c| &c.value) {
            Some(Value::Send(c)) => (c.broker.as_deref(), c.attempts),
            _ => (None, None),
        };
        sends.push(SendRec {
            tp: tp(&s.topic, s.partition),
            invoke_ns: p.invoke.time_ns,
            done_ns: done.map(|c| c.time_ns),
            outcome: p.outcome(),
            offset,
            broker,
            value: &s.value,
            retried: attempts.is_some_and(|a| a > 1),
        });
    }

    let mut windows = write_windows(&sends);
    windows.extend(read_windows(&pairs, &sends));
    windows.extend(group_stalls(history));
    for w in &mut windows {
        w.fault = attribute(&spans, w.start_ns, w.end_ns);
    }
    windows.sort_by(|a, b| (a.kind, &a.subject, a.start_ns).cmp(&(b.kind, &b.subject, b.start_ns)));

    // Latencies.
    let mut produce: BTreeMap<Phase, Vec<u64>> = BTreeMap::new();
    let mut produce_tp: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut produce_broker: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    // (partition, value) -> (ack time, phase) of acknowledged sends.
    let mut acked: BTreeMap<(&str, &str), (u64, Phase)> = BTreeMap::new();
    // (invoke, produce latency) and (ack, end-to-end latency), for the latencies over time.
    let mut produce_at: Vec<(u64, u64)> = Vec::new();
    let mut e2e_at: Vec<(u64, u64)> = Vec::new();
    for s in sends.iter().filter(|s| s.outcome == OpKind::Ok) {
        let Some(done) = s.done_ns else { continue };
        let phase = phase_at(&spans, s.invoke_ns);
        let took = done.saturating_sub(s.invoke_ns);
        produce_at.push((s.invoke_ns, took));
        produce.entry(phase).or_default().push(took);
        produce_tp.entry(s.tp.clone()).or_default().push(took);
        if let Some(b) = s.broker {
            produce_broker.entry(b.to_string()).or_default().push(took);
        }
        acked.entry((&s.tp, s.value)).or_insert((done, phase));
    }
    let mut e2e: BTreeMap<Phase, Vec<u64>> = BTreeMap::new();
    let mut e2e_tp: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut seen: BTreeSet<(String, &str)> = BTreeSet::new();
    for op in history.ops.iter().filter(|op| op.kind == OpKind::Ok) {
        let Value::Poll(poll) = &op.value else {
            continue;
        };
        for r in &poll.records {
            let key = tp(&r.topic, r.partition);
            if let Some((ack, phase)) = acked.get(&(key.as_str(), r.value.as_str())) {
                if seen.insert((key.clone(), r.value.as_str())) {
                    let took = op.time_ns.saturating_sub(*ack);
                    e2e_at.push((*ack, took));
                    e2e.entry(*phase).or_default().push(took);
                    e2e_tp.entry(key).or_default().push(took);
                }
            }
        }
    }
    let all = |m: &BTreeMap<Phase, Vec<u64>>| Latency::of(m.values().flatten().copied().collect());
    let span_ns = history.ops.iter().map(|o| o.time_ns).max().unwrap_or(0);
    Figures {
        latency_over_time: LatencyOverTime::of(span_ns, &produce_at, &e2e_at),
        windows,
        produce_all: all(&produce),
        end_to_end_all: all(&e2e),
        produce: dist(produce),
        end_to_end: dist(e2e),
        produce_by_partition: dist(produce_tp),
        produce_by_broker: dist(produce_broker),
        end_to_end_by_partition: dist(e2e_tp),
    }
}

/// Each list's distribution.
fn dist<K: Ord>(m: BTreeMap<K, Vec<u64>>) -> BTreeMap<K, Latency> {
    m.into_iter().map(|(k, v)| (k, Latency::of(v))).collect()
}

fn write_windows(sends: &[SendRec]) -> Vec<Window> {
    let mut by_tp: BTreeMap<&str, Vec<&SendRec>> = BTreeMap::new();
    for s in sends {
        by_tp.entry(&s.tp).or_default().push(s);
    }
    let mut out = Vec::new();
    for (tp, mut list) in by_tp {
        list.sort_by_key(|s| s.invoke_ns);
        let mut i = 0;
        while i < list.len() {
            // The next attempt unanswered or failed opens a window...
            let Some(open) = list[i..]
                .iter()
                .position(|s| s.outcome != OpKind::Ok || s.retried)
            else {
                break;
            };
            let start = list[i + open].invoke_ns;
            // ...which a send invoked since then closes by being acknowledged.
            let close = list[i + open..]
                .iter()
                .filter(|s| s.outcome == OpKind::Ok)
                .filter_map(|s| s.done_ns)
                .min();
            let Some(close) = close else {
                // Never closed: up to the last attempt, if any came after the first.
                let last = list[i + open..]
                    .iter()
                    .map(|s| s.done_ns.unwrap_or(s.invoke_ns))
                    .max()
                    .unwrap_or(start);
                if list.len() > i + open + 1 {
                    out.push(Window {
                        kind: WindowKind::Write,
                        subject: tp.to_string(),
                        start_ns: start,
                        end_ns: last.max(start),
                        closed: false,
                        fault: None,
                    });
                }
                break;
            };
            out.push(Window {
                kind: WindowKind::Write,
                subject: tp.to_string(),
                start_ns: start,
                end_ns: close.max(start),
                closed: true,
                fault: None,
            });
            // Attempts invoked before the close belong to this window.
            i += open;
            while i < list.len() && list[i].invoke_ns < close {
                i += 1;
            }
        }
    }
    out
}

fn read_windows(pairs: &[Pair], sends: &[SendRec]) -> Vec<Window> {
    // Acknowledged offsets of each partition, by ack time.
    let mut acks: BTreeMap<&str, Vec<(u64, i64)>> = BTreeMap::new();
    for s in sends {
        if let (OpKind::Ok, Some(done), Some(offset)) = (s.outcome, s.done_ns, s.offset) {
            acks.entry(&s.tp).or_default().push((done, offset));
        }
    }
    for list in acks.values_mut() {
        list.sort_unstable();
    }
    // The highest offset acknowledged by time `t`.
    let acked_by = |tp: &str, t: u64| -> Option<i64> {
        let list = acks.get(tp)?;
        let n = list.partition_point(|(at, _)| *at <= t);
        list[..n].iter().map(|(_, o)| *o).max()
    };

    // Per consumer: its assigned partitions and next position in each.
    let mut assigned: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    let mut position: BTreeMap<(u64, String), i64> = BTreeMap::new();
    // Open windows: partition -> (start, last attempt since).
    let mut open: BTreeMap<String, (u64, Option<u64>)> = BTreeMap::new();
    let mut out = Vec::new();
    for p in pairs {
        let inv = p.invoke;
        let done = p.completion.filter(|c| c.kind != OpKind::Invoke);
        match (&inv.value, p.outcome()) {
            (Value::Assign(_), OpKind::Ok) => {
                if let Some(Value::Assign(a)) = done.map(|c| &c.value) {
                    let parts = a.partitions.iter().map(|x| tp(&x.topic, x.partition));
                    assigned.insert(inv.process, parts.collect());
                }
            }
            (Value::Seek(s), OpKind::Ok) => {
                position.insert((inv.process, tp(&s.topic, s.partition)), s.offset);
            }
            (Value::Poll(_), outcome) => {
                let at = done.map_or(inv.time_ns, |c| c.time_ns);
                let got: BTreeMap<String, i64> = match done.map(|c| &c.value) {
                    Some(Value::Poll(v)) if outcome == OpKind::Ok => {
                        let mut got = BTreeMap::new();
                        for r in &v.records {
                            let e = got.entry(tp(&r.topic, r.partition)).or_insert(r.offset);
                            *e = (*e).max(r.offset);
                        }
                        got
                    }
                    _ => BTreeMap::new(),
                };
                for key in assigned.get(&inv.process).into_iter().flatten() {
                    let pos = position
                        .get(&(inv.process, key.clone()))
                        .copied()
                        .unwrap_or(0);
                    if let Some(last) = got.get(key) {
                        position.insert((inv.process, key.clone()), last + 1);
                        if let Some((start, _)) = open.remove(key) {
                            out.push(Window {
                                kind: WindowKind::Read,
                                subject: key.clone(),
                                start_ns: start,
                                end_ns: at.max(start),
                                closed: true,
                                fault: None,
                            });
                        }
                    } else if let Some((_, last)) = open.get_mut(key) {
                        *last = Some(at);
                    } else if got.is_empty()
                        && acked_by(key, inv.time_ns).is_some_and(|hi| hi >= pos)
                    {
                        // Empty or failed while something was there to read.
                        open.insert(key.clone(), (inv.time_ns, None));
                    }
                }
            }
            _ => {}
        }
    }
    for (key, (start, last)) in open {
        if let Some(last) = last {
            out.push(Window {
                kind: WindowKind::Read,
                subject: key,
                start_ns: start,
                end_ns: last.max(start),
                closed: false,
                fault: None,
            });
        }
    }
    out
}

fn group_stalls(history: &History) -> Vec<Window> {
    // Group members, by their client description.
    let mut group_of: BTreeMap<u64, String> = BTreeMap::new();
    for op in &history.ops {
        if let Value::Client(c) = &op.value {
            if c.role == "member" {
                let group = c
                    .profile
                    .get("group")
                    .and_then(|g| g.as_str())
                    .unwrap_or("group");
                group_of.insert(op.process, group.to_string());
            }
        }
    }
    struct Group {
        /// Every partition it was ever assigned.
        partitions: BTreeSet<String>,
        owned: BTreeMap<u64, BTreeSet<String>>,
        /// Partitions read since the stall opened (or since the start, until formed).
        read: BTreeSet<String>,
        formed: bool,
        stall: Option<u64>,
        /// A member's last step (poll, join, its outcome) since the stall opened.
        last: Option<u64>,
    }
    let mut groups: BTreeMap<&str, Group> = BTreeMap::new();
    let mut out = Vec::new();
    for op in &history.ops {
        let Some(name) = group_of.get(&op.process) else {
            continue;
        };
        let g = groups.entry(name).or_insert_with(|| Group {
            partitions: BTreeSet::new(),
            owned: BTreeMap::new(),
            read: BTreeSet::new(),
            formed: false,
            stall: None,
            last: None,
        });
        // Any step of a member while the group is stalled (a join that timed out, a poll) is
        // as far as a stall the run ends inside is known to reach.
        if g.stall.is_some() {
            g.last = Some(op.time_ns);
        }
        match (op.f(), op.kind, &op.value) {
            (F::Assign, OpKind::Invoke, _) => {
                g.owned.remove(&op.process);
                if g.formed && g.stall.is_none() {
                    g.stall = Some(op.time_ns);
                    g.last = None;
                    g.read.clear();
                }
            }
            (F::Assign, OpKind::Ok, Value::Assign(a)) => {
                let parts: BTreeSet<String> = a
                    .partitions
                    .iter()
                    .map(|x| tp(&x.topic, x.partition))
                    .collect();
                g.partitions.extend(parts.iter().cloned());
                g.owned.insert(op.process, parts);
            }
            (F::Poll, kind, _) if kind != OpKind::Ok && kind != OpKind::Invoke => {
                g.last = Some(op.time_ns);
                continue;
            }
            (F::Poll, OpKind::Ok, Value::Poll(p)) => {
                g.last = Some(op.time_ns);
                let owned = g.owned.get(&op.process).cloned().unwrap_or_default();
                for r in &p.records {
                    g.read.insert(tp(&r.topic, r.partition));
                }
                // A partition polled at its end counts as consumed: nothing was there.
                for h in &p.high_watermarks {
                    let key = tp(&h.topic, h.partition);
                    let at_end = p.fetch_offsets.iter().any(|f| {
                        f.topic == h.topic && f.partition == h.partition && f.offset >= h.hwm
                    });
                    if at_end && owned.contains(&key) {
                        g.read.insert(key);
                    }
                }
            }
            _ => continue,
        }
        let all_owned = g
            .partitions
            .iter()
            .all(|p| g.owned.values().any(|o| o.contains(p)));
        let all_read = g.partitions.iter().all(|p| g.read.contains(p));
        if !g.partitions.is_empty() && all_owned && all_read {
            if let Some(start) = g.stall.take() {
                out.push(Window {
                    kind: WindowKind::GroupStall,
                    subject: name.clone(),
                    start_ns: start,
                    end_ns: op.time_ns.max(start),
                    closed: true,
                    fault: None,
                });
            }
            g.formed = true;
        }
    }
    for (name, g) in groups {
        if let (Some(start), Some(last)) = (g.stall, g.last) {
            out.push(Window {
                kind: WindowKind::GroupStall,
                subject: name.to_string(),
                start_ns: start,
                end_ns: last.max(start),
                closed: false,
                fault: None,
            });
        }
    }
    out
}

/// A bound on a figure (`--slo KIND=DURATION`): every window, or the run's latency, above it is
/// an [`Anomaly::SloExceeded`] finding (freshness class).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slo {
    /// What is bounded.
    pub kind: SloKind,
    /// The bound, in ns.
    pub bound_ns: u64,
}

/// What an [`Slo`] bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SloKind {
    /// Every window of this kind.
    Window(WindowKind),
    /// The run's end-to-end latency p99, all phases together.
    EndToEndP99,
    /// The run's produce acknowledgement latency p99, all phases together.
    ProduceP99,
}

impl SloKind {
    /// Every kind, as `--slo` names them.
    pub const NAMES: [&'static str; 5] = [
        "write-window",
        "read-window",
        "group-stall",
        "e2e-p99",
        "produce-p99",
    ];

    /// Its name in `--slo`.
    pub fn as_str(self) -> &'static str {
        match self {
            SloKind::Window(w) => w.as_str(),
            SloKind::EndToEndP99 => "e2e-p99",
            SloKind::ProduceP99 => "produce-p99",
        }
    }
}

impl std::str::FromStr for Slo {
    type Err = String;

    /// `write-window=5s`, `e2e-p99=800ms`, `group-stall=10s`: a kind, `=`, a number and a unit
    /// (`ms` or `s`).
    fn from_str(s: &str) -> Result<Slo, String> {
        let (name, bound) = s
            .split_once('=')
            .ok_or_else(|| format!("'{s}': expected KIND=DURATION, such as write-window=5s"))?;
        let kind = match name {
            "write-window" => SloKind::Window(WindowKind::Write),
            "read-window" => SloKind::Window(WindowKind::Read),
            "group-stall" => SloKind::Window(WindowKind::GroupStall),
            "e2e-p99" => SloKind::EndToEndP99,
            "produce-p99" => SloKind::ProduceP99,
            other => {
                return Err(format!(
                    "unknown bound '{other}': one of {}",
                    SloKind::NAMES.join(", ")
                ))
            }
        };
        let (number, scale) = if let Some(n) = bound.strip_suffix("ms") {
            (n, 1e6)
        } else if let Some(n) = bound.strip_suffix('s') {
            (n, 1e9)
        } else {
            return Err(format!("'{bound}': give a unit, ms or s (5s, 800ms)"));
        };
        let value: f64 = number
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("'{bound}': not a duration"))?;
        Ok(Slo {
            kind,
            bound_ns: (value * scale).round() as u64,
        })
    }
}

impl std::fmt::Display for Slo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.kind.as_str(), seconds(self.bound_ns))
    }
}

/// `ns` as seconds for people: `5s`, `0.8s`.
fn seconds(ns: u64) -> String {
    format!("{}s", ns as f64 / 1e9)
}

/// The findings of `slos` on `figures`: each window above its bound, each latency above its.
pub fn slo_findings(figures: &Figures, slos: &[Slo]) -> Vec<Finding> {
    let mut out = Vec::new();
    let run_wide = |explanation: String| Finding {
        anomaly: Anomaly::SloExceeded,
        topic: String::new(),
        partition: -1,
        offsets: Vec::new(),
        ops: Vec::new(),
        explanation,
    };
    for slo in slos {
        match slo.kind {
            SloKind::Window(kind) => {
                for w in figures.windows.iter().filter(|w| w.kind == kind) {
                    if w.duration_ns() <= slo.bound_ns {
                        continue;
                    }
                    let (topic, partition) = match w.subject.rsplit_once('/') {
                        Some((t, p)) if kind != WindowKind::GroupStall => {
                            (t.to_string(), p.parse().unwrap_or(-1))
                        }
                        _ => (String::new(), -1),
                    };
                    let cause = w.fault.as_deref().unwrap_or("no fault");
                    let open = if w.closed { "" } else { ", never closed" };
                    out.push(Finding {
                        topic,
                        partition,
                        explanation: format!(
                            "{} of {} from {:.3} s lasted {:.3} s{open} ({cause}), above {slo}",
                            kind.as_str(),
                            w.subject,
                            w.start_ns as f64 / 1e9,
                            w.duration_ns() as f64 / 1e9,
                        ),
                        ..run_wide(String::new())
                    });
                }
            }
            SloKind::EndToEndP99 | SloKind::ProduceP99 => {
                let by_phase = match slo.kind {
                    SloKind::EndToEndP99 => &figures.end_to_end_all,
                    _ => &figures.produce_all,
                };
                if by_phase.count > 0 && by_phase.p99_ns > slo.bound_ns {
                    out.push(run_wide(format!(
                        "{} was {:.3} s over {} records, above {slo}",
                        slo.kind.as_str(),
                        by_phase.p99_ns as f64 / 1e9,
                        by_phase.count
                    )));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{
        AssignValue, ClientValue, FaultValue, HistoryBuilder, PollValue, SendValue, TopicPartition,
    };

    const MS: u64 = 1_000_000;

    /// The figures' windows of one kind.
    fn of_kind(f: &Figures, kind: WindowKind) -> Vec<&Window> {
        f.windows.iter().filter(|w| w.kind == kind).collect()
    }

    /// Moves the builder's clock to `ms`.
    fn at(h: &mut HistoryBuilder, ms: u64) -> &mut HistoryBuilder {
        let now = h.now_ns();
        h.advance((ms * MS).saturating_sub(now))
    }

    fn fault(h: &mut HistoryBuilder, ms: u64, kind: &str, phase: &str) {
        at(h, ms).ok(
            1000,
            FaultValue::new(kind)
                .with("broker", "broker-0")
                .with("phase", phase),
        );
    }

    /// A send of `value` to t/0 invoked at `ms`, completed `took` ms later as `kind`.
    fn send(h: &mut HistoryBuilder, ms: u64, took: u64, kind: OpKind, value: &str, offset: i64) {
        let v = SendValue::new("t", 0, value);
        let inv = at(h, ms).invoke(1, v.clone());
        let done = if kind == OpKind::Ok {
            v.acked(offset)
        } else {
            v
        };
        at(h, ms + took).complete(1, inv, kind, done);
    }

    #[test]
    fn a_write_window_is_attributed_to_the_fault_it_opened_in() {
        let mut h = HistoryBuilder::new();
        send(&mut h, 100, 5, OpKind::Ok, "a", 0);
        fault(&mut h, 1000, "crash", "start");
        send(&mut h, 1100, 400, OpKind::Info, "b", 0);
        send(&mut h, 1600, 400, OpKind::Fail, "c", 0);
        fault(&mut h, 3000, "crash", "heal");
        send(&mut h, 3100, 100, OpKind::Ok, "d", 1);
        let f = figures(&h.build());
        let w = of_kind(&f, WindowKind::Write);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!((w[0].start_ns, w[0].end_ns), (1100 * MS, 3200 * MS));
        assert!(w[0].closed);
        assert_eq!(w[0].fault.as_deref(), Some("crash"));
        assert_eq!(w[0].subject, "t/0");
        // Produce latency by phase: 5 ms steady, 100 ms after the heal.
        assert_eq!(f.produce[&Phase::Steady].max_ns, 5 * MS);
        assert_eq!(f.produce[&Phase::AfterHeal].p50_ns, 100 * MS);
        assert!(!f.produce.contains_key(&Phase::Fault));
    }

    #[test]
    fn a_window_with_no_fault_is_its_own_line() {
        let mut h = HistoryBuilder::new();
        send(&mut h, 100, 50, OpKind::Fail, "a", 0);
        send(&mut h, 900, 10, OpKind::Ok, "b", 0);
        // A fault long after the window closed is not its cause.
        fault(&mut h, 5000, "pause", "start");
        fault(&mut h, 6000, "pause", "heal");
        let f = figures(&h.build());
        let w = f.worst(WindowKind::Write).expect("one window");
        assert_eq!(
            (w.start_ns, w.end_ns, w.fault.as_deref()),
            (100 * MS, 910 * MS, None)
        );
    }

    #[test]
    fn no_window_when_nothing_was_attempted_or_everything_acknowledged() {
        let mut h = HistoryBuilder::new();
        fault(&mut h, 1000, "crash", "start");
        fault(&mut h, 2000, "crash", "heal");
        assert!(figures(&h.build()).windows.is_empty());

        let mut h = HistoryBuilder::new();
        send(&mut h, 100, 5, OpKind::Ok, "a", 0);
        fault(&mut h, 1000, "crash", "start");
        send(&mut h, 1100, 5, OpKind::Ok, "b", 1);
        fault(&mut h, 2000, "crash", "heal");
        assert!(figures(&h.build()).windows.is_empty());
    }

    #[test]
    fn a_write_window_never_closed_runs_to_its_last_attempt_and_a_permanent_fault_is_its_cause() {
        let start = || {
            let mut h = HistoryBuilder::new();
            fault(&mut h, 500, "scale-in", "start");
            send(&mut h, 1000, 100, OpKind::Info, "a", 0);
            h
        };
        // One failed attempt and no other: the clients stopped, nothing to report.
        assert!(figures(&start().build()).windows.is_empty());
        let mut h = start();
        send(&mut h, 2000, 1500, OpKind::Fail, "b", 0);
        at(&mut h, 9000).ok(1000, FaultValue::new("other-event"));
        let f = figures(&h.build());
        let w = f.worst(WindowKind::Write).unwrap();
        assert!(!w.closed);
        assert_eq!((w.start_ns, w.end_ns), (1000 * MS, 3500 * MS));
        assert_eq!(w.fault.as_deref(), Some("scale-in"));
    }

    #[test]
    fn a_send_acknowledged_after_a_retry_is_a_window_until_its_ack() {
        let mut h = HistoryBuilder::new();
        let v = SendValue::new("t", 0, "a");
        let inv = at(&mut h, 100).invoke(1, v.clone());
        let mut done = v.acked(0);
        done.attempts = Some(3);
        at(&mut h, 2100).complete(1, inv, OpKind::Ok, done);
        let f = figures(&h.build());
        let w = f.worst(WindowKind::Write).unwrap();
        assert_eq!(
            (w.start_ns, w.end_ns, w.closed),
            (100 * MS, 2100 * MS, true)
        );
    }

    #[test]
    fn a_read_window_needs_something_to_read_and_ends_at_the_next_records() {
        let mut h = HistoryBuilder::new();
        let tp0 = AssignValue {
            partitions: vec![TopicPartition::new("t", 0)],
        };
        at(&mut h, 0).call(2, AssignValue::default(), OpKind::Ok, tp0);
        // Nothing acked yet: an empty poll opens nothing.
        at(&mut h, 50).call(2, PollValue::default(), OpKind::Ok, PollValue::default());
        send(&mut h, 100, 10, OpKind::Ok, "a", 0);
        fault(&mut h, 200, "partition", "start");
        at(&mut h, 300).call(2, PollValue::default(), OpKind::Fail, PollValue::default());
        at(&mut h, 800).call(2, PollValue::default(), OpKind::Ok, PollValue::default());
        fault(&mut h, 1000, "partition", "heal");
        let got = PollValue::default().record("t", 0, 0, "a");
        at(&mut h, 1200).call(2, PollValue::default(), OpKind::Ok, got);
        // Read up to the end: empty polls open nothing.
        at(&mut h, 1300).call(2, PollValue::default(), OpKind::Ok, PollValue::default());
        let f = figures(&h.build());
        let w = of_kind(&f, WindowKind::Read);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!((w[0].start_ns, w[0].end_ns), (300 * MS, 1200 * MS));
        assert_eq!(w[0].fault.as_deref(), Some("partition"));
        // End to end: acked at 110 ms, first read at 1200 ms, sent in steady state.
        assert_eq!(f.end_to_end[&Phase::Steady].max_ns, 1090 * MS);
    }

    fn assign(parts: &[i32]) -> AssignValue {
        AssignValue {
            partitions: parts.iter().map(|p| TopicPartition::new("t", *p)).collect(),
        }
    }

    fn read(p: i32, v: &str) -> PollValue {
        PollValue::default().record("t", p, 0, v)
    }

    /// Group `g` of members 2 and 3, each given one partition of t and reading it by 150 ms.
    fn formed_group() -> HistoryBuilder {
        let mut h = HistoryBuilder::new();
        for p in [2, 3] {
            let mut c = ClientValue {
                role: "member".into(),
                ..Default::default()
            };
            c.profile.insert("group".into(), "g".into());
            h.ok(p, c);
        }
        at(&mut h, 0).call(2, AssignValue::default(), OpKind::Ok, assign(&[0]));
        h.call(3, AssignValue::default(), OpKind::Ok, assign(&[1]));
        at(&mut h, 100).call(2, PollValue::default(), OpKind::Ok, read(0, "a"));
        at(&mut h, 150).call(3, PollValue::default(), OpKind::Ok, read(1, "b"));
        h
    }

    #[test]
    fn a_group_stalls_from_a_rejoin_until_every_partition_is_owned_and_read() {
        let mut h = formed_group();
        fault(&mut h, 1000, "crash", "start");
        // Member 3 rejoins: the stall opens; member 2 rejoins and takes both.
        at(&mut h, 1200).invoke(3, AssignValue::default());
        at(&mut h, 1300).fail(3, AssignValue::default());
        at(&mut h, 1400).call(2, AssignValue::default(), OpKind::Ok, assign(&[0, 1]));
        at(&mut h, 1500).call(2, PollValue::default(), OpKind::Ok, read(0, "c"));
        fault(&mut h, 2000, "crash", "heal");
        at(&mut h, 2500).call(2, PollValue::default(), OpKind::Ok, read(1, "d"));
        let f = figures(&h.build());
        let w = of_kind(&f, WindowKind::GroupStall);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!((w[0].start_ns, w[0].end_ns), (1200 * MS, 2500 * MS));
        assert_eq!(
            (w[0].subject.as_str(), w[0].fault.as_deref()),
            ("g", Some("crash"))
        );
    }

    #[test]
    fn a_stall_the_run_ends_inside_reaches_its_members_last_failed_join() {
        let mut h = formed_group();
        fault(&mut h, 1000, "scale-in", "start");
        // Both rejoin; their joins time out (held by a coordinator that is gone) and the run
        // ends with the group still unformed.
        let j3 = at(&mut h, 1200).invoke(3, AssignValue::default());
        let j2 = at(&mut h, 1300).invoke(2, AssignValue::default());
        at(&mut h, 4200).complete(3, j3, OpKind::Fail, AssignValue::default());
        at(&mut h, 4500).complete(2, j2, OpKind::Fail, AssignValue::default());
        let f = figures(&h.build());
        let w = of_kind(&f, WindowKind::GroupStall);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(
            (w[0].start_ns, w[0].end_ns, w[0].closed),
            (1200 * MS, 4500 * MS, false)
        );
        assert_eq!(w[0].fault.as_deref(), Some("scale-in"));
    }

    #[test]
    fn bounds_parse_and_an_exceeded_one_is_a_finding_and_a_met_one_nothing() {
        let slo: Slo = "write-window=5s".parse().unwrap();
        assert_eq!(slo.bound_ns, 5_000 * MS);
        assert_eq!("e2e-p99=800ms".parse::<Slo>().unwrap().bound_ns, 800 * MS);
        assert_eq!(slo.to_string(), "write-window=5s");
        for bad in [
            "write-window",
            "write-window=5",
            "nope=5s",
            "group-stall=-1s",
            "e2e-p99=xs",
        ] {
            assert!(bad.parse::<Slo>().is_err(), "{bad}");
        }
        let mut h = HistoryBuilder::new();
        fault(&mut h, 1000, "crash", "start");
        send(&mut h, 1100, 100, OpKind::Info, "a", 0);
        fault(&mut h, 6000, "crash", "heal");
        send(&mut h, 7000, 100, OpKind::Ok, "b", 0);
        let f = figures(&h.build());
        // The window: 1.1 s to 7.1 s = 6 s.
        let met: Slo = "write-window=6s".parse().unwrap();
        let exceeded: Slo = "write-window=5s".parse().unwrap();
        assert!(slo_findings(&f, &[met]).is_empty());
        let found = slo_findings(&f, &[exceeded]);
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].anomaly, found[0].place()),
            (Anomaly::SloExceeded, "t/0".into())
        );
        assert!(
            found[0].explanation.contains("(crash)"),
            "{}",
            found[0].explanation
        );
        // Produce p99: one ack of 100 ms.
        assert!(slo_findings(&f, &["produce-p99=100ms".parse().unwrap()]).is_empty());
        assert_eq!(
            slo_findings(&f, &["produce-p99=99ms".parse().unwrap()]).len(),
            1
        );
        // In a report: counted, and the verdict fails (freshness).
        let report = crate::Report::new(&History::default(), vec![]).adding(found);
        assert_eq!(report.verdict, crate::Verdict::Fail);
        assert_eq!(report.counts[&Anomaly::SloExceeded], 1);
        assert!(!crate::Report::new(&History::default(), vec![])
            .counts
            .contains_key(&Anomaly::SloExceeded));
    }

    #[test]
    fn latency_over_time_puts_a_slow_send_in_the_bucket_it_was_invoked_in() {
        let mut h = HistoryBuilder::new();
        send(&mut h, 100, 5, OpKind::Ok, "a", 0);
        fault(&mut h, 1000, "crash", "start");
        send(&mut h, 1100, 900, OpKind::Ok, "b", 1);
        fault(&mut h, 2000, "crash", "heal");
        send(&mut h, 2500, 7, OpKind::Ok, "c", 2);
        let got = PollValue::default().record("t", 0, 2, "c");
        at(&mut h, 2600).call(2, PollValue::default(), OpKind::Ok, got);
        let over = figures(&h.build()).latency_over_time;
        // 2.6 s of history: 20 ms buckets (2.6 s / 200 = 13 ms, rounded up to 1-2-5).
        assert_eq!(over.bucket_ns, 20 * MS);
        let starts: Vec<u64> = over.buckets.iter().map(|b| b.start_ns / MS).collect();
        // Produce by invoke (100, 1100, 2500 ms); end to end by ack (2507 ms: same bucket).
        assert_eq!(starts, [100, 1100, 2500]);
        assert_eq!(over.buckets[1].produce.max_ns, 900 * MS);
        assert_eq!(over.buckets[2].end_to_end.max_ns, 93 * MS);
        assert_eq!(over.buckets[0].end_to_end.count, 0);
    }

    #[test]
    fn latency_buckets_are_one_two_or_five_and_at_most_max_buckets() {
        assert_eq!(LatencyOverTime::bucket_for(0), MS);
        assert_eq!(LatencyOverTime::bucket_for(60_000 * MS), 500 * MS);
        assert_eq!(LatencyOverTime::bucket_for(100_000 * MS), 500 * MS);
        assert_eq!(LatencyOverTime::bucket_for(100_001 * MS), 1000 * MS);
        for span in [1, 999 * MS, 45_000 * MS, 3_600_000 * MS, u64::MAX / 2] {
            let b = LatencyOverTime::bucket_for(span);
            assert!(span.div_ceil(b) <= MAX_BUCKETS, "{span} {b}");
        }
    }

    #[test]
    fn latency_quantiles_are_nearest_rank() {
        let l = Latency::of((1..=100).rev().collect());
        assert_eq!((l.count, l.p50_ns, l.p99_ns, l.max_ns), (100, 50, 99, 100));
        assert_eq!(Latency::of(vec![]), Latency::default());
        assert_eq!(Latency::of(vec![7]).p99_ns, 7);
    }
}
