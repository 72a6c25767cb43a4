//! Faults for certifying a real cluster: what the proxy can do to the link
//! between clients and one node, and what per-node process hooks can do to
//! the node itself. The schedule is a pure function of the seed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// One fault on one node (index in bootstrap order).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum NodeFault {
    /// Clients cannot reach the node (bytes are held, as a partition would).
    Partition { node: usize },
    /// Every frame to and from the node waits `ms` more.
    Delay { node: usize, ms: u64 },
    /// Replies are dropped with probability `rate`, closing the connection:
    /// the request happened but the client cannot know.
    DropReplies { node: usize, rate: f64 },
    /// Open connections are closed at once and new ones refused.
    Cut { node: usize },
    /// The kill hook runs at the start, the start hook at the end.
    Kill { node: usize },
    /// The pause hook runs at the start, the resume hook at the end.
    Pause { node: usize },
}

impl NodeFault {
    pub fn node(&self) -> usize {
        match self {
            NodeFault::Partition { node }
            | NodeFault::Delay { node, .. }
            | NodeFault::DropReplies { node, .. }
            | NodeFault::Cut { node }
            | NodeFault::Kill { node }
            | NodeFault::Pause { node } => *node,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            NodeFault::Partition { .. } => "partition",
            NodeFault::Delay { .. } => "delay",
            NodeFault::DropReplies { .. } => "drop-replies",
            NodeFault::Cut { .. } => "cut",
            NodeFault::Kill { .. } => "kill",
            NodeFault::Pause { .. } => "pause",
        }
    }

    /// Marks that this fault began while operations were in flight (one coverage point per kind,
    /// as [`crate::Fault::began_with_ops_in_flight`] for the simulator's faults).
    pub fn began_with_ops_in_flight(&self) {
        use riptide_coverage::reached;
        match self {
            NodeFault::Partition { .. } => reached!(
                "in_flight.node_partition",
                "certify: a node was partitioned with operations in flight"
            ),
            NodeFault::Delay { .. } => reached!(
                "in_flight.node_delay",
                "certify: a node's link slowed with operations in flight"
            ),
            NodeFault::DropReplies { .. } => reached!(
                "in_flight.node_drop_replies",
                "certify: a node's replies began to be dropped with operations in flight"
            ),
            NodeFault::Cut { .. } => reached!(
                "in_flight.node_cut",
                "certify: a node's connections were cut with operations in flight"
            ),
            NodeFault::Kill { .. } => reached!(
                "in_flight.node_kill",
                "certify: a node was killed with operations in flight"
            ),
            NodeFault::Pause { .. } => reached!(
                "in_flight.node_pause",
                "certify: a node was paused with operations in flight"
            ),
        }
    }

    /// Whether the node is unreachable or not running while this lasts.
    pub fn takes_node_down(&self) -> bool {
        matches!(
            self,
            NodeFault::Partition { .. }
                | NodeFault::Cut { .. }
                | NodeFault::Kill { .. }
                | NodeFault::Pause { .. }
        )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedNodeFault {
    pub start_ms: u64,
    pub end_ms: u64,
    pub fault: NodeFault,
}

/// Which faults a certification may use, and how often.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CertMix {
    pub partitions: bool,
    pub delays: bool,
    pub drops: bool,
    pub cuts: bool,
    /// Needs kill and start hooks.
    pub kills: bool,
    /// Needs pause and resume hooks.
    pub pauses: bool,
    pub mean_gap_ms: u64,
    pub max_duration_ms: u64,
}

impl CertMix {
    pub fn none() -> CertMix {
        CertMix {
            partitions: false,
            delays: false,
            drops: false,
            cuts: false,
            kills: false,
            pauses: false,
            mean_gap_ms: 4000,
            max_duration_ms: 6000,
        }
    }

    /// A named mix: `baseline`, `network`, `crashes` or `chaos`.
    pub fn named(name: &str) -> Option<CertMix> {
        let none = CertMix::none();
        Some(match name {
            "baseline" => none,
            "network" => CertMix {
                partitions: true,
                delays: true,
                drops: true,
                cuts: true,
                ..none
            },
            "crashes" => CertMix {
                kills: true,
                pauses: true,
                cuts: true,
                ..none
            },
            "chaos" => CertMix {
                partitions: true,
                delays: true,
                drops: true,
                cuts: true,
                kills: true,
                pauses: true,
                mean_gap_ms: 3000,
                ..none
            },
            _ => return None,
        })
    }

