//! The report's pictures: inline SVG written with maud (every string escaped), no JavaScript.
//!
//! Every chart shares one [`Frame`]: the run's time from 0 to its end across the same width,
//! with the same fault bands behind it, so a reader can look down the page from a fault to
//! what it did. The charts:
//!
//! - [`partition`]: one partition's offsets over time (acknowledged sends, reads, failed sends,
//!   the final read's high watermark, the ops of findings), and under it a lane of its write
//!   windows and a lane of its read windows;
//! - [`groups`]: one lane per consumer group with its stalls;
//! - [`latency`]: produce-ack and end-to-end latency over time, per bucket of
//!   [`crate::figures::LatencyOverTime`] (p99 joined by a line, max as a ring), log scale.
//!
//! Each window bar (`rect.window`) and each latency point (`circle.p99`, `circle.max`) has a
//! `<title>`: the browser's tooltip says what it is, how long, and which fault.
//!
//! What a long run cannot make bigger: acknowledgements and reads are thinned ([`MAX_ACKS`],
//! [`MAX_READS`] per partition), failed sends are one tick per place on the axis, windows less
//! than a pixel apart are one bar (`data-n` says how many), past [`MAX_BANDS`] faults the bands
//! are their union, and the latency buckets are at most [`crate::figures::MAX_BUCKETS`]. A
//! 1M-op chaos-like history of 32 partitions (the checker's bench) makes a 7.4 MB page.

use std::collections::{BTreeMap, BTreeSet};

use maud::{html, Markup};

use super::FaultBand;
use crate::figures::{Latency, LatencyBucket, LatencyOverTime, Window, WindowKind};

/// At most this many acknowledgements drawn per partition.
pub const MAX_ACKS: usize = 3000;
/// At most this many reads drawn per partition.
pub const MAX_READS: usize = 1500;
/// Past this many fault bands, a chart draws their union (see [`Frame::new`]).
pub const MAX_BANDS: usize = 100;

const W: f64 = 1000.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
/// Room above every plot for the fault labels.
const TOP: f64 = 40.0;

/// Colours, shared with the legends.
pub const ACK: &str = "#1a7f37";
pub const READ: &str = "#0969da";
pub const FAILED: &str = "#bc4c00";
pub const FINDING: &str = "#cf222e";
pub const FAULT: &str = "#8250df";
pub const WRITE_WINDOW: &str = "#fb8f44";
pub const READ_WINDOW: &str = "#54aeff";
pub const GROUP_STALL: &str = "#1b7c83";

/// A number for an SVG attribute: one decimal.
fn n1(v: f64) -> String {
    format!("{v:.1}")
}

/// Seconds for a tooltip.
fn secs(ns: u64) -> String {
    format!("{:.3} s", ns as f64 / 1e9)
}

