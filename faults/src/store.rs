//! Object-store faults, per broker: latency, 5xx errors, throttling, a cut
//! link, and ambiguous outcomes both ways — applied but the reply lost, and a
//! timeout reported before the write lands. Half the writes whose reply is lost
//! are re-sent by the store client's own retry layer, as object_store's HTTP
//! retry and S3 SDKs do: the caller sees the re-send's answer, so a
//! create-if-absent put comes back `AlreadyExists` although its first attempt
//! applied.

use crate::schedule::Fault;
use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use riptide_coverage::reached;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The faults currently applied to one broker's view of the store. Changed by
/// the nemesis while the broker runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoreFaults {
    /// Base latency range per call (ms).
    pub latency_ms: (u64, u64),
    /// Added to every call (a latency spike or throttling).
    pub extra_latency_ms: u64,
    /// Probability a call fails with a 5xx-like error before doing anything.
    pub error_rate: f64,
    /// Probability a write is applied but its reply is lost (caller sees an error).
    pub ambiguous_rate: f64,
    /// Of those writes, the share the client's retry layer re-sends ([`Fate::Resent`]).
    pub resend_share: f64,
    /// Probability a write reports a timeout and lands later anyway.
    pub late_rate: f64,
    /// The broker cannot reach the store at all: calls hang, then time out.
    pub cut: bool,
    /// The broker's process is paused: its calls wait, and go on when it resumes.
    pub paused: bool,
}

/// What becomes of one call, given its uniform roll: the same rule in the simulator's store and
/// in certify's store proxy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fate {
    /// Fails with a 5xx before doing anything.
    Fail,
    /// A write that reports a timeout now and lands later (or loses its race).
    Late,
    /// Done; for a write whose reply is lost, the caller sees an error anyway.
    Apply { reply_lost: bool },
    /// A write applied whose reply was lost, then re-sent by the client's retry
    /// layer: the caller sees the re-send's answer (for a create-if-absent put,
    /// `AlreadyExists` with its own first attempt in place).
    Resent,
}

impl StoreFaults {
    pub fn healthy(latency_ms: (u64, u64)) -> Self {
        StoreFaults {
            latency_ms,
            ..Default::default()
        }
    }

    /// One broker's store faults while `active` faults are in force: overlapping rates take the
    /// highest, latencies add up. A pause or an isolated zone holds or cuts the store link too.
    pub fn combine<'a>(
        latency_ms: (u64, u64),
        active: impl IntoIterator<Item = &'a Fault>,
    ) -> StoreFaults {
        let mut s = StoreFaults::healthy(latency_ms);
        for fault in active {
            match fault {
                Fault::StoreErrors { rate, .. } => s.error_rate = s.error_rate.max(*rate),
                Fault::StoreAmbiguous { rate, .. } => {
                    s.ambiguous_rate = s.ambiguous_rate.max(*rate);
                    s.resend_share = RESEND_SHARE;
                }
                Fault::StoreLate { rate, .. } => s.late_rate = s.late_rate.max(*rate),
                Fault::StoreSlow { extra_ms, .. } => s.extra_latency_ms += extra_ms,
                Fault::StoreCut { .. } | Fault::ZoneIsolate { .. } => s.cut = true,
                Fault::Pause { .. } => s.paused = true,
                _ => {}
            }
        }
        s
    }

    /// The fate of a call that rolled `roll` (uniform in [0, 1)): errors first, then, for
    /// writes, the late and reply-lost bands drawn past the error band. The upper
    /// `resend_share` of the reply-lost band is re-sent by the client ([`Fate::Resent`]).
    pub fn fate(&self, roll: f64, write: bool) -> Fate {
        if roll < self.error_rate {
            return Fate::Fail;
        }
        if !write {
            return Fate::Apply { reply_lost: false };
        }
        let roll = (roll - self.error_rate) / (1.0 - self.error_rate).max(f64::EPSILON);
        if roll < self.late_rate {
            Fate::Late
        } else if roll < self.late_rate + self.ambiguous_rate * (1.0 - self.resend_share) {
            Fate::Apply { reply_lost: true }
        } else if roll < self.late_rate + self.ambiguous_rate {
            Fate::Resent
        } else {
            Fate::Apply { reply_lost: false }
        }
    }
}

