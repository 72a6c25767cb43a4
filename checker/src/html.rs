//! The HTML report: one renderer for `riptide sim`/`repro` and `riptide certify`.
//!
//! A page is [`page`] around sections: [`header_table`], [`anomaly_counts`], [`realtime_lag`],
//! [`figures_tables`] (windows of unavailability by kind and fault, latency by phase),
//! [`timelines`] (the pictures, drawn in `charts`: one inline SVG per partition with its write
//! and read windows, the consumer groups' stalls, latency over time, all over the fault bands),
//! [`findings`] (with their evidence) and [`fault_events`]. [`sim_report`] is the simulator's
//! whole page; certify adds its own sections (coverage, compatibility, store) as templates of
//! its own around the same pieces.
//!
//! Markup is written with `maud`: every interpolated string is escaped, so a topic, a finding or
//! a fault detail is text on the page whatever it holds. The page has no JavaScript.
//!
//! The timelines show the partitions of [`crate::report::Summary::partitions`], in its order,
//! and each picture's container says how much it draws (`data-partitions`, `data-windows`,
//! `data-points`), so a check can count it. It cannot show a finding that has no partition (it
//! is listed under Findings), nor a window on a partition the summary does not list, and it
//! thins dense series (see `charts`).

use std::collections::{BTreeMap, BTreeSet};

use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::figures::{Figures, Phase, Window, WindowKind};
use crate::history::{History, Op, OpKind, PollValue, TxnEnd, Value};
use crate::report::FaultEvent;
use crate::{Finding, Report, Severity, Verdict};

mod charts;
use charts::Series;
pub use charts::{human, window_title};

