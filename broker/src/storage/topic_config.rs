//! Per-topic settings: what CreateTopics sets, DescribeConfigs shows and IncrementalAlterConfigs
//! changes. The broker honours the retention ones.
//!
//! Settings given at creation live in the topic object. Each change is a new object
//! `configs/{topic_id}/{seq:020}.json` holding the whole set, written with create-if-absent after
//! reading the newest, so two brokers changing one topic at once cannot lose a change (the loser
//! re-reads and tries again). Keyed by the topic id, so a re-created topic starts from defaults.

use object_store::path::Path;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const RETENTION_MS: &str = "retention.ms";
pub const RETENTION_BYTES: &str = "retention.bytes";
pub const CLEANUP_POLICY: &str = "cleanup.policy";

/// Kafka's defaults: a week, no size bound, delete.
const DEFAULTS: &[(&str, &str)] = &[
    (CLEANUP_POLICY, "delete"),
    (RETENTION_BYTES, "-1"),
    (RETENTION_MS, "604800000"),
];

pub fn config_prefix(topic_id: &str) -> Path {
    Path::from(format!("configs/{topic_id}"))
}

pub fn config_path(topic_id: &str, seq: u64) -> Path {
    Path::from(format!("configs/{topic_id}/{seq:020}.json"))
}

pub fn config_seq(path: &Path) -> Option<u64> {
    path.filename()?.strip_suffix(".json")?.parse().ok()
}

/// A topic's settings that differ from the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfig {
    #[serde(default)]
    pub set: BTreeMap<String, String>,
}

/// Why a setting is refused: Kafka answers INVALID_CONFIG with the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidConfig(pub String);

/// A change IncrementalAlterConfigs asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Set(String, String),
    /// Back to the default.
    Delete(String),
}

impl TopicConfig {
    /// Settings as CreateTopics gives them, checked.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<Self, InvalidConfig> {
        let mut c = TopicConfig::default();
        for (name, value) in pairs {
            let value = value.ok_or_else(|| InvalidConfig(format!("{name} has no value")))?;
            c.apply(&Change::Set(name.to_string(), value.to_string()))?;
        }
        Ok(c)
    }

    pub fn apply(&mut self, change: &Change) -> Result<(), InvalidConfig> {
        match change {
            Change::Set(name, value) => {
                check(name, value)?;
                self.set.insert(name.clone(), value.clone());
            }
            Change::Delete(name) => {
                check_name(name)?;
                self.set.remove(name);
            }
        }
        Ok(())
    }

    /// Every setting with its value and whether it is the default.
    pub fn describe(&self) -> Vec<(&'static str, String, bool)> {
        DEFAULTS
            .iter()
            .map(|(name, default)| match self.set.get(*name) {
                Some(v) => (*name, v.clone(), false),
                None => (*name, default.to_string(), true),
            })
            .collect()
    }

    fn number(&self, name: &str) -> Option<i64> {
        let v = self.set.get(name).map(String::as_str).or_else(|| {
            DEFAULTS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, default)| *default)
        })?;
        v.parse().ok().filter(|n: &i64| *n >= 0)
    }

    /// How long records are kept (ms); `None`: forever.
    pub fn retention_ms(&self) -> Option<i64> {
        self.number(RETENTION_MS)
    }

    /// How many bytes a partition keeps; `None`: no bound.
    pub fn retention_bytes(&self) -> Option<i64> {
        self.number(RETENTION_BYTES)
    }
}

fn check_name(name: &str) -> Result<(), InvalidConfig> {
    if DEFAULTS.iter().any(|(n, _)| *n == name) {
        Ok(())
    } else {
        Err(InvalidConfig(format!(
            "unknown or unsupported topic config {name}"
        )))
    }
}

fn check(name: &str, value: &str) -> Result<(), InvalidConfig> {
    check_name(name)?;
    let ok = match name {
        CLEANUP_POLICY => value == "delete",
        _ => value.parse::<i64>().is_ok_and(|n| n >= -1),
    };
    if ok {
        Ok(())
    } else {
        Err(InvalidConfig(format!("invalid value {value} for {name}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings() {
        let c = TopicConfig::from_pairs([(RETENTION_MS, Some("5000"))]).unwrap();
        assert_eq!(c.retention_ms(), Some(5000));
        assert_eq!(c.retention_bytes(), None);
        assert_eq!(TopicConfig::default().retention_ms(), Some(604_800_000));
        let forever = TopicConfig::from_pairs([(RETENTION_MS, Some("-1"))]).unwrap();
        assert_eq!(forever.retention_ms(), None);
        assert!(TopicConfig::from_pairs([(RETENTION_MS, Some("soon"))]).is_err());
        assert!(TopicConfig::from_pairs([(RETENTION_MS, Some("-2"))]).is_err());
        assert!(TopicConfig::from_pairs([(CLEANUP_POLICY, Some("compact"))]).is_err());
        assert!(TopicConfig::from_pairs([("segment.bytes", Some("1"))]).is_err());
        let mut c = c;
        c.apply(&Change::Set(RETENTION_BYTES.into(), "100".into()))
            .unwrap();
        c.apply(&Change::Delete(RETENTION_MS.into())).unwrap();
        assert_eq!(
            (c.retention_ms(), c.retention_bytes()),
            (Some(604_800_000), Some(100))
        );
        let described = c.describe();
        assert!(described.contains(&(RETENTION_BYTES, "100".into(), false)));
        assert!(described.contains(&(RETENTION_MS, "604800000".into(), true)));
    }
}
