//! **g0**, **g1c** and their **-process** and **-realtime** variants (Elle's and Jepsen's cycle
//! anomalies): a cycle in the graph of dependencies between operations, which no order of
//! them can explain.
//!
//! Nodes: transactions that committed or may have (`ok` ended with commit, `info`), and `ok`
//! sends and polls outside transactions. Edges, each meaning "the first took effect before the
//! second" (a transaction takes effect when it commits, a send when it is appended, a poll when
//! it reads):
//!
//! - **ww**: in a partition's log (as acknowledgements and reads place values), the writer of
//!   one value → the writer of the next value of another op. Only out of a send outside
//!   transactions: Kafka does not isolate a transaction's writes, so another writer may append
//!   after it and still commit first (Jepsen allows G0, and G1c with ww edges, for that reason:
//!   a cycle through a transaction's ww edge is normal Kafka, not an anomaly).
//! - **wr**: the writer of a value → an op that read it. Only into a read_committed reader, or
//!   out of a send outside transactions (a read_uncommitted reader may read a transaction before
//!   it commits).
//! - **process**: an op → the next op of its process invoked after it completed.
//! - **realtime**: an op → an op invoked after it completed, kept sparse as Elle does (only
//!   from the ops completed since the last completion that implies them), so a long history
//!   gives a linear number of edges. `info` ops have no completion: no edges out.
//!
//! G0 is a cycle of ww edges, G1c one of ww and wr edges with at least one wr; the -process
//! variants may use process edges too, the -realtime ones process and realtime edges. Strongly
//! connected components come from `petgraph`'s Tarjan; each is reported once, as the strongest
//! variant that has a cycle in it (plain before process before realtime), with one short cycle
//! (a breadth-first search through an edge of the kind that names the variant), explained edge
//! by edge. Nothing runs for a history without transactions.
//!
//! Contract class: isolation is broken; no data need be lost.

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, EdgeIndex, NodeIndex};
use petgraph::visit::{EdgeFiltered, EdgeRef};

use super::{q, Anomaly, FastMap, Finding, Index, Tp, NONE};
use crate::history::{History, OpKind, F};

pub fn check(history: &History) -> Vec<Finding> {
    run(&Index::new(history))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Ww,
    Wr,
    Process,
    Realtime,
}

/// What a node is: a transaction (index into `Index::txns`), a send outside transactions, a
/// poll outside transactions.
#[derive(Clone, Copy, PartialEq, Eq)]
enum What {
    Txn(u32),
    Send,
    Poll,
}

struct Node {
    what: What,
    /// The op that carries the evidence (the completion).
    op: u64,
    process: u64,
    invoke_ns: u64,
    /// When it completed `ok` (else it has no edges out in time).
    done_ns: Option<u64>,
}

/// The records behind a ww or wr edge: the partition, the first record, the second (ww).
#[derive(Clone, Copy)]
struct Why<'a> {
    tp: Tp<'a>,
    from: (i64, &'a str),
    to: Option<(i64, &'a str)>,
}

/// Variants in report order (strongest first): name, edge kinds, the kind its cycle must use.
const STEPS: [(Anomaly, &[Kind], Kind); 6] = [
    (Anomaly::G0, &[Kind::Ww], Kind::Ww),
    (Anomaly::G1c, &[Kind::Ww, Kind::Wr], Kind::Wr),
    (
        Anomaly::G0Process,
        &[Kind::Ww, Kind::Process],
        Kind::Process,
    ),
    (
        Anomaly::G1cProcess,
        &[Kind::Ww, Kind::Wr, Kind::Process],
        Kind::Wr,
    ),
    (
        Anomaly::G0Realtime,
        &[Kind::Ww, Kind::Process, Kind::Realtime],
        Kind::Realtime,
    ),
    (
        Anomaly::G1cRealtime,
        &[Kind::Ww, Kind::Wr, Kind::Process, Kind::Realtime],
        Kind::Wr,
    ),
];

/// The dependency graph: nodes, and edges (from, to, kind, index into `whys` or none).
struct Deps<'a> {
    nodes: Vec<Node>,
    edges: Vec<(u32, u32, Kind, u32)>,
    whys: Vec<Why<'a>>,
    /// Record each edge's kind and why each ww and wr edge is there (only a graph with a cycle
    /// needs it). Without, the edges are only `plain`: (from, to), half the memory, and no
    /// process edges (see [`Deps::edge`]).
    keep_whys: bool,
    plain: Vec<(u32, u32)>,
    /// By node: a send outside transactions (asked for every ww and wr edge: a byte a node
    /// stays in the cache where the nodes do not).
    sends: Vec<bool>,
}

