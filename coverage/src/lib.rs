//! Coverage points: which interesting states a run reached.
//!
//! A passing seed says little unless it went where bugs live: a fetch from inside a batch, a
//! write whose outcome is unknown, a claim race lost during an ownership move. Code marks such a
//! state with [`reached!`]; a run collects how often each point was reached, and a sweep adds up
//! which seeds reached which points and, loudly, which points no seed reached (Antithesis calls
//! these "sometimes" assertions; FoundationDB counts its BUGGIFY points the same way).
//!
//! The list of points comes from the code itself: each `reached!` registers a static [`Point`]
//! in a link-time table ([`linkme`]), so a point nobody reaches, even one in dead code, is still
//! listed, as never reached. Nothing is kept by hand.
//!
//! Counting never changes behaviour (no logging, no time, no randomness), so trace hashes are
//! the same with collection on or off. Counts go to the run collecting on the current thread
//! ([`collect`]: a simulation runs on one thread, and several may share a process, as tests
//! do) or, when none is, to process-wide counters ([`process`]: certify's real runtime spreads
//! a run over threads).
//!
//! Invariants ([`always!`], in [`invariant`]) live in the same tables: each is registered at
//! link time, a run counts how often each was checked, and a broken one is recorded for the run
//! (a simulation turns it into a finding) or, outside a run, logged and counted, never a panic.

use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

#[doc(hidden)]
pub use linkme;

pub mod invariant;
pub use invariant::{invariants, Breach, Invariant, Invariants, INVARIANTS};

/// One coverage point, as [`reached!`] registers it.
#[derive(Debug)]
pub struct Point {
    /// Short and unique within its component, e.g. `fetch.inside_batch`.
    pub name: &'static str,
    /// One sentence: the state this point marks.
    pub what: &'static str,
    /// `module_path!()` of the code that reaches it (gives the component).
    pub module: &'static str,
    pub file: &'static str,
    pub line: u32,
}

impl Point {
    /// Which part of riptide the point is in: the crate, without `riptide_` (`broker`,
    /// `workloads`, `faults`, `sim`, `cli`).
    pub fn component(&self) -> &'static str {
        component_of(self.module)
    }

    /// `component/name`: how reports name the point.
    pub fn key(&self) -> String {
        format!("{}/{}", self.component(), self.name)
    }
}

/// The component of a `module_path!()`: the crate, without `riptide_`.
pub(crate) fn component_of(module: &'static str) -> &'static str {
    let krate = module.split("::").next().unwrap_or(module);
    match krate.strip_prefix("riptide_") {
        Some(c) => c,
        None if krate == "riptide" => "cli",
        None => krate,
    }
}

/// Every point in this binary, in link order (see [`points`] for a sorted list).
#[linkme::distributed_slice]
pub static POINTS: [Point];

/// Marks a coverage point: `reached!("fetch.inside_batch", "a fetch began inside a stored
/// batch")`. The name is a literal, unique within the crate; the sentence says what state was
/// reached. Costs a thread-local increment.
#[macro_export]
macro_rules! reached {
    ($name:literal, $what:literal) => {{
        #[$crate::linkme::distributed_slice($crate::POINTS)]
        #[linkme(crate = $crate::linkme)]
        static POINT: $crate::Point = $crate::Point {
            name: $name,
            what: $what,
            module: module_path!(),
            file: file!(),
            line: line!(),
        };
        $crate::hit(&POINT);
    }};
}

static ENABLED: AtomicBool = AtomicBool::new(true);

/// What the run collecting on a thread has counted so far.
pub(crate) struct Run {
    /// By index in [`POINTS`].
    pub(crate) hits: Vec<u64>,
    /// By index in [`INVARIANTS`]: how often each was checked, and broken.
    pub(crate) checked: Vec<u64>,
    pub(crate) broken: Vec<u64>,
    /// Every breach, in the order they happened.
    pub(crate) breaches: Vec<Breach>,
}

impl Run {
    fn new() -> Run {
        Run {
            hits: vec![0; POINTS.len()],
            checked: vec![0; INVARIANTS.len()],
            broken: vec![0; INVARIANTS.len()],
            breaches: Vec::new(),
        }
    }
}

thread_local! {
    /// The run collecting on this thread, if any.
    pub(crate) static RUN: RefCell<Option<Run>> = const { RefCell::new(None) };
}

fn process_counts() -> &'static [AtomicU64] {
    static COUNTS: OnceLock<Vec<AtomicU64>> = OnceLock::new();
    COUNTS.get_or_init(|| POINTS.iter().map(|_| AtomicU64::new(0)).collect())
}