/// A shared handle: the nemesis writes, the store reads on every call.
pub type FaultHandle = Arc<Mutex<StoreFaults>>;

/// How long a call to an unreachable store hangs before it fails.
const CUT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long after its "timeout" a late write lands.
const LATE_LANDING: Duration = Duration::from_millis(1500);
/// The share of writes whose reply is lost that the client's retry layer re-sends, under a
/// store-ambiguous fault.
pub const RESEND_SHARE: f64 = 0.5;
/// How long the client's retry layer waits before re-sending a write whose reply was lost
/// (object_store's first backoff).
const RESEND_BACKOFF: Duration = Duration::from_millis(100);
/// How often a paused call checks whether its process resumed.
const PAUSE_POLL: Duration = Duration::from_millis(10);

pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    name: String,
    faults: FaultHandle,
    rng: Mutex<ChaCha8Rng>,
}

fn injected(what: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "riptide-faults",
        source: what.to_string().into(),
    }
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn ObjectStore>, name: &str, faults: FaultHandle, seed: u64) -> Self {
        FaultyStore {
            inner,
            name: name.to_string(),
            faults,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        }
    }

    fn faults(&self) -> StoreFaults {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Draws this call's fate: its delay and a uniform number for the rates.
    fn draw(&self, f: &StoreFaults) -> (Duration, f64) {
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let (lo, hi) = f.latency_ms;
        let ms = rng.gen_range(lo..=hi.max(lo)) + f.extra_latency_ms;
        (Duration::from_millis(ms), rng.gen())
    }

    /// A paused process makes no progress; its calls resume with it.
    async fn wait_while_paused(&self) {
        if self.faults().paused {
            reached!(
                "store.call_held_by_pause",
                "an object-store call of a paused broker waited for it to resume"
            );
        }
        while self.faults().paused {
            tokio::time::sleep(PAUSE_POLL).await;
        }
    }

    /// Latency, pauses, a cut link and plain errors: the faults common to
    /// every call. Returns the faults in force and the call's fate.
    async fn enter(&self, write: bool) -> Result<Fate, object_store::Error> {
        self.wait_while_paused().await;
        let f = self.faults();
        let (delay, roll) = self.draw(&f);
        if f.cut {
            reached!(
                "store.call_on_cut_link",
                "an object-store call was made over a cut link and failed after its timeout"
            );
            tokio::time::sleep(CUT_TIMEOUT).await;
            return Err(injected("object store unreachable (link cut)"));
        }
        tokio::time::sleep(delay).await;
        // Paused mid-call: the reply waits for the process to resume.
        self.wait_while_paused().await;
        if f.extra_latency_ms > 0 {
            reached!(
                "store.call_slowed",
                "an object-store call was slowed by a latency spike or throttling"
            );
        }
        let fate = f.fate(roll, write);
        if fate == Fate::Fail {
            reached!(
                "store.error_injected",
                "an object-store call failed with an injected 503"
            );
            return Err(injected("503 Slow Down (injected)"));
        }
        Ok(fate)
    }
}