const NO_WHY: u32 = u32::MAX;

impl<'a> Deps<'a> {
    fn edge(&mut self, from: u32, to: u32, kind: Kind, why: Option<Why<'a>>) {
        if !self.keep_whys {
            // A process edge a → b has a completed before b was invoked, so the realtime edges
            // already lead from a to b (the sparse frontier keeps every such pair connected):
            // it cannot close a cycle the others do not.
            if kind != Kind::Process {
                self.plain.push((from, to));
            }
            return;
        }
        let w = match why {
            Some(w) => {
                self.whys.push(w);
                (self.whys.len() - 1) as u32
            }
            None => NO_WHY,
        };
        self.edges.push((from, to, kind, w));
    }

    fn plain_send(&self, n: u32) -> bool {
        self.sends[n as usize]
    }

    fn name(&self, ix: &Index<'_>, n: u32) -> String {
        let node = &self.nodes[n as usize];
        match node.what {
            What::Txn(t) => ix.txns[t as usize].describe(),
            What::Send => format!("send op {} (process {})", node.op, node.process),
            What::Poll => format!("poll op {} (process {})", node.op, node.process),
        }
    }
}

/// The graph; with `keep_whys`, each ww and wr edge's records, and the edges sorted and
/// deduplicated (without, they are as found, and may repeat).
fn build<'a>(ix: &Index<'a>, keep_whys: bool) -> Deps<'a> {
    let mut d = Deps {
        nodes: Vec::new(),
        edges: Vec::new(),
        whys: Vec::new(),
        keep_whys,
        plain: Vec::new(),
        sends: Vec::new(),
    };
    // Room for the ww and wr edges (at most one a record), and the realtime ones' usual count
    // (a few an op): growing a vector of millions copies it.
    let room = ix.reads.len() + ix.sends.len() + 2 * ix.pairs.len();
    if keep_whys {
        d.edges.reserve(room);
    } else {
        d.plain.reserve(room);
    }
    // Send index → its node; the readers: (pair, node).
    let mut of_send: Vec<u32> = vec![NONE; ix.sends.len()];
    let mut readers: Vec<(u32, u32)> = Vec::new();
    // `Index` adds one send per send pair and one txn per txn pair, in pair order.
    let (mut k, mut t) = (0, 0);
    for (i, pair) in ix.numbered_pairs_of(&[F::Send, F::Txn, F::Poll]) {
        let n = d.nodes.len() as u32;
        let last = pair.last();
        let outcome = pair.outcome();
        let node = |what| Node {
            what,
            op: last.index,
            process: pair.invoke.process,
            invoke_ns: pair.invoke.time_ns,
            done_ns: (outcome == OpKind::Ok).then_some(last.time_ns),
        };
        match (ix.f_at(i), outcome) {
            (F::Send, outcome) => {
                if outcome == OpKind::Ok {
                    d.nodes.push(node(What::Send));
                    d.sends.push(true);
                    of_send[k] = n;
                }
                k += 1;
            }
            (F::Txn, _) => {
                let txn = &ix.txns[t];
                if !txn.aborted() {
                    d.nodes.push(node(What::Txn(t as u32)));
                    d.sends.push(false);
                    of_send[txn.sends.clone()].fill(n);
                    readers.push((i as u32, n));
                }
                k = txn.sends.end;
                t += 1;
            }
            (F::Poll, OpKind::Ok) => {
                d.nodes.push(node(What::Poll));
                d.sends.push(false);
                readers.push((i as u32, n));
            }
            _ => {}
        }
    }
    // By value number: the one node that wrote it, if exactly one did. (Sends are in history
    // order, as each value's chain of sends is.)
    #[derive(Clone, Copy)]
    enum Wrote {
        Nobody,
        One(u32),
        Several,
    }
    let mut wrote = vec![
        Wrote::Nobody;
        ix.sends
            .iter()
            .map(|s| s.vid as usize + 1)
            .max()
            .unwrap_or(0)
    ];
    for (s, &n) in ix.sends.iter().zip(&of_send) {
        if n == NONE {
            continue;
        }
        let w = &mut wrote[s.vid as usize];
        *w = match *w {
            Wrote::Nobody => Wrote::One(n),
            Wrote::One(f) if f != n => Wrote::Several,
            other => other,
        };
    }
    let writer = |vid: u32| match wrote.get(vid as usize) {
        Some(Wrote::One(n)) => Some(*n),
        _ => None,
    };
    // ww: consecutive writers in each partition's log, whose value at each offset is the one
    // the first read there returned, else the first ack's (a merge of the two sorted lists).
    for (tp, part) in ix.parts() {
        let (reads, acks) = (&part.reads, &part.acks);
        let (mut a, mut b) = (0, 0);
        let mut prev: Option<(u32, i64, u32)> = None;
        loop {
            let (o, vid) = match (reads.get(a), acks.get(b)) {
                (Some(&(ro, ri)), Some(&(ao, _))) if ro <= ao => (ro, ix.reads[ri].vid),
                (_, Some(&(ao, si))) => (ao, ix.sends[si].vid),
                (Some(&(ro, ri)), None) => (ro, ix.reads[ri].vid),
                (None, None) => break,
            };
            while reads.get(a).is_some_and(|e| e.0 == o) {
                a += 1;
            }
            while acks.get(b).is_some_and(|e| e.0 == o) {
                b += 1;
            }
            let Some(n) = writer(vid) else { continue };
            if let Some((p, po, pvid)) = prev {
                if p != n && d.plain_send(p) {
                    let why = d.keep_whys.then(|| Why {
                        tp,
                        from: (po, ix.value(pvid)),
                        to: Some((o, ix.value(vid))),
                    });
                    d.edge(p, n, Kind::Ww, why);
                }
            }
            prev = Some((n, o, vid));
        }
    }
    // wr: writer → reader, by reader (its isolation looked up once).
    for &(i, reader) in &readers {
        let committed = ix.read_committed(d.nodes[reader as usize].process);
        for r in ix.reads_of_pair(i as usize) {
            let Some(w) = writer(r.vid) else {
                continue;
            };
            if w != reader && (d.plain_send(w) || committed) {
                let why = d.keep_whys.then(|| Why {
                    tp: ix.tp(r.pid),
                    from: (r.offset, ix.value(r.vid)),
                    to: None,
                });
                d.edge(w, reader, Kind::Wr, why);
            }
        }
    }
    // process and realtime, in one sweep of invokes and completions (invokes first at equal
    // times: "before" is strict).
    let mut events: Vec<(u64, bool, u64, u32)> = Vec::with_capacity(2 * d.nodes.len());
    for (n, node) in d.nodes.iter().enumerate() {
        events.push((node.invoke_ns, false, node.op, n as u32));
        if let Some(done) = node.done_ns {
            events.push((done, true, node.op, n as u32));
        }
    }
    // (Not the stable sort: its scratch buffer would raise the peak memory.)
    events.sort_unstable();
    let mut frontier: Vec<u32> = Vec::new();
    let mut last_done: FastMap<u64, u32> = FastMap::default();
    for (_, completes, _, n) in events {
        let (process, invoke_ns) = {
            let node = &d.nodes[n as usize];
            (node.process, node.invoke_ns)
        };
        if completes {
            // Whatever completed before this op was invoked is implied through it from now on.
            let nodes = &d.nodes;
            frontier.retain(|&a| nodes[a as usize].done_ns.is_some_and(|t| t >= invoke_ns));
            frontier.push(n);
            last_done.insert(process, n);
        } else {
            for &a in &frontier {
                d.edge(a, n, Kind::Realtime, None);
            }
            if let Some(&a) = last_done.get(&process) {
                d.edge(a, n, Kind::Process, None);
            }
        }
    }
    if keep_whys {
        // Of the edges with one (from, to, kind), the first added stays: its `why` index is the
        // lowest (edges without one have none to tell them apart).
        d.edges.sort_unstable();
        d.edges.dedup_by_key(|e| (e.0, e.1, e.2));
    }
    d
}