fn index_of(p: &'static Point) -> Option<usize> {
    let base = POINTS.as_ptr_range();
    let at = p as *const Point;
    if !base.contains(&at) {
        return None;
    }
    // In the table: its distance from the start, in points.
    Some((at as usize - base.start as usize) / std::mem::size_of::<Point>())
}

/// Counts one arrival at `p` (what [`reached!`] calls).
#[doc(hidden)]
pub fn hit(p: &'static Point) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let Some(i) = index_of(p) else { return };
    let counted = RUN
        .try_with(|run| match run.borrow_mut().as_mut() {
            Some(run) => {
                run.hits[i] += 1;
                true
            }
            None => false,
        })
        .unwrap_or(false);
    if !counted {
        process_counts()[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// Turns counting on or off for the whole process (on by default). Off, [`reached!`] does
/// nothing and every report shows zero: the determinism meta-test compares trace hashes both
/// ways.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Every point of this binary, sorted by key.
pub fn points() -> Vec<&'static Point> {
    let mut all: Vec<&'static Point> = POINTS.iter().collect();
    all.sort_by_key(|p| (p.component(), p.name, p.file, p.line));
    all
}

/// Runs `f` with its own counts on this thread (a simulation, which stays on one thread) and
/// returns them with its result. Nested calls each get their own counts.
pub fn collect<R>(f: impl FnOnce() -> R) -> (R, Coverage) {
    let (out, c) = collect_all(f);
    (out, c.coverage)
}

/// What [`collect_all`] counted: coverage, and the invariants checked and broken.
#[derive(Clone, Debug, Default)]
pub struct Collected {
    pub coverage: Coverage,
    pub invariants: Invariants,
}

/// Like [`collect`], with the invariants as well: how often each was checked, and every breach.
pub fn collect_all<R>(f: impl FnOnce() -> R) -> (R, Collected) {
    struct Restore(Option<Option<Run>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(prev) = self.0.take() {
                let _ = RUN.try_with(|run| *run.borrow_mut() = prev);
            }
        }
    }
    let prev = RUN.with(|run| run.replace(Some(Run::new())));
    let mut restore = Restore(Some(prev));
    let out = f();
    let run = RUN.with(|run| run.replace(restore.0.take().flatten()));
    drop(restore);
    let collected = match run {
        Some(run) => Collected {
            coverage: Coverage::from_counts(&run.hits),
            invariants: Invariants::from_run(&run.checked, &run.broken, run.breaches),
        },
        None => Collected {
            coverage: Coverage::from_counts(&[]),
            invariants: Invariants::from_run(&[], &[], Vec::new()),
        },
    };
    (out, collected)
}

/// What the process-wide counters hold: everything reached outside [`collect`] since the last
/// [`reset_process`].
pub fn process() -> Coverage {
    let counts: Vec<u64> = process_counts()
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .collect();
    Coverage::from_counts(&counts)
}

/// Sets every process-wide counter (points and invariants) back to zero.
pub fn reset_process() {
    for c in process_counts() {
        c.store(0, Ordering::Relaxed);
    }
    invariant::reset_process();
}

/// How often a run reached each point of the binary that ran it (zero for those it did not
/// reach), by [`Point::key`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Coverage {
    pub hits: BTreeMap<String, u64>,
}

impl Coverage {
    fn from_counts(counts: &[u64]) -> Coverage {
        let mut hits = BTreeMap::new();
        for (i, p) in POINTS.iter().enumerate() {
            *hits.entry(p.key()).or_insert(0) += counts.get(i).copied().unwrap_or(0);
        }
        Coverage { hits }
    }