    pub const NAMES: [&'static str; 4] = ["baseline", "network", "crashes", "chaos"];

    fn kinds(&self) -> Vec<&'static str> {
        let all = [
            (self.partitions, "partition"),
            (self.delays, "delay"),
            (self.drops, "drop-replies"),
            (self.cuts, "cut"),
            (self.kills, "kill"),
            (self.pauses, "pause"),
        ];
        all.iter().filter(|(on, _)| *on).map(|(_, k)| *k).collect()
    }
}

/// Draws faults on `nodes` nodes between `from_ms` and `until_ms`. At most
/// one node is down (partitioned, cut, killed or paused) at a time, so that
/// a cluster that tolerates one failure should stay available; delays and
/// dropped replies overlap freely. Every fault ends by `until_ms`.
pub fn generate(
    seed: u64,
    mix: &CertMix,
    nodes: usize,
    from_ms: u64,
    until_ms: u64,
) -> Vec<PlannedNodeFault> {
    let kinds = mix.kinds();
    let mut out = Vec::new();
    if kinds.is_empty() || nodes == 0 || until_ms <= from_ms {
        return out;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut t = from_ms;
    // When the node currently down comes back.
    let mut down_until = 0u64;
    loop {
        t += rng.gen_range(mix.mean_gap_ms / 2..=mix.mean_gap_ms * 3 / 2 + 1);
        if t + 500 >= until_ms {
            break;
        }
        let node = rng.gen_range(0..nodes);
        let kind = kinds[rng.gen_range(0..kinds.len())];
        let fault = match kind {
            "partition" => NodeFault::Partition { node },
            "delay" => NodeFault::Delay {
                node,
                ms: rng.gen_range(20..=400),
            },
            "drop-replies" => NodeFault::DropReplies {
                node,
                rate: [0.05, 0.2, 0.5][rng.gen_range(0..3)],
            },
            "cut" => NodeFault::Cut { node },
            "kill" => NodeFault::Kill { node },
            _ => NodeFault::Pause { node },
        };
        let longest = mix.max_duration_ms.min(until_ms - t);
        let end = t + rng.gen_range(longest.min(500)..=longest);
        if fault.takes_node_down() {
            if t < down_until {
                continue;
            }
            down_until = end;
        }
        out.push(PlannedNodeFault {
            start_ms: t,
            end_ms: end,
            fault,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_mix_is_named() {
        for name in CertMix::NAMES {
            assert!(CertMix::named(name).is_some(), "{name}");
        }
        assert!(CertMix::named("no-such").is_none());
    }

    #[test]
    fn same_seed_same_schedule_and_one_node_down_at_a_time() {
        let mix = CertMix::named("chaos").unwrap();
        let a = generate(7, &mix, 3, 2000, 50_000);
        assert_eq!(a, generate(7, &mix, 3, 2000, 50_000));
        assert_ne!(a, generate(8, &mix, 3, 2000, 50_000));
        assert!(a.len() > 5, "{a:?}");
        let down: Vec<_> = a.iter().filter(|p| p.fault.takes_node_down()).collect();
        for w in down.windows(2) {
            assert!(w[1].start_ms >= w[0].end_ms, "{w:?}");
        }
        assert!(a.iter().all(|p| p.end_ms <= 50_000 && p.start_ms >= 2000));
        assert!(a.iter().all(|p| p.fault.node() < 3));
    }

    #[test]
    fn a_mix_without_hooks_never_kills_or_pauses() {
        let mix = CertMix {
            kills: false,
            pauses: false,
            ..CertMix::named("chaos").unwrap()
        };
        for seed in 0..20 {
            assert!(generate(seed, &mix, 3, 0, 60_000)
                .iter()
                .all(|p| !matches!(p.fault, NodeFault::Kill { .. } | NodeFault::Pause { .. })));
        }
        assert!(generate(1, &CertMix::none(), 3, 0, 60_000).is_empty());
    }
}