/// Some cycle (a self-loop counts) in the graph of all edges, whatever their kind (a plain
/// graph: see [`Deps::edge`]): without
/// one there is nothing to report, and the graph need not be built with its explanations.
/// Kahn's algorithm over the edges in arrays: nodes are taken off while nothing points at them;
/// a cycle is what remains.
fn has_cycle(d: &Deps<'_>) -> bool {
    let n = d.nodes.len();
    // Edges grouped by source (`start[a]..start[a + 1]` in `targets`), and in-degrees.
    let mut start = vec![0u32; n + 1];
    let mut indegree = vec![0u32; n];
    for &(from, to) in &d.plain {
        start[from as usize + 1] += 1;
        indegree[to as usize] += 1;
    }
    for a in 0..n {
        start[a + 1] += start[a];
    }
    let mut fill = start.clone();
    let mut targets = vec![0u32; d.plain.len()];
    for &(from, to) in &d.plain {
        targets[fill[from as usize] as usize] = to;
        fill[from as usize] += 1;
    }
    let mut ready: Vec<u32> = (0..n as u32)
        .filter(|&a| indegree[a as usize] == 0)
        .collect();
    let mut taken = 0;
    while let Some(a) = ready.pop() {
        taken += 1;
        let (lo, hi) = (start[a as usize] as usize, start[a as usize + 1] as usize);
        for &b in &targets[lo..hi] {
            indegree[b as usize] -= 1;
            if indegree[b as usize] == 0 {
                ready.push(b);
            }
        }
    }
    taken < n
}

