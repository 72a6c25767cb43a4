//! What a run's clients may do, and what each client process drew from it.
//!
//! A [`WorkloadMix`] is a set of knobs (ranges, codecs, chances); every client process draws its
//! own [`ProducerProfile`] or [`ConsumerProfile`] from it with the run's seed. So each seed tests
//! its own mix of behaviours (swarm testing), and a knob pinned to one value tests just that.

use kafka_protocol::records::Compression;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A seed for one component, derived from a run's seed and a path of numbers (SplitMix64 over the
/// parts: cheap, stable, well mixed). Every front end derives its components' seeds this way.
pub fn derive(seed: u64, parts: &[u64]) -> u64 {
    let mut x = seed;
    for p in parts {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15).wrapping_add(*p);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
    }
    x
}

/// An inclusive range a value is drawn from; one number pins it. Written `5`, `[1, 5]` or
/// `"1..=5"` in scenario files and `5`, `1..=5` or `1..6` on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub lo: u64,
    pub hi: u64,
}

impl Span {
    pub const fn new(lo: u64, hi: u64) -> Span {
        Span { lo, hi }
    }

    pub const fn one(v: u64) -> Span {
        Span { lo: v, hi: v }
    }

    /// Uniformly in `lo..=hi`.
    pub fn draw(&self, rng: &mut impl Rng) -> u64 {
        rng.gen_range(self.lo..=self.hi.max(self.lo))
    }

    /// Log-uniformly in `lo..=hi` (sizes: small and large values equally likely per octave).
    pub fn draw_log(&self, rng: &mut impl Rng) -> u64 {
        let (lo, hi) = (self.lo.max(1) as f64, self.hi.max(self.lo).max(1) as f64);
        let x = (lo.ln() + rng.gen::<f64>() * (hi.ln() - lo.ln())).exp();
        (x.round() as u64).clamp(self.lo, self.hi.max(self.lo))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}..={}", self.lo, self.hi)
        }
    }
}

impl FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Span, String> {
        let bad = || format!("'{s}' is not a number or a range A..=B / A..B");
        let num = |t: &str| t.trim().parse::<u64>().map_err(|_| bad());
        let span = if let Some((a, b)) = s.split_once("..=") {
            Span::new(num(a)?, num(b)?)
        } else if let Some((a, b)) = s.split_once("..") {
            let (a, b) = (num(a)?, num(b)?);
            if b == 0 {
                return Err(bad());
            }
            Span::new(a, b - 1)
        } else {
            Span::one(num(s)?)
        };
        if span.lo > span.hi {
            return Err(format!("range '{s}' is empty"));
        }
        Ok(span)
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.lo == self.hi {
            s.serialize_u64(self.lo)
        } else {
            [self.lo, self.hi].serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(u64),
            Pair([u64; 2]),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::One(v) => Ok(Span::one(v)),
            Raw::Pair([lo, hi]) if lo <= hi => Ok(Span::new(lo, hi)),
            Raw::Pair([lo, hi]) => Err(serde::de::Error::custom(format!(
                "range [{lo}, {hi}] is empty"
            ))),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A record batch compression codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    pub const ALL: [Codec; 5] = [
        Codec::None,
        Codec::Gzip,
        Codec::Snappy,
        Codec::Lz4,
        Codec::Zstd,
    ];

    pub fn compression(self) -> Compression {
        match self {
            Codec::None => Compression::None,
            Codec::Gzip => Compression::Gzip,
            Codec::Snappy => Compression::Snappy,
            Codec::Lz4 => Compression::Lz4,
            Codec::Zstd => Compression::Zstd,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }
}

impl FromStr for Codec {
    type Err = String;
    fn from_str(s: &str) -> Result<Codec, String> {
        Codec::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| format!("unknown codec '{s}' (known: none, gzip, snappy, lz4, zstd)"))
    }
}

/// The knobs of a run's clients. Every field has a default that draws widely; scenario files
/// and command-line flags pin or narrow them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkloadMix {
    /// Today's earlier client, exactly: one record per request, one request at a time, whole
    /// batches read from where the last read stopped. For comparisons; every other knob is
    /// ignored.
    pub legacy_client: bool,
    /// Topics written and read (drawn once per run).
    pub topics: Span,
    /// How long a producer waits for more records before it sends a batch that is not full.
    pub linger_ms: Span,
    /// Most records in one batch, and most bytes.
    pub batch_records: Span,
    pub batch_bytes: Span,
    /// Most records an application hands over at once (records come in bursts).
    pub burst_records: Span,
    /// Records a producer makes per second, on average (the earlier client's pace is set by
    /// the scenario's `send_interval_ms` and its round trips instead).
    pub records_per_second: Span,
    /// Produce requests a producer keeps outstanding per connection.
    pub max_in_flight: Span,
    /// Codecs a producer picks one of.
    pub codecs: Vec<Codec>,
    /// How long a batch may take from creation to acknowledgement before it is given up (at
    /// least the request timeout plus the linger time).
    pub delivery_timeout_ms: Span,
    /// How long a client waits for one response, drawn per process (never above the front end's
    /// own request timeout); absent: the front end's. A simulated network that drops what
    /// crosses a partition (turmoil) has no retransmission to deliver a request after the heal,
    /// so only a timeout frees the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<Span>,
    /// Chance that a producer is idempotent (ignored when the scenario makes every one so).
    pub idempotent_producers: f64,
    /// Chance that a producer keys its records (then a key picks the partition).
    pub keyed_producers: f64,
    /// Most records one poll hands to the application.
    pub max_poll_records: Span,
    /// A consumer's per-partition fetch size in bytes (drawn log-uniformly): small ones end
    /// responses inside batches.
    pub fetch_partition_bytes: Span,
    /// Chance that a consumer fetches all the partitions one broker leads in one request.
    pub multi_partition_fetch: f64,
    /// Least time between two commits of a consumer (0: after every poll that moved it).
    pub commit_interval_ms: Span,
    /// Chance, per poll, that a consumer seeks back to re-read offsets it read before.
    pub seek_back: f64,
    /// Chance, per poll, that a consumer restarts from its committed offsets (a crash of the
    /// application, not of a broker).
    pub restart: f64,
}