    /// Only the points `keep` accepts (certify shows only what it can see: not the points of a
    /// broker in another process, nor the simulator's own).
    pub fn only(&self, keep: impl Fn(&Point) -> bool) -> Coverage {
        let kept: std::collections::BTreeSet<String> =
            POINTS.iter().filter(|p| keep(p)).map(Point::key).collect();
        let hits = self
            .hits
            .iter()
            .filter(|(k, _)| kept.contains(*k))
            .map(|(k, n)| (k.clone(), *n))
            .collect();
        Coverage { hits }
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Coverage) {
        for (k, n) in &other.hits {
            *self.hits.entry(k.clone()).or_insert(0) += n;
        }
    }

    pub fn reached(&self) -> impl Iterator<Item = (&str, u64)> {
        self.hits
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| (k.as_str(), *n))
    }

    pub fn unreached(&self) -> impl Iterator<Item = &str> {
        self.hits
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(k, _)| k.as_str())
    }

    /// "N of M points reached", then the points reached with their counts, then those not.
    pub fn to_text(&self) -> String {
        let reached: Vec<_> = self.reached().collect();
        let mut out = format!(
            "coverage    {} of {} points reached\n",
            reached.len(),
            self.hits.len()
        );
        for (k, n) in &reached {
            let _ = writeln!(out, "  {n:>8}  {k}");
        }
        let unreached: Vec<_> = self.unreached().collect();
        if !unreached.is_empty() {
            let _ = writeln!(out, "  not reached ({}):", unreached.len());
            out.push_str(&wrapped(&unreached, "    ", 100));
        }
        out
    }
}

