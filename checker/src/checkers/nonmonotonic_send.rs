//! **nonmonotonic-send**: one producer process's acknowledged sends to a partition, in invocation
//! order, receive offsets that do not increase.
//!
//! Kafka itself lets a *non-idempotent* producer with more than one request in flight reorder
//! records when it retries: a batch that failed and is sent again lands after batches sent later.
//! So for a process whose `client` op says `idempotent: false` and `max_in_flight > 1`, a pair in
//! which either send was retried (`attempts > 1`) is not reported, and a retried send is not what
//! later sends are compared with. Nor is a pair whose requests were answered by different brokers:
//! with several requests outstanding while leadership moves, an earlier request can wait at one
//! broker (in its socket, or while it takes the partition over) while a later one is committed by
//! another; only one leader keeps a connection's order. Idempotent producers, `max_in_flight <= 1`
//! (the client then waits for a partition's answer before its next batch), and processes without
//! a `client` op are held to the strict rule. Two records of one record batch, or two sends of one
//! imported Jepsen op, are [`super::int_nonmonotonic_send`]'s (as in Jepsen, whose rule is this
//! one without the excuses: Kafka's retry reordering is riptide's addition).

use super::{q, Anomaly, FastMap, Finding, Index};
use crate::history::History;

pub fn check(history: &History) -> Vec<Finding> {
    run(&Index::new(history))
}

/// The send the next one is compared with: (offset, op, value, batch, broker, Jepsen op).
type Prev<'a> = (i64, u64, &'a str, Option<u64>, Option<&'a str>, Option<u64>);