/// A latency for people: `850 µs`, `12.0 ms`, `1.25 s`.
pub fn human(ns: u64) -> String {
    match ns {
        0..=999_999 => format!("{} µs", ns / 1000),
        1_000_000..=999_999_999 => format!("{:.1} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

/// What a window's tooltip says: kind, subject, length, when, and the fault it is put down to.
pub fn window_title(w: &Window) -> String {
    format!(
        "{} on {}: {} from {}{} ({})",
        w.kind.as_str(),
        w.subject,
        secs(w.duration_ns()),
        secs(w.start_ns),
        if w.closed { "" } else { ", never closed" },
        w.fault.as_deref().unwrap_or("no fault")
    )
}

/// Round ticks for a time axis from 0 to `t_max` ns: every 1, 2 or 5 times a power of ten
/// seconds, about five of them, each labelled in seconds with the decimals its step needs.
fn time_ticks(t_max: u64) -> Vec<(u64, String)> {
    let span = t_max.max(1) as f64 / 1e9;
    let rough = span / 5.0;
    let decade = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * decade)
        .find(|s| *s >= rough)
        .unwrap_or(10.0 * decade);
    let digits = (-step.log10().floor()).max(0.0) as usize;
    (0..)
        .map(|k| f64::from(k) * step)
        .take_while(|t| *t <= span * (1.0 + 1e-9))
        .map(|t| ((t * 1e9).round() as u64, format!("{t:.digits$}")))
        .collect()
}

/// What a bar of several windows says: how many, when, and its longest.
fn bar_title(ws: &[&Window]) -> String {
    // The earliest of the longest, as `Figures::worst` picks.
    let longest = ws
        .iter()
        .max_by_key(|w| (w.duration_ns(), std::cmp::Reverse(w.start_ns)));
    match (ws, longest) {
        ([w], _) => window_title(w),
        ([first, ..], Some(longest)) => format!(
            "{} {}s on {} between {} and {}, too close to draw apart; the longest: {}",
            ws.len(),
            first.kind.as_str(),
            first.subject,
            secs(first.start_ns),
            secs(ws.iter().map(|w| w.end_ns).max().unwrap_or(first.end_ns)),
            window_title(longest)
        ),
        _ => String::new(),
    }
}

/// The time axis and fault bands every chart shares.
pub struct Frame {
    /// The run's end (ns): the right edge.
    t_max: u64,
    /// The bands drawn: the faults, or past [`MAX_BANDS`] their union.
    bands: Vec<FaultBand>,
}

impl Frame {
    /// The frame of a run ending at `t_max` with `bands`. Every chart draws every band, so past
    /// [`MAX_BANDS`] they are drawn as their union (bands less than a pixel apart joined), each
    /// labelled with how many faults of which kinds it holds.
    pub fn new(t_max: u64, bands: &[FaultBand]) -> Frame {
        let t_max = t_max.max(1);
        if bands.len() <= MAX_BANDS {
            return Frame {
                t_max,
                bands: bands.to_vec(),
            };
        }
        let pixel_ns = t_max / (W - LEFT - RIGHT) as u64;
        let mut sorted: Vec<&FaultBand> = bands.iter().collect();
        sorted.sort_by_key(|b| b.start_ns);
        let mut union: Vec<(u64, u64, BTreeMap<&str, usize>)> = Vec::new();
        for b in sorted {
            let kind = b.label.split(' ').next().unwrap_or_default();
            match union.last_mut() {
                Some((_, end, kinds)) if b.start_ns <= end.saturating_add(pixel_ns) => {
                    *end = (*end).max(b.end_ns);
                    *kinds.entry(kind).or_default() += 1;
                }
                _ => union.push((b.start_ns, b.end_ns, [(kind, 1)].into())),
            }
        }
        let bands = union
            .into_iter()
            .map(|(start_ns, end_ns, kinds)| {
                let n: usize = kinds.values().sum();
                let each: Vec<String> = kinds.iter().map(|(k, c)| format!("{c} {k}")).collect();
                FaultBand {
                    start_ns,
                    end_ns,
                    label: format!("{n} faults ({})", each.join(", ")),
                }
            })
            .collect();
        Frame { t_max, bands }
    }

    fn x(&self, t: u64) -> f64 {
        LEFT + (t.min(self.t_max) as f64 / self.t_max as f64) * (W - LEFT - RIGHT)
    }

    /// An SVG of height `h` (the plot's bottom edge at `bottom`, time labels under it): the
    /// fault bands from [`TOP`] to `bottom`, the time axis, then `body`.
    fn svg(&self, class: &str, h: f64, bottom: f64, body: Markup) -> Markup {
        // Fault labels go in the first of three rows where they do not overlap.
        let mut row_ends: Vec<f64> = Vec::new();
        let placed: Vec<(f64, f64, f64, &str)> = self
            .bands
            .iter()
            .map(|b| {
                let (x0, x1) = (self.x(b.start_ns), self.x(b.end_ns));
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
            svg class=(class) viewBox=(format!("0 0 {W} {h}")) xmlns="http://www.w3.org/2000/svg" {
                @for (x0, x1, ly, label) in &placed {
                    rect x=(n1(*x0)) y=(TOP) width=(n1((x1 - x0).max(1.0))) height=(n1(bottom - TOP))
                        fill=(FAULT) fill-opacity="0.12" { title { (label) } }
                    line x1=(n1(*x0)) x2=(n1(*x0)) y1=(n1(ly + 2.0)) y2=(TOP)
                        stroke=(FAULT) stroke-opacity="0.4" {}
                    text x=(n1(x0 + 2.0)) y=(ly) { (label) }
                }
                line x1=(LEFT) y1=(n1(bottom)) x2=(W - RIGHT) y2=(n1(bottom)) stroke="#8c959f" {}
                @for (t, label) in time_ticks(self.t_max) {
                    text x=(n1(self.x(t))) y=(n1(bottom + 14.0)) text-anchor="middle" { (label) }
                }
                text x=(n1(LEFT + (W - LEFT - RIGHT) / 2.0)) y=(n1(h - 2.0)) text-anchor="middle" {
                    "time (s)"
                }
                (body)
            }
        }
    }

    /// A lane of window bars at `y` (10 high). A bar is never narrower than 2 px (a window of
    /// a few ms stays visible and hoverable), and windows less than a pixel apart are one bar
    /// (`data-n` says how many): a lane holds at most a few hundred bars, however long the run.
    fn lane(&self, y: f64, colour: &str, windows: &[&Window]) -> Markup {
        let mut sorted = windows.to_vec();
        sorted.sort_by_key(|w| w.start_ns);
        let mut bars: Vec<(f64, f64, Vec<&Window>)> = Vec::new();
        for w in sorted {
            let x0 = self.x(w.start_ns);
            let x1 = self.x(w.end_ns).max(x0 + 2.0);
            match bars.last_mut() {
                Some((_, end, ws)) if x0 <= *end + 1.0 => {
                    *end = end.max(x1);
                    ws.push(w);
                }
                _ => bars.push((x0, x1, vec![w])),
            }
        }
        html! {
            line x1=(LEFT) x2=(n1(W - RIGHT)) y1=(n1(y + 5.0)) y2=(n1(y + 5.0))
                stroke="#d0d7de" stroke-dasharray="2 3" {}
            @for (x0, x1, ws) in &bars {
                @let closed = ws.iter().all(|w| w.closed);
                rect class="window" data-kind=(ws[0].kind.as_str())
                    data-n=[(ws.len() > 1).then_some(ws.len())] x=(n1(*x0)) y=(n1(y))
                    width=(n1(x1 - x0)) height="10" fill=(colour)
                    fill-opacity=(if closed { "0.9" } else { "0.5" }) stroke=(colour) {
                    title { (bar_title(ws)) }
                }
            }
        }
    }
}

/// What one partition's chart shows.
#[derive(Default)]
pub struct Series<'f> {
    /// (time, offset) of acknowledged sends (committed, for transactions).
    pub acked: Vec<(u64, i64)>,
    /// (time, offset) of records consumers read.
    pub read: Vec<(u64, i64)>,
    /// Times of failed or indeterminate sends.
    pub failed: Vec<u64>,
    /// The last successful final read: (time, hwm).
    pub final_hwm: Option<(u64, i64)>,
    /// Finding marks: (time, offset, what).
    pub marks: Vec<(u64, Option<i64>, String)>,
    /// Its write and read windows.
    pub windows: Vec<&'f Window>,
}

/// One partition's chart: offsets over time, then its write and read window lanes.
pub fn partition(s: &Series, frame: &Frame) -> Markup {
    const PLOT_BOTTOM: f64 = 194.0;
    const WRITE_LANE: f64 = 208.0;
    const READ_LANE: f64 = 222.0;
    const BOTTOM: f64 = 234.0;
    const H: f64 = 264.0;
    let x = |t: u64| frame.x(t);
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
    let y = |o: i64| PLOT_BOTTOM - (o as f64 / max_off) * (PLOT_BOTTOM - TOP);
    let thin = |v: &[(u64, i64)], max: usize| -> Vec<(u64, i64)> {
        let step = v.len().div_ceil(max).max(1);
        v.iter().step_by(step).copied().collect()
    };
    // One tick per place on the axis, however many sends failed there.
    let failed: BTreeSet<String> = s.failed.iter().map(|t| n1(x(*t))).collect();
    let of = |kind: WindowKind| -> Vec<&Window> {
        s.windows
            .iter()
            .copied()
            .filter(|w| w.kind == kind)
            .collect()
    };
    let body = html! {
        line x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(PLOT_BOTTOM) stroke="#8c959f" {}
        line x1=(LEFT) y1=(PLOT_BOTTOM) x2=(W - RIGHT) y2=(PLOT_BOTTOM) stroke="#8c959f" {}
        text x="4" y=(n1((TOP + PLOT_BOTTOM) / 2.0))
            transform=(format!("rotate(-90 12 {:.1})", (TOP + PLOT_BOTTOM) / 2.0)) { "offset" }
        @for k in 0..=4u32 {
            @let off = (max_off * f64::from(k) / 4.0).round() as i64;
            text x=(n1(LEFT - 4.0)) y=(n1(y(off) + 3.0)) text-anchor="end" { (off) }
            line x1=(LEFT) x2=(n1(W - RIGHT)) y1=(n1(y(off))) y2=(n1(y(off)))
                stroke="#d0d7de" stroke-opacity="0.5" {}
        }
        // Acks first, reads on top (they trail the acks at the same offsets), as small open
        // squares so both stay visible.
        g fill=(ACK) {
            @for (t, o) in thin(&s.acked, MAX_ACKS) {
                circle cx=(n1(x(t))) cy=(n1(y(o))) r="1.6" {}
            }
        }
        g fill="none" stroke=(READ) stroke-width="0.8" {
            @for (t, o) in thin(&s.read, MAX_READS) {
                rect x=(n1(x(t) - 1.5)) y=(n1(y(o) - 1.5)) width="3" height="3" {}
            }
        }
        @if let Some((t, hwm)) = s.final_hwm {
            line x1=(LEFT) x2=(n1(x(t))) y1=(n1(y(hwm))) y2=(n1(y(hwm)))
                stroke="#57606a" stroke-dasharray="4 3" {
                title { "final read: hwm " (hwm) }
            }
        }
        g stroke=(FAILED) {
            @for tick in &failed {
                line x1=(tick) x2=(tick) y1=(n1(PLOT_BOTTOM + 2.0)) y2=(n1(PLOT_BOTTOM + 9.0)) {}
            }
        }
        g fill="none" stroke=(FINDING) stroke-width="2" {
            @for (t, o, why) in &s.marks {
                circle cx=(n1(x(*t))) cy=(n1(o.map(y).unwrap_or(PLOT_BOTTOM))) r="5" {
                    title { (why) }
                }
            }
        }
        text x=(n1(LEFT - 4.0)) y=(n1(WRITE_LANE + 8.0)) text-anchor="end" { "write" }
        (frame.lane(WRITE_LANE, WRITE_WINDOW, &of(WindowKind::Write)))
        text x=(n1(LEFT - 4.0)) y=(n1(READ_LANE + 8.0)) text-anchor="end" { "read" }
        (frame.lane(READ_LANE, READ_WINDOW, &of(WindowKind::Read)))
    };
    frame.svg("timeline", H, BOTTOM, body)
}

/// One lane per consumer group with its stalls (`stalls` by group).
pub fn groups(stalls: &BTreeMap<&str, Vec<&Window>>, frame: &Frame) -> Markup {
    // Each lane: the group's name (names are long: over the lane, not in the margin), its bars.
    const LANE: f64 = 26.0;
    let bottom = TOP + 4.0 + LANE * stalls.len() as f64;
    let body = html! {
        @for (i, (group, list)) in stalls.iter().enumerate() {
            @let y = TOP + 4.0 + LANE * i as f64;
            text x=(n1(LEFT + 2.0)) y=(n1(y + 9.0)) { (group) }
            (frame.lane(y + 12.0, GROUP_STALL, list))
        }
    };
    frame.svg("groups", bottom + 30.0, bottom, body)
}

/// The latency chart's two series.
#[derive(Clone, Copy)]
enum Measure {
    Produce,
    EndToEnd,
}

impl Measure {
    const ALL: [Measure; 2] = [Measure::Produce, Measure::EndToEnd];

    fn name(self) -> &'static str {
        match self {
            Measure::Produce => "produce ack",
            Measure::EndToEnd => "end to end",
        }
    }

    fn colour(self) -> &'static str {
        match self {
            Measure::Produce => ACK,
            Measure::EndToEnd => READ,
        }
    }

    fn of(self, b: &LatencyBucket) -> Latency {
        match self {
            Measure::Produce => b.produce,
            Measure::EndToEnd => b.end_to_end,
        }
    }
}