impl fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The rng is left out: its state says nothing a reader can use.
        f.debug_struct("FaultyStore")
            .field("name", &self.name)
            .field("inner", &self.inner)
            .field("faults", &self.faults)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.name)
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let fate = self.enter(true).await?;
        if fate == Fate::Late {
            // Report a timeout now; the write lands later (or loses its race).
            let (inner, location) = (self.inner.clone(), location.clone());
            tokio::spawn(async move {
                tokio::time::sleep(LATE_LANDING).await;
                let r = inner.put_opts(&location, payload, opts).await;
                if r.is_ok() {
                    reached!(
                        "store.late_write_landed",
                        "a write its caller saw time out landed later"
                    );
                } else {
                    reached!(
                        "store.late_write_lost_race",
                        "a late write found its object taken when it landed"
                    );
                }
                tracing::info!(path = %location, landed = r.is_ok(), "late write");
            });
            return Err(injected("request timed out (write still in flight)"));
        }
        if fate == Fate::Resent {
            // The first attempt is applied (or refused); its reply is lost either way.
            let first = self
                .inner
                .put_opts(location, payload.clone(), opts.clone())
                .await;
            tokio::time::sleep(RESEND_BACKOFF).await;
            let r = self.inner.put_opts(location, payload, opts).await;
            if first.is_ok() {
                reached!(
                    "store.write_resent_after_lost_reply",
                    "a write applied whose reply was lost was re-sent by the client's retry layer"
                );
                tracing::info!(path = %location, resent = ?r.as_ref().map(|_| ()), "write applied, reply lost, re-sent");
            }
            return r;
        }
        let r = self.inner.put_opts(location, payload, opts).await;
        if r.is_ok() && fate == (Fate::Apply { reply_lost: true }) {
            reached!(
                "store.applied_reply_lost",
                "a write was applied but its caller got an error (reply lost)"
            );
            tracing::info!(path = %location, "write applied, reply lost");
            return Err(injected("connection reset after the write (reply lost)"));
        }
        r
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.enter(false).await?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.enter(false).await?;
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        // A listing is a snapshot taken after the call's latency.
        let f = self.faults();
        let (delay, roll) = self.draw(&f);
        let inner = self.inner.clone();
        let prefix = prefix.cloned();
        let faults = self.faults.clone();
        futures::stream::once(async move {
            while faults.lock().unwrap_or_else(|e| e.into_inner()).paused {
                tokio::time::sleep(PAUSE_POLL).await;
            }
            if f.cut {
                tokio::time::sleep(CUT_TIMEOUT).await;
                return futures::stream::iter([Err(injected("object store unreachable"))]).boxed();
            }
            tokio::time::sleep(delay).await;
            if f.fate(roll, false) == Fate::Fail {
                return futures::stream::iter([Err(injected("503 Slow Down (injected)"))]).boxed();
            }
            inner.list(prefix.as_ref())
        })
        .flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.enter(false).await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.enter(false).await?;
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::{ObjectStoreExt, PutMode};

    fn store(f: StoreFaults) -> (Arc<InMemory>, FaultyStore) {
        let region = Arc::new(InMemory::new());
        let s = FaultyStore::new(region.clone(), "b", Arc::new(Mutex::new(f)), 1);
        (region, s)
    }

    #[tokio::test(start_paused = true)]
    async fn an_ambiguous_write_is_applied_while_the_caller_sees_an_error() {
        let (region, s) = store(StoreFaults {
            ambiguous_rate: 1.0,
            ..StoreFaults::healthy((1, 1))
        });
        let p = Path::from("x");
        let r = s.put_opts(&p, "v".into(), PutMode::Create.into()).await;
        assert!(r.is_err());
        assert!(region.head(&p).await.is_ok(), "the write must have landed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_resent_create_is_applied_while_the_caller_sees_already_exists() {
        let (region, s) = store(StoreFaults {
            ambiguous_rate: 1.0,
            resend_share: 1.0,
            ..StoreFaults::healthy((1, 1))
        });
        let mut answers = Vec::new();
        for i in 0..4 {
            let p = Path::from(format!("x{i}"));
            let r = s.put_opts(&p, "v".into(), PutMode::Create.into()).await;
            assert!(region.head(&p).await.is_ok(), "every write lands");
            answers.push(r.map(|_| ()));
        }
        assert!(answers
            .iter()
            .all(|r| matches!(r, Err(object_store::Error::AlreadyExists { .. }))));
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_write_times_out_then_lands() {
        let (region, s) = store(StoreFaults {
            late_rate: 1.0,
            ..StoreFaults::healthy((1, 1))
        });
        let p = Path::from("x");
        assert!(s
            .put_opts(&p, "v".into(), PutMode::Create.into())
            .await
            .is_err());
        assert!(region.head(&p).await.is_err(), "not yet landed");
        tokio::time::sleep(LATE_LANDING * 2).await;
        assert!(region.head(&p).await.is_ok(), "landed after the timeout");
    }

    #[tokio::test(start_paused = true)]
    async fn a_paused_call_waits_for_the_resume() {
        let handle = Arc::new(Mutex::new(StoreFaults {
            paused: true,
            ..StoreFaults::healthy((1, 1))
        }));
        let region = Arc::new(InMemory::new());
        let s = Arc::new(FaultyStore::new(region.clone(), "b", handle.clone(), 1));
        let p = Path::from("x");
        let call = {
            let (s, p) = (s.clone(), p.clone());
            tokio::spawn(async move { s.put(&p, "v".into()).await })
        };
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(
            region.head(&p).await.is_err(),
            "nothing happens while paused"
        );
        handle.lock().unwrap().paused = false;
        assert!(call.await.unwrap().is_ok());
        assert!(
            region.head(&p).await.is_ok(),
            "the call completes after the resume"
        );
    }

    #[test]
    fn fates_follow_the_bands() {
        let f = StoreFaults {
            error_rate: 0.2,
            late_rate: 0.25,
            ambiguous_rate: 0.25,
            resend_share: 0.5,
            ..StoreFaults::default()
        };
        assert_eq!(f.fate(0.1, true), Fate::Fail);
        assert_eq!(f.fate(0.1, false), Fate::Fail);
        // 0.3 is 0.125 past the error band: late. 0.45 is 0.3125: reply lost. 0.55 is
        // 0.4375: reply lost, re-sent. 0.9: fine.
        assert_eq!(f.fate(0.3, true), Fate::Late);
        assert_eq!(f.fate(0.45, true), Fate::Apply { reply_lost: true });
        assert_eq!(f.fate(0.55, true), Fate::Resent);
        assert_eq!(f.fate(0.9, true), Fate::Apply { reply_lost: false });
        assert_eq!(f.fate(0.3, false), Fate::Apply { reply_lost: false });
        let healthy = StoreFaults::default();
        assert_eq!(healthy.fate(0.0, true), Fate::Apply { reply_lost: false });
    }

    #[test]
    fn overlapping_store_faults_combine() {
        let b = || "b".to_string();
        let s = StoreFaults::combine(
            (1, 2),
            &[
                Fault::StoreErrors {
                    broker: b(),
                    rate: 0.2,
                },
                Fault::StoreErrors {
                    broker: b(),
                    rate: 0.5,
                },
                Fault::StoreSlow {
                    broker: b(),
                    extra_ms: 100,
                },
                Fault::StoreSlow {
                    broker: b(),
                    extra_ms: 50,
                },
                Fault::Crash { broker: b() },
            ],
        );
        assert_eq!((s.error_rate, s.extra_latency_ms, s.cut), (0.5, 150, false));
        assert_eq!(s.resend_share, 0.0, "only a store-ambiguous fault re-sends");
        assert_eq!(s.latency_ms, (1, 2));
        assert!(StoreFaults::combine((0, 0), &[Fault::StoreCut { broker: b() }]).cut);
    }

    #[tokio::test(start_paused = true)]
    async fn errors_and_cuts_apply_nothing() {
        let (region, s) = store(StoreFaults {
            error_rate: 1.0,
            ..StoreFaults::healthy((1, 1))
        });
        let p = Path::from("x");
        assert!(s.put(&p, "v".into()).await.is_err());
        assert!(region.head(&p).await.is_err());
        let (region, s) = store(StoreFaults {
            cut: true,
            ..StoreFaults::healthy((1, 1))
        });
        assert!(s.put(&p, "v".into()).await.is_err());
        assert!(region.head(&p).await.is_err());
    }
}
