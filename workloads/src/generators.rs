//! Workload generators: producers writing unique values, consumers reading by
//! assignment, and the final read of every partition. Each is one process of
//! the history; the same code runs in simulation and against a real cluster.

use crate::client::group::{needs_rejoin, Membership};
use crate::client::{Client, OffsetSpec};
use crate::net::Connector;
use crate::recorder::Recorder;
use crate::Topic;
use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use riptide_checker::history::{
    AssignValue, CommitValue, FinalReadValue, HiddenSpan, OffsetValue, PartitionOffset, PollValue,
    SendValue, TopicPartition,
};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    pub topic: String,
    pub partitions: i32,
    /// Mean pause between two sends of one producer.
    pub send_interval: Duration,
    /// How long a consumer's fetch may wait for data.
    pub fetch_max_wait_ms: i32,
    pub fetch_max_bytes: i32,
    /// Shared with the roster: a traffic spike makes sends come faster.
    pub pace: crate::Pace,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            topic: "riptide".into(),
            partitions: 4,
            send_interval: Duration::from_millis(20),
            fetch_max_wait_ms: 200,
            fetch_max_bytes: 1 << 20,
            pace: crate::Pace::default(),
        }
    }
}

/// Sends unique values (`p{process}-{n}`) to random partitions until `until`.
pub async fn producer<C: Connector>(
    client: &mut Client<C>,
    rec: &Recorder,
    process: u64,
    cfg: &WorkloadConfig,
    seed: u64,
    until: Instant,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut n = 0u64;
    while Instant::now() < until {
        let partition = rng.gen_range(0..cfg.partitions);
        let value = format!("p{process}-{n}");
        n += 1;
        let send = SendValue::new(&cfg.topic, partition, &value);
        let invoke = rec.invoke(process, send.clone());
        let bytes = Bytes::from(value.clone().into_bytes());
        client.witness().set_op(Some(invoke));
        let result = client.produce(&cfg.topic, partition, None, bytes, -1).await;
        client.witness().set_op(None);
        match result {
            Ok(offset) => {
                rec.ok(process, send.acked(offset));
            }
            Err(e) => {
                rec.failed(process, send, e.is_definite(), e.to_string());
            }
        }
        let pause = cfg.pace.gap_us(cfg.send_interval.as_micros() as u64);
        tokio::time::sleep(Duration::from_micros(rng.gen_range(0..=2 * pause))).await;
    }
}

