//! The report: a verdict, counts, findings, a summary of the history and the faults injected.
//! Output is deterministic: ordered maps and sorted findings only.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::checkers::{Anomaly, Finding, MAX_LISTED};
use crate::history::{History, OpKind, TopicPartition, Value, F};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
}

/// What the history contained.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub ops: usize,
    pub processes: usize,
    /// Op counts by function, then kind.
    pub by_f: BTreeMap<F, BTreeMap<OpKind, usize>>,
    /// Every partition sent to, read or final-read, sorted.
    pub partitions: Vec<TopicPartition>,
}

/// One nemesis op, shown next to the findings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultEvent {
    pub index: u64,
    pub time_ns: u64,
    pub process: u64,
    pub kind: OpKind,
    pub fault: String,
    pub detail: BTreeMap<String, serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub verdict: Verdict,
    /// Every anomaly kind, including those with zero findings.
    pub counts: BTreeMap<Anomaly, usize>,
    /// Sorted by anomaly, partition, offsets, ops.
    pub findings: Vec<Finding>,
    pub summary: Summary,
    pub faults: Vec<FaultEvent>,
}

impl Report {
    /// Builds a report from a history and whatever findings the checkers produced.
    pub fn new(history: &History, mut findings: Vec<Finding>) -> Report {
        findings.sort();
        findings.dedup();
        let mut counts: BTreeMap<Anomaly, usize> = Anomaly::ALL.iter().map(|&a| (a, 0)).collect();
        for f in &findings {
            *counts.entry(f.anomaly).or_default() += 1;
        }
        let verdict = if findings.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        Report {
            verdict,
            counts,
            findings,
            summary: summarize(history),
            faults: faults(history),
        }
    }

    /// Human-readable text: verdict, history summary, anomaly counts, findings, faults.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let verdict = match self.verdict {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
        };
        let _ = writeln!(s, "verdict: {verdict} ({} finding(s))", self.findings.len());
        let sum = &self.summary;
        let mut parts: Vec<String> = sum
            .partitions
            .iter()
            .take(MAX_LISTED)
            .map(ToString::to_string)
            .collect();
        if sum.partitions.len() > MAX_LISTED {
            parts.push("…".into());
        }
        let _ = writeln!(
            s,
            "\nhistory: {} ops, {} processes, {} partition(s): {}",
            sum.ops,
            sum.processes,
            sum.partitions.len(),
            parts.join(", ")
        );
        let kinds = [OpKind::Invoke, OpKind::Ok, OpKind::Fail, OpKind::Info];
        let _ = writeln!(
            s,
            "  {:<14}{:>8}{:>8}{:>8}{:>8}",
            "f", "invoke", "ok", "fail", "info"
        );
        for (f, by_kind) in &sum.by_f {
            let _ = write!(s, "  {:<14}", f.as_str());
            for k in kinds {
                let _ = write!(s, "{:>8}", by_kind.get(&k).copied().unwrap_or(0));
            }
            s.push('\n');
        }
        let _ = writeln!(s, "\n  {:<28}{:>6}", "anomaly", "count");
        for (a, n) in &self.counts {
            let _ = writeln!(s, "  {:<28}{n:>6}", a.as_str());
        }
        if !self.findings.is_empty() {
            let _ = writeln!(s, "\nfindings:");
            for (i, f) in self.findings.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "  {}. {} {}/{} offsets {:?} ops {:?}\n     {}",
                    i + 1,
                    f.anomaly,
                    f.topic,
                    f.partition,
                    f.offsets,
                    f.ops,
                    f.explanation
                );
            }
        }
        if !self.faults.is_empty() {
            let _ = writeln!(s, "\nfaults:");
            for e in &self.faults {
                let detail = if e.detail.is_empty() {
                    String::new()
                } else {
                    format!(" {}", serde_json::to_string(&e.detail).unwrap_or_default())
                };
                let _ = writeln!(
                    s,
                    "  t={}.{:09}s  op {}  nemesis {} {}  {}{detail}",
                    e.time_ns / 1_000_000_000,
                    e.time_ns % 1_000_000_000,
                    e.index,
                    e.process,
                    e.kind.as_str(),
                    e.fault
                );
            }
        }
        s
    }
}

fn summarize(history: &History) -> Summary {
    // In declaration order, so `f as usize` indexes it.
    const FS: [F; 9] = [
        F::Send,
        F::Poll,
        F::Assign,
        F::Seek,
        F::ListOffsets,
        F::FinalRead,
        F::Commit,
        F::Fault,
        F::Client,
    ];
    const KINDS: [OpKind; 4] = [OpKind::Invoke, OpKind::Ok, OpKind::Fail, OpKind::Info];
    // Counted in arrays (indexed like FS and KINDS) and turned into maps once.
    let mut counts = [[0usize; 4]; FS.len()];
    let mut processes = BTreeSet::new();
    let mut partitions: BTreeSet<(&str, i32)> = BTreeSet::new();
    // Consecutive mentions are mostly of the same partition: skip the set for those.
    let mut last = None;
    fn note<'h>(
        set: &mut BTreeSet<(&'h str, i32)>,
        last: &mut Option<(&'h str, i32)>,
        tp: (&'h str, i32),
    ) {
        if *last != Some(tp) {
            set.insert(tp);
            *last = Some(tp);
        }
    }
    let mut mention = |tp| note(&mut partitions, &mut last, tp);
    for op in &history.ops {
        counts[op.f() as usize][op.kind as usize] += 1;
        processes.insert(op.process);
        match &op.value {
            Value::Send(v) => mention((&v.topic, v.partition)),
            Value::Poll(p) => p
                .records
                .iter()
                .for_each(|r| mention((&r.topic, r.partition))),
            Value::FinalRead(v) => mention((&v.topic, v.partition)),
            _ => {}
        }
    }
    let by_f = FS
        .iter()
        .zip(counts)
        .filter(|(_, c)| c.iter().any(|&n| n > 0))
        .map(|(&f, c)| {
            let by_kind = KINDS.iter().zip(c).filter(|(_, n)| *n > 0);
            (f, by_kind.map(|(&k, n)| (k, n)).collect())
        })
        .collect();
    Summary {
        ops: history.ops.len(),
        processes: processes.len(),
        by_f,
        partitions: partitions
            .into_iter()
            .map(|(t, p)| TopicPartition::new(t, p))
            .collect(),
    }
}

/// One line per fault: the completion of a paired invoke, else the op itself.
fn faults(history: &History) -> Vec<FaultEvent> {
    history
        .pairs()
        .into_iter()
        .map(|p| p.last())
        .filter_map(|op| match &op.value {
            Value::Fault(v) => Some(FaultEvent {
                index: op.index,
                time_ns: op.time_ns,
                process: op.process,
                kind: op.kind,
                fault: v.kind.clone(),
                detail: v.detail.clone(),
            }),
            _ => None,
        })
        .collect()
}