/// How many p99 points [`latency`] draws for `over`.
pub fn latency_points(over: &LatencyOverTime) -> usize {
    over.buckets
        .iter()
        .map(|b| Measure::ALL.iter().filter(|m| m.of(b).count > 0).count())
        .sum()
}

/// Produce-ack and end-to-end latency over time: per bucket, its p99 (dots joined within runs of
/// adjacent buckets; a gap is a stretch with nothing measured) and its max (rings), on a
/// logarithmic axis so a steady few ms and a fault's seconds both show.
pub fn latency(over: &LatencyOverTime, frame: &Frame) -> Markup {
    const BOTTOM: f64 = 220.0;
    const H: f64 = 250.0;
    let values = over.buckets.iter().flat_map(|b| {
        Measure::ALL
            .iter()
            .map(|m| m.of(b))
            .filter(|l| l.count > 0)
            .flat_map(|l| [l.p99_ns, l.max_ns])
    });
    // Decades around the values: at least one, from 100 µs up.
    let (lo, hi) = values.fold((u64::MAX, 0u64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let decade = |v: u64| (v.max(100_000) as f64).log10();
    let (lo, hi) = if hi == 0 {
        (6.0, 9.0)
    } else {
        let (l, h) = (decade(lo).floor(), decade(hi).ceil());
        (l, h.max(l + 1.0))
    };
    let y = |ns: u64| BOTTOM - ((decade(ns) - lo) / (hi - lo)) * (BOTTOM - TOP);
    let mid = |b: &LatencyBucket| frame.x(b.start_ns + over.bucket_ns / 2);
    // As many decimals as the bucket needs: `12.5–13.0 s`, `1.02–1.04 s`.
    let digits = (9 - (over.bucket_ns.max(1) as f64).log10().floor() as i32).max(0) as usize;
    let window = |b: &LatencyBucket| {
        format!(
            "{:.digits$}–{:.digits$} s",
            b.start_ns as f64 / 1e9,
            (b.start_ns + over.bucket_ns) as f64 / 1e9
        )
    };
    let body = html! {
        line x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(BOTTOM) stroke="#8c959f" {}
        text x="4" y=(n1((TOP + BOTTOM) / 2.0))
            transform=(format!("rotate(-90 12 {:.1})", (TOP + BOTTOM) / 2.0)) { "latency" }
        @for d in (lo as i32)..=(hi as i32) {
            @let ns = 10f64.powi(d) as u64;
            // The floor holds everything below it, 0 included.
            text x=(n1(LEFT - 4.0)) y=(n1(y(ns) + 3.0)) text-anchor="end" {
                @if d == lo as i32 { "≤" } (human(ns))
            }
            line x1=(LEFT) x2=(n1(W - RIGHT)) y1=(n1(y(ns))) y2=(n1(y(ns)))
                stroke="#d0d7de" stroke-opacity="0.5" {}
        }
        @for series in Measure::ALL {
            @let (name, colour) = (series.name(), series.colour());
            @let measure = |b: &LatencyBucket| series.of(b);
            @let points: Vec<&LatencyBucket> =
                over.buckets.iter().filter(|b| measure(b).count > 0).collect();
            // A line through each run of adjacent buckets; a p99 of 0 (end to end: read before
            // the ack came) sits on the floor, out of the lines, which would only zig-zag to it.
            @let above: Vec<&LatencyBucket> =
                points.iter().copied().filter(|b| measure(b).p99_ns > 0).collect();
            @for run in above.chunk_by(|a, b| a.start_ns + over.bucket_ns == b.start_ns) {
                @if run.len() > 1 {
                    polyline fill="none" stroke=(colour) stroke-width="1.2" points=(run
                        .iter()
                        .map(|b| format!("{:.1},{:.1}", mid(b), y(measure(b).p99_ns)))
                        .collect::<Vec<_>>()
                        .join(" ")) {}
                }
            }
            g fill="none" stroke=(colour) stroke-opacity="0.6" {
                @for b in &points {
                    @let l = measure(b);
                    circle class="max" cx=(n1(mid(b))) cy=(n1(y(l.max_ns))) r="2.5" {
                        title { (name) ", " (window(b)) ": max " (human(l.max_ns)) }
                    }
                }
            }
            g fill=(colour) {
                @for b in &points {
                    @let l = measure(b);
                    circle class="p99" cx=(n1(mid(b))) cy=(n1(y(l.p99_ns))) r="2" {
                        title {
                            (name) ", " (window(b)) ": " (l.count) " records, p50 "
                            (human(l.p50_ns)) ", p99 " (human(l.p99_ns)) ", max " (human(l.max_ns))
                        }
                    }
                }
            }
        }
    };
    frame.svg("latency", H, BOTTOM, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn band(start_ns: u64, end_ns: u64, label: &str) -> FaultBand {
        FaultBand {
            start_ns,
            end_ns,
            label: label.into(),
        }
    }

    #[test]
    fn time_ticks_are_round_seconds() {
        let labels =
            |t_max: u64| -> Vec<String> { time_ticks(t_max).into_iter().map(|(_, l)| l).collect() };
        assert_eq!(labels(76_300_000_000), ["0", "20", "40", "60"]);
        assert_eq!(labels(19_700_000_000), ["0", "5", "10", "15"]);
        assert_eq!(labels(45_000_000_000), ["0", "10", "20", "30", "40"]);
        assert_eq!(labels(3_500_000_000), ["0", "1", "2", "3"]);
        assert_eq!(
            labels(20_000_000),
            ["0.000", "0.005", "0.010", "0.015", "0.020"]
        );
        assert_eq!(
            time_ticks(10_000_000_000)[5],
            (10_000_000_000, "10".to_string())
        );
    }

    #[test]
    fn past_max_bands_a_frame_draws_their_union_saying_what_it_holds() {
        let few: Vec<FaultBand> = (0..MAX_BANDS as u64)
            .map(|i| band(i * 6, i * 6 + 5, "crash b"))
            .collect();
        assert_eq!(Frame::new(1000, &few).bands, few);
        // 150 bands a pixel apart at most, then one far off: two bands.
        let mut many: Vec<FaultBand> = (0..150u64)
            .map(|i| {
                band(
                    i * 6,
                    i * 6 + 5,
                    if i % 2 == 0 { "crash b" } else { "pause b" },
                )
            })
            .collect();
        many.push(band(5000, 6000, "zone-loss zone 1"));
        let frame = Frame::new(10_000, &many);
        let labels: Vec<&str> = frame.bands.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(
            labels,
            ["150 faults (75 crash, 75 pause)", "1 faults (1 zone-loss)"]
        );
        assert_eq!((frame.bands[0].start_ns, frame.bands[0].end_ns), (0, 899));
    }

    #[test]
    fn windows_less_than_a_pixel_apart_are_one_bar_that_says_how_many() {
        let w = |start_ms: u64, len_ms: u64, closed: bool| Window {
            kind: WindowKind::Write,
            subject: "t/0".into(),
            start_ns: start_ms * 1_000_000,
            end_ns: (start_ms + len_ms) * 1_000_000,
            closed,
            fault: None,
        };
        // 100 s across 920 px: a pixel is ~109 ms.
        let frame = Frame::new(100_000_000_000, &[]);
        let ws = [
            w(10_000, 15, true),
            w(10_030, 15, true),
            w(10_060, 15, false),
            w(50_000, 2000, true),
        ];
        let lane = frame
            .lane(0.0, WRITE_WINDOW, &ws.iter().collect::<Vec<_>>())
            .into_string();
        assert_eq!(lane.matches("<rect class=\"window\"").count(), 2, "{lane}");
        assert!(lane.contains("data-n=\"3\""), "{lane}");
        assert!(lane.contains(
            "<title>3 write-windows on t/0 between 10.000 s and 10.075 s, too close to draw \
             apart; the longest: write-window on t/0: 0.015 s from 10.000 s (no fault)</title>"
        ));
        // One never closed among them: faded.
        assert_eq!(lane.matches("fill-opacity=\"0.5\"").count(), 1);
        assert!(
            lane.contains("<title>write-window on t/0: 2.000 s from 50.000 s (no fault)</title>")
        );
    }
}