pub(crate) fn run(ix: &Index<'_>) -> Vec<Finding> {
    if ix.txns.is_empty() {
        return Vec::new();
    }
    // Most histories have no cycle: look for one in the plain graph first.
    if !has_cycle(&build(ix, false)) {
        return Vec::new();
    }
    let d = build(ix, true);
    let mut graph: DiGraph<(), (Kind, u32), u32> =
        DiGraph::with_capacity(d.nodes.len(), d.edges.len());
    for _ in &d.nodes {
        graph.add_node(());
    }
    for &(from, to, kind, why) in &d.edges {
        graph.add_edge(
            NodeIndex::new(from as usize),
            NodeIndex::new(to as usize),
            (kind, why),
        );
    }
    // Each node's strongly connected component in the whole graph (none: alone).
    let mut comp_of: Vec<Option<usize>> = vec![None; d.nodes.len()];
    let mut comps = 0;
    for comp in tarjan_scc(&graph) {
        if comp.len() > 1 {
            for n in comp {
                comp_of[n.index()] = Some(comps);
            }
            comps += 1;
        }
    }
    if comps == 0 {
        return Vec::new();
    }
    let mut reported = vec![false; comps];
    let mut out = Vec::new();
    for (anomaly, kinds, key) in STEPS {
        let filtered = EdgeFiltered::from_fn(
            &graph,
            |e: petgraph::graph::EdgeReference<'_, (Kind, u32)>| kinds.contains(&e.weight().0),
        );
        for comp in tarjan_scc(&filtered) {
            let Some(whole) = comp_of[comp[0].index()].filter(|_| comp.len() > 1) else {
                continue;
            };
            if reported[whole] {
                continue;
            }
            if let Some(cycle) = cycle_in(&graph, &comp, kinds, key) {
                reported[whole] = true;
                out.push(finding(ix, &d, &graph, anomaly, &cycle));
            }
        }
    }
    out
}

