//! The HTML report: one renderer for `riptide sim`/`repro` and `riptide certify`.
//!
//! A page is [`page`] around sections: [`header_table`], [`anomaly_counts`], [`realtime_lag`],
//! [`timelines`] (one inline SVG per partition: offset over time, with acknowledged sends, reads,
//! failed or indeterminate sends, the final read's high watermark, the ops of each finding and
//! the fault bands), [`findings`] (with their evidence) and [`fault_events`]. [`sim_report`] is
//! the simulator's whole page; certify adds its own sections (coverage, compatibility, store) as
//! templates of its own around the same pieces.
//!
//! Markup is written with `maud`: every interpolated string is escaped, so a topic, a finding or
//! a fault detail is text on the page whatever it holds. The page has no JavaScript.
//!
//! The timelines show the partitions of [`crate::report::Summary::partitions`], in its order,
//! and the container says how many (`data-partitions`), so a check can count the charts.
//! It cannot show a finding that has no partition (it is listed under Findings), and it thins
//! dense series (at most 3000 acknowledgements and 1500 reads drawn per partition).

use std::collections::{BTreeMap, BTreeSet};

use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::history::{History, Op, OpKind, PollValue, TxnEnd, Value};
use crate::report::FaultEvent;
use crate::{Finding, Report, Severity, Verdict};

