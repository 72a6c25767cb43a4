//! Typed command-line values: backends, scenarios, bugs, seed ranges and shards. Each parser
//! reads the one list of what exists (the scenario presets, `Bug::ALL`), so `--help`, the
//! accepted values and the error for a wrong one never drift apart.

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, ValueEnum};
use riptide_broker::bugs::Bug;
use riptide_checker::figures::{slo_findings, Figures, Slo};
use riptide_checker::{Anomaly, Report};
use riptide_sim::scenario::{Preset, PRESETS};
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt;
use std::time::Duration;

/// A simulation backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// Steps the world by ticks of simulated time.
    Turmoil,
    /// Jumps to the next event; the `--cfg madsim` build of riptide.
    Madsim,
}

impl Backend {
    /// The backend this binary runs itself.
    pub fn own() -> Backend {
        match riptide_sim::backend::NAME {
            "madsim" => Backend::Madsim,
            _ => Backend::Turmoil,
        }
    }
}

/// `--scenario`: one of the presets, listed with what each exercises.
pub fn scenario() -> impl TypedValueParser<Value = &'static Preset> {
    PossibleValuesParser::new(
        PRESETS
            .iter()
            .map(|p| PossibleValue::new(p.name).help(p.about)),
    )
    .map(|name| Preset::get(&name).expect("clap accepted only preset names"))
}

/// `--bug`: one of the planted bugs, listed with what each does wrong.
pub fn bug() -> impl TypedValueParser<Value = Bug> {
    PossibleValuesParser::new(
        Bug::ALL
            .iter()
            .map(|b| PossibleValue::new(b.name()).help(b.describe())),
    )
    .map(|name| name.parse::<Bug>().expect("clap accepted only bug names"))
}

/// An anomaly kind, listed with its severity class.
pub fn anomaly() -> impl TypedValueParser<Value = Anomaly> {
    PossibleValuesParser::new(
        Anomaly::ALL
            .iter()
            .map(|a| PossibleValue::new(a.as_str()).help(a.severity().describe())),
    )
    .map(|name| Anomaly::from_name(&name).expect("clap accepted only anomaly names"))
}

/// What every command that gives a verdict takes: `--allow KIND` and `--max-realtime-lag`.
#[derive(Args, Debug, Clone, Default)]
pub struct VerdictArgs {
    /// Allow findings of this kind (repeatable, as Jepsen's allowed error types): they are
    /// printed apart and do not fail the verdict, so a run whose findings are all allowed
    /// exits 0.
    #[arg(long = "allow", value_name = "KIND", value_parser = anomaly())]
    pub kinds: Vec<Anomaly>,
    /// Fail (a `realtime-lag` finding, freshness class) when a consumer that kept polling a
    /// partition went longer than this without seeing a record known to exist (e.g. `5s`).
    /// Without it the worst lag per partition is reported as a figure only.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub max_realtime_lag: Option<Duration>,
    /// Bound a figure of the run (repeatable): `write-window=5s`, `read-window=5s`,
    /// `group-stall=10s`, `e2e-p99=2s`, `produce-p99=800ms`. Each window above its bound (or
    /// the run's p99 above its) is an `slo-exceeded` finding (freshness class) and fails the
    /// run; without bounds the figures are reported and nothing fails.
    #[arg(long = "slo", value_name = "KIND=DURATION")]
    pub slos: Vec<Slo>,
}

impl VerdictArgs {
    pub fn set(&self) -> BTreeSet<Anomaly> {
        self.kinds.iter().copied().collect()
    }

    /// `report` with the allowed kinds and the bounds' findings on `figures` (asked for only
    /// when there are bounds).
    pub fn judge(&self, report: Report, figures: impl FnOnce() -> Figures) -> Report {
        let report = report.allowing(&self.set());
        if self.slos.is_empty() {
            return report;
        }
        report.adding(slo_findings(&figures(), &self.slos))
    }

    /// The realtime-lag bound in nanoseconds, as the checker takes it.
    pub fn max_realtime_lag_ns(&self) -> Option<u64> {
        self.max_realtime_lag
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    /// The same, as arguments for a child or a repro line.
    pub fn flags(&self) -> Vec<OsString> {
        let mut flags: Vec<OsString> = self
            .set()
            .into_iter()
            .flat_map(|a| ["--allow".into(), a.as_str().into()])
            .collect();
        for slo in &self.slos {
            flags.push("--slo".into());
            flags.push(slo.to_string().into());
        }
        if let Some(d) = self.max_realtime_lag {
            flags.push("--max-realtime-lag".into());
            flags.push(
                humantime::format_duration(d)
                    .to_string()
                    .replace(' ', "")
                    .into(),
            );
        }
        flags
    }
}

/// `90` (seconds), `90s`, `2m`, `1500ms`, `1m 30s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|e| format!("not a duration: '{s}' ({e})"))
}

/// `--seeds A..B` (B excluded) or `A..=B`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seeds {
    pub first: u64,
    /// Exclusive; `first >= end` is empty.
    pub end: u64,
}

impl Seeds {
    pub fn iter(self) -> impl Iterator<Item = u64> {
        self.first..self.end
    }
}

pub fn parse_seeds(spec: &str) -> Result<Seeds, String> {
    let bad = || format!("takes A..B or A..=B (A, B whole numbers), not '{spec}'");
    let num = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
    if let Some((a, b)) = spec.split_once("..=") {
        let end = num(b)?.checked_add(1).ok_or_else(bad)?;
        return Ok(Seeds {
            first: num(a)?,
            end,
        });
    }
    let (a, b) = spec.split_once("..").ok_or_else(bad)?;
    Ok(Seeds {
        first: num(a)?,
        end: num(b)?,
    })
}

/// `--shard I/N`: the seeds whose position modulo N is I-1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub fn holds(self, position: usize) -> bool {
        position % self.count == self.index - 1
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

pub fn parse_shard(spec: &str) -> Result<Shard, String> {
    let bad = || format!("takes I/N with 1 <= I <= N, not '{spec}'");
    let (i, n) = spec.split_once('/').ok_or_else(bad)?;
    let (index, count): (usize, usize) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if count == 0 || index == 0 || index > count {
        return Err(bad());
    }
    Ok(Shard { index, count })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_parse_both_forms_and_refuse_others() {
        let s = parse_seeds("3..=5").unwrap();
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![3, 4, 5]);
        assert_eq!(parse_seeds("3..5").unwrap().iter().count(), 2);
        assert_eq!(parse_seeds("5..5").unwrap().iter().count(), 0);
        for bad in [
            "",
            "5",
            "a..b",
            "1..=x",
            "1...3",
            "0..=18446744073709551615",
        ] {
            assert!(parse_seeds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shards_partition_positions() {
        let shards: Vec<Shard> = (1..=3)
            .map(|i| parse_shard(&format!("{i}/3")).unwrap())
            .collect();
        for pos in 0..30 {
            assert_eq!(shards.iter().filter(|s| s.holds(pos)).count(), 1);
        }
        for bad in ["0/3", "4/3", "1/0", "1", "a/b"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn own_backend_round_trips() {
        let own = Backend::own().to_possible_value().unwrap();
        assert_eq!(own.get_name(), riptide_sim::backend::NAME);
    }
}