pub(crate) fn run(ix: &Index<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    // (process, partition number) → its last ack. Lookups only, never iterated.
    let mut last: FastMap<(u64, u32), Prev<'_>> = FastMap::default();
    for s in &ix.sends {
        let Some(o) = s.acked() else { continue };
        // Checked only for retried sends, so strict histories pay no lookup.
        let excused = s.retried() && ix.may_reorder_on_retry(s.process);
        if let Some(&(prev, prev_op, prev_value, prev_batch, prev_broker, prev_jepsen_op)) =
            last.get(&(s.process, s.pid))
        {
            let same_batch = (s.batch.is_some() && s.batch == prev_batch)
                || (s.jepsen_op.is_some() && s.jepsen_op == prev_jepsen_op);
            let moved = o <= prev
                && matches!((s.broker, prev_broker), (Some(a), Some(b)) if a != b)
                && ix.may_reorder_on_retry(s.process);
            if o <= prev && !excused && !same_batch && !moved {
                out.push(Finding::new(
                    Anomaly::NonmonotonicSend,
                    ix.tp(s.pid),
                    vec![prev, o],
                    vec![prev_op, s.op],
                    format!(
                        "Process {} sent {} after {} but it was acknowledged at offset {o}, not after {prev}.",
                        s.process,
                        q(ix.value(s.vid)),
                        q(prev_value)
                    ),
                ));
            }
        }
        if !excused {
            last.insert(
                (s.process, s.pid),
                (o, s.op, ix.value(s.vid), s.batch, s.broker, s.jepsen_op),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::*;
    use crate::history::HistoryBuilder;

    #[test]
    fn silent_on_clean_history() {
        assert!(check(&clean()).is_empty());
    }

    #[test]
    fn fires_when_a_producer_gets_a_lower_offset() {
        let mut b = HistoryBuilder::new();
        send(&mut b, 1, 0, "a", 5);
        send(&mut b, 2, 0, "x", 1);
        send(&mut b, 1, 0, "b", 3);
        let f = check(&b.build());
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].anomaly, Anomaly::NonmonotonicSend);
        assert_eq!(f[0].offsets, vec![5, 3]);
        assert_eq!(f[0].ops, vec![1, 5]);
    }

    /// Process 1 (described by `client`, if given) sends "a" then "b" in two batches, with
    /// "a"'s batch sent `attempts_a` times; "b" is acknowledged first, at the lower offset.
    fn reordered(client_op: Option<(bool, u32)>, attempts_a: u32) -> crate::History {
        let mut b = HistoryBuilder::new();
        if let Some((idempotent, max_in_flight)) = client_op {
            client(&mut b, 1, "producer", idempotent, max_in_flight);
        }
        let a = invoke_send(&mut b, 1, 0, "a", Some(1));
        let bb = invoke_send(&mut b, 1, 0, "b", Some(2));
        complete_send(&mut b, 1, bb, 0, "b", Done::acked(0));
        complete_send(&mut b, 1, a, 0, "a", Done::acked(1).attempts(attempts_a));
        b.build()
    }

    #[test]
    fn fires_for_an_idempotent_pipelined_producer_with_retries() {
        let f = check(&reordered(Some((true, 5)), 2));
        assert_eq!(anomalies(&f), vec![Anomaly::NonmonotonicSend], "{f:#?}");
        assert_eq!(f[0].offsets, vec![1, 0]);
    }

    #[test]
    fn silent_for_a_non_idempotent_pipelined_producer_with_a_retried_send() {
        assert!(check(&reordered(Some((false, 5)), 2)).is_empty());
        // The later send retried excuses the pair as well.
        let mut b = HistoryBuilder::new();
        client(&mut b, 1, "producer", false, 3);
        let a = invoke_send(&mut b, 1, 0, "a", Some(1));
        let bb = invoke_send(&mut b, 1, 0, "b", Some(2));
        complete_send(&mut b, 1, a, 0, "a", Done::acked(1));
        complete_send(&mut b, 1, bb, 0, "b", Done::acked(0).attempts(3));
        assert!(check(&b.build()).is_empty());
    }

    #[test]
    fn fires_for_a_non_idempotent_pipelined_producer_when_neither_was_retried() {
        let f = check(&reordered(Some((false, 5)), 1));
        assert_eq!(anomalies(&f), vec![Anomaly::NonmonotonicSend], "{f:#?}");
        // A retried send in between excuses only the pairs it is in.
        let mut b = HistoryBuilder::new();
        client(&mut b, 1, "producer", false, 5);
        let a = invoke_send(&mut b, 1, 0, "a", Some(1));
        let r = invoke_send(&mut b, 1, 0, "r", Some(2));
        let c = invoke_send(&mut b, 1, 0, "c", Some(3));
        complete_send(&mut b, 1, a, 0, "a", Done::acked(4));
        complete_send(&mut b, 1, r, 0, "r", Done::acked(5).attempts(2));
        complete_send(&mut b, 1, c, 0, "c", Done::acked(3));
        let f = check(&b.build());
        assert_eq!(anomalies(&f), vec![Anomaly::NonmonotonicSend], "{f:#?}");
        assert_eq!(f[0].offsets, vec![4, 3]);
    }

    #[test]
    fn answers_from_different_brokers_excuse_only_a_pipelined_non_idempotent_producer() {
        let history =
            |idempotent: bool, max_in_flight: u32, brokers: (&'static str, &'static str)| {
                let mut b = HistoryBuilder::new();
                client(&mut b, 1, "producer", idempotent, max_in_flight);
                let a = invoke_send(&mut b, 1, 0, "a", Some(1));
                let bb = invoke_send(&mut b, 1, 0, "b", Some(2));
                complete_send(&mut b, 1, bb, 0, "b", Done::acked(0).broker(brokers.1));
                complete_send(&mut b, 1, a, 0, "a", Done::acked(1).broker(brokers.0));
                b.build()
            };
        // Leadership moved: "a" waited at x while y committed "b".
        assert!(check(&history(false, 5, ("x:1", "y:1"))).is_empty());
        // One broker keeps a connection's order; idempotence and one in flight keep it anywhere.
        for h in [
            history(false, 5, ("x:1", "x:1")),
            history(true, 5, ("x:1", "y:1")),
            history(false, 1, ("x:1", "y:1")),
        ] {
            let f = check(&h);
            assert_eq!(anomalies(&f), vec![Anomaly::NonmonotonicSend], "{f:#?}");
        }
    }

    #[test]
    fn fires_for_retries_with_one_request_in_flight_or_without_a_client_op() {
        let f = check(&reordered(Some((false, 1)), 2));
        assert_eq!(anomalies(&f), vec![Anomaly::NonmonotonicSend], "{f:#?}");
        let f = check(&reordered(None, 2));
        assert_eq!(anomalies(&f), vec![Anomaly::NonmonotonicSend], "{f:#?}");
    }

    #[test]
    fn leaves_records_of_one_batch_to_int_nonmonotonic_send() {
        let mut b = HistoryBuilder::new();
        let a = invoke_send(&mut b, 1, 0, "a", Some(7));
        let bb = invoke_send(&mut b, 1, 0, "b", Some(7));
        complete_send(&mut b, 1, a, 0, "a", Done::acked(5));
        complete_send(&mut b, 1, bb, 0, "b", Done::acked(4));
        let h = b.build();
        assert!(check(&h).is_empty());
        let f = crate::checkers::int_nonmonotonic_send::check(&h);
        assert_eq!(anomalies(&f), vec![Anomaly::IntNonmonotonicSend], "{f:#?}");
    }

    #[test]
    fn silent_across_partitions_and_processes() {
        let mut b = HistoryBuilder::new();
        send(&mut b, 1, 0, "a", 5);
        send(&mut b, 1, 1, "b", 0);
        send(&mut b, 2, 0, "c", 1);
        assert!(check(&b.build()).is_empty());
    }
}
