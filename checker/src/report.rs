//! The report: a verdict, counts, findings, a summary of the history and the faults injected.
//! Output is deterministic: ordered maps and sorted findings only.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::checkers::realtime_lag::{self, PartitionLag};
use crate::checkers::{self, Anomaly, CheckerConfig, FastMap, Finding, Severity, MAX_LISTED};
use crate::history::{
    ClientCounters, ClientValue, History, Op, OpKind, Pair, TopicPartition, Value, F,
};

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

/// One client process as it described itself in its `client` ops.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientSummary {
    pub role: String,
    pub name: String,
    pub idempotent: bool,
    pub max_in_flight: u32,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub profile: BTreeMap<String, serde_json::Value>,
    /// From the process's last `client` op that has counters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counters: Option<ClientCounters>,
    /// Records per batch on average, from the counters (producers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_records_per_batch: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub verdict: Verdict,
    /// Every anomaly kind, including those with zero findings (the transactional kinds only
    /// for a history with transactions, or when found).
    pub counts: BTreeMap<Anomaly, usize>,
    /// Sorted by anomaly, partition, offsets, ops.
    pub findings: Vec<Finding>,
    pub summary: Summary,
    /// Process → what it said it is (empty for histories without `client` ops).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub clients: BTreeMap<u64, ClientSummary>,
    pub faults: Vec<FaultEvent>,
    /// The worst class among the findings that are not allowed (none when it passes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worst: Option<Severity>,
    /// Kinds allowed by the user (`--allow`, as Jepsen's allowed error types): their findings
    /// are listed, apart, and do not fail the verdict.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub allowed: BTreeSet<Anomaly>,
    /// The worst realtime lag of each partition a consumer polled (Jepsen's `realtime-lag`): a
    /// figure, not a verdict (see `CheckerConfig::max_realtime_lag_ns`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub realtime_lag: Vec<PartitionLag>,
}

/// Runs every checker and builds the report.
pub fn check_all(history: &History, config: &CheckerConfig) -> Report {
    let (findings, lags, faults) = checkers::run_all_with_figures(history, config);
    Report::with_figures(history, findings, lags, faults)
}

impl Report {
    /// Builds a report from a history and whatever findings the checkers produced.
    pub fn new(history: &History, findings: Vec<Finding>) -> Report {
        Report::with_figures(
            history,
            findings,
            realtime_lag::figure(history),
            fault_events(&history.pairs()),
        )
    }

    fn with_figures(
        history: &History,
        mut findings: Vec<Finding>,
        realtime_lag: Vec<PartitionLag>,
        faults: Vec<FaultEvent>,
    ) -> Report {
        findings.sort();
        findings.dedup();
        let Scan {
            summary,
            clients,
            txns,
            retention,
        } = scan(history);
        let mut counts: BTreeMap<Anomaly, usize> = Anomaly::ALL
            .iter()
            .filter(|a| txns || !a.transactional())
            .filter(|a| retention || !a.retention())
            .filter(|a| !a.slo())
            .map(|&a| (a, 0))
            .collect();
        for f in &findings {
            *counts.entry(f.anomaly).or_default() += 1;
        }
        Report {
            verdict: Verdict::Pass,
            counts,
            findings,
            summary,
            clients,
            faults,
            worst: None,
            allowed: BTreeSet::new(),
            realtime_lag,
        }
        .allowing(&BTreeSet::new())
    }

    /// The same report with `extra` findings added (bounds checked outside the checkers, such
    /// as `--slo`): counted, sorted, and in the verdict.
    pub fn adding(mut self, extra: Vec<Finding>) -> Report {
        for f in &extra {
            *self.counts.entry(f.anomaly).or_default() += 1;
        }
        self.findings.extend(extra);
        self.findings.sort();
        let allowed = self.allowed.clone();
        self.allowing(&allowed)
    }

    /// The same report with these kinds allowed: the verdict and the worst class count only
    /// the other findings. Exit codes follow the verdict, so a run whose findings are all
    /// allowed exits 0.
    pub fn allowing(mut self, allowed: &BTreeSet<Anomaly>) -> Report {
        self.allowed = allowed.clone();
        self.worst = self
            .findings
            .iter()
            .filter(|f| !allowed.contains(&f.anomaly))
            .map(|f| f.anomaly.severity())
            .max();
        self.verdict = if self.worst.is_some() {
            Verdict::Fail
        } else {
            Verdict::Pass
        };
        self
    }