/// Reads `partitions` from offset 0 by assignment, following each until `until`.
pub async fn consumer<C: Connector>(
    client: &mut Client<C>,
    rec: &Recorder,
    process: u64,
    cfg: &WorkloadConfig,
    partitions: &[i32],
    until: Instant,
) {
    let assign = AssignValue {
        partitions: partitions
            .iter()
            .map(|p| TopicPartition::new(&cfg.topic, *p))
            .collect(),
    };
    rec.invoke(process, assign.clone());
    rec.ok(process, assign);
    let mut positions: Vec<(i32, i64)> = partitions.iter().map(|p| (*p, 0)).collect();
    while Instant::now() < until {
        for (partition, position) in positions.iter_mut() {
            if Instant::now() >= until {
                break;
            }
            if poll(client, rec, process, cfg, *partition, position)
                .await
                .is_none()
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// One recorded poll of `partition` from `*position`, which advances past
/// what was read. `Some(got records)`, or `None` if the fetch failed.
async fn poll<C: Connector>(
    client: &mut Client<C>,
    rec: &Recorder,
    process: u64,
    cfg: &WorkloadConfig,
    partition: i32,
    position: &mut i64,
) -> Option<bool> {
    let invoke = rec.invoke(process, PollValue::default());
    client.witness().set_op(Some(invoke));
    let fetched = client
        .fetch(
            &cfg.topic,
            partition,
            *position,
            cfg.fetch_max_wait_ms,
            cfg.fetch_max_bytes,
        )
        .await;
    client.witness().set_op(None);
    match fetched {
        Ok(r) => {
            let mut v = PollValue::default()
                .fetch_offset(&cfg.topic, partition, *position)
                .hwm(&cfg.topic, partition, r.high_watermark);
            for record in &r.records {
                v = v.record(&cfg.topic, partition, record.offset, &text(&record.value));
                *position = record.offset + 1;
            }
            rec.ok(process, v);
            Some(!r.records.is_empty())
        }
        Err(e) => {
            // Reads have no effect: a failed poll is always `fail`.
            rec.failed(process, PollValue::default(), true, e.to_string());
            None
        }
    }
}

fn text(value: &Option<Bytes>) -> String {
    value
        .as_ref()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

/// Reads every partition from offset 0 to its high watermark. Retries until
/// `give_up`; a partition it cannot read is recorded as `fail` (which the
/// liveness checker reports).
pub async fn final_read<C: Connector>(
    client: &mut Client<C>,
    rec: &Recorder,
    process: u64,
    cfg: &WorkloadConfig,
    give_up: Instant,
) {
    let topics = [Topic::new(cfg.topic.clone(), cfg.partitions)];
    final_read_topics(client, rec, process, &topics, cfg.fetch_max_bytes, give_up).await
}

/// [`final_read`] of every partition of several topics, in order.
pub async fn final_read_topics<C: Connector>(
    client: &mut Client<C>,
    rec: &Recorder,
    process: u64,
    topics: &[Topic],
    max_bytes: i32,
    give_up: Instant,
) {
    for topic in topics {
        for partition in 0..topic.partitions {
            let invoke = rec.invoke(process, FinalReadValue::new(&topic.name, partition));
            client.witness().set_op(Some(invoke));
            let mut last_error = String::new();
            let outcome = loop {
                match read_partition(client, &topic.name, partition, max_bytes).await {
                    Ok(v) => break Some(v),
                    Err(e) => last_error = e,
                }
                if Instant::now() >= give_up {
                    break None;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            client.witness().set_op(None);
            match outcome {
                Some(v) => {
                    rec.ok(process, v);
                }
                None => {
                    rec.failed(
                        process,
                        FinalReadValue::new(&topic.name, partition),
                        true,
                        last_error,
                    );
                }
            }
        }
    }
}

/// How many empty answers in a row at one offset below the high watermark the final read takes
/// before it gives a partition up.
const EMPTY_FETCHES: u32 = 5;

async fn read_partition<C: Connector>(
    client: &mut Client<C>,
    topic: &str,
    partition: i32,
    max_bytes: i32,
) -> Result<FinalReadValue, String> {
    let hwm = if client.config().isolation_level == 1 {
        // Read committed: all the way to the end of the log, once every transaction in it
        // has ended (the last stable offset caught up with the high watermark).
        client.config_mut().isolation_level = 0;
        let end = client
            .list_offsets(topic, partition, OffsetSpec::Latest)
            .await;
        client.config_mut().isolation_level = 1;
        let end = end.map_err(|e| e.to_string())?;
        let stable = client
            .list_offsets(topic, partition, OffsetSpec::Latest)
            .await
            .map_err(|e| e.to_string())?;
        if stable < end {
            return Err(format!(
                "a transaction is open below the end of the log (stable {stable}, end {end})"
            ));
        }
        end
    } else {
        client
            .list_offsets(topic, partition, OffsetSpec::Latest)
            .await
            .map_err(|e| e.to_string())?
    };
    // From the log start: records below it were removed on purpose (DeleteRecords, retention).
    let start = client
        .list_offsets(topic, partition, OffsetSpec::Earliest)
        .await
        .map_err(|e| e.to_string())?;
    let mut v = FinalReadValue::new(topic, partition);
    v.hwm = Some(hwm);
    v.log_start = (start > 0).then_some(start);
    let mut position = start.max(0);
    // Empty answers in a row at `position`: a broker that reads its store while the fetch waits
    // (Nisshi on S3) may answer nothing when the wait runs out; ask again there, waiting longer,
    // before giving the partition up (and starting it again from 0).
    let mut empty = 0;
    while position < hwm {
        let wait = if empty == 0 { 100 } else { 1_000 };
        let r = client
            .fetch(topic, partition, position, wait, max_bytes)
            .await
            .map_err(|e| e.to_string())?;
        if r.records.is_empty() && r.next_offset.is_none_or(|n| n <= position) {
            empty += 1;
            if empty < EMPTY_FETCHES {
                continue;
            }
            return Err(format!(
                "no records at offset {position} below hwm {hwm} ({empty} fetches)"
            ));
        }
        empty = 0;
        for &(from, to, why) in &r.hidden {
            if from < hwm {
                v.hidden.push(HiddenSpan {
                    from,
                    to: to.min(hwm),
                    why,
                });
            }
        }
        for record in r.records {
            if record.offset >= hwm {
                break;
            }
            position = record.offset + 1;
            v.records.push(OffsetValue {
                offset: record.offset,
                value: text(&record.value),
            });
        }
        if let Some(next) = r.next_offset {
            position = position.max(next);
        }
    }
    Ok(v)
}

/// A consumer-group member: joins `group`, starts each assigned partition at
/// the group's committed offset (recorded as a `seek`), polls, and commits
/// after every poll that returned records. Rejoins when the group rebalances.
pub async fn group_consumer<C: Connector>(
    client: &mut Client<C>,
    rec: &Recorder,
    process: u64,
    cfg: &WorkloadConfig,
    group: &str,
    until: Instant,
) {
    let mut m = Membership::new(group);
    let mut assigned: Vec<(i32, i64)> = Vec::new();
    let mut member = false;
    let mut next_heartbeat = Instant::now();
    while Instant::now() < until {
        if !member {
            rec.invoke(process, AssignValue::default());
            let topics = [Topic::new(cfg.topic.clone(), cfg.partitions)];
            let joined = match client.join_group(&mut m, &topics).await {
                Ok(ps) => client.committed_offsets(&mut m, &ps).await,
                Err(e) => Err(e),
            };
            match joined {
                Ok(offsets) => {
                    let assign = AssignValue {
                        partitions: offsets
                            .iter()
                            .map(|((t, p), _)| TopicPartition::new(t, *p))
                            .collect(),
                    };
                    rec.ok(process, assign);
                    assigned = offsets
                        .into_iter()
                        .map(|((_, p), o)| (p, o.max(0)))
                        .collect();
                    for (p, o) in &assigned {
                        let seek = PartitionOffset {
                            topic: cfg.topic.clone(),
                            partition: *p,
                            offset: *o,
                        };
                        rec.invoke(process, seek.clone());
                        rec.ok(process, seek);
                    }
                    member = true;
                    next_heartbeat = Instant::now() + HEARTBEAT;
                }
                Err(e) => {
                    rec.failed(process, AssignValue::default(), true, e.to_string());
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            continue;
        }
        let mut consumed = Vec::new();
        for (partition, position) in assigned.iter_mut() {
            if poll(client, rec, process, cfg, *partition, position).await == Some(true) {
                consumed.push((*partition, *position));
            }
        }
        if !consumed.is_empty() {
            let commit = CommitValue {
                group: Some(group.to_string()),
                offsets: consumed
                    .iter()
                    .map(|(p, o)| PartitionOffset {
                        topic: cfg.topic.clone(),
                        partition: *p,
                        offset: *o,
                    })
                    .collect(),
            };
            rec.invoke(process, commit.clone());
            let offsets: Vec<(String, i32, i64)> = consumed
                .iter()
                .map(|(p, o)| (cfg.topic.clone(), *p, *o))
                .collect();
            match client.commit_offsets(&mut m, &offsets).await {
                Ok(()) => {
                    rec.ok(process, commit);
                }
                Err(e) => {
                    rec.failed(process, commit, e.is_definite(), e.to_string());
                    member &= !needs_rejoin(&e);
                }
            }
        }
        if member && Instant::now() >= next_heartbeat {
            next_heartbeat = Instant::now() + HEARTBEAT;
            if let Err(e) = client.heartbeat(&mut m).await {
                member = !needs_rejoin(&e);
            }
        }
    }
    client.leave_group(&mut m).await;
}

/// How often a group member heartbeats between polls.
const HEARTBEAT: Duration = Duration::from_millis(1000);
