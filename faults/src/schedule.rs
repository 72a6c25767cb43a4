//! Fault kinds and the nemesis: a schedule of faults drawn from a seed.
//! The schedule is data; the simulator (or the certification proxy) applies it.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fault {
    /// No message crosses between the two groups of hosts.
    Partition { a: Vec<String>, b: Vec<String> },
    /// Messages from `from` to `to` are lost; the other direction works.
    PartitionOneway { from: Vec<String>, to: Vec<String> },
    /// The broker process dies (memory lost) and restarts at heal.
    Crash { broker: String },
    /// The broker process stops running (a GC pause, a frozen VM) and
    /// resumes at heal with its memory intact and its messages delivered late.
    Pause { broker: String },
    /// Calls from the broker fail with 5xx errors at this rate.
    StoreErrors { broker: String, rate: f64 },
    /// Writes from the broker are applied but the reply is lost at this rate.
    StoreAmbiguous { broker: String, rate: f64 },
    /// Writes from the broker time out and land later anyway at this rate.
    StoreLate { broker: String, rate: f64 },
    /// Every call from the broker takes this much longer (spike, throttling).
    StoreSlow { broker: String, extra_ms: u64 },
    /// The broker cannot reach the object store.
    StoreCut { broker: String },
    /// Every broker of the zone dies at once.
    ZoneLoss { zone: usize, brokers: Vec<String> },
    /// The zone's brokers keep running but reach nothing outside the zone:
    /// not the other hosts, not the (regional) object store.
    ZoneIsolate {
        zone: usize,
        brokers: Vec<String>,
        others: Vec<String>,
    },
    /// A new broker joins the cluster.
    ScaleOut { broker: String },
    /// A broker leaves the cluster for good.
    ScaleIn { broker: String },
}

impl Fault {
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Partition { .. } => "partition",
            Fault::PartitionOneway { .. } => "partition-oneway",
            Fault::Crash { .. } => "crash",
            Fault::Pause { .. } => "pause",
            Fault::StoreErrors { .. } => "store-errors",
            Fault::StoreAmbiguous { .. } => "store-ambiguous",
            Fault::StoreLate { .. } => "store-late",
            Fault::StoreSlow { .. } => "store-slow",
            Fault::StoreCut { .. } => "store-cut",
            Fault::ZoneLoss { .. } => "zone-loss",
            Fault::ZoneIsolate { .. } => "zone-isolate",
            Fault::ScaleOut { .. } => "scale-out",
            Fault::ScaleIn { .. } => "scale-in",
        }
    }

    /// Marks that this fault began while operations were in flight: the interesting case, a
    /// request caught by the fault rather than one sent after it. One coverage point per kind.
    pub fn began_with_ops_in_flight(&self) {
        use riptide_coverage::reached;
        match self {
            Fault::Partition { .. } => reached!(
                "in_flight.partition",
                "a network partition began with operations in flight"
            ),
            Fault::PartitionOneway { .. } => reached!(
                "in_flight.partition_oneway",
                "a one-way partition began with operations in flight"
            ),
            Fault::Crash { .. } => reached!(
                "in_flight.crash",
                "a broker crashed with operations in flight"
            ),
            Fault::Pause { .. } => reached!(
                "in_flight.pause",
                "a broker paused with operations in flight"
            ),
            Fault::StoreErrors { .. } => reached!(
                "in_flight.store_errors",
                "object-store errors began with operations in flight"
            ),
            Fault::StoreAmbiguous { .. } => reached!(
                "in_flight.store_ambiguous",
                "applied-reply-lost store writes began with operations in flight"
            ),
            Fault::StoreLate { .. } => reached!(
                "in_flight.store_late",
                "late store writes began with operations in flight"
            ),
            Fault::StoreSlow { .. } => reached!(
                "in_flight.store_slow",
                "store latency began with operations in flight"
            ),
            Fault::StoreCut { .. } => reached!(
                "in_flight.store_cut",
                "a broker's store link was cut with operations in flight"
            ),
            Fault::ZoneLoss { .. } => reached!(
                "in_flight.zone_loss",
                "a zone was lost with operations in flight"
            ),
            Fault::ZoneIsolate { .. } => reached!(
                "in_flight.zone_isolate",
                "a zone was isolated with operations in flight"
            ),
            Fault::ScaleOut { .. } => reached!(
                "in_flight.scale_out",
                "a broker joined with operations in flight"
            ),
            Fault::ScaleIn { .. } => reached!(
                "in_flight.scale_in",
                "a broker left with operations in flight"
            ),
        }
    }
}

/// A fault with its window of simulated time. `end_ms: None` never heals
/// (a zone that never comes back, a scale event).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Planned {
    pub start_ms: u64,
    pub end_ms: Option<u64>,
    pub fault: Fault,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub faults: Vec<Planned>,
}

