//! Broker settings. Everything a broker needs besides its seams.

use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct BrokerConfig {
    pub node_id: i32,
    pub zone: String,
    /// Host and port clients are told to connect to.
    pub advertised_host: String,
    pub advertised_port: i32,
    /// Partition count of topics created implicitly by Metadata.
    pub default_partitions: i32,
    pub auto_create_topics: bool,
    /// Frames larger than this are refused and the connection closed.
    pub max_request_bytes: usize,
    /// How often a broker writes its heartbeat and re-reads the membership.
    pub heartbeat_interval: Duration,
    /// A broker whose heartbeat is older than this is considered gone.
    pub session_timeout: Duration,
    /// Upper bound on the bytes of one commit (many produce batches grouped).
    pub max_commit_bytes: usize,
    /// Bytes of commit objects kept in memory for fetches.
    pub cache_bytes: usize,
    /// Bytes of produce requests a broker holds at once, from when a request is read until the
    /// log is done with its batches (committed, or failed). A connection whose next produce
    /// does not fit stops reading until earlier ones are done, so a fast producer is slowed
    /// instead of queued (Kafka's `queued.max.request.bytes`, for produce requests). One
    /// request larger than this waits for all the others and then goes alone.
    pub max_produce_bytes_in_flight: usize,
    /// Seed for ids this broker makes (incarnation, topic ids, write ids).
    pub seed: u64,
    /// A planted bug (testing the testers); `None` in any real use.
    pub bug: Option<crate::bugs::Bug>,
    /// Highest ApiVersions version served: 3, or 2 to act as a broker of a release before
    /// KIP-511 (as in a cluster halfway through a rolling upgrade): clients asking v3 are
    /// refused and ask again lower.
    pub api_versions_max: i16,
    /// How often an owner applies its topics' retention (Kafka's `log.retention.check.interval.ms`).
    pub retention_check_interval: Duration,
    /// How long objects wholly below the log start are kept before they are deleted, so reads
    /// in flight still finish (Kafka's `file.delete.delay.ms`).
    pub delete_delay: Duration,
    /// SASL users: with them, a connection must log in (PLAIN or SCRAM) before anything but
    /// ApiVersions is served. `None`: anyone may connect (the default, for local use).
    pub sasl: Option<Arc<riptide_auth::Users>>,
}

impl BrokerConfig {
    pub fn new(node_id: i32, host: impl Into<String>, port: i32) -> Self {
        BrokerConfig {
            node_id,
            zone: "zone-a".into(),
            advertised_host: host.into(),
            advertised_port: port,
            default_partitions: 1,
            auto_create_topics: true,
            max_request_bytes: 100 * 1024 * 1024,
            heartbeat_interval: Duration::from_millis(500),
            session_timeout: Duration::from_millis(3000),
            max_commit_bytes: 8 * 1024 * 1024,
            cache_bytes: 256 * 1024 * 1024,
            max_produce_bytes_in_flight: 8 * 1024 * 1024,
            seed: 0,
            bug: None,
            api_versions_max: 3,
            retention_check_interval: Duration::from_secs(30),
            delete_delay: Duration::from_secs(60),
            sasl: None,
        }
    }
}