/// The page's style sheet (certify's report look).
const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#1f2328}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}\
th{background:#f6f8fa}code{font-size:12px}.verdict{color:#fff;padding:2px 10px;border-radius:4px}\
.verdict.ok{background:#1a7f37}.verdict.bad{background:#cf222e}\
.fail{color:#cf222e;font-weight:600}.note{background:#fff8c5;padding:8px;border-radius:4px}\
svg text{font-size:10px;fill:#57606a}summary{cursor:pointer;font-weight:600;margin:.4em 0}\
svg.timeline,svg.groups,svg.latency{width:100%;height:auto}.legend span{margin-right:1em;white-space:nowrap}li{font-family:monospace;font-size:12px}";

/// What the timeline intro says.
const TIMELINE_INTRO: &str =
    "Per partition: acknowledged sends (green, offset over time), records \
consumers read (blue), failed or indeterminate sends (orange ticks under the plot), faults (shaded, \
labelled by node), the ops of each finding (red rings), and under the plot the partition's write \
and read windows (faded: never closed). Hover a bar for its length and the fault it is put down to.";

/// What the latency chart says.
const LATENCY_INTRO: &str =
    "Per bucket of time: the p99 (dots, joined) and the maximum (rings) of \
produce acknowledgement latency, by when the send was invoked, and of end-to-end latency (ack to \
first read), by when it was acknowledged; logarithmic scale, whose floor holds anything below \
it (0: read before the ack came). A gap: nothing measured then.";

/// What the windows are (the Markdown says it too).
pub const WINDOWS_INTRO: &str = "A write window: sends unanswered, failed or retried until one \
sent since is acknowledged. A read window: polls failed or empty while acknowledged records \
waited, until records come. A group stall: from a member's rejoin until every partition is owned \
and read again. Each is attributed to the fault active when it opened \
(`riptide_checker::figures`).";

/// What the realtime-lag table says.
pub const LAG_INTRO: &str = "Per partition, the longest a consumer that kept polling it went \
without seeing a record known to exist (Jepsen's realtime lag): a figure, a finding only above \
--max-realtime-lag.";

/// A fault drawn on the timelines: shaded from `start_ns` to `end_ns` (history time), labelled.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FaultBand {
    pub start_ns: u64,
    pub end_ns: u64,
    pub label: String,
}

/// A whole page: the document, its style, a title with the verdict, then `body`.
pub fn page(title: &str, report: &Report, body: Markup) -> String {
    let verdict = report.verdict_line();
    let class = if report.verdict == Verdict::Pass {
        "verdict ok"
    } else {
        "verdict bad"
    };
    html! {
        (DOCTYPE)
        html {
            head {
                meta charset="utf-8";
                title { (title) ": " (verdict) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { (title) " " span class=(class) { (verdict) } }
                (body)
            }
        }
    }
    .into_string()
}

/// Name/value rows, values as code.
pub fn header_table<'a>(rows: impl IntoIterator<Item = (&'a str, String)>) -> Markup {
    html! {
        table {
            @for (k, v) in rows {
                tr { th { (k) } td { code { (v) } } }
            }
        }
    }
}

/// Every anomaly kind with its severity and count; counts that fail are red.
pub fn anomaly_counts(r: &Report) -> Markup {
    html! {
        h2 { "Anomaly counts" }
        table {
            tr { th { "anomaly" } th { "severity" } th { "count" } }
            @for (a, n) in &r.counts {
                @let allowed = r.allowed.contains(a);
                tr {
                    td { (a.as_str()) }
                    td { (a.severity().describe()) }
                    td class=[(*n > 0 && !allowed).then_some("fail")] {
                        (n) @if allowed { " (allowed)" }
                    }
                }
            }
        }
    }
}

/// The realtime-lag figure's rows: partition, lag, process and poll, the record behind.
pub fn lag_rows(r: &Report) -> Vec<[String; 4]> {
    let secs = |ns: u64| format!("{:.3} s", ns as f64 / 1e9);
    r.realtime_lag
        .iter()
        .map(|l| {
            let behind = match (l.offset, &l.value) {
                (Some(o), Some(v)) => format!("offset {o} ({v})"),
                (Some(o), None) => format!("offset {o}"),
                _ => "nothing".to_string(),
            };
            [
                format!("{}/{}", l.topic, l.partition),
                secs(l.lag_ns),
                format!(
                    "process {} poll op {} at {}",
                    l.process,
                    l.poll_op,
                    secs(l.poll_time_ns)
                ),
                behind,
            ]
        })
        .collect()
}

/// The realtime-lag table (nothing when no consumer polled).
pub fn realtime_lag(r: &Report) -> Markup {
    html! {
        @if !r.realtime_lag.is_empty() {
            h2 { "Realtime lag" }
            p { (LAG_INTRO) }
            table {
                tr { th { "partition" } th { "worst lag" } th { "when" } th { "not yet seen" } }
                @for row in lag_rows(r) {
                    tr { @for cell in &row { td { (cell) } } }
                }
            }
        }
    }
}

/// One line describing an op, for evidence lists (the Markdown's too).
pub fn describe_op(op: &Op) -> String {
    let kind = match op.kind {
        OpKind::Invoke => "invoke",
        OpKind::Ok => "ok",
        OpKind::Fail => "fail",
        OpKind::Info => "info",
    };
    let what = match &op.value {
        Value::Send(s) => format!(
            "send {}/{} value {}{}",
            s.topic,
            s.partition,
            s.value,
            s.offset
                .map(|o| format!(" → offset {o}"))
                .unwrap_or_default()
        ),
        Value::Poll(p) => {
            let recs: Vec<String> = p
                .records
                .iter()
                .take(12)
                .map(|r| format!("{}/{}@{}={}", r.topic, r.partition, r.offset, r.value))
                .collect();
            let more = p.records.len().saturating_sub(12);
            format!(
                "poll {}{}",
                recs.join(" "),
                if more > 0 {
                    format!(" (+{more} more)")
                } else {
                    String::new()
                }
            )
        }
        Value::FinalRead(f) => format!(
            "final read {}/{} hwm {:?}, {} records",
            f.topic,
            f.partition,
            f.hwm,
            f.records.len()
        ),
        other => serde_json::to_string(other).unwrap_or_default(),
    };
    let error = op
        .error
        .as_ref()
        .map(|e| format!(" — error: {e}"))
        .unwrap_or_default();
    format!(
        "#{} t={:.3}s process {} {kind}: {what}{error}",
        op.index,
        op.time_ns as f64 / 1e9,
        op.process
    )
}

/// The ops of `history` whose indices the findings name.
pub fn evidence_ops<'h>(history: &'h History, r: &Report) -> BTreeMap<u64, &'h Op> {
    let wanted: BTreeSet<u64> = r
        .findings
        .iter()
        .flat_map(|f| f.ops.iter().copied())
        .collect();
    history
        .ops
        .iter()
        .filter(|o| wanted.contains(&o.index))
        .map(|o| (o.index, o))
        .collect()
}

/// Findings grouped as a reader should meet them: worst class first, allowed ones last; each
/// with its number in the order shown.
pub fn finding_groups(r: &Report) -> Vec<(String, Vec<(usize, &Finding)>)> {
    let of = |class: Severity| -> Vec<(usize, &Finding)> {
        r.findings
            .iter()
            .enumerate()
            .filter(|(_, f)| !r.is_allowed(f) && f.anomaly.severity() == class)
            .collect()
    };
    let mut groups: Vec<(String, Vec<(usize, &Finding)>)> = Severity::WORST_FIRST
        .into_iter()
        .map(|c| (c.describe().to_string(), of(c)))
        .collect();
    groups.push((
        "allowed (--allow)".to_string(),
        r.findings
            .iter()
            .enumerate()
            .filter(|(_, f)| r.is_allowed(f))
            .collect(),
    ));
    groups.retain(|(_, g)| !g.is_empty());
    let mut number = 0;
    for (_, g) in &mut groups {
        for (i, _) in g.iter_mut() {
            *i = number;
            number += 1;
        }
    }
    groups
}

