//! Simulation speed on the standard scenario: simulated seconds per wall
//! second and seeds per minute, on one thread. Prints figures; asserts nothing
//! about time. `cargo bench -p riptide-sim` (SEEDS=N to change the count,
//! SCENARIOS=a,b to choose scenarios) runs turmoil; the same command with
//! `RUSTFLAGS="--cfg madsim --cfg tokio_unstable"` and `--target-dir
//! target/madsim` runs madsim (`ci/bench-backends.sh` compares the two).

// A benchmark times the simulation from outside it, in real wall time.
#![allow(clippy::disallowed_methods)]

use riptide_sim::Scenario;
use std::time::{Duration, Instant};

fn main() {
    let seeds: u64 = std::env::var("SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let chosen: Vec<String> = match std::env::var("SCENARIOS") {
        Ok(list) => list.split(',').map(str::to_string).collect(),
        Err(_) => Scenario::names().map(str::to_string).collect(),
    };
    println!("backend {}", riptide_sim::backend::NAME);
    for name in &chosen {
        let scenario = Scenario::named(name).expect("named scenario");
        let name = name.as_str();
        let wall = Instant::now();
        let mut simulated = Duration::ZERO;
        let mut ops = 0usize;
        let mut failed = 0;
        for seed in 1..=seeds {
            match riptide_sim::run(seed, &scenario) {
                Ok(o) => {
                    simulated += o.sim_time;
                    ops += o.history.ops.len();
                    failed += usize::from(!o.passed());
                }
                Err(e) => panic!("seed {seed}: harness error: {e:#}"),
            }
        }
        let wall = wall.elapsed().as_secs_f64();
        println!(
            "scenario {name:<12} {seeds} seeds  {:.1}x real time  {:.1} seeds/min  {:.0} ops/s  ({} failing)",
            simulated.as_secs_f64() / wall,
            seeds as f64 * 60.0 / wall,
            ops as f64 / wall,
            failed
        );
    }
}
