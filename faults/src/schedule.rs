//! Fault kinds and the nemesis: a schedule of faults drawn from a seed.
//!
//! One model for both worlds: the simulator applies a [`Fault`] to simulated links and hosts,
//! certification to its proxies and hooks. The generator draws only what the world can apply
//! ([`Capabilities`] in the [`Topology`]); adding a kind is one variant here plus one applier per
//! world.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use riptide_checker::history::FaultValue;
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
    /// Several brokers join the cluster at once.
    ScaleOutMany { brokers: Vec<String> },
    /// Half of the serving brokers leave the cluster for good at once.
    ScaleInHalf { brokers: Vec<String> },
    /// Producers make records `factor` times as fast until heal; `brokers` join as it begins
    /// (the scale-out that answers the spike; none when there is no spare).
    Spike { factor: u32, brokers: Vec<String> },
    /// The broker stops cleanly (as a scale-in does) and a fresh process takes its place at
    /// heal: one step of a rolling replacement, which replaces every broker once, one at a time.
    Replace { broker: String },
    /// Every frame between clients and the broker waits `ms` more.
    LinkSlow { broker: String, ms: u64 },
    /// Replies to clients are dropped at this rate, closing the connection: the request took
    /// effect but the client cannot know.
    RepliesLost { broker: String, rate: f64 },
    /// Clients' open connections to the broker are closed at once and new ones refused.
    ConnectionsCut { broker: String },
}

/// The in-flight coverage points of the kinds only certification applies (its client proxy).
pub const CERTIFY_ONLY_POINTS: [&str; 3] = [
    "in_flight.link_slow",
    "in_flight.replies_lost",
    "in_flight.connections_cut",
];

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
            Fault::ScaleOutMany { .. } => "scale-out-many",
            Fault::ScaleInHalf { .. } => "scale-in-half",
            Fault::Spike { .. } => "spike",
            Fault::Replace { .. } => "replace",
            Fault::LinkSlow { .. } => "link-slow",
            Fault::RepliesLost { .. } => "replies-lost",
            Fault::ConnectionsCut { .. } => "connections-cut",
        }
    }

    /// Every broker the fault names.
    pub fn brokers(&self) -> Vec<&str> {
        let all: Vec<&String> = match self {
            Fault::Partition { a, b } => a.iter().chain(b).collect(),
            Fault::PartitionOneway { from, to } => from.iter().chain(to).collect(),
            Fault::ZoneLoss { brokers, .. }
            | Fault::ScaleOutMany { brokers }
            | Fault::ScaleInHalf { brokers }
            | Fault::Spike { brokers, .. } => brokers.iter().collect(),
            Fault::ZoneIsolate {
                brokers, others, ..
            } => brokers.iter().chain(others).collect(),
            Fault::Crash { broker }
            | Fault::Pause { broker }
            | Fault::StoreErrors { broker, .. }
            | Fault::StoreAmbiguous { broker, .. }
            | Fault::StoreLate { broker, .. }
            | Fault::StoreSlow { broker, .. }
            | Fault::StoreCut { broker }
            | Fault::ScaleOut { broker }
            | Fault::ScaleIn { broker }
            | Fault::Replace { broker }
            | Fault::LinkSlow { broker, .. }
            | Fault::RepliesLost { broker, .. }
            | Fault::ConnectionsCut { broker } => vec![broker],
        };
        all.into_iter().map(String::as_str).collect()
    }

    /// Whether this acts on a broker's link to the object store.
    pub fn is_store_fault(&self) -> bool {
        matches!(
            self,
            Fault::StoreErrors { .. }
                | Fault::StoreAmbiguous { .. }
                | Fault::StoreLate { .. }
                | Fault::StoreSlow { .. }
                | Fault::StoreCut { .. }
        )
    }

    /// Whether a broker is unreachable, stopped or cut off its store while this lasts.
    pub fn takes_broker_down(&self) -> bool {
        matches!(
            self,
            Fault::Partition { .. }
                | Fault::PartitionOneway { .. }
                | Fault::Crash { .. }
                | Fault::Pause { .. }
                | Fault::StoreCut { .. }
                | Fault::ZoneLoss { .. }
                | Fault::ZoneIsolate { .. }
                | Fault::ConnectionsCut { .. }
                | Fault::Replace { .. }
        )
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
            Fault::ScaleOutMany { .. } => reached!(
                "in_flight.scale_out_many",
                "several brokers joined at once with operations in flight"
            ),
            Fault::ScaleInHalf { .. } => reached!(
                "in_flight.scale_in_half",
                "half the brokers left at once with operations in flight"
            ),
            Fault::Spike { .. } => reached!(
                "in_flight.spike",
                "a traffic spike began with operations in flight"
            ),
            Fault::Replace { .. } => reached!(
                "in_flight.replace",
                "a broker was replaced with operations in flight"
            ),
            Fault::LinkSlow { .. } => reached!(
                "in_flight.link_slow",
                "a broker's client links slowed with operations in flight"
            ),
            Fault::RepliesLost { .. } => reached!(
                "in_flight.replies_lost",
                "a broker's replies began to be dropped with operations in flight"
            ),
            Fault::ConnectionsCut { .. } => reached!(
                "in_flight.connections_cut",
                "a broker's client connections were cut with operations in flight"
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

impl Planned {
    /// The fault as a nemesis event of the history: its kind, the phase (`start`, `heal`...) and
    /// every field of the fault.
    pub fn event(&self, phase: &str) -> FaultValue {
        let detail = serde_json::to_value(&self.fault).unwrap_or_default();
        let mut v = FaultValue::new(self.fault.kind()).with("phase", phase);
        if let serde_json::Value::Object(m) = detail {
            for (k, x) in m {
                if k != "kind" {
                    v = v.with(&k, x);
                }
            }
        }
        v
    }
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
    /// Client links slowed, replies lost, connections cut (certification's proxy).
    pub client_links: bool,
    /// The elastic events drawn: several brokers joining at once, half leaving, a traffic
    /// spike with a scale-out, a rolling replacement.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub elastic: Vec<Elastic>,
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
            client_links: false,
            elastic: Vec::new(),
            mean_gap_ms: 1500,
            max_duration_ms: 4000,
        }
    }
}