/// `items` comma-separated in lines of at most `width` characters, each after `indent`.
fn wrapped(items: &[&str], indent: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for (i, item) in items.iter().enumerate() {
        let piece = if i + 1 < items.len() {
            format!("{item},")
        } else {
            item.to_string()
        };
        if !line.is_empty() && indent.len() + line.len() + 1 + piece.len() > width {
            let _ = writeln!(out, "{indent}{line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&piece);
    }
    if !line.is_empty() {
        let _ = writeln!(out, "{indent}{line}");
    }
    out
}

/// What a sweep learns from its seeds' coverage: for each point, how many seeds reached it,
/// how often in all, and the first seed that did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Tally {
    pub seeds: u64,
    pub points: BTreeMap<String, PointTally>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PointTally {
    pub seeds: u64,
    pub hits: u64,
    pub first_seed: Option<u64>,
}

impl Tally {
    /// An empty tally; the points it lists are those its seeds' coverage lists (each world
    /// lists the points it can reach).
    pub fn new() -> Tally {
        Tally::default()
    }

    /// Adds one seed's coverage. Seeds may come in any order: the first seed is the smallest.
    pub fn add(&mut self, seed: u64, c: &Coverage) {
        self.seeds += 1;
        for (k, n) in &c.hits {
            let t = self.points.entry(k.clone()).or_default();
            if *n > 0 {
                t.seeds += 1;
                t.hits += n;
                t.first_seed = Some(t.first_seed.map_or(seed, |s| s.min(seed)));
            }
        }
    }

    /// Adds another tally (a shard of the same sweep): the result is the tally of both
    /// shards' seeds together.
    pub fn merge(&mut self, other: &Tally) {
        self.seeds += other.seeds;
        for (k, o) in &other.points {
            let t = self.points.entry(k.clone()).or_default();
            t.seeds += o.seeds;
            t.hits += o.hits;
            t.first_seed = match (t.first_seed, o.first_seed) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }

    pub fn unreached(&self) -> Vec<&str> {
        self.points
            .iter()
            .filter(|(_, t)| t.seeds == 0)
            .map(|(k, _)| k.as_str())
            .collect()
    }

    /// The coverage table of a sweep, unreached points last and in capitals.
    pub fn to_text(&self) -> String {
        let unreached = self.unreached();
        let mut out = format!(
            "coverage     {} of {} points reached over {} seeds\n",
            self.points.len() - unreached.len(),
            self.points.len(),
            self.seeds
        );
        let width = self.points.keys().map(|k| k.len()).max().unwrap_or(0);
        let _ = writeln!(
            out,
            "  {:<width$}  {:>6}  {:>10}  first seed",
            "point", "seeds", "hits"
        );
        for (k, t) in self.points.iter().filter(|(_, t)| t.seeds > 0) {
            let _ = writeln!(
                out,
                "  {k:<width$}  {:>6}  {:>10}  {}",
                t.seeds,
                t.hits,
                t.first_seed.map_or(String::new(), |s| s.to_string())
            );
        }
        if !unreached.is_empty() {
            let _ = writeln!(
                out,
                "NEVER REACHED by any of the {} seeds ({} points): the sweep says nothing about them",
                self.seeds,
                unreached.len()
            );
            for k in unreached {
                let _ = writeln!(out, "  {k}");
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // threads only to show counts stay apart
mod tests {
    use super::*;

    fn reached_twice() {
        reached!("test.live", "a point the tests reach");
        reached!("test.live_too", "another point the tests reach");
    }

    #[allow(dead_code)]
    fn never_called() {
        reached!("test.dead", "a point in a function nothing calls");
    }

    #[test]
    fn a_point_in_dead_code_is_listed_and_never_reached() {
        let ((), c) = collect(|| {
            reached_twice();
            reached_twice();
        });
        assert_eq!(c.hits["coverage/test.live"], 2);
        assert_eq!(c.hits["coverage/test.live_too"], 2);
        assert_eq!(c.hits["coverage/test.dead"], 0);
        assert!(c.unreached().any(|k| k == "coverage/test.dead"));
        assert!(c
            .to_text()
            .contains("not reached (1):\n    coverage/test.dead\n"));
        let mut t = Tally::new();
        t.add(7, &c.only(|p| p.component() == "coverage"));
        t.add(3, &c.only(|p| p.component() == "coverage"));
        assert_eq!(t.points["coverage/test.live"].first_seed, Some(3));
        assert_eq!(t.points["coverage/test.live"].seeds, 2);
        assert_eq!(t.unreached(), vec!["coverage/test.dead"]);
        assert!(t.to_text().contains("NEVER REACHED"));
    }

    #[test]
    fn runs_on_one_thread_count_apart_and_nest() {
        let ((), outer) = collect(|| {
            reached_twice();
            let ((), inner) = collect(reached_twice);
            assert_eq!(inner.hits["coverage/test.live"], 1);
        });
        assert_eq!(outer.hits["coverage/test.live"], 1);
        let other = std::thread::spawn(|| collect(|| ()).1).join().unwrap();
        assert_eq!(other.hits["coverage/test.live"], 0);
    }

    #[test]
    fn outside_a_run_counts_go_to_the_process() {
        // Other tests of this binary run in parallel inside their own `collect`: only this
        // thread counts process-wide, so the count only goes up by what it adds.
        let before = process().hits["coverage/test.live"];
        std::thread::spawn(reached_twice).join().unwrap();
        assert!(process().hits["coverage/test.live"] > before);
    }

    #[test]
    fn coverage_round_trips_as_a_plain_map() {
        let ((), c) = collect(reached_twice);
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.starts_with("{\"coverage/test.dead\":0"));
        assert_eq!(serde_json::from_str::<Coverage>(&json).unwrap(), c);
        let mut twice = c.clone();
        twice.add(&c);
        assert_eq!(
            twice.hits["coverage/test.live"],
            2 * c.hits["coverage/test.live"]
        );
        let mut from_nothing = Coverage::default();
        from_nothing.add(&c);
        assert_eq!(from_nothing, c);
    }

    #[test]
    fn keys_are_unique() {
        let mut seen = std::collections::BTreeMap::new();
        for p in points() {
            if let Some(other) = seen.insert(p.key(), (p.file, p.line)) {
                panic!("{} at {}:{} and {:?}", p.key(), p.file, p.line, other);
            }
        }
    }
}
