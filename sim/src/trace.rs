//! The trace: every log event of every simulated host, stamped with simulated
//! time, plus the history. Its hash is the run's fingerprint: same seed and
//! same binary must give the same hash.

use sha2::{Digest, Sha256};
use std::io::Write;
use std::sync::{Arc, Mutex};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
pub struct Trace(Arc<Mutex<Vec<u8>>>);

impl Trace {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    pub fn append(&self, line: &str) {
        let mut buf = self.0.lock().unwrap_or_else(|e| e.into_inner());
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
    }

    /// Installs a subscriber that writes this thread's log events into the
    /// trace until the guard is dropped.
    pub fn capture(&self, filter: &str) -> tracing::subscriber::DefaultGuard {
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(self.clone())
            .with_timer(SimTime)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }
}

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
        match turmoil::sim_elapsed() {
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