impl Default for WorkloadMix {
    fn default() -> Self {
        WorkloadMix {
            legacy_client: false,
            topics: Span::one(1),
            linger_ms: Span::new(0, 50),
            batch_records: Span::new(1, 64),
            batch_bytes: Span::new(1024, 16384),
            burst_records: Span::new(1, 24),
            records_per_second: Span::new(8, 32),
            max_in_flight: Span::new(1, 5),
            codecs: Codec::ALL.to_vec(),
            delivery_timeout_ms: Span::new(4000, 15000),
            request_timeout_ms: None,
            idempotent_producers: 0.5,
            keyed_producers: 0.5,
            max_poll_records: Span::new(1, 50),
            fetch_partition_bytes: Span::new(64, 65536),
            multi_partition_fetch: 0.5,
            commit_interval_ms: Span::new(0, 1000),
            seek_back: 0.02,
            restart: 0.01,
        }
    }
}

impl WorkloadMix {
    /// Checks the knobs make sense; the message names the first that does not.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("batch_records", self.batch_records),
            ("batch_bytes", self.batch_bytes),
            ("burst_records", self.burst_records),
            ("records_per_second", self.records_per_second),
            ("max_in_flight", self.max_in_flight),
            ("max_poll_records", self.max_poll_records),
            ("fetch_partition_bytes", self.fetch_partition_bytes),
            ("topics", self.topics),
            (
                "request_timeout_ms",
                self.request_timeout_ms.unwrap_or(Span::one(1)),
            ),
        ];
        for (name, span) in positive {
            if span.lo == 0 {
                return Err(format!("{name} must be at least 1, not {span}"));
            }
        }
        if self.max_in_flight.hi > 5 {
            return Err(format!(
                "max_in_flight {} is above 5: an idempotent producer keeps order only up to 5",
                self.max_in_flight
            ));
        }
        if self.codecs.is_empty() {
            return Err("codecs is empty".to_string());
        }
        let chances = [
            ("idempotent_producers", self.idempotent_producers),
            ("keyed_producers", self.keyed_producers),
            ("multi_partition_fetch", self.multi_partition_fetch),
            ("seek_back", self.seek_back),
            ("restart", self.restart),
        ];
        for (name, p) in chances {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} is a chance in 0..=1, not {p}"));
            }
        }
        Ok(())
    }
}

/// How an idempotent producer bumps its epoch after a sequence error (KIP-360).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EpochBump {
    /// InitProducerId v3+ with its id and epoch, as librdkafka does.
    InitProducerId,
    /// Epoch + 1 locally, as the Java client does for idempotent producers.
    Local,
}

/// What one producer process drew.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProducerProfile {
    pub idempotent: bool,
    pub max_in_flight: u32,
    pub linger_ms: u64,
    pub batch_records: u32,
    pub batch_bytes: u32,
    pub burst_records: u32,
    pub records_per_second: u32,
    pub codec: Codec,
    pub keyed: bool,
    pub epoch_bump: EpochBump,
    pub delivery_timeout_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<u64>,
}