/// A short cycle inside `comp` using only `kinds`, through an edge of kind `key`: the edges in
/// order.
fn cycle_in(
    graph: &DiGraph<(), (Kind, u32), u32>,
    comp: &[NodeIndex],
    kinds: &[Kind],
    key: Kind,
) -> Option<Vec<EdgeIndex>> {
    let inside: FastMap<NodeIndex, ()> = comp.iter().map(|&n| (n, ())).collect();
    let start = comp.iter().find_map(|&n| {
        graph
            .edges(n)
            .find(|e| e.weight().0 == key && inside.contains_key(&e.target()))
    })?;
    let (from, to) = (start.source(), start.target());
    // Breadth-first from the key edge's target back to its source.
    let mut parent: FastMap<NodeIndex, EdgeIndex> = FastMap::default();
    let mut queue = std::collections::VecDeque::from([to]);
    while let Some(n) = queue.pop_front() {
        if n == from {
            break;
        }
        for e in graph.edges(n) {
            let m = e.target();
            if kinds.contains(&e.weight().0)
                && inside.contains_key(&m)
                && m != to
                && !parent.contains_key(&m)
            {
                parent.insert(m, e.id());
                queue.push_back(m);
            }
        }
    }
    let mut path = Vec::new();
    let mut n = from;
    while n != to {
        let e = *parent.get(&n)?;
        path.push(e);
        n = graph.edge_endpoints(e)?.0;
    }
    path.push(start.id());
    path.reverse();
    Some(path)
}

