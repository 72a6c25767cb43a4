//! Shrinking a failing run: drop faults, shorten the workload and remove
//! clients while the run still fails, and return the smallest scenario found.

use crate::run::{run, RunOutcome};
use crate::scenario::Scenario;

/// The outcome of shrinking a failing run.
pub struct Shrunk {
    /// The smallest failing scenario (its faults fixed).
    pub scenario: Scenario,
    /// Its run.
    pub outcome: RunOutcome,
    /// Faults in the original run's schedule.
    pub faults_before: usize,
    /// Runs it took.
    pub runs: usize,
}

/// `None` if the seed passes. Every candidate is a full deterministic run.
pub fn shrink(seed: u64, scenario: &Scenario) -> anyhow::Result<Option<Shrunk>> {
    let first = run(seed, scenario)?;
    if first.passed() {
        return Ok(None);
    }
    let faults_before = first.schedule.faults.len();
    let mut best = scenario.clone();
    best.fixed_faults = Some(first.schedule.faults.clone());
    let mut outcome = first;
    let mut runs = 1;
    let mut try_candidate = |candidate: Scenario, best: &mut Scenario, outcome: &mut RunOutcome| {
        runs += 1;
        match run(seed, &candidate) {
            Ok(o) if !o.passed() => {
                *best = candidate;
                *outcome = o;
                true
            }
            _ => false,
        }
    };
    // Faults, one at a time, until none can go.
    loop {
        let faults = best.fixed_faults.clone().unwrap_or_default();
        let mut removed = false;
        for i in 0..faults.len() {
            let mut fewer = faults.clone();
            fewer.remove(i);
            let candidate = Scenario {
                fixed_faults: Some(fewer),
                ..best.clone()
            };
            if try_candidate(candidate, &mut best, &mut outcome) {
                removed = true;
                break;
            }
        }
        if !removed {
            break;
        }
    }
    // Fewer clients and a shorter workload (faults past its end go too).
    while best.producers > 1 {
        let candidate = Scenario {
            producers: best.producers - 1,
            ..best.clone()
        };
        if !try_candidate(candidate, &mut best, &mut outcome) {
            break;
        }
    }
    while best.consumers > 0 {
        let candidate = Scenario {
            consumers: best.consumers - 1,
            ..best.clone()
        };
        if !try_candidate(candidate, &mut best, &mut outcome) {
            break;
        }
    }
    while best.duration_s > 4 {
        let duration_s = best.duration_s * 2 / 3;
        let faults = best.fixed_faults.clone().unwrap_or_default();
        let candidate = Scenario {
            duration_s,
            fixed_faults: Some(
                faults
                    .into_iter()
                    .filter(|f| f.end_ms.unwrap_or(f.start_ms) < duration_s * 1000)
                    .collect(),
            ),
            ..best.clone()
        };
        if !try_candidate(candidate, &mut best, &mut outcome) {
            break;
        }
    }
    Ok(Some(Shrunk {
        scenario: best,
        outcome,
        faults_before,
        runs,
    }))
}