/// The scale events a serverless broker promises to take in its stride.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Elastic {
    /// Two or three brokers join at once ([`Fault::ScaleOutMany`]).
    ScaleOutMany,
    /// Half of the serving brokers leave at once ([`Fault::ScaleInHalf`]).
    ScaleInHalf,
    /// Producers speed up several times while brokers join ([`Fault::Spike`]).
    Spike,
    /// Every serving broker replaced once, one at a time ([`Fault::Replace`] each).
    Rolling,
}

impl Elastic {
    /// Every elastic event.
    pub const ALL: [Elastic; 4] = [
        Elastic::ScaleOutMany,
        Elastic::ScaleInHalf,
        Elastic::Spike,
        Elastic::Rolling,
    ];
}

/// What a world can do to its hosts: the generator draws only faults it can apply.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Capabilities {
    /// Links between brokers can be cut (the simulator); without, a partition cuts the clients
    /// off one broker (a proxy in front of it).
    pub broker_links: bool,
    pub crashes: bool,
    pub pauses: bool,
    /// Faults on the brokers' links to the object store.
    pub store: bool,
    /// Whole zones lost or isolated.
    pub zones: bool,
    /// Brokers joining (spares started) and leaving (stopped for good).
    pub scale: bool,
    /// Client links slowed, replies dropped, connections cut.
    pub client_links: bool,
    /// At most one broker down (unreachable, stopped, cut off its store) at a time, so that a
    /// cluster that tolerates one failure stays available.
    pub one_down_at_a_time: bool,
}

impl Capabilities {
    /// The simulated world: everything but the client-link kinds of certify's proxy.
    pub fn simulator() -> Capabilities {
        Capabilities {
            broker_links: true,
            crashes: true,
            pauses: true,
            store: true,
            zones: true,
            scale: true,
            client_links: false,
            one_down_at_a_time: false,
        }
    }
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities::simulator()
    }
}

