//! The simulated object-storage service: one regional store shared by every
//! broker, reached through a per-broker handle that adds seeded latency.
//! (Fault injection hooks in here: errors, ambiguous outcomes, partitions.)

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Latency of one call, drawn uniformly from this range (milliseconds).
#[derive(Clone, Copy, Debug)]
pub struct Latency {
    pub min_ms: u64,
    pub max_ms: u64,
}

impl Default for Latency {
    fn default() -> Self {
        // Roughly S3 in-region: tens of milliseconds.
        Latency {
            min_ms: 5,
            max_ms: 40,
        }
    }
}

/// One broker's handle on the shared store.
pub struct SimStore {
    region: Arc<InMemory>,
    node: String,
    latency: Latency,
    rng: Mutex<ChaCha8Rng>,
}

impl SimStore {
    pub fn new(region: Arc<InMemory>, node: &str, latency: Latency, seed: u64) -> Self {
        SimStore {
            region,
            node: node.to_string(),
            latency,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        }
    }

    fn draw(&self) -> Duration {
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let max = self.latency.max_ms.max(self.latency.min_ms);
        Duration::from_millis(rng.gen_range(self.latency.min_ms..=max))
    }

    async fn delay(&self) {
        tokio::time::sleep(self.draw()).await;
    }
}

impl fmt::Debug for SimStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SimStore({})", self.node)
    }
}

impl fmt::Display for SimStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SimStore({})", self.node)
    }
}

#[async_trait]
impl ObjectStore for SimStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.delay().await;
        self.region.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.delay().await;
        self.region.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.delay().await;
        self.region.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.region.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        // A listing is a snapshot taken after the call's latency.
        let region = self.region.clone();
        let prefix = prefix.cloned();
        let pause = self.draw();
        futures::stream::once(async move {
            tokio::time::sleep(pause).await;
            region.list(prefix.as_ref())
        })
        .flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.delay().await;
        self.region.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.delay().await;
        self.region.copy_opts(from, to, options).await
    }
}
