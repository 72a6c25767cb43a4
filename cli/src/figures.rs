//! The figures of runs (see `riptide_checker::figures`) as `sim` and `sweep` report them: one
//! run's windows and latencies, and the distribution of windows across the seeds of a sweep,
//! by window kind and fault kind. A sweep's JSON carries every window (seed, kind, fault,
//! length), so `riptide merge` rebuilds the distributions of shards exactly.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use riptide_checker::figures::{Figures, Latency, Phase, WindowKind};
use serde::{Deserialize, Serialize};

/// One window as a sweep keeps it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WindowSample {
    pub kind: WindowKind,
    /// The fault kind it is attributed to; `none` if none.
    pub fault: String,
    pub duration_ns: u64,
    /// False when it never closed.
    pub closed: bool,
}

/// What a sweep keeps of one run's figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SeedFigures {
    pub windows: Vec<WindowSample>,
    pub produce: Latency,
    pub end_to_end: Latency,
}

impl SeedFigures {
    pub fn of(f: &Figures) -> SeedFigures {
        SeedFigures {
            windows: f
                .windows
                .iter()
                .map(|w| WindowSample {
                    kind: w.kind,
                    fault: w.fault.clone().unwrap_or_else(|| "none".into()),
                    duration_ns: w.duration_ns(),
                    closed: w.closed,
                })
                .collect(),
            produce: f.produce_all,
            end_to_end: f.end_to_end_all,
        }
    }
}

/// One (window kind, fault kind)'s windows across seeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowDistribution {
    pub windows: usize,
    /// Seeds with at least one.
    pub seeds: usize,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
    /// The seed with the longest (the smallest such seed).
    pub max_seed: u64,
    /// Windows that never closed.
    pub unclosed: usize,
}

/// Distributions by `"{window kind}/{fault kind}"`, from (seed, window) samples.
pub fn distributions(samples: &[(u64, WindowSample)]) -> BTreeMap<String, WindowDistribution> {
    let mut by: BTreeMap<String, Vec<(u64, &WindowSample)>> = BTreeMap::new();
    for (seed, w) in samples {
        by.entry(format!("{}/{}", w.kind.as_str(), w.fault))
            .or_default()
            .push((*seed, w));
    }
    by.into_iter()
        .map(|(key, list)| {
            let lat = Latency::of(list.iter().map(|(_, w)| w.duration_ns).collect());
            let max_seed = list
                .iter()
                .filter(|(_, w)| w.duration_ns == lat.max_ns)
                .map(|(s, _)| *s)
                .min()
                .unwrap_or(0);
            let mut seeds: Vec<u64> = list.iter().map(|(s, _)| *s).collect();
            seeds.sort_unstable();
            seeds.dedup();
            let d = WindowDistribution {
                windows: list.len(),
                seeds: seeds.len(),
                p50_ns: lat.p50_ns,
                p99_ns: lat.p99_ns,
                max_ns: lat.max_ns,
                max_seed,
                unclosed: list.iter().filter(|(_, w)| !w.closed).count(),
            };
            (key, d)
        })
        .collect()
}

fn s(ns: u64) -> String {
    format!("{:.2} s", ns as f64 / 1e9)
}

fn ms(ns: u64) -> String {
    format!("{:.1} ms", ns as f64 / 1e6)
}

fn latency_line(l: &Latency) -> String {
    if l.count == 0 {
        return "none".into();
    }
    format!(
        "p50 {}, p99 {}, max {} ({} records)",
        ms(l.p50_ns),
        ms(l.p99_ns),
        ms(l.max_ns),
        l.count
    )
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Steady => "steady",
        Phase::Fault => "during a fault",
        Phase::AfterHeal => "after a heal",
    }
}

/// One run's figures for people: windows by kind and fault, then latencies by phase.
pub fn run_text(f: &Figures) -> String {
    let mut out = String::from("figures (windows of unavailability, latency):\n");
    if f.windows.is_empty() {
        out.push_str("  no window: every attempt to write, read or consume got through\n");
    }
    let mut by: BTreeMap<(WindowKind, String), Vec<u64>> = BTreeMap::new();
    for w in &f.windows {
        let fault = w.fault.clone().unwrap_or_else(|| "no fault".into());
        by.entry((w.kind, fault)).or_default().push(w.duration_ns());
    }
    for ((kind, fault), durations) in &by {
        let worst = f
            .windows
            .iter()
            .filter(|w| w.kind == *kind && w.fault.as_deref().unwrap_or("no fault") == fault)
            .max_by_key(|w| (w.duration_ns(), std::cmp::Reverse(w.start_ns)));
        let _ = write!(
            out,
            "  {:<13} {:<16} {:>3} window(s), total {}",
            kind.as_str(),
            fault,
            durations.len(),
            s(durations.iter().sum())
        );
        if let Some(w) = worst {
            let open = if w.closed { "" } else { ", never closed" };
            let _ = write!(
                out,
                ", longest {} on {} from {:.3} s{open}",
                s(w.duration_ns()),
                w.subject,
                w.start_ns as f64 / 1e9
            );
        }
        out.push('\n');
    }
    for (name, by_phase) in [("produce ack", &f.produce), ("end to end ", &f.end_to_end)] {
        for (phase, l) in by_phase {
            let _ = writeln!(
                out,
                "  {name} {:<15} {}",
                phase_name(*phase),
                latency_line(l)
            );
        }
    }
    out
}

/// A sweep's distributions for people.
pub fn sweep_text(d: &BTreeMap<String, WindowDistribution>) -> String {
    if d.is_empty() {
        return "windows      none in any seed\n".into();
    }
    let mut out = String::from("windows      across seeds, by kind/fault:\n");
    let width = d.keys().map(|k| k.len()).max().unwrap_or(0);
    for (key, w) in d {
        let unclosed = match w.unclosed {
            0 => String::new(),
            n => format!(", {n} never closed"),
        };
        let _ = writeln!(
            out,
            "  {key:<width$}  {:>5} in {:>4} seeds  p50 {}  p99 {}  max {} (seed {}){unclosed}",
            w.windows,
            w.seeds,
            s(w.p50_ns),
            s(w.p99_ns),
            s(w.max_ns),
            w.max_seed
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(kind: WindowKind, fault: &str, ms: u64) -> WindowSample {
        WindowSample {
            kind,
            fault: fault.into(),
            duration_ns: ms * 1_000_000,
            closed: true,
        }
    }

    #[test]
    fn distributions_group_by_kind_and_fault_and_name_the_worst_seed() {
        let samples = vec![
            (3, w(WindowKind::Write, "crash", 100)),
            (1, w(WindowKind::Write, "crash", 900)),
            (2, w(WindowKind::Write, "crash", 900)),
            (2, w(WindowKind::Write, "crash", 50)),
            (4, w(WindowKind::GroupStall, "none", 10)),
        ];
        let d = distributions(&samples);
        assert_eq!(d.len(), 2);
        let crash = &d["write-window/crash"];
        assert_eq!((crash.windows, crash.seeds), (4, 3));
        assert_eq!((crash.max_ns, crash.max_seed), (900_000_000, 1));
        assert_eq!(crash.p50_ns, 100_000_000);
        assert_eq!(d["group-stall/none"].windows, 1);
        // Order of samples does not matter: shards merge to the same distributions.
        let mut reversed = samples.clone();
        reversed.reverse();
        assert_eq!(distributions(&reversed), d);
    }
}