fn finding(
    ix: &Index<'_>,
    d: &Deps<'_>,
    graph: &DiGraph<(), (Kind, u32), u32>,
    anomaly: Anomaly,
    cycle: &[EdgeIndex],
) -> Finding {
    let mut steps = Vec::new();
    let mut ops = Vec::new();
    let mut offsets = Vec::new();
    let mut tp = None;
    for &e in cycle {
        let Some((a, b)) = graph.edge_endpoints(e) else {
            continue;
        };
        let (a, b) = (a.index() as u32, b.index() as u32);
        ops.push(d.nodes[a as usize].op);
        let (kind, why) = graph[e];
        let why = d.whys.get(why as usize);
        if let Some(w) = why {
            tp.get_or_insert(w.tp);
            offsets.push(w.from.0);
            offsets.extend(w.to.map(|t| t.0));
        }
        let (an, bn) = (d.name(ix, a), d.name(ix, b));
        steps.push(match (kind, why) {
            (Kind::Ww, Some(w)) => format!(
                "{an} wrote {} at {}/{} offset {} and {bn} wrote {} after it (ww)",
                q(w.from.1),
                w.tp.0,
                w.tp.1,
                w.from.0,
                w.to.map_or_else(String::new, |t| format!("{} at offset {}", q(t.1), t.0)),
            ),
            (Kind::Wr, Some(w)) => format!(
                "{bn} read {} at {}/{} offset {}, written by {an} (wr)",
                q(w.from.1),
                w.tp.0,
                w.tp.1,
                w.from.0
            ),
            (Kind::Process, _) => format!(
                "{an} completed before {bn}, a later op of process {}, was invoked (process)",
                d.nodes[b as usize].process
            ),
            _ => format!("{an} completed before {bn} was invoked (realtime)"),
        });
    }
    Finding::new(
        anomaly,
        tp.unwrap_or(("", -1)),
        offsets,
        ops,
        format!(
            "A cycle of {} dependencies that no order of the operations explains: {}.",
            cycle.len(),
            steps.join("; ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::*;
    use crate::history::{HistoryBuilder, PollValue, SendValue, TxnEnd, TxnValue};

    /// A transaction of `process` that polls `reads` (partition, offset, value) and sends
    /// `writes` (partition, value, offset), committed.
    fn rw_txn(
        b: &mut HistoryBuilder,
        process: u64,
        reads: &[(i32, i64, &str)],
        writes: &[(i32, &str, i64)],
    ) -> (u64, u64) {
        let mut inv = TxnValue::new(format!("tx-{process}"), TxnEnd::Commit);
        let mut done = inv.clone();
        let mut p = PollValue::default();
        for &(part, o, v) in reads {
            p = p.record(T, part, o, v);
        }
        inv = inv.poll(PollValue::default());
        done = done.poll(p);
        for &(part, v, o) in writes {
            inv = inv.send(SendValue::new(T, part, v));
            done = done.send(SendValue::new(T, part, v).acked(o));
        }
        let i = b.invoke(process, inv);
        (i, {
            done.end_sent_ns = Some(b.now_ns());
            b.complete(process, i, OpKind::Ok, done)
        })
    }

    /// Two read_committed transactions that each read what the other wrote: T1 writes "x" to
    /// partition 0, T2 writes "y" to partition 1; T1 reads "y" and T2 reads "x" (wr both ways),
    /// both concurrent. With `t2_reads_x` false, T2 reads nothing: no cycle.
    fn two_txns(t2_reads_x: bool) -> crate::History {
        let mut b = HistoryBuilder::new();
        rc_client(&mut b, 1);
        rc_client(&mut b, 2);
        let mut t1 = TxnValue::new("tx-1", TxnEnd::Commit).poll(PollValue::default());
        t1 = t1.send(SendValue::new(T, 0, "x"));
        let mut t2 = TxnValue::new("tx-2", TxnEnd::Commit).poll(PollValue::default());
        t2 = t2.send(SendValue::new(T, 1, "y"));
        let i1 = b.invoke(1, t1);
        let i2 = b.invoke(2, t2);
        b.advance(1_000);
        let mut d1 = TxnValue::new("tx-1", TxnEnd::Commit)
            .poll(PollValue::default().record(T, 1, 0, "y"))
            .send(SendValue::new(T, 0, "x").acked(0));
        d1.end_sent_ns = Some(b.now_ns());
        let r2 = if t2_reads_x {
            PollValue::default().record(T, 0, 0, "x")
        } else {
            PollValue::default()
        };
        let mut d2 = TxnValue::new("tx-2", TxnEnd::Commit)
            .poll(r2)
            .send(SendValue::new(T, 1, "y").acked(0));
        d2.end_sent_ns = Some(b.now_ns());
        b.advance(1_000);
        b.complete(1, i1, OpKind::Ok, d1);
        b.complete(2, i2, OpKind::Ok, d2);
        final_read_hidden(&mut b, 20, 0, &[(0, "x")], &[(1, 2)], 2);
        final_read_hidden(&mut b, 20, 1, &[(0, "y")], &[(1, 2)], 2);
        b.build()
    }

    #[test]
    fn fires_g1c_when_two_transactions_read_each_other() {
        let h = two_txns(true);
        h.validate().unwrap();
        let f = check(&h);
        assert_eq!(anomalies(&f), vec![Anomaly::G1c], "{f:#?}");
        assert_eq!(f[0].ops, vec![6, 7]);
        assert!(f[0].explanation.contains("(wr)"), "{}", f[0].explanation);
    }

    #[test]
    fn silent_when_only_one_reads_the_other() {
        let h = two_txns(false);
        assert!(crate::checkers::run_all(&h, &Default::default()).is_empty());
    }

    #[test]
    fn fires_g1c_realtime_when_a_later_transaction_is_read_by_an_earlier_one() {
        // T1 commits and completes; T2 is invoked after, writes "y"; T1 had read "y".
        let mut b = HistoryBuilder::new();
        rc_client(&mut b, 1);
        b.advance(1_000);
        rw_txn(&mut b, 1, &[(1, 0, "y")], &[(0, "x", 0)]);
        b.advance(1_000);
        rw_txn(&mut b, 2, &[], &[(1, "y", 0)]);
        let f = check(&b.build());
        assert_eq!(anomalies(&f), vec![Anomaly::G1cRealtime], "{f:#?}");
        assert!(
            f[0].explanation.contains("(realtime)"),
            "{}",
            f[0].explanation
        );
    }

    #[test]
    fn fires_g0_realtime_when_a_send_lands_before_one_acknowledged_earlier() {
        // "a" is acknowledged at 5; "b", invoked after, lands at 3: ww b → a, realtime a → b.
        let mut b = HistoryBuilder::new();
        rw_txn(&mut b, 3, &[], &[(1, "z", 0)]);
        send(&mut b, 1, 0, "a", 5);
        b.advance(1_000);
        send(&mut b, 2, 0, "b", 3);
        let f = check(&b.build());
        assert_eq!(anomalies(&f), vec![Anomaly::G0Realtime], "{f:#?}");
        // In order, the same sends are fine.
        let mut b = HistoryBuilder::new();
        rw_txn(&mut b, 3, &[], &[(1, "z", 0)]);
        send(&mut b, 1, 0, "a", 3);
        b.advance(1_000);
        send(&mut b, 2, 0, "b", 5);
        assert!(check(&b.build()).is_empty());
    }

    #[test]
    fn fires_g0_on_a_log_that_orders_two_sends_both_ways() {
        // "a" at 1 and 3, "b" at 2: a → b → a by the log alone.
        let mut b = HistoryBuilder::new();
        rw_txn(&mut b, 3, &[], &[(1, "z", 0)]);
        send(&mut b, 1, 0, "a", 1);
        send(&mut b, 2, 0, "b", 2);
        poll(&mut b, 10, 0, &[(1, "a"), (2, "b"), (3, "a")], 4);
        let f = check(&b.build());
        assert_eq!(anomalies(&f), vec![Anomaly::G0], "{f:#?}");
        let mut b = HistoryBuilder::new();
        rw_txn(&mut b, 3, &[], &[(1, "z", 0)]);
        send(&mut b, 1, 0, "a", 1);
        send(&mut b, 2, 0, "b", 2);
        poll(&mut b, 10, 0, &[(1, "a"), (2, "b")], 4);
        assert!(check(&b.build()).is_empty());
    }

    #[test]
    fn silent_on_kafka_s_interleaved_transactions() {
        // T1 and T2 write partitions 0 and 1 in opposite orders, concurrently: Kafka does not
        // isolate writes, so this is no anomaly (Jepsen's G0, which it allows).
        let mut b = HistoryBuilder::new();
        let t1 = TxnValue::new("tx-1", TxnEnd::Commit)
            .send(SendValue::new(T, 0, "a"))
            .send(SendValue::new(T, 1, "b"));
        let t2 = TxnValue::new("tx-2", TxnEnd::Commit)
            .send(SendValue::new(T, 1, "c"))
            .send(SendValue::new(T, 0, "d"));
        let i1 = b.invoke(1, t1);
        let i2 = b.invoke(2, t2);
        b.advance(1_000);
        let mut d1 = TxnValue::new("tx-1", TxnEnd::Commit)
            .send(SendValue::new(T, 0, "a").acked(0))
            .send(SendValue::new(T, 1, "b").acked(1));
        d1.end_sent_ns = Some(b.now_ns());
        let mut d2 = TxnValue::new("tx-2", TxnEnd::Commit)
            .send(SendValue::new(T, 1, "c").acked(0))
            .send(SendValue::new(T, 0, "d").acked(1));
        d2.end_sent_ns = Some(b.now_ns());
        b.advance(1_000);
        b.complete(1, i1, OpKind::Ok, d1);
        b.complete(2, i2, OpKind::Ok, d2);
        final_read_hidden(&mut b, 20, 0, &[(0, "a"), (1, "d")], &[(2, 4)], 4);
        final_read_hidden(&mut b, 20, 1, &[(0, "c"), (1, "b")], &[(2, 4)], 4);
        let h = b.build();
        h.validate().unwrap();
        let all = crate::checkers::run_all(&h, &Default::default());
        assert!(all.is_empty(), "{all:#?}");
    }
}
