//! The workload really exercises what real clients do: summed over `chaos` seeds 1..=20, each
//! client counter in the reports is above what the earlier one-record-per-request client could
//! reach (issue 12's acceptance).

use riptide_checker::history::ClientCounters;
use riptide_sim::{run, Scenario};

#[test]
fn chaos_seeds_reach_every_client_behaviour() {
    let scenario = Scenario::named("chaos").expect("chaos");
    let mut sum = ClientCounters::default();
    for seed in 1..=20 {
        let o = run(seed, &scenario).expect("the run completes");
        for c in o.report.clients.values() {
            let Some(k) = &c.counters else { continue };
            sum.batches += k.batches;
            sum.records += k.records;
            sum.max_records_per_batch = sum.max_records_per_batch.max(k.max_records_per_batch);
            sum.max_partitions_per_request = sum
                .max_partitions_per_request
                .max(k.max_partitions_per_request);
            sum.max_topics_per_request = sum.max_topics_per_request.max(k.max_topics_per_request);
            sum.max_requests_in_flight = sum.max_requests_in_flight.max(k.max_requests_in_flight);
            sum.epoch_bumps += k.epoch_bumps;
            sum.commits_inside_batch += k.commits_inside_batch;
            sum.fetches_inside_batch += k.fetches_inside_batch;
            sum.multi_partition_fetches += k.multi_partition_fetches;
            sum.seeks_back += k.seeks_back;
            sum.restarts += k.restarts;
        }
    }
    let checks = [
        (
            "mean records per batch above 1",
            sum.mean_records_per_batch() > 1.0,
        ),
        ("a batch of several records", sum.max_records_per_batch > 1),
        (
            "a request for several partitions",
            sum.max_partitions_per_request > 1,
        ),
        (
            "a request for several topics",
            sum.max_topics_per_request > 1,
        ),
        ("several requests in flight", sum.max_requests_in_flight > 1),
        ("an epoch bump", sum.epoch_bumps > 0),
        ("a commit inside a batch", sum.commits_inside_batch > 0),
        (
            "a fetch that started inside a batch",
            sum.fetches_inside_batch > 0,
        ),
        (
            "a fetch of several partitions",
            sum.multi_partition_fetches > 0,
        ),
        ("a seek back", sum.seeks_back > 0),
        ("a consumer restart", sum.restarts > 0),
    ];
    let missing: Vec<&str> = checks
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(n, _)| *n)
        .collect();
    assert!(
        missing.is_empty(),
        "never reached: {missing:?}; counters {sum:#?}"
    );
}
