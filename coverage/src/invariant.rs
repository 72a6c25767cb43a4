//! Invariants: what must always hold, asserted in the code under test.
//!
//! `always!(cond, "log.offsets_contiguous", "each commit starts where the log ends", "commit
//! {} starts at {}", seq, base)` checks `cond` where the state changes and evaluates to it, so
//! the code goes on exactly as it would have (`if !always!(..) { return Err(..) }` keeps the
//! error it returned before). Like [`crate::reached!`], each `always!` registers a static
//! [`Invariant`] in a link-time table, so reports list every invariant of the binary, checked
//! or not.
//!
//! A broken invariant is never a panic. It is logged (`tracing::error!`) and then:
//! - inside a run collecting on the current thread ([`crate::collect_all`], as a simulation
//!   does), recorded for the run as a [`Breach`] (name, place, detail): the simulator puts each
//!   in the history, where a checker turns it into a finding, so the run fails with its seed;
//! - outside one (a real broker), counted process-wide ([`process`]).
//!
//! Checks are counted like coverage points (off with [`crate::set_enabled`]); breaches are
//! recorded whatever the switch says. Nothing here reads a clock or draws randomness, and a
//! check that holds only increments a counter: passing runs keep their trace hashes.
//!
//! What this cannot do: see a state no `always!` looks at, or a breach on another thread of a
//! simulation (a simulation stays on one thread).

use crate::{Run, RUN};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// One invariant, as [`always!`](crate::always) registers it.
#[derive(Debug)]
pub struct Invariant {
    /// Short and unique within its component, e.g. `log.offsets_contiguous`.
    pub name: &'static str,
    /// One sentence: what always holds.
    pub what: &'static str,
    /// `module_path!()` of the code that checks it (gives the component).
    pub module: &'static str,
    pub file: &'static str,
    pub line: u32,
}

impl Invariant {
    /// The crate it is in, without `riptide_` (as [`crate::Point::component`]).
    pub fn component(&self) -> &'static str {
        crate::component_of(self.module)
    }

    /// `component/name`: how reports and findings name it.
    pub fn key(&self) -> String {
        format!("{}/{}", self.component(), self.name)
    }

    /// `file:line` of the check.
    pub fn place(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// Every invariant in this binary, in link order (see [`invariants`] for a sorted list).
#[linkme::distributed_slice]
pub static INVARIANTS: [Invariant];

/// Every invariant of this binary, sorted by key.
pub fn invariants() -> Vec<&'static Invariant> {
    let mut all: Vec<&'static Invariant> = INVARIANTS.iter().collect();
    all.sort_by_key(|i| (i.component(), i.name, i.file, i.line));
    all
}

/// Asserts an invariant and evaluates to whether it held:
/// `always!(cond, "name", "what always holds")` or, with a detail for when it breaks,
/// `always!(cond, "name", "what always holds", "format {}", args)`. The name is a literal,
/// unique within the crate; the detail is formatted only when the condition is false.
#[macro_export]
macro_rules! always {
    ($cond:expr, $name:literal, $what:literal $(,)?) => {
        $crate::always!($cond, $name, $what, "")
    };
    ($cond:expr, $name:literal, $what:literal, $($detail:tt)+) => {{
        #[$crate::linkme::distributed_slice($crate::INVARIANTS)]
        #[linkme(crate = $crate::linkme)]
        static INVARIANT: $crate::Invariant = $crate::Invariant {
            name: $name,
            what: $what,
            module: module_path!(),
            file: file!(),
            line: line!(),
        };
        let holds: bool = $cond;
        $crate::invariant::check(&INVARIANT, holds, || format!($($detail)+))
    }};
}

/// One broken invariant: which, where, and what was seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breach {
    /// [`Invariant::key`], e.g. `broker/log.offsets_contiguous`.
    pub name: String,
    /// `file:line` of the `always!`.
    pub place: String,
    /// What was seen, as the `always!` formats it.
    pub detail: String,
}

fn index_of(inv: &'static Invariant) -> Option<usize> {
    let base = INVARIANTS.as_ptr_range();
    let at = inv as *const Invariant;
    if !base.contains(&at) {
        return None;
    }
    Some((at as usize - base.start as usize) / std::mem::size_of::<Invariant>())
}

struct ProcessCounts {
    checked: Vec<AtomicU64>,
    broken: Vec<AtomicU64>,
}