impl ProducerProfile {
    pub fn draw(mix: &WorkloadMix, idempotent: Option<bool>, rng: &mut impl Rng) -> Self {
        // Draw every knob whatever `idempotent` says, so one knob's setting never shifts another's draw.
        let drawn_idempotent = rng.gen_bool(mix.idempotent_producers);
        ProducerProfile {
            idempotent: idempotent.unwrap_or(drawn_idempotent),
            max_in_flight: mix.max_in_flight.draw(rng) as u32,
            linger_ms: mix.linger_ms.draw(rng),
            batch_records: mix.batch_records.draw(rng) as u32,
            batch_bytes: mix.batch_bytes.draw(rng) as u32,
            burst_records: mix.burst_records.draw(rng) as u32,
            records_per_second: mix.records_per_second.draw(rng) as u32,
            codec: mix.codecs[rng.gen_range(0..mix.codecs.len())],
            keyed: rng.gen_bool(mix.keyed_producers),
            epoch_bump: if rng.gen_bool(0.5) {
                EpochBump::InitProducerId
            } else {
                EpochBump::Local
            },
            delivery_timeout_ms: mix.delivery_timeout_ms.draw(rng),
            request_timeout_ms: mix.request_timeout_ms.map(|s| s.draw(rng)),
        }
    }
}

/// What one consumer process drew.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConsumerProfile {
    pub max_poll_records: u32,
    pub fetch_partition_bytes: i32,
    pub multi_partition_fetch: bool,
    pub commit_interval_ms: u64,
    pub seek_back: f64,
    pub restart: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<u64>,
}

impl ConsumerProfile {
    pub fn draw(mix: &WorkloadMix, rng: &mut impl Rng) -> Self {
        ConsumerProfile {
            max_poll_records: mix.max_poll_records.draw(rng) as u32,
            fetch_partition_bytes: mix.fetch_partition_bytes.draw_log(rng).min(i32::MAX as u64)
                as i32,
            multi_partition_fetch: rng.gen_bool(mix.multi_partition_fetch),
            commit_interval_ms: mix.commit_interval_ms.draw(rng),
            seek_back: mix.seek_back,
            restart: mix.restart,
            request_timeout_ms: mix.request_timeout_ms.map(|s| s.draw(rng)),
        }
    }
}

/// A profile as the history's free-form `profile` map.
pub(crate) fn profile_map<T: Serialize>(
    profile: &T,
) -> std::collections::BTreeMap<String, serde_json::Value> {
    match serde_json::to_value(profile) {
        Ok(serde_json::Value::Object(m)) => m.into_iter().collect(),
        _ => Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn spans_parse_print_and_round_trip() {
        assert_eq!("5".parse::<Span>().unwrap(), Span::one(5));
        assert_eq!("1..=5".parse::<Span>().unwrap(), Span::new(1, 5));
        assert_eq!("1..6".parse::<Span>().unwrap(), Span::new(1, 5));
        assert!("5..=1".parse::<Span>().is_err());
        assert!("x".parse::<Span>().is_err());
        assert_eq!(Span::new(1, 5).to_string(), "1..=5");
        for text in ["3", "[1,4]", "\"2..=9\""] {
            let s: Span = serde_json::from_str(text).unwrap();
            let back: Span = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
            assert_eq!(s, back);
        }
        assert!(serde_json::from_str::<Span>("[4,1]").is_err());
    }

    #[test]
    fn draws_stay_in_range_and_follow_the_seed() {
        let span = Span::new(64, 65536);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let draws: Vec<u64> = (0..500).map(|_| span.draw_log(&mut rng)).collect();
        assert!(draws.iter().all(|d| (64..=65536).contains(d)));
        assert!(draws.iter().any(|d| *d < 512) && draws.iter().any(|d| *d > 8192));
        let mix = WorkloadMix::default();
        let a = ProducerProfile::draw(&mix, None, &mut ChaCha8Rng::seed_from_u64(3));
        let b = ProducerProfile::draw(&mix, None, &mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(a, b);
        let forced = ProducerProfile::draw(&mix, Some(true), &mut ChaCha8Rng::seed_from_u64(3));
        assert!(forced.idempotent);
        assert_eq!(
            forced.linger_ms, a.linger_ms,
            "forcing one knob keeps the others"
        );
    }

    #[test]
    fn the_default_mix_is_valid_and_bad_ones_are_named() {
        WorkloadMix::default().validate().unwrap();
        let bad = WorkloadMix {
            max_in_flight: Span::new(1, 9),
            ..WorkloadMix::default()
        };
        assert!(bad.validate().unwrap_err().contains("max_in_flight"));
        let bad = WorkloadMix {
            seek_back: 2.0,
            ..WorkloadMix::default()
        };
        assert!(bad.validate().unwrap_err().contains("seek_back"));
        let mix: WorkloadMix =
            serde_json::from_str(r#"{"linger_ms": 5, "codecs": ["lz4"]}"#).unwrap();
        assert_eq!(
            (mix.linger_ms, mix.codecs),
            (Span::one(5), vec![Codec::Lz4])
        );
    }
}