/// Which fault kinds a scenario draws from, and how often.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultMix {
    pub partitions: bool,
    pub crashes: bool,
    /// Process pauses only (crashes also draw some pauses).
    pub pauses: bool,
    pub store: bool,
    pub zone_loss: bool,
    pub scale: bool,
    /// Mean simulated time between two faults starting.
    pub mean_gap_ms: u64,
    /// Longest a fault lasts.
    pub max_duration_ms: u64,
}

impl Default for FaultMix {
    fn default() -> Self {
        FaultMix {
            partitions: false,
            crashes: false,
            pauses: false,
            store: false,
            zone_loss: false,
            scale: false,
            mean_gap_ms: 1500,
            max_duration_ms: 4000,
        }
    }
}

/// The hosts a schedule can name.
#[derive(Clone, Debug, Default)]
pub struct Topology {
    /// Brokers present from the start, with their zone.
    pub brokers: Vec<(String, usize)>,
    pub zones: usize,
    pub clients: Vec<String>,
    /// Brokers that may join later (scale out), with their zone.
    pub spares: Vec<(String, usize)>,
    /// Brokers clients bootstrap from. Like a DNS name in production, at
    /// least one of them is never removed for good.
    pub bootstrap: Vec<String>,
}

#[derive(Clone, Copy)]
enum Kind {
    Partition,
    Crash,
    Pause,
    Store,
    ZoneLoss,
    Scale,
}

