//! Records a Jepsen-shaped history as operations happen. Shared by every
//! process of a run. Times are the clock's `elapsed`: the simulation's time
//! in a simulation (hosts' tokio clocks are not comparable), the machine's
//! since the recorder's clock was made otherwise.

use riptide_checker::history::{History, Op, OpKind, Value, F};
use riptide_wire::clock::Clock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
pub struct Recorder {
    inner: Arc<Mutex<Vec<Op>>>,
    /// Invocations not yet completed (what a fault starting now would hit).
    in_flight: Arc<AtomicI64>,
    clock: Arc<dyn Clock>,
}

impl Recorder {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Recorder {
            inner: Arc::new(Mutex::new(Vec::new())),
            in_flight: Arc::default(),
            clock,
        }
    }

    fn now_ns(&self) -> u64 {
        self.clock.elapsed().as_nanos() as u64
    }

    /// Now, on the clock of the history's `time_ns`.
    pub fn now(&self) -> u64 {
        self.now_ns()
    }

    fn push(&self, kind: OpKind, process: u64, value: Value, error: Option<String>) -> u64 {
        self.push_at(self.now_ns(), kind, process, None, value, error)
    }

    fn push_at(
        &self,
        time_ns: u64,
        kind: OpKind,
        process: u64,
        invoke: Option<u64>,
        value: Value,
        error: Option<String>,
    ) -> u64 {
        let mut ops = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let index = ops.len() as u64;
        // A violation is a standalone fact: it completes nothing.
        let change = match kind {
            OpKind::Invoke => 1,
            _ if value.f() == F::Violation => 0,
            _ => -1,
        };
        self.in_flight.fetch_add(change, Ordering::Relaxed);
        ops.push(Op {
            index,
            kind,
            process,
            invoke,
            time_ns,
            value,
            error,
        });
        index
    }

    /// Completes the operation invoked at index `invoke` (one of several outstanding): `ok`, or
    /// with an error `fail` when it certainly did not happen, `info` when it may have.
    pub fn complete(
        &self,
        process: u64,
        invoke: u64,
        value: impl Into<Value>,
        outcome: Result<(), (bool, String)>,
    ) -> u64 {
        let (kind, error) = match outcome {
            Ok(()) => (OpKind::Ok, None),
            Err((true, e)) => (OpKind::Fail, Some(e)),
            Err((false, e)) => (OpKind::Info, Some(e)),
        };
        self.push_at(
            self.now_ns(),
            kind,
            process,
            Some(invoke),
            value.into(),
            error,
        )
    }

    pub fn invoke(&self, process: u64, value: impl Into<Value>) -> u64 {
        self.push(OpKind::Invoke, process, value.into(), None)
    }

    pub fn ok(&self, process: u64, value: impl Into<Value>) -> u64 {
        self.push(OpKind::Ok, process, value.into(), None)
    }

    /// A failed operation: `fail` when it certainly did not happen, `info`
    /// when it may have.
    pub fn failed(
        &self,
        process: u64,
        value: impl Into<Value>,
        definite: bool,
        error: String,
    ) -> u64 {
        let kind = if definite { OpKind::Fail } else { OpKind::Info };
        self.push(kind, process, value.into(), Some(error))
    }

    /// A nemesis event (a fault starting or healing) at a given time: one
    /// completed op.
    pub fn event_at(&self, time_ns: u64, process: u64, value: impl Into<Value>) {
        let value = value.into();
        self.push_at(time_ns, OpKind::Invoke, process, None, value.clone(), None);
        self.push_at(time_ns, OpKind::Ok, process, None, value, None);
    }

    /// An event of a client process (its `client` description), now: one completed op, whose
    /// completion names its invoke (the process may have others outstanding).
    pub fn event(&self, process: u64, value: impl Into<Value>) {
        let (now, value) = (self.now_ns(), value.into());
        let invoke = self.push_at(now, OpKind::Invoke, process, None, value.clone(), None);
        self.push_at(now, OpKind::Ok, process, Some(invoke), value, None);
    }

    /// How many operations were invoked and have not completed yet.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed).max(0) as u64
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn history(&self) -> History {
        History::new(self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }
}