/// The hosts a schedule can name, and what the world can do to them.
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
    pub can: Capabilities,
}

#[derive(Clone, Copy)]
enum Kind {
    Partition,
    Crash,
    Pause,
    Store,
    ZoneLoss,
    Scale,
    ClientLink,
    Elastic,
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
        let can = &topo.can;
        let mut kinds = Vec::new();
        for (on, k) in [
            (mix.partitions, Kind::Partition),
            (mix.crashes && can.crashes, Kind::Crash),
            (mix.pauses && can.pauses, Kind::Pause),
            (mix.store && can.store, Kind::Store),
            (mix.zone_loss && can.zones, Kind::ZoneLoss),
            (mix.scale && can.scale, Kind::Scale),
            (mix.client_links && can.client_links, Kind::ClientLink),
            (!mix.elastic.is_empty(), Kind::Elastic),
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
        // When the broker down now (one_down_at_a_time) comes back.
        let mut down_until = 0u64;
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
                    let shape = rng.gen_range(0..3);
                    // Without broker links, only the clients' side of a broker can be cut.
                    let shape = if can.broker_links { shape } else { 2 };
                    let fault = match shape {
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
                    let crash = matches!(kind, Kind::Crash) && (rng.gen_bool(0.7) || !can.pauses);
                    let fault = if crash {
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
                Kind::Elastic => {
                    let shape = *mix.elastic.choose(&mut rng).expect("elastic not empty");
                    let skip = rng.gen_range(gap / 2..=gap * 3 / 2);
                    match shape {
                        Elastic::ScaleOutMany if spares.len() >= 2 && can.scale => {
                            let n = rng.gen_range(2..=3).min(spares.len());
                            Planned {
                                start_ms: t,
                                end_ms: None,
                                fault: Fault::ScaleOutMany {
                                    brokers: join_spares(&mut spares, &mut live, n),
                                },
                            }
                        }
                        Elastic::ScaleInHalf if live.len() >= 4 && can.scale => {
                            // Half leave, never every broker clients bootstrap from (a DNS
                            // name in production keeps pointing somewhere).
                            let mut order = live.clone();
                            order.shuffle(&mut rng);
                            let keep = order.iter().position(|b| {
                                topo.bootstrap.is_empty() || topo.bootstrap.contains(&b.0)
                            });
                            if let Some(k) = keep {
                                let kept = order.remove(k);
                                order.push(kept);
                            }
                            let leaving: Vec<String> = order
                                .iter()
                                .take(live.len() / 2)
                                .map(|b| b.0.clone())
                                .collect();
                            live.retain(|b| !leaving.contains(&b.0));
                            Planned {
                                start_ms: t,
                                end_ms: None,
                                fault: Fault::ScaleInHalf { brokers: leaving },
                            }
                        }
                        Elastic::Spike => {
                            let n = if can.scale {
                                rng.gen_range(1..=2).min(spares.len())
                            } else {
                                0
                            };
                            let brokers = join_spares(&mut spares, &mut live, n);
                            Planned {
                                start_ms: t,
                                end_ms: end,
                                fault: Fault::Spike {
                                    factor: rng.gen_range(3..=6),
                                    brokers,
                                },
                            }
                        }
                        Elastic::Rolling if can.crashes => {
                            // Every serving broker once, one at a time: each is down for a
                            // while (a pod's start-up), then the next one goes.
                            let step = rng.gen_range(1500..=3000u64);
                            let down = rng.gen_range(300..=step / 2);
                            let order: Vec<String> = live.iter().map(|b| b.0.clone()).collect();
                            let finish = t + step * order.len() as u64;
                            if finish >= until_ms || (can.one_down_at_a_time && t < down_until) {
                                t += skip;
                                continue;
                            }
                            for (k, broker) in order.into_iter().enumerate() {
                                let start_ms = t + step * k as u64;
                                faults.push(Planned {
                                    start_ms,
                                    end_ms: Some(start_ms + down),
                                    fault: Fault::Replace { broker },
                                });
                            }
                            down_until = finish;
                            t = finish + skip;
                            continue;
                        }
                        _ => {
                            t += skip;
                            continue;
                        }
                    }
                }
                Kind::ClientLink => {
                    let broker = pick(&mut rng, &live);
                    let fault = match rng.gen_range(0..3) {
                        0 => Fault::LinkSlow {
                            broker,
                            ms: rng.gen_range(20..=400),
                        },
                        1 => Fault::RepliesLost {
                            broker,
                            rate: [0.05, 0.2, 0.5][rng.gen_range(0..3)],
                        },
                        _ => Fault::ConnectionsCut { broker },
                    };
                    Planned {
                        start_ms: t,
                        end_ms: end,
                        fault,
                    }
                }
            };
            if can.one_down_at_a_time && planned.fault.takes_broker_down() {
                if t < down_until {
                    t += rng.gen_range(gap / 2..=gap * 3 / 2);
                    continue;
                }
                down_until = planned.end_ms.unwrap_or(u64::MAX);
            }
            faults.push(planned);
            t += rng.gen_range(gap / 2..=gap * 3 / 2);
        }
        Schedule { faults }
    }
}