impl Schedule {
    /// Draws faults starting in `[from_ms, until_ms)`, all healed by `until_ms`
    /// except the permanent ones, which always leave at least one zone and
    /// two brokers serving.
    pub fn generate(
        seed: u64,
        mix: &FaultMix,
        topo: &Topology,
        from_ms: u64,
        until_ms: u64,
    ) -> Schedule {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut kinds = Vec::new();
        for (on, k) in [
            (mix.partitions, Kind::Partition),
            (mix.crashes, Kind::Crash),
            (mix.pauses, Kind::Pause),
            (mix.store, Kind::Store),
            (mix.zone_loss, Kind::ZoneLoss),
            (mix.scale, Kind::Scale),
        ] {
            if on {
                kinds.push(k);
            }
        }
        let mut faults = Vec::new();
        if kinds.is_empty() || topo.brokers.is_empty() {
            return Schedule { faults };
        }
        let mut live: Vec<(String, usize)> = topo.brokers.clone();
        let mut spares = topo.spares.clone();
        let mut zones_lost_for_good = 0;
        let gap = mix.mean_gap_ms.max(1);
        let mut t = from_ms + rng.gen_range(0..=gap);
        while t + 200 < until_ms {
            let dur = rng.gen_range(300..=mix.max_duration_ms.max(300));
            let end = Some((t + dur).min(until_ms));
            let kind = *kinds.choose(&mut rng).expect("kinds not empty");
            let pick = |rng: &mut ChaCha8Rng, live: &[(String, usize)]| {
                live.choose(rng).map(|b| b.0.clone()).unwrap_or_default()
            };
            let planned = match kind {
                Kind::Partition => {
                    let broker = pick(&mut rng, &live);
                    let others: Vec<String> = live
                        .iter()
                        .map(|b| b.0.clone())
                        .chain(topo.clients.iter().cloned())
                        .filter(|h| *h != broker)
                        .collect();
                    let fault = match rng.gen_range(0..3) {
                        0 => Fault::Partition {
                            a: vec![broker],
                            b: others,
                        },
                        1 => Fault::PartitionOneway {
                            from: vec![broker],
                            to: others,
                        },
                        _ => {
                            // Clients cut from one broker only.
                            Fault::Partition {
                                a: vec![broker],
                                b: topo.clients.clone(),
                            }
                        }
                    };
                    Planned {
                        start_ms: t,
                        end_ms: end,
                        fault,
                    }
                }
                Kind::Crash | Kind::Pause => {
                    let broker = pick(&mut rng, &live);
                    let fault = if matches!(kind, Kind::Crash) && rng.gen_bool(0.7) {
                        Fault::Crash { broker }
                    } else {
                        Fault::Pause { broker }
                    };
                    Planned {
                        start_ms: t,
                        end_ms: end,
                        fault,
                    }
                }
                Kind::Store => {
                    let broker = pick(&mut rng, &live);
                    let fault = match rng.gen_range(0..5) {
                        0 => Fault::StoreErrors {
                            broker,
                            rate: rng.gen_range(0.1..0.6),
                        },
                        1 => Fault::StoreAmbiguous {
                            broker,
                            rate: rng.gen_range(0.1..0.6),
                        },
                        2 => Fault::StoreLate {
                            broker,
                            rate: rng.gen_range(0.1..0.6),
                        },
                        3 => Fault::StoreSlow {
                            broker,
                            extra_ms: rng.gen_range(100..2000),
                        },
                        _ => Fault::StoreCut { broker },
                    };
                    Planned {
                        start_ms: t,
                        end_ms: end,
                        fault,
                    }
                }
                Kind::ZoneLoss => {
                    let zone = rng.gen_range(0..topo.zones.max(1));
                    let brokers: Vec<String> = live
                        .iter()
                        .filter(|b| b.1 == zone)
                        .map(|b| b.0.clone())
                        .collect();
                    if rng.gen_bool(0.4) {
                        // The zone keeps running but reaches nothing outside it.
                        let others = live
                            .iter()
                            .filter(|b| b.1 != zone)
                            .map(|b| b.0.clone())
                            .chain(topo.clients.iter().cloned())
                            .collect();
                        faults.push(Planned {
                            start_ms: t,
                            end_ms: end,
                            fault: Fault::ZoneIsolate {
                                zone,
                                brokers,
                                others,
                            },
                        });
                        t += rng.gen_range(gap / 2..=gap * 3 / 2);
                        continue;
                    }
                    let zones_up = topo.zones.saturating_sub(zones_lost_for_good);
                    let remaining = live.len() - brokers.len();
                    let keeps_bootstrap = live.iter().any(|b| {
                        b.1 != zone && (topo.bootstrap.is_empty() || topo.bootstrap.contains(&b.0))
                    });
                    let forever =
                        zones_up > 2 && remaining >= 2 && keeps_bootstrap && rng.gen_bool(0.25);
                    if forever {
                        zones_lost_for_good += 1;
                        live.retain(|b| b.1 != zone);
                    }
                    Planned {
                        start_ms: t,
                        end_ms: if forever { None } else { end },
                        fault: Fault::ZoneLoss { zone, brokers },
                    }
                }
                Kind::Scale => {
                    if !spares.is_empty() && (live.len() <= 2 || rng.gen_bool(0.5)) {
                        let (broker, zone) = spares.remove(0);
                        live.push((broker.clone(), zone));
                        Planned {
                            start_ms: t,
                            end_ms: None,
                            fault: Fault::ScaleOut { broker },
                        }
                    } else if live.len() > 2 {
                        let broker = pick(&mut rng, &live);
                        let bootstraps_left = live
                            .iter()
                            .filter(|b| b.0 != broker && topo.bootstrap.contains(&b.0))
                            .count();
                        if !topo.bootstrap.is_empty() && bootstraps_left == 0 {
                            t += rng.gen_range(gap / 2..=gap * 3 / 2);
                            continue;
                        }
                        live.retain(|b| b.0 != broker);
                        Planned {
                            start_ms: t,
                            end_ms: None,
                            fault: Fault::ScaleIn { broker },
                        }
                    } else {
                        t += rng.gen_range(gap / 2..=gap * 3 / 2);
                        continue;
                    }
                }
            };
            faults.push(planned);
            t += rng.gen_range(gap / 2..=gap * 3 / 2);
        }
        Schedule { faults }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo() -> Topology {
        Topology {
            brokers: (0..6).map(|i| (format!("broker-{i}"), i % 3)).collect(),
            zones: 3,
            clients: vec!["producer-0".into(), "reader".into()],
            spares: vec![("broker-6".into(), 0)],
            bootstrap: vec!["broker-0".into(), "broker-1".into()],
        }
    }

    fn all() -> FaultMix {
        FaultMix {
            partitions: true,
            crashes: true,
            store: true,
            zone_loss: true,
            scale: true,
            ..FaultMix::default()
        }
    }

    #[test]
    fn same_seed_same_schedule_and_all_heal_in_time() {
        let a = Schedule::generate(7, &all(), &topo(), 1000, 20_000);
        let b = Schedule::generate(7, &all(), &topo(), 1000, 20_000);
        assert_eq!(a, b);
        assert_ne!(a, Schedule::generate(8, &all(), &topo(), 1000, 20_000));
        assert!(a.faults.len() > 5);
        for p in &a.faults {
            assert!(p.start_ms >= 1000 && p.start_ms < 20_000);
            if let Some(end) = p.end_ms {
                assert!(end <= 20_000 && end > p.start_ms);
            }
        }
    }

    #[test]
    fn permanent_faults_leave_the_cluster_serving() {
        for seed in 0..200 {
            let s = Schedule::generate(seed, &all(), &topo(), 0, 60_000);
            let mut gone = std::collections::BTreeSet::new();
            for p in s.faults.iter().filter(|p| p.end_ms.is_none()) {
                match &p.fault {
                    Fault::ZoneLoss { brokers, .. } => gone.extend(brokers.iter().cloned()),
                    Fault::ScaleIn { broker } => {
                        gone.insert(broker.clone());
                    }
                    _ => {}
                }
            }
            let joined = s
                .faults
                .iter()
                .filter(|p| matches!(p.fault, Fault::ScaleOut { .. }))
                .count();
            assert!(
                6 + joined - gone.len() >= 2,
                "seed {seed} leaves too few brokers"
            );
        }
    }

    #[test]
    fn an_empty_mix_schedules_nothing() {
        let s = Schedule::generate(1, &FaultMix::default(), &topo(), 0, 60_000);
        assert!(s.faults.is_empty());
    }
}
