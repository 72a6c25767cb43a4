//! Everything the broker keeps durable, as objects. See `docs/storage.md`.
//!
//! Layout (under the store's root):
//! - `topics/{name}.json` — a topic: id and partition count (create-if-absent).
//! - `log/{topic_id}/{partition}/{seq:020}.commit` — the commit chain of a
//!   partition. Commit `seq` is created only with create-if-absent, only after
//!   commit `seq - 1` is known, so the chain has exactly one history.
//! - `log/{topic_id}/{partition}/checkpoints/{seq:020}.ckpt` — checkpoints of the chain up to
//!   commit `seq` (create-if-absent; a cache of the chain, checked against it when used).
//! - `configs/{topic_id}/{seq:020}.json` — a topic's changed settings (create-if-absent).
//! - `brokers/{node_id}.json` — heartbeats (plain overwrite; liveness only).

pub mod catalog;
pub mod checkpoint;
pub mod commit;
pub mod log;
pub mod producers;
pub mod topic_config;

use object_store::path::Path;

pub fn topic_path(name: &str) -> Path {
    Path::from(format!("topics/{name}.json"))
}

pub fn topics_prefix() -> Path {
    Path::from("topics")
}

pub fn log_prefix(topic_id: &str, partition: i32) -> Path {
    Path::from(format!("log/{topic_id}/{partition}"))
}

pub fn topic_log_prefix(topic_id: &str) -> Path {
    Path::from(format!("log/{topic_id}"))
}

pub fn commit_path(topic_id: &str, partition: i32, seq: u64) -> Path {
    Path::from(format!("log/{topic_id}/{partition}/{seq:020}.commit"))
}

pub fn broker_path(node_id: i32) -> Path {
    Path::from(format!("brokers/{node_id}.json"))
}

pub fn brokers_prefix() -> Path {
    Path::from("brokers")
}

/// Parses the sequence number out of a commit object's name.
pub fn commit_seq(path: &Path) -> Option<u64> {
    path.filename()?.strip_suffix(".commit")?.parse().ok()
}

/// Where a partition's checkpoints live: beside its chain, so deleting the topic's log prefix
/// deletes them too, and listing them lists only them.
pub fn checkpoint_prefix(topic_id: &str, partition: i32) -> Path {
    Path::from(format!("log/{topic_id}/{partition}/checkpoints"))
}

pub fn checkpoint_path(topic_id: &str, partition: i32, seq: u64) -> Path {
    Path::from(format!(
        "log/{topic_id}/{partition}/checkpoints/{seq:020}.ckpt"
    ))
}

/// Parses the commit sequence number a checkpoint covers out of its name.
pub fn checkpoint_seq(path: &Path) -> Option<u64> {
    path.filename()?.strip_suffix(".ckpt")?.parse().ok()
}
