//! The world builder: a scenario, a seed and the brokers to put in it, run to a verdict.

use crate::factory::{BrokerFactory, ReferenceBroker};
use crate::run::RunOutcome;
use crate::scenario::Scenario;
use riptide_faults::FaultMix;
use std::sync::Arc;
use std::time::Duration;

/// One seeded world: brokers in zones sharing an object store, the scenario's clients, and a
/// nemesis drawing faults from the seed; [`Simulation::run`] runs it on this build's backend
/// (turmoil, or madsim in `--cfg madsim` builds), checks the history and returns the verdict,
/// the report and the history. The same seed gives the same run, trace hash included.
///
/// Brokers are [`ReferenceBroker`]s unless [`Simulation::brokers`] names another factory.
///
/// ```
/// use riptide_sim::{Scenario, Simulation};
///
/// let outcome = Simulation::new(Scenario::named("crashes").unwrap())
///     .cluster(2, 2)
///     .clients(1, 1)
///     .duration(std::time::Duration::from_secs(6))
///     .seed(7)
///     .run()
///     .unwrap();
/// assert!(outcome.passed(), "{}", outcome.report.to_text());
/// assert!(!outcome.history.ops.is_empty());
/// // The repro line for this run: `riptide sim --seed 7 --scenario crashes`, with the same
/// // changes in a scenario file.
/// ```
#[derive(Clone)]
pub struct Simulation {
    scenario: Scenario,
    seed: u64,
    brokers: Option<Arc<dyn BrokerFactory>>,
}

impl Simulation {
    /// A world shaped by `scenario` (see [`Scenario::named`] for the presets), seed 1.
    pub fn new(scenario: Scenario) -> Simulation {
        Simulation {
            scenario,
            seed: 1,
            brokers: None,
        }
    }

    /// The seed every random choice of the run derives from.
    pub fn seed(mut self, seed: u64) -> Simulation {
        self.seed = seed;
        self
    }

    /// Runs the brokers `factory` starts instead of riptide's reference broker.
    pub fn brokers(mut self, factory: impl BrokerFactory) -> Simulation {
        self.brokers = Some(Arc::new(factory));
        self
    }

    /// `brokers` brokers spread over `zones` zones (`broker-i` in `zone-{i % zones}`).
    pub fn cluster(mut self, brokers: usize, zones: usize) -> Simulation {
        self.scenario.brokers = brokers;
        self.scenario.zones = zones;
        self
    }

    /// How many producers and (assigned, not group) consumers run.
    pub fn clients(mut self, producers: usize, consumers: usize) -> Simulation {
        self.scenario.producers = producers;
        self.scenario.consumers = consumers;
        self
    }

    /// The fault kinds the nemesis draws from.
    pub fn faults(mut self, faults: FaultMix) -> Simulation {
        self.scenario.faults = faults;
        self
    }

    /// Simulated time of workload (whole seconds); the run then heals, settles and reads
    /// everything back.
    pub fn duration(mut self, workload: Duration) -> Simulation {
        self.scenario.duration_s = workload.as_secs().max(1);
        self
    }

    /// The scenario as configured so far; [`Simulation::scenario_mut`] changes any field.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// Every field of the scenario, for what the builder has no method for.
    pub fn scenario_mut(&mut self) -> &mut Scenario {
        &mut self.scenario
    }

    /// Runs the world to its verdict. `Err` is a harness failure (the world could not be
    /// run), not a finding: findings are in the outcome's report.
    pub fn run(&self) -> anyhow::Result<RunOutcome> {
        let factory = self
            .brokers
            .clone()
            .unwrap_or_else(|| Arc::new(ReferenceBroker::for_scenario(&self.scenario)));
        crate::run::run_with(self.seed, &self.scenario, factory)
    }

    /// Runs each of `seeds` in turn and returns the first run that did not pass, if any: a
    /// seeded sweep for a test.
    pub fn first_failure(
        &self,
        seeds: impl IntoIterator<Item = u64>,
    ) -> anyhow::Result<Option<RunOutcome>> {
        for seed in seeds {
            let outcome = self.clone().seed(seed).run()?;
            if !outcome.passed() {
                return Ok(Some(outcome));
            }
        }
        Ok(None)
    }
}