fn process_counts() -> &'static ProcessCounts {
    static COUNTS: OnceLock<ProcessCounts> = OnceLock::new();
    COUNTS.get_or_init(|| ProcessCounts {
        checked: INVARIANTS.iter().map(|_| AtomicU64::new(0)).collect(),
        broken: INVARIANTS.iter().map(|_| AtomicU64::new(0)).collect(),
    })
}

pub(crate) fn reset_process() {
    let c = process_counts();
    for n in c.checked.iter().chain(&c.broken) {
        n.store(0, Ordering::Relaxed);
    }
}

/// Counts one check of `inv`; when it did not hold, logs and records the breach. Returns
/// `holds` (what [`always!`](crate::always) calls).
#[doc(hidden)]
pub fn check(inv: &'static Invariant, holds: bool, detail: impl FnOnce() -> String) -> bool {
    let count = crate::enabled();
    if holds && !count {
        return true;
    }
    let Some(i) = index_of(inv) else {
        return holds;
    };
    let breach = (!holds).then(|| {
        let b = Breach {
            name: inv.key(),
            place: inv.place(),
            detail: detail(),
        };
        tracing::error!(invariant = %b.name, place = %b.place, detail = %b.detail,
            "invariant broken: {}", inv.what);
        b
    });
    let mut breach = Some(breach);
    let in_run = RUN
        .try_with(|run| match run.borrow_mut().as_mut() {
            Some(run) => {
                note(run, i, count, breach.take().flatten());
                true
            }
            None => false,
        })
        .unwrap_or(false);
    if !in_run {
        let c = process_counts();
        if count {
            c.checked[i].fetch_add(1, Ordering::Relaxed);
        }
        if !holds {
            c.broken[i].fetch_add(1, Ordering::Relaxed);
        }
    }
    holds
}

fn note(run: &mut Run, i: usize, count: bool, breach: Option<Breach>) {
    if count {
        run.checked[i] += 1;
    }
    if let Some(b) = breach {
        run.broken[i] += 1;
        run.breaches.push(b);
    }
}

/// The breaches of the run collecting on this thread so far, from the `from`-th on (a caller
/// that already took the first `from`); empty outside a run.
pub fn breaches_since(from: usize) -> Vec<Breach> {
    RUN.try_with(|run| {
        run.borrow()
            .as_ref()
            .map(|r| r.breaches.get(from..).unwrap_or_default().to_vec())
            .unwrap_or_default()
    })
    .unwrap_or_default()
}

/// What the process-wide counters hold: checks and breaches outside any run since the last
/// [`crate::reset_process`] (the breaches themselves are only logged).
pub fn process() -> Invariants {
    let c = process_counts();
    let load = |v: &[AtomicU64]| {
        v.iter()
            .map(|n| n.load(Ordering::Relaxed))
            .collect::<Vec<_>>()
    };
    Invariants::from_run(&load(&c.checked), &load(&c.broken), Vec::new())
}

/// How often each invariant of the binary was checked and broken, by [`Invariant::key`], and
/// the breaches of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invariants {
    pub counts: BTreeMap<String, Counts>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub breaches: Vec<Breach>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub checked: u64,
    pub broken: u64,
}

impl Invariants {
    pub(crate) fn from_run(checked: &[u64], broken: &[u64], breaches: Vec<Breach>) -> Invariants {
        let mut counts: BTreeMap<String, Counts> = BTreeMap::new();
        for (i, inv) in INVARIANTS.iter().enumerate() {
            let c = counts.entry(inv.key()).or_default();
            c.checked += checked.get(i).copied().unwrap_or(0);
            c.broken += broken.get(i).copied().unwrap_or(0);
        }
        Invariants { counts, breaches }
    }

    /// Only the invariants `keep` accepts.
    pub fn only(&self, keep: impl Fn(&Invariant) -> bool) -> Invariants {
        let kept: std::collections::BTreeSet<String> = INVARIANTS
            .iter()
            .filter(|i| keep(i))
            .map(Invariant::key)
            .collect();
        Invariants {
            counts: self
                .counts
                .iter()
                .filter(|(k, _)| kept.contains(*k))
                .map(|(k, c)| (k.clone(), *c))
                .collect(),
            breaches: self
                .breaches
                .iter()
                .filter(|b| kept.contains(&b.name))
                .cloned()
                .collect(),
        }
    }

    /// Adds `other`'s counts and breaches to these.
    pub fn add(&mut self, other: &Invariants) {
        for (k, c) in &other.counts {
            let mine = self.counts.entry(k.clone()).or_default();
            mine.checked += c.checked;
            mine.broken += c.broken;
        }
        self.breaches.extend(other.breaches.iter().cloned());
    }