    /// The same report restricted to these kinds (`riptide check --only`): the other kinds'
    /// findings and counts are left out, and the verdict counts only these.
    pub fn only(mut self, kinds: &BTreeSet<Anomaly>) -> Report {
        self.findings.retain(|f| kinds.contains(&f.anomaly));
        self.counts.retain(|a, _| kinds.contains(a));
        for &a in kinds {
            self.counts.entry(a).or_insert(0);
        }
        let allowed = self.allowed.clone();
        self.allowing(&allowed)
    }

    /// How many findings of each class, not counting allowed kinds.
    pub fn by_severity(&self) -> BTreeMap<Severity, usize> {
        let mut out = BTreeMap::new();
        for f in self.findings.iter().filter(|f| !self.is_allowed(f)) {
            *out.entry(f.anomaly.severity()).or_default() += 1;
        }
        out
    }

    pub fn is_allowed(&self, f: &Finding) -> bool {
        self.allowed.contains(&f.anomaly)
    }

    /// The verdict line: PASS or FAIL, the worst class, counts by class, and allowed findings.
    pub fn verdict_line(&self) -> String {
        let allowed = self.findings.iter().filter(|f| self.is_allowed(f)).count();
        let allowed_note = if allowed > 0 {
            format!(", {allowed} allowed")
        } else {
            String::new()
        };
        match self.worst {
            None if allowed == 0 => "PASS".to_string(),
            None => format!("PASS (only allowed findings: {allowed})"),
            Some(worst) => {
                let classes: Vec<String> = self
                    .by_severity()
                    .iter()
                    .rev()
                    .map(|(c, n)| format!("{n} {c}"))
                    .collect();
                format!(
                    "FAIL, worst: {} ({}{allowed_note})",
                    worst.describe(),
                    classes.join(", ")
                )
            }
        }
    }

