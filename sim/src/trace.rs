//! The trace: every log event of every simulated host, stamped with simulated
//! time, plus the history. Its hash is the run's fingerprint: same seed and
//! same binary must give the same hash.

use sha2::{Digest, Sha256};
use std::io::Write;
use std::sync::{Arc, Mutex};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::MakeWriter;

/// A run's trace, shared by every writer of the run.
#[derive(Clone, Default)]
pub struct Trace(Arc<Mutex<Vec<u8>>>);

impl Trace {
    /// The trace so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// Adds a line.
    pub fn append(&self, line: &str) {
        let mut buf = self.0.lock().unwrap_or_else(|e| e.into_inner());
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
    }

    /// Installs a subscriber that writes this thread's log events into the
    /// trace until the guard is dropped.
    /// `RIPTIDE_TRACE_FILTER`, when set, replaces `filter` (for debugging:
    /// the trace hash changes with it).
    pub fn capture(&self, filter: &str) -> tracing::subscriber::DefaultGuard {
        let filter = std::env::var("RIPTIDE_TRACE_FILTER").unwrap_or_else(|_| filter.to_string());
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(self.clone())
            .with_timer(SimTime)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }
}

thread_local! {
    /// The trace this thread's log events go to (see [`Trace::route`]).
    static CURRENT: std::cell::RefCell<Option<Trace>> = const { std::cell::RefCell::new(None) };
}

/// Undoes [`Trace::route`] when dropped.
pub struct RouteGuard(Option<Trace>);

impl Drop for RouteGuard {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

impl Trace {
    /// Sends this thread's log events into this trace until the guard is
    /// dropped, through the process-wide subscriber of [`install_global`].
    /// (madsim creates its node spans when the runtime starts, before a
    /// per-thread subscriber could be installed: they must live in one
    /// subscriber for the whole process.)
    pub fn route(&self) -> RouteGuard {
        RouteGuard(CURRENT.with(|c| c.borrow_mut().replace(self.clone())))
    }
}

/// Installs, once per process, the subscriber that writes each thread's log
/// events to the trace routed there ([`Trace::route`]), or else to stderr.
/// Does nothing if the process already has a global subscriber.
pub fn install_global(filter: &str) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = std::env::var("RIPTIDE_TRACE_FILTER").unwrap_or_else(|_| filter.to_string());
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(Router)
            .with_timer(SimTime)
            .with_ansi(false)
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

struct Router;

/// Drops madsim's `task{id=N}:` span prefixes: task ids count up across every
/// runtime of the process, so they would make a seed's trace depend on what
/// ran before it in the same process. (Node ids and names stay.)
fn without_task_ids(buf: &[u8]) -> Vec<u8> {
    const TAG: &[u8] = b"task{id=";
    let mut out = Vec::with_capacity(buf.len());
    let mut i = 0;
    while i < buf.len() {
        if buf[i..].starts_with(TAG) {
            if let Some(end) = buf[i..].iter().position(|b| *b == b'}') {
                i += end + 1;
                if buf.get(i) == Some(&b':') {
                    i += 1;
                }
                continue;
            }
        }
        out.push(buf[i]);
        i += 1;
    }
    out
}

enum RoutedWriter {
    Trace(TraceWriter),
    Stderr(std::io::Stderr),
}

impl Write for RoutedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            RoutedWriter::Trace(t) => {
                t.write_all(&without_task_ids(buf))?;
                Ok(buf.len())
            }
            RoutedWriter::Stderr(e) => e.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            RoutedWriter::Trace(t) => t.flush(),
            RoutedWriter::Stderr(e) => e.flush(),
        }
    }
}

impl<'a> MakeWriter<'a> for Router {
    type Writer = RoutedWriter;
    fn make_writer(&'a self) -> Self::Writer {
        match CURRENT.with(|c| c.borrow().clone()) {
            Some(t) => RoutedWriter::Trace(TraceWriter(t)),
            None => RoutedWriter::Stderr(std::io::stderr()),
        }
    }
}

/// Writes log events into a [`Trace`].
pub struct TraceWriter(Trace);

impl Write for TraceWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
             .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Trace {
    type Writer = TraceWriter;
    fn make_writer(&'a self) -> Self::Writer {
        TraceWriter(self.clone())
    }
}

/// Simulated seconds since the start of the run.
struct SimTime;

impl FormatTime for SimTime {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        match crate::backend::sim_elapsed() {
            Some(d) => write!(w, "{:>9.3}s", d.as_secs_f64()),
            None => write!(w, "        -"),
        }
    }
}

/// SHA-256 of the bytes, as hex; the first 16 digits are shown to people.
pub fn hash(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