    /// The keys of the invariants broken at least once.
    pub fn broken(&self) -> impl Iterator<Item = &str> {
        self.counts
            .iter()
            .filter(|(_, c)| c.broken > 0)
            .map(|(k, _)| k.as_str())
    }

    pub fn unchecked(&self) -> impl Iterator<Item = &str> {
        self.counts
            .iter()
            .filter(|(_, c)| c.checked == 0 && c.broken == 0)
            .map(|(k, _)| k.as_str())
    }

    /// "N of M invariants checked, K broken", the checked ones with their counts, the broken
    /// ones loudly, then those never checked.
    pub fn to_text(&self) -> String {
        let checked: Vec<_> = self
            .counts
            .iter()
            .filter(|(_, c)| c.checked > 0 || c.broken > 0)
            .collect();
        let mut out = format!(
            "invariants  {} of {} checked, {} broken\n",
            checked.len(),
            self.counts.len(),
            self.broken().count()
        );
        for (k, c) in &checked {
            let flag = if c.broken > 0 {
                format!("  BROKEN x{}", c.broken)
            } else {
                String::new()
            };
            let _ = writeln!(out, "  {:>8}  {k}{flag}", c.checked);
        }
        let unchecked: Vec<_> = self.unchecked().collect();
        if !unchecked.is_empty() {
            let _ = writeln!(out, "  never checked ({}):", unchecked.len());
            out.push_str(&crate::wrapped(&unchecked, "    ", 100));
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a thread only to be outside any run
mod tests {
    use super::*;
    use crate::collect_all;

    fn guarded(x: i64) -> Result<i64, String> {
        if !crate::always!(
            x >= 0,
            "test.not_negative",
            "the test's number is never negative",
            "got {}",
            x
        ) {
            return Err("negative".into());
        }
        Ok(x)
    }

    #[allow(dead_code)]
    fn never_called() {
        crate::always!(true, "test.dead", "an invariant in code nothing calls");
    }

    #[test]
    fn a_breach_in_a_run_is_recorded_with_its_place_and_detail_and_changes_nothing() {
        let (out, c) = collect_all(|| (guarded(3), guarded(-2), guarded(5)));
        assert_eq!(out, (Ok(3), Err("negative".into()), Ok(5)));
        let inv = &c.invariants;
        assert_eq!(inv.counts["coverage/test.not_negative"].checked, 3);
        assert_eq!(inv.counts["coverage/test.not_negative"].broken, 1);
        assert_eq!(inv.breaches.len(), 1);
        let b = &inv.breaches[0];
        assert_eq!(b.name, "coverage/test.not_negative");
        assert!(
            b.place.starts_with("coverage/src/invariant.rs:"),
            "{}",
            b.place
        );
        assert_eq!(b.detail, "got -2");
        assert_eq!(
            inv.broken().collect::<Vec<_>>(),
            ["coverage/test.not_negative"]
        );
        assert!(inv.unchecked().any(|k| k == "coverage/test.dead"));
        let text = inv.to_text();
        assert!(
            text.contains("coverage/test.not_negative  BROKEN x1"),
            "{text}"
        );
        assert!(text.contains("never checked"), "{text}");
    }

    #[test]
    fn breaches_so_far_are_visible_inside_the_run() {
        let ((), _) = collect_all(|| {
            assert!(breaches_since(0).is_empty());
            let _ = guarded(-1);
            let _ = guarded(-7);
            assert_eq!(breaches_since(0).len(), 2);
            assert_eq!(breaches_since(1)[0].detail, "got -7");
            assert!(breaches_since(5).is_empty());
        });
        assert!(breaches_since(0).is_empty(), "outside a run there are none");
    }

    #[test]
    fn outside_a_run_a_breach_is_counted_not_a_panic() {
        let before = process().counts["coverage/test.not_negative"];
        let r = std::thread::spawn(|| guarded(-4)).join().unwrap();
        assert_eq!(r, Err("negative".into()));
        let after = process().counts["coverage/test.not_negative"];
        assert!(after.broken > before.broken);
        assert!(after.checked > before.checked);
    }

    #[test]
    fn invariant_keys_are_unique() {
        let mut seen = BTreeMap::new();
        for i in invariants() {
            if let Some(other) = seen.insert(i.key(), (i.file, i.line)) {
                panic!("{} at {}:{} and {:?}", i.key(), i.file, i.line, other);
            }
        }
    }
}