    /// Human-readable text: verdict, history summary, anomaly counts, findings, faults.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "verdict: {}", self.verdict_line());
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
        if !self.clients.is_empty() {
            let _ = writeln!(s, "\nclients:");
            s.push_str(&clients_text(&self.clients));
        }
        let _ = writeln!(s, "\n  {:<28}{:<11}{:>6}", "anomaly", "severity", "count");
        for (a, n) in &self.counts {
            let allowed = if self.allowed.contains(a) {
                "  (allowed)"
            } else {
                ""
            };
            let _ = writeln!(
                s,
                "  {:<28}{:<11}{n:>6}{allowed}",
                a.as_str(),
                a.severity().as_str()
            );
        }
        // Worst class first, then the allowed findings: what to look at first comes first.
        let mut number = 0;
        let mut list = |s: &mut String, title: String, pick: &dyn Fn(&Finding) -> bool| {
            let mut picked = self.findings.iter().filter(|f| pick(f)).peekable();
            if picked.peek().is_none() {
                return;
            }
            let _ = writeln!(s, "\n{title}:");
            for f in picked {
                number += 1;
                let _ = writeln!(
                    s,
                    "  {}. {} {} offsets {:?} ops {:?}\n     {}",
                    number,
                    f.anomaly,
                    f.place(),
                    f.offsets,
                    f.ops,
                    f.explanation
                );
            }
        };
        for class in Severity::WORST_FIRST {
            list(&mut s, format!("findings ({})", class.describe()), &|f| {
                !self.is_allowed(f) && f.anomaly.severity() == class
            });
        }
        list(&mut s, "allowed findings (--allow)".to_string(), &|f| {
            self.is_allowed(f)
        });
        if !self.realtime_lag.is_empty() {
            let _ = writeln!(s, "\nrealtime lag (worst per partition):");
            for l in &self.realtime_lag {
                let _ = write!(
                    s,
                    "  {}/{}  {}  process {} poll op {} at {}",
                    l.topic,
                    l.partition,
                    realtime_lag::secs(l.lag_ns),
                    l.process,
                    l.poll_op,
                    realtime_lag::secs(l.poll_time_ns)
                );
                if let Some(o) = l.offset {
                    let value = l
                        .value
                        .as_deref()
                        .map(|v| format!(" {}", checkers::q(v)))
                        .unwrap_or_default();
                    let _ = write!(s, ": had not seen offset {o}{value}");
                }
                if let (Some(t), Some(op)) = (l.known_since_ns, l.known_by_op) {
                    let _ = write!(s, ", known since {} (op {op})", realtime_lag::secs(t));
                }
                let polls = if l.polls == 1 { "poll" } else { "polls" };
                let _ = writeln!(s, "  ({} {polls} measured)", l.polls);
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

/// What a report takes from the history itself, gathered in one pass over its ops.
struct Scan {
    summary: Summary,
    clients: BTreeMap<u64, ClientSummary>,
    /// It has `txn` ops.
    txns: bool,
    /// Records may be removed on purpose: `topic` facts, `delete_records` ops, final reads
    /// from a log start.
    retention: bool,
}

fn scan(history: &History) -> Scan {
    // In declaration order, so `f as usize` indexes it.
    const FS: [F; 14] = [
        F::Send,
        F::Poll,
        F::Assign,
        F::Seek,
        F::ListOffsets,
        F::FinalRead,
        F::Commit,
        F::Fault,
        F::Client,
        F::Violation,
        F::Invariant,
        F::Txn,
        F::DeleteRecords,
        F::Topic,
    ];
    const KINDS: [OpKind; 4] = [OpKind::Invoke, OpKind::Ok, OpKind::Fail, OpKind::Info];
    // Counted in arrays (indexed like FS and KINDS) and turned into maps once.
    let mut counts = [[0usize; 4]; FS.len()];
    // Only counted: a set for lookups.
    let mut processes: FastMap<u64, ()> = FastMap::default();
    let mut clients = BTreeMap::new();
    let mut retention = false;
    // Sorted once at the end; the map is only a set.
    let mut partitions: FastMap<(&str, i32), ()> = FastMap::default();
    // Consecutive mentions are mostly of the same partition: skip the set for those.
    let mut last = None;
    fn note<'h>(
        set: &mut FastMap<(&'h str, i32), ()>,
        last: &mut Option<(&'h str, i32)>,
        tp: (&'h str, i32),
    ) {
        if last.is_none_or(|l| l.1 != tp.1 || l.0 != tp.0) {
            set.insert(tp, ());
            *last = Some(tp);
        }
    }
    let mut mention = |tp| note(&mut partitions, &mut last, tp);
    for op in &history.ops {
        counts[op.f() as usize][op.kind as usize] += 1;
        processes.insert(op.process, ());
        match &op.value {
            Value::Send(v) => mention((&v.topic, v.partition)),
            Value::Poll(p) => p
                .records
                .iter()
                .for_each(|r| mention((&r.topic, r.partition))),
            Value::FinalRead(v) => {
                mention((&v.topic, v.partition));
                retention |= v.log_start.is_some();
            }
            Value::Topic(_) | Value::DeleteRecords(_) => retention = true,
            Value::Client(c) => note_client(&mut clients, op, c),
            Value::Txn(t) => {
                for s in t.sends() {
                    mention((&s.topic, s.partition));
                }
                for r in t.polls().flat_map(|p| &p.records) {
                    mention((&r.topic, r.partition));
                }
            }
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
    let txns = counts[F::Txn as usize].iter().any(|&n| n > 0);
    let summary = Summary {
        ops: history.ops.len(),
        processes: processes.len(),
        by_f,
        partitions: {
            let mut sorted: Vec<(&str, i32)> = partitions.into_keys().collect();
            sorted.sort_unstable();
            sorted
                .into_iter()
                .map(|(t, p)| TopicPartition::new(t, p))
                .collect()
        },
    };
    Scan {
        summary,
        clients,
        txns,
        retention,
    }
}

/// Adds a `client` op to each process's description: its first `client` op, with the counters of
/// its last one that has them. Completions only: an invoke repeats its completion.
fn note_client(out: &mut BTreeMap<u64, ClientSummary>, op: &Op, c: &ClientValue) {
    if op.kind == OpKind::Invoke {
        return;
    }
    let e = out.entry(op.process).or_insert_with(|| ClientSummary {
        role: c.role.clone(),
        name: c.name.clone(),
        idempotent: c.idempotent,
        max_in_flight: c.max_in_flight,
        profile: c.profile.clone(),
        counters: None,
        mean_records_per_batch: None,
    });
    if let Some(counters) = &c.counters {
        e.mean_records_per_batch =
            (counters.batches > 0).then(|| counters.mean_records_per_batch());
        e.counters = Some(counters.clone());
    }
}

/// The "clients:" section: one line per process, and its nonzero counters under it.
fn clients_text(clients: &BTreeMap<u64, ClientSummary>) -> String {
    let width = |f: &dyn Fn(&ClientSummary) -> usize| clients.values().map(f).max().unwrap_or(0);
    let process_w = clients
        .keys()
        .map(|p| p.to_string().len())
        .max()
        .unwrap_or(1);
    let name_w = width(&|c| c.name.chars().count()).max(12);
    let role_w = width(&|c| c.role.chars().count()).max(8);
    let traits: Vec<String> = clients.values().map(traits).collect();
    let traits_w = traits.iter().map(String::len).max().unwrap_or(0);
    let mut s = String::new();
    for ((process, c), traits) in clients.iter().zip(&traits) {
        let line = format!(
            "  {process:>process_w$} {:<name_w$} {:<role_w$}  {traits:<traits_w$}  {}",
            c.name,
            c.role,
            profile_text(c)
        );
        let _ = writeln!(s, "{}", line.trim_end());
        if let Some(counters) = c.counters.as_ref().map(counters_text) {
            if !counters.is_empty() {
                // Under the name, two further in.
                let _ = writeln!(s, "  {:process_w$}   {counters}", "");
            }
        }
    }
    s
}

/// `idempotent in-flight 5`; producers only say what they are.
impl ClientSummary {
    /// `idempotent in-flight 5` (producers), else empty.
    pub fn traits_text(&self) -> String {
        traits(self)
    }

    /// What it drew, `key=value` separated by spaces.
    pub fn profile_text(&self) -> String {
        profile_text(self)
    }

    /// Its nonzero counters, comma-separated (empty without counters).
    pub fn counters_text(&self) -> String {
        self.counters
            .as_ref()
            .map(counters_text)
            .unwrap_or_default()
    }
}

fn profile_text(c: &ClientSummary) -> String {
    c.profile
        .iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(text) => format!("{k}={text}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn traits(c: &ClientSummary) -> String {
    let mut t = Vec::new();
    if c.idempotent {
        t.push("idempotent".to_owned());
    } else if c.max_in_flight > 0 {
        t.push("non-idempotent".to_owned());
    }
    if c.max_in_flight > 0 {
        t.push(format!("in-flight {}", c.max_in_flight));
    }
    t.join(" ")
}

/// The nonzero counters, comma-separated.
fn counters_text(c: &ClientCounters) -> String {
    fn nonzero(parts: &mut Vec<String>, n: u64, what: &str) {
        if n > 0 {
            parts.push(format!("{what} {n}"));
        }
    }
    /// `fetches 40 (12 inside batch)`: a total with its nonzero sub-counts.
    fn with_inner(parts: &mut Vec<String>, what: &str, total: u64, inner: &[(u64, &str)]) {
        let inner: Vec<String> = inner
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, w)| format!("{n} {w}"))
            .collect();
        match (total, inner.is_empty()) {
            (0, true) => {}
            (_, true) => parts.push(format!("{what} {total}")),
            _ => parts.push(format!("{what} {total} ({})", inner.join(", "))),
        }
    }
    let mut parts = Vec::new();
    if c.batches > 0 || c.max_records_per_batch > 0 {
        parts.push(format!(
            "records/batch {:.1} mean {} max",
            c.mean_records_per_batch(),
            c.max_records_per_batch
        ));
    }
    nonzero(
        &mut parts,
        c.max_partitions_per_request,
        "max partitions/request",
    );
    nonzero(
        &mut parts,
        c.max_requests_in_flight,
        "max requests in flight",
    );
    nonzero(&mut parts, c.retried_batches, "retried batches");
    nonzero(&mut parts, c.epoch_bumps, "epoch bumps");
    with_inner(
        &mut parts,
        "fetches",
        c.fetches,
        &[
            (c.fetches_inside_batch, "inside batch"),
            (c.multi_partition_fetches, "multi-partition"),
        ],
    );
    with_inner(
        &mut parts,
        "commits",
        c.commits,
        &[(c.commits_inside_batch, "inside batch")],
    );
    nonzero(&mut parts, c.seeks_back, "seeks back");
    nonzero(&mut parts, c.restarts, "restarts");
    parts.join(", ")
}

/// One line per fault: the completion of a paired invoke, else the op itself.
/// The nemesis ops: the last op of each pair that is a fault.
pub(crate) fn fault_events<'p, 'a: 'p>(
    pairs: impl IntoIterator<Item = &'p Pair<'a>>,
) -> Vec<FaultEvent> {
    pairs
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::{self, Mutation};
    use crate::history::{ClientValue, HistoryBuilder};

    fn finding(anomaly: Anomaly) -> Finding {
        Finding {
            anomaly,
            topic: "t".into(),
            partition: 0,
            offsets: vec![1],
            ops: vec![],
            explanation: "x".into(),
        }
    }

    #[test]
    fn the_verdict_names_the_worst_class_and_allowed_kinds_do_not_fail() {
        let h = History::new(vec![]);
        let found = vec![
            finding(Anomaly::Unseen),
            finding(Anomaly::Duplicate),
            finding(Anomaly::LostWrite),
        ];
        let r = Report::new(&h, found.clone());
        assert_eq!(r.worst, Some(Severity::DataLoss));
        assert_eq!(
            r.verdict_line(),
            "FAIL, worst: data loss or corruption (1 data-loss, 1 contract, 1 freshness)"
        );
        let r = r.allowing(&[Anomaly::LostWrite].into());
        assert_eq!(
            (r.verdict, r.worst),
            (Verdict::Fail, Some(Severity::Contract))
        );
        assert!(
            r.verdict_line().ends_with("1 allowed)"),
            "{}",
            r.verdict_line()
        );
        let text = r.to_text();
        let allowed_at = text.find("allowed findings (--allow):").unwrap();
        assert!(text.find("findings (contract violation):").unwrap() < allowed_at);
        assert!(text[allowed_at..].contains("lost-write"), "{text}");
        let r = r.allowing(&[Anomaly::LostWrite, Anomaly::Duplicate, Anomaly::Unseen].into());
        assert_eq!((r.verdict, r.worst), (Verdict::Pass, None));
        assert_eq!(r.verdict_line(), "PASS (only allowed findings: 3)");
        assert_eq!(Report::new(&h, vec![]).verdict_line(), "PASS");
        // Allowing is a view: the findings stay.
        assert_eq!(r.findings.len(), 3);
    }

    #[test]
    fn transactional_kinds_are_counted_only_for_histories_with_transactions_and_only_narrows() {
        use crate::history::{HistoryBuilder, TxnEnd, TxnValue};
        let plain = History::default();
        let r = Report::new(&plain, Vec::new());
        assert!(r.counts.keys().all(|a| !a.transactional()));
        let mut b = HistoryBuilder::new();
        let t = TxnValue::new("tx", TxnEnd::Abort);
        b.call(1, t.clone(), OpKind::Ok, t);
        let r = Report::new(&b.build(), vec![finding(Anomaly::LostWrite)]);
        let kept = Anomaly::ALL
            .iter()
            .filter(|a| !a.retention() && !a.slo())
            .count();
        assert_eq!(r.counts.len(), kept);
        assert_eq!(r.verdict, Verdict::Fail);
        let only: BTreeSet<Anomaly> = [Anomaly::ExactlyOnce, Anomaly::AbortedRead].into();
        let r = r.only(&only);
        assert_eq!(r.verdict, Verdict::Pass);
        assert!(r.findings.is_empty());
        assert_eq!(r.counts.keys().copied().collect::<BTreeSet<_>>(), only);
    }

    #[test]
    fn a_finding_without_a_partition_says_so() {
        let h = History::new(vec![]);
        let mut run_wide = finding(Anomaly::BrokenInvariant);
        (run_wide.topic, run_wide.partition) = (String::new(), -1);
        let text = Report::new(&h, vec![run_wide, finding(Anomaly::LostWrite)]).to_text();
        assert!(
            text.contains("broken-invariant no partition offsets"),
            "{text}"
        );
        assert!(!text.contains("/-1"), "{text}");
    }

    #[test]
    fn every_kind_has_a_severity_and_a_name_that_parses_back() {
        for a in Anomaly::ALL {
            assert_eq!(Anomaly::from_name(a.as_str()), Some(a));
            assert!(Severity::WORST_FIRST.contains(&a.severity()));
        }
        assert_eq!(Anomaly::from_name("no-such-kind"), None);
        assert!(
            Severity::DataLoss > Severity::Contract && Severity::Contract > Severity::Freshness
        );
    }

    #[test]
    fn clients_come_from_first_op_with_last_counters() {
        let report = check_all(
            &testkit::pipelined(Mutation::None),
            &CheckerConfig::default(),
        );
        let ids: Vec<u64> = report.clients.keys().copied().collect();
        assert_eq!(ids, vec![1, 2, 10]);
        let p1 = &report.clients[&1];
        assert_eq!(
            (p1.role.as_str(), p1.idempotent, p1.max_in_flight),
            ("producer", true, 5)
        );
        // The end op has no profile; the start op's is kept.
        assert_eq!(p1.profile.len(), 2);
        assert_eq!(p1.counters.as_ref().map(|c| c.retried_batches), Some(1));
        assert_eq!(report.clients[&10].counters, None);
    }

    #[test]
    fn text_has_a_clients_section_after_the_history_summary() {
        let text = check_all(
            &testkit::pipelined(Mutation::None),
            &CheckerConfig::default(),
        )
        .to_text();
        let section: Vec<&str> = text
            .lines()
            .skip_while(|l| *l != "clients:")
            .take_while(|l| !l.is_empty())
            .collect();
        assert_eq!(
            section,
            vec![
                "clients:",
                "   1 producer-1   producer  idempotent in-flight 5      codec=lz4 linger_ms=12",
                "       records/batch 1.5 mean 2 max, retried batches 1",
                "   2 producer-2   producer  non-idempotent in-flight 3",
                "       records/batch 1.5 mean 2 max, retried batches 1",
                "  10 member-10    member",
            ],
            "{text}"
        );
        let summary_end = text.find("  client ").unwrap();
        let clients_at = text.find("clients:").unwrap();
        let anomalies_at = text.find("  anomaly ").unwrap();
        assert!(
            summary_end < clients_at && clients_at < anomalies_at,
            "{text}"
        );
    }

    #[test]
    fn counters_text_lists_only_nonzero_counters() {
        let c = ClientCounters {
            batches: 4,
            records: 10,
            max_records_per_batch: 5,
            max_partitions_per_request: 3,
            max_requests_in_flight: 2,
            epoch_bumps: 1,
            fetches: 40,
            multi_partition_fetches: 7,
            commits: 9,
            commits_inside_batch: 2,
            seeks_back: 3,
            restarts: 1,
            ..ClientCounters::default()
        };
        assert_eq!(
            counters_text(&c),
            "records/batch 2.5 mean 5 max, max partitions/request 3, max requests in flight 2, \
             epoch bumps 1, fetches 40 (7 multi-partition), commits 9 (2 inside batch), \
             seeks back 3, restarts 1"
        );
        assert_eq!(counters_text(&ClientCounters::default()), "");
    }

    #[test]
    fn without_client_ops_nothing_changes() {
        let report = check_all(&testkit::clean(), &CheckerConfig::default());
        assert!(report.clients.is_empty());
        assert!(!report.to_text().contains("clients:"));
        let json = serde_json::to_value(&report).unwrap();
        assert!(json.get("clients").is_none(), "{json}");
        // Older reports without the field read back.
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn clients_serialize_and_read_back() {
        let mut b = HistoryBuilder::new();
        let v = ClientValue {
            role: "consumer".into(),
            name: "consumer-0".into(),
            counters: Some(ClientCounters {
                fetches: 3,
                ..ClientCounters::default()
            }),
            ..ClientValue::default()
        };
        testkit::client_op(&mut b, 4, v);
        let report = check_all(&b.build(), &CheckerConfig::default());
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["clients"]["4"]["name"], "consumer-0");
        assert_eq!(json["clients"]["4"]["counters"]["fetches"], 3);
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
        assert!(report
            .to_text()
            .contains("\n  4 consumer-0   consumer\n      fetches 3\n"));
    }
}
