//! Admin requests about records and their keeping: DeleteRecords moves the log start offset;
//! DescribeConfigs and IncrementalAlterConfigs show and change topic settings (retention).

use crate::api::{code, log_error_code, lookup};
use crate::broker::Broker;
use crate::storage::catalog::AlterError;
use crate::storage::topic_config::{Change, TopicConfig, CLEANUP_POLICY};
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use riptide_coverage::reached;
use std::time::Duration;

/// Moves each partition's log start up to the offset asked (-1: the high watermark), durably,
/// and answers the log start ("low watermark") after it.
pub async fn delete_records(b: &Broker, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let timeout = Duration::from_millis(req.timeout_ms.max(100) as u64);
    let mut r = DeleteRecordsResponse::default();
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut tr = DeleteRecordsTopicResult::default().with_name(t.name.clone());
        for p in t.partitions {
            let mut pr = DeleteRecordsPartitionResult::default()
                .with_partition_index(p.partition_index)
                .with_low_watermark(-1);
            match delete_below(b, &name, p.partition_index, p.offset, timeout).await {
                Ok(start) => pr.low_watermark = start,
                Err(c) => pr.error_code = c,
            }
            tr.partitions.push(pr);
        }
        r.topics.push(tr);
    }
    r
}

async fn delete_below(
    b: &Broker,
    topic: &str,
    partition: i32,
    offset: i64,
    timeout: Duration,
) -> Result<i64, i16> {
    let meta = lookup(b, topic, Some(partition)).await?;
    let log = b
        .log(&meta, partition)
        .await
        .map_err(|e| log_error_code(&e))?;
    // Judged against the chain as it is, not a view that missed another owner's commits.
    log.verify_tail_now()
        .await
        .map_err(|e| log_error_code(&e))?;
    let offset = if offset == -1 {
        log.high_watermark()
    } else {
        offset
    };
    let start = match tokio::time::timeout(timeout, log.trim_to(offset)).await {
        Ok(Ok(r)) => r.map_err(|e| log_error_code(&e))?,
        Ok(Err(_)) => return Err(code(ResponseError::UnknownServerError)),
        Err(_) => return Err(code(ResponseError::RequestTimedOut)),
    };
    reached!(
        "delete_records.log_start_moved",
        "DeleteRecords moved a partition's log start offset"
    );
    tracing::info!(topic, partition, log_start = start, "deleted records");
    Ok(start)
}

/// Kafka's resource type of a topic in DescribeConfigs and IncrementalAlterConfigs.
const TOPIC_RESOURCE: i8 = 2;
/// ConfigSource: a topic's own setting, or the default.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const DEFAULT_CONFIG: i8 = 5;
/// ConfigType of the settings served.
const STRING_TYPE: i8 = 2;
const LONG_TYPE: i8 = 5;

/// Topic settings (the ones this broker has: see `topic_config`). Other resources (brokers)
/// are answered with no settings.
pub async fn describe_configs(b: &Broker, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let mut r = DescribeConfigsResponse::default();
    for res in req.resources {
        let mut out = DescribeConfigsResult::default()
            .with_resource_type(res.resource_type)
            .with_resource_name(res.resource_name.clone());
        if res.resource_type == TOPIC_RESOURCE {
            match topic_config(b, res.resource_name.as_str()).await {
                Ok(config) => {
                    let wanted = |name: &str| {
                        res.configuration_keys
                            .as_ref()
                            .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
                    };
                    out.configs = config
                        .describe()
                        .into_iter()
                        .filter(|(name, _, _)| wanted(name))
                        .map(|(name, value, default)| {
                            DescribeConfigsResourceResult::default()
                                .with_name(StrBytes::from_static_str(name))
                                .with_value(Some(StrBytes::from_string(value)))
                                .with_config_source(if default {
                                    DEFAULT_CONFIG
                                } else {
                                    DYNAMIC_TOPIC_CONFIG
                                })
                                .with_config_type(if name == CLEANUP_POLICY {
                                    STRING_TYPE
                                } else {
                                    LONG_TYPE
                                })
                        })
                        .collect();
                }
                Err((c, msg)) => {
                    out.error_code = c;
                    out.error_message = Some(StrBytes::from_string(msg));
                }
            }
        }
        r.results.push(out);
    }
    r
}

async fn topic_config(b: &Broker, name: &str) -> Result<TopicConfig, (i16, String)> {
    let meta = lookup(b, name, None)
        .await
        .map_err(|c| (c, format!("topic {name}")))?;
    b.catalog.config(&meta).await.map_err(|e| {
        tracing::warn!(topic = name, error = %e, "could not read topic config");
        (code(ResponseError::KafkaStorageError), e.to_string())
    })
}

/// Changes topic settings: SET and DELETE (back to the default) of the settings served.
pub async fn incremental_alter_configs(
    b: &Broker,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut r = IncrementalAlterConfigsResponse::default();
    for res in req.resources {
        let mut out = AlterConfigsResourceResponse::default()
            .with_resource_type(res.resource_type)
            .with_resource_name(res.resource_name.clone());
        if let Err((c, msg)) = alter(b, &res, req.validate_only).await {
            out.error_code = c;
            out.error_message = Some(StrBytes::from_string(msg));
        }
        r.responses.push(out);
    }
    r
}

async fn alter(
    b: &Broker,
    res: &AlterConfigsResource,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    let invalid = |msg: String| (code(ResponseError::InvalidConfig), msg);
    if res.resource_type != TOPIC_RESOURCE {
        return Err((
            code(ResponseError::InvalidRequest),
            "only topic settings can be changed".into(),
        ));
    }
    let name = res.resource_name.as_str();
    let meta = lookup(b, name, None)
        .await
        .map_err(|c| (c, format!("topic {name}")))?;
    let mut changes = Vec::new();
    for c in &res.configs {
        let key = c.name.to_string();
        changes.push(match (c.config_operation, &c.value) {
            (0, Some(v)) => Change::Set(key, v.to_string()),
            (0, None) => return Err(invalid(format!("{key} has no value"))),
            (1, _) => Change::Delete(key),
            (op, _) => return Err(invalid(format!("operation {op} on {key} is not supported"))),
        });
    }
    if validate_only {
        let mut check = TopicConfig::default();
        for c in &changes {
            check.apply(c).map_err(|e| invalid(e.0))?;
        }
        return Ok(());
    }
    match b.catalog.alter_config(&meta, &changes).await {
        Ok(config) => {
            tracing::info!(topic = name, ?config, "topic config changed");
            Ok(())
        }
        Err(AlterError::Invalid(e)) => Err(invalid(e.0)),
        Err(AlterError::Store(e)) => {
            tracing::warn!(topic = name, error = %e, "could not change topic config");
            Err((code(ResponseError::KafkaStorageError), e.to_string()))
        }
    }
}