/// The first `n` spares join the serving brokers; their names.
fn join_spares(
    spares: &mut Vec<(String, usize)>,
    live: &mut Vec<(String, usize)>,
    n: usize,
) -> Vec<String> {
    let joining: Vec<(String, usize)> = spares.drain(..n).collect();
    live.extend(joining.iter().cloned());
    joining.into_iter().map(|b| b.0).collect()
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
            can: Capabilities::simulator(),
        }
    }

    /// Certification's world: three real nodes behind proxies, one zone.
    fn real(can: Capabilities) -> Topology {
        Topology {
            brokers: (0..3)
                .map(|i| (format!("127.0.0.1:{}", 9092 + i), 0))
                .collect(),
            zones: 1,
            clients: vec!["clients".into()],
            spares: vec![],
            bootstrap: vec![],
            can,
        }
    }

    fn proxies_and_hooks() -> Capabilities {
        Capabilities {
            broker_links: false,
            client_links: true,
            zones: false,
            scale: false,
            one_down_at_a_time: true,
            ..Capabilities::simulator()
        }
    }

    fn everything() -> FaultMix {
        FaultMix {
            pauses: true,
            client_links: true,
            mean_gap_ms: 3000,
            max_duration_ms: 6000,
            ..all()
        }
    }

    #[test]
    fn a_real_world_gets_only_what_it_can_apply_one_broker_down_at_a_time() {
        let mut kinds = std::collections::BTreeSet::new();
        for seed in 0..40 {
            let s = Schedule::generate(
                seed,
                &everything(),
                &real(proxies_and_hooks()),
                2000,
                50_000,
            );
            let down: Vec<&Planned> = s
                .faults
                .iter()
                .filter(|p| p.fault.takes_broker_down())
                .collect();
            for w in down.windows(2) {
                assert!(w[1].start_ms >= w[0].end_ms.unwrap(), "{w:?}");
            }
            for p in &s.faults {
                kinds.insert(p.fault.kind());
                assert!(p.end_ms.is_some_and(|e| e <= 50_000), "{p:?}");
                if let Fault::Partition { b, .. } = &p.fault {
                    assert_eq!(b, &vec!["clients".to_string()], "only client links");
                }
            }
        }
        for k in [
            "partition",
            "crash",
            "pause",
            "link-slow",
            "replies-lost",
            "connections-cut",
        ] {
            assert!(kinds.contains(k), "{k} never drawn: {kinds:?}");
        }
        for k in [
            "partition-oneway",
            "zone-loss",
            "zone-isolate",
            "scale-in",
            "scale-out",
        ] {
            assert!(
                !kinds.contains(k),
                "{k} drawn for a world that cannot apply it"
            );
        }
        assert!(kinds.iter().any(|k| k.starts_with("store-")));
    }

    #[test]
    fn faults_without_hooks_or_store_links_are_never_drawn() {
        let can = Capabilities {
            crashes: false,
            pauses: false,
            store: false,
            ..proxies_and_hooks()
        };
        for seed in 0..20 {
            for p in Schedule::generate(seed, &everything(), &real(can.clone()), 0, 60_000).faults {
                assert!(
                    !matches!(p.fault, Fault::Crash { .. } | Fault::Pause { .. })
                        && !p.fault.is_store_fault(),
                    "{p:?}"
                );
            }
        }
        // Kills without pause hooks: crashes only.
        let can = Capabilities {
            pauses: false,
            ..proxies_and_hooks()
        };
        let s = Schedule::generate(3, &everything(), &real(can), 0, 120_000);
        assert!(s
            .faults
            .iter()
            .any(|p| matches!(p.fault, Fault::Crash { .. })));
        assert!(!s
            .faults
            .iter()
            .any(|p| matches!(p.fault, Fault::Pause { .. })));
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

    fn elastic_topo() -> Topology {
        Topology {
            brokers: (0..4).map(|i| (format!("broker-{i}"), i % 2)).collect(),
            zones: 2,
            clients: vec!["producer-0".into()],
            spares: (4..8).map(|i| (format!("broker-{i}"), i % 2)).collect(),
            bootstrap: (0..4).map(|i| format!("broker-{i}")).collect(),
            can: Capabilities::simulator(),
        }
    }

    #[test]
    fn elastic_events_keep_their_shapes() {
        let mix = FaultMix {
            elastic: Elastic::ALL.to_vec(),
            mean_gap_ms: 4000,
            ..FaultMix::default()
        };
        let topo = elastic_topo();
        let mut kinds = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let s = Schedule::generate(seed, &mix, &topo, 1000, 35_000);
            let mut live: Vec<String> = topo.brokers.iter().map(|b| b.0.clone()).collect();
            let mut joined = std::collections::BTreeSet::new();
            let mut i = 0;
            while i < s.faults.len() {
                let p = &s.faults[i];
                kinds.insert(p.fault.kind());
                match &p.fault {
                    Fault::ScaleOutMany { brokers } => {
                        assert!((2..=3).contains(&brokers.len()), "{p:?}");
                        for b in brokers {
                            assert!(joined.insert(b.clone()), "{b} joined twice");
                            live.push(b.clone());
                        }
                        assert_eq!(p.end_ms, None);
                    }
                    Fault::ScaleInHalf { brokers } => {
                        assert_eq!(brokers.len(), live.len() / 2, "seed {seed}: {p:?}");
                        live.retain(|b| !brokers.contains(b));
                        assert!(live.len() >= 2);
                        assert!(
                            live.iter().any(|b| topo.bootstrap.contains(b)),
                            "seed {seed}"
                        );
                    }
                    Fault::Spike { factor, brokers } => {
                        assert!((3..=6).contains(factor));
                        assert!(p.end_ms.is_some_and(|e| e > p.start_ms), "a spike ends");
                        for b in brokers {
                            assert!(joined.insert(b.clone()), "{b} joined twice");
                            live.push(b.clone());
                        }
                    }
                    Fault::Replace { .. } => {
                        // A rolling replacement: every serving broker once, one at a time.
                        let run: Vec<&Planned> = s.faults[i..]
                            .iter()
                            .take(live.len())
                            .take_while(|q| matches!(q.fault, Fault::Replace { .. }))
                            .collect();
                        let replaced: Vec<&str> =
                            run.iter().flat_map(|q| q.fault.brokers()).collect();
                        assert_eq!(replaced, live, "seed {seed}: each serving broker, in turn");
                        for w in run.windows(2) {
                            assert!(w[0].end_ms.unwrap() <= w[1].start_ms, "one at a time");
                        }
                        i += run.len();
                        continue;
                    }
                    other => panic!("not an elastic event: {other:?}"),
                }
                i += 1;
            }
        }
        for k in ["scale-out-many", "scale-in-half", "spike", "replace"] {
            assert!(kinds.contains(k), "{k} never drawn: {kinds:?}");
        }
    }

    #[test]
    fn an_empty_mix_schedules_nothing() {
        let s = Schedule::generate(1, &FaultMix::default(), &topo(), 0, 60_000);
        assert!(s.faults.is_empty());
    }
}