/// The findings by class (the worst open), each with its offsets and evidence.
pub fn findings(history: &History, r: &Report) -> Markup {
    let ops = evidence_ops(history, r);
    html! {
        h2 { "Findings" }
        @if r.findings.is_empty() {
            p { "None: every checker passed." }
        }
        @for (k, (class, group)) in finding_groups(r).iter().enumerate() {
            details open[k == 0] {
                summary class="fail" { (class) " (" (group.len()) ")" }
                @for (i, f) in group {
                    h3 class="fail" { (i + 1) ". " (f.anomaly) " on " (f.place()) }
                    p { (f.explanation) }
                    p { "Offsets: " (format!("{:?}", f.offsets)) }
                    ul {
                        @for idx in &f.ops {
                            li {
                                @match ops.get(idx) {
                                    Some(op) => { (describe_op(op)) }
                                    None => { "op #" (idx) " (not in the history)" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A fault event's phase (`start`, `heal`), if it has one.
fn phase(e: &FaultEvent) -> Option<&str> {
    e.detail.get("phase").and_then(|p| p.as_str())
}

/// What a fault event acted on, short: its broker(s), zone, or the first side of a partition.
fn target(e: &FaultEvent) -> String {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    };
    let d = &e.detail;
    let named = |key: &str| d.get(key).map(text).filter(|t| !t.is_empty());
    named("broker")
        .or_else(|| named("brokers"))
        .or_else(|| named("zone").map(|z| format!("zone {z}")))
        .or_else(|| named("a"))
        .or_else(|| named("from"))
        .unwrap_or_default()
}

/// The simulator's fault bands, from the report's nemesis events paired as the figures pair them
/// ([`crate::figures::fault_spans`]): one never healed lasts to `end_ns`, and an event without
/// a phase is a band of no width.
pub fn fault_bands(faults: &[FaultEvent], end_ns: u64) -> Vec<FaultBand> {
    let label = |e: &FaultEvent| {
        let t = target(e);
        if t.is_empty() {
            e.fault.clone()
        } else {
            format!("{} {t}", e.fault)
        }
    };
    let mut bands: Vec<FaultBand> = crate::figures::fault_spans(faults)
        .into_iter()
        .map(|s| FaultBand {
            start_ns: s.start_ns,
            end_ns: s.heal_ns.unwrap_or(end_ns).max(s.start_ns),
            label: label(s.event),
        })
        .collect();
    bands.sort();
    bands
}

/// Series by topic, then partition: every partition of the report's summary, nothing else.
type AllSeries<'f> = BTreeMap<String, BTreeMap<i32, Series<'f>>>;

fn at<'a, 'f>(
    by: &'a mut AllSeries<'f>,
    topic: &str,
    partition: i32,
) -> Option<&'a mut Series<'f>> {
    by.get_mut(topic).and_then(|ps| ps.get_mut(&partition))
}

fn reads(by: &mut AllSeries, t: u64, p: &PollValue) {
    for rec in &p.records {
        if let Some(s) = at(by, &rec.topic, rec.partition) {
            s.read.push((t, rec.offset));
        }
    }
}

fn series<'f>(history: &History, r: &Report, figures: &'f Figures) -> AllSeries<'f> {
    let mut by = AllSeries::new();
    for tp in &r.summary.partitions {
        by.entry(tp.topic.clone())
            .or_default()
            .insert(tp.partition, Series::default());
    }
    for op in &history.ops {
        let t = op.time_ns;
        match &op.value {
            Value::Send(sv) => match (op.kind, sv.offset) {
                (OpKind::Ok, Some(off)) => {
                    if let Some(s) = at(&mut by, &sv.topic, sv.partition) {
                        s.acked.push((t, off));
                    }
                }
                (OpKind::Fail | OpKind::Info, _) => {
                    if let Some(s) = at(&mut by, &sv.topic, sv.partition) {
                        s.failed.push(t);
                    }
                }
                _ => {}
            },
            Value::Poll(p) if op.kind == OpKind::Ok => reads(&mut by, t, p),
            Value::FinalRead(f) if op.kind == OpKind::Ok => {
                if let (Some(hwm), Some(s)) = (f.hwm, at(&mut by, &f.topic, f.partition)) {
                    s.final_hwm = Some((t, hwm));
                }
            }
            Value::Txn(tx) if op.kind != OpKind::Invoke => {
                for sv in tx.sends() {
                    let Some(s) = at(&mut by, &sv.topic, sv.partition) else {
                        continue;
                    };
                    match (op.kind, tx.end, sv.offset) {
                        (OpKind::Ok, TxnEnd::Commit, Some(off)) => s.acked.push((t, off)),
                        (OpKind::Fail | OpKind::Info, _, _) => s.failed.push(t),
                        _ => {}
                    }
                }
                if op.kind == OpKind::Ok {
                    for p in tx.polls() {
                        reads(&mut by, t, p);
                    }
                }
            }
            _ => {}
        }
    }
    // Finding marks: at the op's time and offset (a send's own, else the finding's first).
    let ops = evidence_ops(history, r);
    for f in &r.findings {
        let Some(s) = at(&mut by, &f.topic, f.partition) else {
            continue;
        };
        for idx in &f.ops {
            let Some(op) = ops.get(idx) else { continue };
            let offset = match &op.value {
                Value::Send(sv) => sv.offset,
                _ => f.offsets.first().copied(),
            };
            s.marks.push((
                op.time_ns,
                offset,
                format!("{}: {}", f.anomaly, f.explanation),
            ));
        }
    }
    // Write and read windows on their partition's chart (a subject is `topic/partition`).
    for w in figures
        .windows
        .iter()
        .filter(|w| w.kind != WindowKind::GroupStall)
    {
        let place = w.subject.rsplit_once('/');
        let place = place.and_then(|(t, p)| Some((t, p.parse().ok()?)));
        if let Some(s) = place.and_then(|(t, p)| at(&mut by, t, p)) {
            s.windows.push(w);
        }
    }
    by
}

/// The pictures, on one time axis over the fault bands: the legend, then one chart per partition
/// of the report's summary (offset over time, with its write and read windows) inside
/// `<div id="timelines" data-partitions="N" data-windows="W">`, the consumer groups' stalls
/// (`<div id="group-stalls" data-windows="S">`, when a group stalled), and the latency over time
/// (`<div id="latency" data-points="P">`). The counts say what is drawn, so a check can count it.
pub fn timelines(history: &History, r: &Report, figures: &Figures, bands: &[FaultBand]) -> Markup {
    let t_max = history
        .ops
        .iter()
        .map(|o| o.time_ns)
        .chain(bands.iter().map(|b| b.end_ns))
        .max()
        .unwrap_or(1)
        .max(1);
    let frame = charts::Frame::new(t_max, bands);
    let all = series(history, r, figures);
    let count: usize = all.values().map(BTreeMap::len).sum();
    let bars: usize = all
        .values()
        .flat_map(BTreeMap::values)
        .map(|s| s.windows.len())
        .sum();
    let mut stalls: BTreeMap<&str, Vec<&Window>> = BTreeMap::new();
    for w in figures
        .windows
        .iter()
        .filter(|w| w.kind == WindowKind::GroupStall)
    {
        stalls.entry(&w.subject).or_default().push(w);
    }
    let swatch = |colour: &str| format!("background:{colour}");
    html! {
        h2 { "Timeline" }
        p { (TIMELINE_INTRO) }
        p class="legend" {
            span style=(format!("color:{}", charts::ACK)) { "● acknowledged send" } " "
            span style=(format!("color:{}", charts::READ)) { "□ read by a consumer" } " "
            span style=(format!("color:{}", charts::FAILED)) { "| failed or indeterminate send" } " "
            span style="color:#57606a" { "– – final read's high watermark" } " "
            span style=(format!("color:{}", charts::FINDING)) { "○ op of a finding" } " "
            span style=(format!("background:{}33", charts::FAULT)) { "\u{a0}fault\u{a0}" } " "
            span style=(swatch(charts::WRITE_WINDOW)) { "\u{a0}write window\u{a0}" } " "
            span style=(swatch(charts::READ_WINDOW)) { "\u{a0}read window\u{a0}" } " "
            span style=(format!("{};color:#fff", swatch(charts::GROUP_STALL))) {
                "\u{a0}group stall\u{a0}"
            }
        }
        div id="timelines" data-partitions=(count) data-windows=(bars) {
            @for (topic, partitions) in &all {
                @for (p, s) in partitions {
                    h3 { (topic) "/" (p) }
                    (charts::partition(s, &frame))
                }
            }
        }
        h3 { "Consumer groups" }
        @if stalls.is_empty() {
            p { "No consumer group stalled." }
        } @else {
            p { "A lane per group: each stall, from a member's rejoin until every partition is \
                owned and read again." }
            div id="group-stalls" data-windows=(stalls.values().map(Vec::len).sum::<usize>()) {
                (charts::groups(&stalls, &frame))
            }
        }
        h2 { "Latency over time" }
        p { (LATENCY_INTRO) }
        p class="legend" {
            span style=(format!("color:{}", charts::ACK)) { "● produce ack p99  ○ max" } " "
            span style=(format!("color:{}", charts::READ)) { "● end to end p99  ○ max" } " "
            span style=(format!("background:{}33", charts::FAULT)) { "\u{a0}fault\u{a0}" }
        }
        div id="latency" data-points=(charts::latency_points(&figures.latency_over_time)) {
            (charts::latency(&figures.latency_over_time, &frame))
        }
    }
}

/// The windows by kind and fault: kind, fault, count, total (s), longest (s) (and whether it
/// never closed), its subject, and when it opened (s). The Markdown's table too.
pub fn window_rows(f: &Figures) -> Vec<[String; 7]> {
    let mut by: BTreeMap<(&str, &str), Vec<&Window>> = BTreeMap::new();
    for w in &f.windows {
        by.entry((w.kind.as_str(), w.fault.as_deref().unwrap_or("no fault")))
            .or_default()
            .push(w);
    }
    let s = |ns: u64| format!("{:.3}", ns as f64 / 1e9);
    by.into_iter()
        .filter_map(|((kind, fault), list)| {
            let total: u64 = list.iter().map(|w| w.duration_ns()).sum();
            let worst = list.iter().max_by_key(|w| w.duration_ns())?;
            let open = if worst.closed { "" } else { " (never closed)" };
            Some([
                kind.to_string(),
                fault.to_string(),
                list.len().to_string(),
                s(total),
                format!("{}{open}", s(worst.duration_ns())),
                worst.subject.clone(),
                s(worst.start_ns),
            ])
        })
        .collect()
}

/// A phase's name, as the JSON spells it.
fn phase_name(p: Phase) -> String {
    serde_json::to_value(p)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Latencies by phase: which, phase, records, p50, p99, max (ms). The Markdown's table too.
pub fn latency_rows(f: &Figures) -> Vec<[String; 6]> {
    let ms = |ns: u64| format!("{:.1}", ns as f64 / 1e6);
    [("produce ack", &f.produce), ("end to end", &f.end_to_end)]
        .into_iter()
        .flat_map(|(name, by_phase)| {
            by_phase.iter().map(move |(phase, l)| {
                [
                    name.to_string(),
                    phase_name(*phase),
                    l.count.to_string(),
                    ms(l.p50_ns),
                    ms(l.p99_ns),
                    ms(l.max_ns),
                ]
            })
        })
        .collect()
}

/// The figures' tables: windows by kind and fault, latencies by phase.
pub fn figures_tables(f: &Figures) -> Markup {
    html! {
        h2 { "Windows of unavailability and latency" }
        p { (WINDOWS_INTRO) }
        @if f.windows.is_empty() {
            p { "No window: every attempt got through." }
        } @else {
            table id="windows" {
                tr {
                    th { "window" } th { "fault" } th { "count" } th { "total (s)" }
                    th { "longest (s)" } th { "on" } th { "from (s)" }
                }
                @for row in window_rows(f) {
                    tr { @for cell in &row { td { (cell) } } }
                }
            }
        }
        table id="latency-by-phase" {
            tr {
                th { "latency" } th { "phase" } th { "records" } th { "p50 (ms)" }
                th { "p99 (ms)" } th { "max (ms)" }
            }
            @for row in latency_rows(f) {
                tr { @for cell in &row { td { (cell) } } }
            }
        }
    }
}

/// The nemesis events of a report: time, fault, what it did.
pub fn fault_events(r: &Report) -> Markup {
    html! {
        h2 { "Faults" }
        @if r.faults.is_empty() {
            p { "None were injected." }
        } @else {
            table {
                tr { th { "t (s)" } th { "op" } th { "fault" } th { "phase" } th { "detail" } }
                @for e in &r.faults {
                    @let mut detail = e.detail.clone();
                    @let _ = detail.remove("phase");
                    tr {
                        td { (format!("{:.3}", e.time_ns as f64 / 1e9)) }
                        td { (e.index) }
                        td { (e.fault) }
                        td { (phase(e).unwrap_or("")) }
                        td { code { (serde_json::to_string(&detail).unwrap_or_default()) } }
                    }
                }
            }
        }
    }
}

/// The simulator's page: `rows` (seed, scenario, trace hash, ...), the anomaly counts, realtime
/// lag, the figures' tables, the pictures over the nemesis's faults as bands, the findings and
/// the fault events.
pub fn sim_report<'a>(
    history: &History,
    report: &Report,
    figures: &Figures,
    rows: impl IntoIterator<Item = (&'a str, String)>,
) -> String {
    let end = history.ops.iter().map(|o| o.time_ns).max().unwrap_or(0);
    let bands = fault_bands(&report.faults, end);
    let body = html! {
        (header_table(rows))
        (anomaly_counts(report))
        (realtime_lag(report))
        (figures_tables(figures))
        (timelines(history, report, figures, &bands))
        (findings(history, report))
        (fault_events(report))
    };
    page("riptide simulation", report, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::figures::figures;
    use crate::history::{
        AssignValue, ClientValue, FaultValue, FinalReadValue, HistoryBuilder, SendValue,
        TopicPartition,
    };
    use crate::{check_all, CheckerConfig};

    const MS: u64 = 1_000_000;

    /// The simulator's page of `h`, checked and measured.
    fn render<'a>(h: &History, rows: impl IntoIterator<Item = (&'a str, String)>) -> String {
        let r = check_all(h, &CheckerConfig::default());
        sim_report(h, &r, &figures(h), rows)
    }

    /// Moves the builder's clock to `ms`.
    fn at(b: &mut HistoryBuilder, ms: u64) -> &mut HistoryBuilder {
        let now = b.now_ns();
        b.advance((ms * MS).saturating_sub(now))
    }

    fn crash(phase: &str) -> FaultValue {
        FaultValue::new("crash")
            .with("broker", "broker-<b>")
            .with("phase", phase)
    }

    /// A send of `value` to `topic`/0 at `ms`, answered `took` ms later as `kind`.
    fn send(b: &mut HistoryBuilder, topic: &str, ms: u64, took: u64, kind: OpKind, offset: i64) {
        let v = SendValue::new(topic, 0, format!("v{ms}"));
        let inv = at(b, ms).invoke(1, v.clone());
        let done = if kind == OpKind::Ok {
            v.acked(offset)
        } else {
            v
        };
        at(b, ms + took).complete(1, inv, kind, done);
    }

    /// `topic`/0 under a crash from 1 s to 3 s: a write window (1.1 s to 3.2 s), a read window
    /// (1.2 s to 3.5 s) and a stall of group `g<i>` (1.15 s to 3.5 s), each put down to it.
    fn outage(topic: &str) -> History {
        let mut b = HistoryBuilder::new();
        let mut member = ClientValue {
            role: "member".into(),
            ..Default::default()
        };
        member.profile.insert("group".into(), "g<i>".into());
        b.ok(2, member);
        let assign = AssignValue {
            partitions: vec![TopicPartition::new(topic, 0)],
        };
        let poll = PollValue::default;
        at(&mut b, 0).call(2, AssignValue::default(), OpKind::Ok, assign.clone());
        send(&mut b, topic, 100, 5, OpKind::Ok, 0);
        at(&mut b, 200).call(2, poll(), OpKind::Ok, poll().record(topic, 0, 0, "v100"));
        send(&mut b, topic, 300, 5, OpKind::Ok, 1);
        at(&mut b, 1000).call(1000, crash("start"), OpKind::Ok, crash("start"));
        let lost = SendValue::new(topic, 0, "v1100");
        let inv = at(&mut b, 1100).invoke(1, lost.clone());
        let rejoin = at(&mut b, 1150).invoke(2, AssignValue::default());
        at(&mut b, 1160).complete(2, rejoin, OpKind::Ok, assign);
        at(&mut b, 1200).call(2, poll(), OpKind::Fail, poll());
        at(&mut b, 1500).complete(1, inv, OpKind::Info, lost);
        at(&mut b, 2000).call(2, poll(), OpKind::Ok, poll());
        at(&mut b, 3000).call(1000, crash("heal"), OpKind::Ok, crash("heal"));
        send(&mut b, topic, 3100, 100, OpKind::Ok, 2);
        let both = poll()
            .record(topic, 0, 1, "v300")
            .record(topic, 0, 2, "v3100");
        at(&mut b, 3500).call(2, poll(), OpKind::Ok, both);
        b.build()
    }

    /// Two partitions of a topic whose name is markup; partition 0 loses an acknowledged
    /// write (the final read stops below it), and a crash starts and heals in between.
    fn lossy(topic: &str) -> History {
        let mut b = HistoryBuilder::new();
        for p in 0..2 {
            let send = SendValue::new(topic, p, format!("v{p}"));
            b.invoke(p as u64, send.clone());
            b.advance(1_000_000);
            b.ok(p as u64, send.acked(0));
        }
        let crash = |phase: &str| {
            let mut f = FaultValue::new("crash");
            f.detail.insert("broker".into(), "broker-<b>".into());
            f.detail.insert("phase".into(), phase.into());
            f
        };
        b.call(1000, crash("start"), OpKind::Ok, crash("start"));
        b.advance(1_000_000);
        b.call(1000, crash("heal"), OpKind::Ok, crash("heal"));
        for p in 0..2 {
            b.invoke(10 + p as u64, FinalReadValue::new(topic, p));
            let mut read = FinalReadValue::new(topic, p);
            read.hwm = Some(if p == 0 { 0 } else { 1 });
            b.ok(10 + p as u64, read);
        }
        b.build()
    }

    #[test]
    fn markup_in_topics_findings_and_faults_stays_text() {
        let topic = "<script>alert(1)</script>";
        let h = lossy(topic);
        let r = check_all(&h, &CheckerConfig::default());
        assert!(!r.findings.is_empty(), "the lost write is found");
        let page = sim_report(&h, &r, &figures(&h), [("seed", "<b>1</b>".to_string())]);
        assert!(!page.contains("<script>"), "{page}");
        assert!(!page.contains("<b>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;/0"));
        assert!(page.contains("crash broker-&lt;b&gt;"), "the band's label");
        assert!(page.contains("<details open><summary class=\"fail\">"));
        assert!(page.contains("<span class=\"verdict bad\">FAIL"));
    }

    #[test]
    fn one_chart_per_partition_and_the_page_says_how_many() {
        let h = lossy("t");
        let r = check_all(&h, &CheckerConfig::default());
        assert_eq!(r.summary.partitions.len(), 2);
        let page = render(&h, []);
        // Two partitions and the latency chart.
        assert_eq!(page.matches("<svg class=\"timeline\"").count(), 2);
        assert_eq!(page.matches("<svg").count(), 3);
        assert_eq!(page.matches("</svg>").count(), 3);
        assert!(page.contains("data-partitions=\"2\""));
        // SVG elements are closed explicitly (an HTML parser would nest `<circle>`s otherwise).
        assert_eq!(
            page.matches("<circle").count(),
            page.matches("</circle>").count()
        );
        assert!(page.contains("<h3>t/0</h3>") && page.contains("<h3>t/1</h3>"));
        // No partitions, no charts, and a page that says so.
        let empty = History::new(vec![]);
        let page = render(&empty, []);
        assert!(page.contains("data-partitions=\"0\""));
        assert_eq!(page.matches("<svg class=\"timeline\"").count(), 0);
        assert!(page.contains("<div id=\"latency\" data-points=\"0\"><svg class=\"latency\""));
        assert!(page.contains("None: every checker passed."));
    }

    #[test]
    fn each_window_is_a_bar_on_its_lane_with_its_kind_length_and_fault() {
        let h = outage("t");
        let f = figures(&h);
        let kinds: Vec<_> = f.windows.iter().map(|w| w.kind).collect();
        assert_eq!(
            kinds,
            [WindowKind::Write, WindowKind::Read, WindowKind::GroupStall]
        );
        let page = render(&h, []);
        assert!(page.contains("<div id=\"timelines\" data-partitions=\"1\" data-windows=\"2\">"));
        assert_eq!(page.matches("<rect class=\"window\"").count(), 3);
        for (kind, tip) in [
            (
                "write-window",
                "write-window on t/0: 2.100 s from 1.100 s (crash)",
            ),
            (
                "read-window",
                "read-window on t/0: 2.300 s from 1.200 s (crash)",
            ),
            (
                "group-stall",
                "group-stall on g&lt;i&gt;: 2.350 s from 1.150 s (crash)",
            ),
        ] {
            let bar = format!("<rect class=\"window\" data-kind=\"{kind}\"");
            assert_eq!(page.matches(&bar).count(), 1, "{kind}");
            assert!(
                page.contains(&format!("<title>{tip}</title>")),
                "{tip}\n{page}"
            );
        }
        // The group's lane, labelled with its (escaped) name.
        assert!(page.contains("<div id=\"group-stalls\" data-windows=\"1\"><svg class=\"groups\""));
        assert!(page.contains(">g&lt;i&gt;</text>"), "{page}");
        // And the tables, by kind and fault.
        assert!(page.contains(
            "<tr><td>write-window</td><td>crash</td><td>1</td><td>2.100</td><td>2.100</td>\
             <td>t/0</td><td>1.100</td></tr>"
        ));
        assert!(page.contains("<td>produce ack</td><td>after-heal</td><td>1</td><td>100.0</td>"));
    }

    #[test]
    fn a_window_never_closed_is_faded_and_says_so() {
        let mut b = HistoryBuilder::new();
        send(&mut b, "t", 100, 50, OpKind::Fail, 0);
        send(&mut b, "t", 900, 50, OpKind::Info, 0);
        let page = render(&b.build(), []);
        assert!(page.contains("fill-opacity=\"0.5\""), "{page}");
        assert!(
            page.contains(
                "<title>write-window on t/0: 0.850 s from 0.100 s, never closed (no fault)</title>"
            ),
            "{page}"
        );
        assert!(page.contains("No consumer group stalled."));
    }

    #[test]
    fn latency_over_time_draws_a_point_per_bucket_and_series_and_a_line_through_runs() {
        let mut b = HistoryBuilder::new();
        // Produce latencies in 10 adjacent buckets, then one far away: one line, 11 points.
        for i in 0..10 {
            send(&mut b, "t", 1000 + i * 100, 5 + i, OpKind::Ok, i as i64);
        }
        send(&mut b, "t", 9000, 2500, OpKind::Ok, 10);
        let h = b.build();
        let over = &figures(&h).latency_over_time;
        assert_eq!(
            over.bucket_ns,
            100 * MS,
            "11.5 s / 200, rounded up to 1-2-5"
        );
        let page = render(&h, []);
        assert!(
            page.contains("<div id=\"latency\" data-points=\"11\">"),
            "{page}"
        );
        assert_eq!(page.matches("<circle class=\"p99\"").count(), 11);
        assert_eq!(page.matches("<circle class=\"max\"").count(), 11);
        assert_eq!(page.matches("<polyline").count(), 1);
        assert!(page.contains("<title>produce ack, 9.0–9.1 s: 1 records, p50 2.50 s, p99 2.50 s, max 2.50 s</title>"), "{page}");
        // A log axis from 1 ms to 10 s: both the steady 5 ms and the slow 2.5 s fit.
        assert!(
            page.contains(">≤1.0 ms</text>") && page.contains(">10.00 s</text>"),
            "{page}"
        );
    }

    #[test]
    fn an_end_to_end_of_zero_sits_on_the_floor_out_of_the_line() {
        let mut b = HistoryBuilder::new();
        let read = |b: &mut HistoryBuilder, ms: u64, value: &str, offset: i64| {
            let got = PollValue::default().record("t", 0, offset, value);
            at(b, ms).call(2, PollValue::default(), OpKind::Ok, got);
        };
        send(&mut b, "t", 1000, 5, OpKind::Ok, 0);
        read(&mut b, 1050, "v1000", 0);
        // Read before its ack arrived: 0.
        let v = SendValue::new("t", 0, "v1100");
        let inv = at(&mut b, 1100).invoke(1, v.clone());
        read(&mut b, 1102, "v1100", 1);
        at(&mut b, 1105).complete(1, inv, OpKind::Ok, v.acked(1));
        send(&mut b, "t", 1200, 5, OpKind::Ok, 2);
        read(&mut b, 1250, "v1200", 2);
        // 20 s of history: 100 ms buckets, so the three are adjacent.
        at(&mut b, 20_000).ok(1000, FaultValue::new("other-event"));
        let h = b.build();
        assert_eq!(figures(&h).latency_over_time.bucket_ns, 100 * MS);
        let page = render(&h, []);
        assert!(
            page.contains("<div id=\"latency\" data-points=\"6\">"),
            "{page}"
        );
        // Produce: one line through three buckets; end to end: 45 ms, 0, 45 ms, no line.
        assert_eq!(page.matches("<polyline").count(), 1, "{page}");
        assert!(
            page.contains("end to end, 1.1–1.2 s: 1 records, p50 0 µs"),
            "{page}"
        );
    }

    #[test]
    fn latencies_read_as_people_write_them() {
        assert_eq!(human(850_000), "850 µs");
        assert_eq!(human(12 * MS), "12.0 ms");
        assert_eq!(human(1_250 * MS), "1.25 s");
    }

    #[test]
    fn a_start_pairs_with_its_heal_and_one_never_healed_lasts_to_the_end() {
        let ev = |t: u64, broker: &str, phase: &str| FaultEvent {
            index: t,
            time_ns: t,
            process: 1000,
            kind: OpKind::Ok,
            fault: "pause".into(),
            detail: [
                ("broker".to_string(), broker.into()),
                ("phase".to_string(), phase.into()),
            ]
            .into(),
        };
        let bands = fault_bands(
            &[
                ev(1, "broker-0", "start"),
                ev(2, "broker-1", "start"),
                ev(3, "broker-0", "heal"),
            ],
            9,
        );
        assert_eq!(
            bands,
            vec![
                FaultBand {
                    start_ns: 1,
                    end_ns: 3,
                    label: "pause broker-0".into()
                },
                FaultBand {
                    start_ns: 2,
                    end_ns: 9,
                    label: "pause broker-1".into()
                },
            ]
        );
    }
}
