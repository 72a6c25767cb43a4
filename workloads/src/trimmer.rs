//! An administrator removing old records on purpose: now and then it picks a partition and
//! calls DeleteRecords at an offset between the log start and the high watermark, as an
//! application that has processed everything below an offset does. Records below the log
//! start it is answered are gone by design: not lost writes. Each call is sent once (a retry
//! of a call whose outcome is unknown would be a second deletion); an unknown outcome is `info`.

use crate::client::{Client, OffsetSpec};
use crate::net::Connector;
use crate::recorder::Recorder;
use crate::Topic;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use riptide_checker::history::DeleteRecordsValue;
use riptide_coverage::reached;
use std::time::Duration;
use tokio::time::Instant;

/// Milliseconds between two deletions.
const GAP_MS: std::ops::Range<u64> = 1_000..4_000;

#[derive(Clone, Debug)]
pub struct TrimmerSetup {
    pub process: u64,
    pub name: String,
    pub topics: Vec<Topic>,
    pub seed: u64,
}

pub async fn run<C: Connector>(
    client: &mut Client<C>,
    rec: &Recorder,
    setup: &TrimmerSetup,
    until: Instant,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(setup.seed);
    let partitions: Vec<(&str, i32)> = setup
        .topics
        .iter()
        .flat_map(|t| (0..t.partitions).map(move |p| (t.name.as_str(), p)))
        .collect();
    if partitions.is_empty() {
        return;
    }
    loop {
        let gap = Duration::from_millis(rng.gen_range(GAP_MS));
        if Instant::now() + gap >= until {
            return;
        }
        tokio::time::sleep(gap).await;
        let (topic, partition) = partitions[rng.gen_range(0..partitions.len())];
        let (Ok(earliest), Ok(latest)) = (
            client
                .list_offsets(topic, partition, OffsetSpec::Earliest)
                .await,
            client
                .list_offsets(topic, partition, OffsetSpec::Latest)
                .await,
        ) else {
            continue;
        };
        if latest <= earliest {
            continue;
        }
        // Up to half of what is left, so most of the log stays for the checkers to read.
        let offset = earliest + rng.gen_range(1..=((latest - earliest) / 2).max(1));
        let mut v = DeleteRecordsValue {
            topic: topic.to_string(),
            partition,
            offset,
            log_start: None,
        };
        rec.invoke(setup.process, v.clone());
        match client.delete_records(topic, partition, offset).await {
            Ok(start) => {
                reached!(
                    "trimmer.records_deleted",
                    "an administrator deleted a partition's records below an offset (DeleteRecords)"
                );
                v.log_start = Some(start);
                rec.ok(setup.process, v);
            }
            Err(e) => {
                rec.failed(setup.process, v, e.is_definite(), e.to_string());
            }
        }
    }
}