/// The page's style sheet (certify's report look).
const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#1f2328}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}\
th{background:#f6f8fa}code{font-size:12px}.verdict{color:#fff;padding:2px 10px;border-radius:4px}\
.verdict.ok{background:#1a7f37}.verdict.bad{background:#cf222e}\
.fail{color:#cf222e;font-weight:600}.note{background:#fff8c5;padding:8px;border-radius:4px}\
svg text{font-size:10px;fill:#57606a}summary{cursor:pointer;font-weight:600;margin:.4em 0}\
svg.timeline{width:100%;height:auto}.legend span{margin-right:1em}li{font-family:monospace;font-size:12px}";

/// What the timeline intro says.
const TIMELINE_INTRO: &str =
    "Per partition: acknowledged sends (green, offset over time), records \
consumers read (blue), failed or indeterminate sends (orange ticks at the bottom), faults (shaded, \
labelled by node) and the ops of each finding (red rings).";

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

/// What one partition's chart shows.
#[derive(Default)]
struct Series {
    /// (time, offset) of acknowledged sends (committed, for transactions).
    acked: Vec<(u64, i64)>,
    /// (time, offset) of records consumers read.
    read: Vec<(u64, i64)>,
    /// Times of failed or indeterminate sends.
    failed: Vec<u64>,
    /// The last successful final read: (time, hwm).
    final_hwm: Option<(u64, i64)>,
    /// Finding marks: (time, offset, what).
    marks: Vec<(u64, Option<i64>, String)>,
}

/// Series by topic, then partition: every partition of the report's summary, nothing else.
type AllSeries = BTreeMap<String, BTreeMap<i32, Series>>;

fn at<'a>(by: &'a mut AllSeries, topic: &str, partition: i32) -> Option<&'a mut Series> {
    by.get_mut(topic).and_then(|ps| ps.get_mut(&partition))
}

fn reads(by: &mut AllSeries, t: u64, p: &PollValue) {
    for rec in &p.records {
        if let Some(s) = at(by, &rec.topic, rec.partition) {
            s.read.push((t, rec.offset));
        }
    }
}

fn series(history: &History, r: &Report) -> AllSeries {
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
    by
}

/// The legend, then one chart per partition of the report's summary (offset over time) inside
/// `<div id="timelines" data-partitions="N">`.
pub fn timelines(history: &History, r: &Report, bands: &[FaultBand]) -> Markup {
    let t_max = history
        .ops
        .iter()
        .map(|o| o.time_ns)
        .chain(bands.iter().map(|b| b.end_ns))
        .max()
        .unwrap_or(1)
        .max(1);
    let all = series(history, r);
    let count: usize = all.values().map(BTreeMap::len).sum();
    html! {
        h2 { "Timeline" }
        p { (TIMELINE_INTRO) }
        p class="legend" {
            span style="color:#1a7f37" { "● acknowledged send" } " "
            span style="color:#0969da" { "● read by a consumer" } " "
            span style="color:#bc4c00" { "| failed or indeterminate send" } " "
            span style="color:#57606a" { "– – final read's high watermark" } " "
            span style="color:#cf222e" { "○ op of a finding" } " "
            span style="background:#8250df33" { "\u{a0}fault\u{a0}" }
        }
        div id="timelines" data-partitions=(count) {
            @for (topic, partitions) in &all {
                @for (p, s) in partitions {
                    h3 { (topic) "/" (p) }
                    (chart(s, t_max, bands))
                }
            }
        }
    }
}

/// A number for an SVG attribute: one decimal.
fn n1(v: f64) -> String {
    format!("{v:.1}")
}

/// One partition's SVG.
fn chart(s: &Series, t_max: u64, bands: &[FaultBand]) -> Markup {
    const W: f64 = 1000.0;
    const H: f64 = 230.0;
    const LEFT: f64 = 64.0;
    const RIGHT: f64 = 16.0;
    const TOP: f64 = 40.0; // room for fault labels
    const BOTTOM: f64 = 36.0; // failed-send ticks, time labels, axis title
    let plot_w = W - LEFT - RIGHT;
    let plot_bottom = H - BOTTOM;
    let x = |t: u64| LEFT + (t as f64 / t_max as f64) * plot_w;
    let max_off = s
        .acked
        .iter()
        .chain(&s.read)
        .map(|(_, o)| *o)
        .chain(s.marks.iter().filter_map(|(_, o, _)| *o))
        .chain(s.final_hwm.map(|(_, h)| h))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let y = |o: i64| plot_bottom - (o as f64 / max_off) * (plot_bottom - TOP);
    let thin = |v: &[(u64, i64)], max: usize| -> Vec<(u64, i64)> {
        let step = v.len().div_ceil(max).max(1);
        v.iter().step_by(step).copied().collect()
    };
    // Fault labels go in the first of three rows where they do not overlap.
    let mut row_ends: Vec<f64> = Vec::new();
    let placed: Vec<(f64, f64, f64, &str)> = bands
        .iter()
        .map(|b| {
            let (x0, x1) = (x(b.start_ns), x(b.end_ns));
            let text_w = b.label.len() as f64 * 5.6 + 4.0;
            let row = match row_ends.iter().position(|end| *end <= x0) {
                Some(r) => r,
                None => {
                    row_ends.push(0.0);
                    row_ends.len() - 1
                }
            };
            row_ends[row] = x0 + text_w.max(x1 - x0);
            (x0, x1, 10.0 + (row % 3) as f64 * 11.0, b.label.as_str())
        })
        .collect();
    html! {
        svg class="timeline" viewBox=(format!("0 0 {W} {H}")) xmlns="http://www.w3.org/2000/svg" {
            @for (x0, x1, ly, label) in &placed {
                rect x=(n1(*x0)) y=(TOP) width=(n1((x1 - x0).max(1.0))) height=(n1(plot_bottom - TOP))
                    fill="#8250df" fill-opacity="0.12" { title { (label) } }
                line x1=(n1(*x0)) x2=(n1(*x0)) y1=(n1(ly + 2.0)) y2=(TOP)
                    stroke="#8250df" stroke-opacity="0.4" {}
                text x=(n1(x0 + 2.0)) y=(ly) { (label) }
            }
            line x1=(LEFT) y1=(plot_bottom) x2=(W - RIGHT) y2=(plot_bottom) stroke="#8c959f" {}
            line x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(plot_bottom) stroke="#8c959f" {}
            text x="4" y=(n1((TOP + plot_bottom) / 2.0))
                transform=(format!("rotate(-90 12 {:.1})", (TOP + plot_bottom) / 2.0)) { "offset" }
            text x=(n1(LEFT + plot_w / 2.0)) y=(H) text-anchor="middle" { "time (s)" }
            @for k in 0..=4u32 {
                @let off = (max_off * f64::from(k) / 4.0).round() as i64;
                @let t = (t_max as f64 * f64::from(k) / 4.0) as u64;
                text x=(n1(LEFT - 4.0)) y=(n1(y(off) + 3.0)) text-anchor="end" { (off) }
                line x1=(LEFT) x2=(n1(W - RIGHT)) y1=(n1(y(off))) y2=(n1(y(off)))
                    stroke="#d0d7de" stroke-opacity="0.5" {}
                text x=(n1(x(t))) y=(n1(plot_bottom + 22.0)) text-anchor="middle" {
                    (format!("{:.0}", t as f64 / 1e9))
                }
            }
            // Acks first, reads on top (they trail the acks at the same offsets), as small open
            // squares so both stay visible.
            g fill="#1a7f37" {
                @for (t, o) in thin(&s.acked, 3000) {
                    circle cx=(n1(x(t))) cy=(n1(y(o))) r="1.6" {}
                }
            }
            g fill="none" stroke="#0969da" stroke-width="0.8" {
                @for (t, o) in thin(&s.read, 1500) {
                    rect x=(n1(x(t) - 1.5)) y=(n1(y(o) - 1.5)) width="3" height="3" {}
                }
            }
            @if let Some((t, hwm)) = s.final_hwm {
                line x1=(LEFT) x2=(n1(x(t))) y1=(n1(y(hwm))) y2=(n1(y(hwm)))
                    stroke="#57606a" stroke-dasharray="4 3" {
                    title { "final read: hwm " (hwm) }
                }
            }
            g stroke="#bc4c00" {
                @for t in &s.failed {
                    line x1=(n1(x(*t))) x2=(n1(x(*t))) y1=(n1(plot_bottom + 2.0))
                        y2=(n1(plot_bottom + 9.0)) {}
                }
            }
            g fill="none" stroke="#cf222e" stroke-width="2" {
                @for (t, o, why) in &s.marks {
                    circle cx=(n1(x(*t))) cy=(n1(o.map(y).unwrap_or(plot_bottom))) r="5" {
                        title { (why) }
                    }
                }
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
/// lag, one timeline per partition with the nemesis's faults as bands, the findings and the
/// fault events.
pub fn sim_report<'a>(
    history: &History,
    report: &Report,
    rows: impl IntoIterator<Item = (&'a str, String)>,
) -> String {
    let end = history.ops.iter().map(|o| o.time_ns).max().unwrap_or(0);
    let bands = fault_bands(&report.faults, end);
    let body = html! {
        (header_table(rows))
        (anomaly_counts(report))
        (realtime_lag(report))
        (timelines(history, report, &bands))
        (findings(history, report))
        (fault_events(report))
    };
    page("riptide simulation", report, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{FaultValue, FinalReadValue, HistoryBuilder, SendValue};
    use crate::{check_all, CheckerConfig};

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
        let page = sim_report(&h, &r, [("seed", "<b>1</b>".to_string())]);
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
        let page = sim_report(&h, &r, []);
        assert_eq!(page.matches("<svg").count(), 2);
        assert_eq!(page.matches("</svg>").count(), 2);
        assert!(page.contains("data-partitions=\"2\""));
        // SVG elements are closed explicitly (an HTML parser would nest `<circle>`s otherwise).
        assert_eq!(
            page.matches("<circle").count(),
            page.matches("</circle>").count()
        );
        assert!(page.contains("<h3>t/0</h3>") && page.contains("<h3>t/1</h3>"));
        // No partitions, no charts, and a page that says so.
        let empty = History::new(vec![]);
        let r = check_all(&empty, &CheckerConfig::default());
        let page = sim_report(&empty, &r, []);
        assert!(page.contains("data-partitions=\"0\""));
        assert_eq!(page.matches("<svg").count(), 0);
        assert!(page.contains("None: every checker passed."));
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
