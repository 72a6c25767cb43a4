//! `riptide broker`: serve the reference broker over real TCP.

use anyhow::Context;
use clap::Args;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::{ObjectStore, RetryConfig};
#[cfg(not(madsim))]
use riptide_broker::env::SystemClock;
#[cfg(not(madsim))]
use riptide_broker::net::{Dialer, PeerStream, Upgrade};
#[cfg(not(madsim))]
use riptide_broker::{Broker, BrokerConfig};
use std::path::PathBuf;
use std::sync::Arc;
#[cfg(not(madsim))]
use std::time::Duration;

#[derive(Args, Debug)]
pub struct BrokerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9092")]
    listen: String,
    /// Address clients are told to use (default: the listen address).
    #[arg(long)]
    advertise: Option<String>,
    /// Directory used as the object store (LocalFileSystem). Brokers sharing
    /// it form one cluster.
    #[arg(long, default_value = "riptide-data", conflicts_with_all = ["memory", "s3"])]
    data: PathBuf,
    /// Keep everything in memory (one process only; lost on exit).
    #[arg(long, conflicts_with = "s3")]
    memory: bool,
    /// S3 bucket URL (s3://BUCKET[/PREFIX]); credentials and region from the
    /// usual AWS_* environment variables. Needs conditional put (If-None-Match).
    #[arg(long)]
    s3: Option<String>,
    /// Endpoint of an S3-compatible server, e.g. http://127.0.0.1:5000.
    #[arg(long, requires = "s3")]
    s3_endpoint: Option<String>,
    /// With --s3: how often the S3 client retries a failed request (5xx,
    /// reset, timeout, with backoff) before the broker sees the error. 0 shows
    /// the broker every store fault, as the simulator does.
    #[arg(long, default_value_t = 10, requires = "s3")]
    s3_retries: usize,
    /// Broker id, unique in the cluster (default: the listen port).
    #[arg(long)]
    node_id: Option<i32>,
    /// Availability zone, reported to clients as the rack.
    #[arg(long, default_value = "zone-a")]
    zone: String,
    /// Partition count of topics created automatically.
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// Do not create topics when clients ask for unknown ones.
    #[arg(long)]
    no_auto_create: bool,
    /// How often to publish a heartbeat and re-read the membership.
    #[arg(long, default_value_t = 500)]
    heartbeat_ms: u64,
    /// A broker silent for this long is considered gone.
    #[arg(long, default_value_t = 3000)]
    session_timeout_ms: u64,
    /// With --data: skip fsync. Faster, but an acknowledged write can be lost
    /// if the machine (not just the broker) crashes.
    #[arg(long)]
    no_fsync: bool,
    /// Plant a bug, to test a test harness against a known-broken broker
    /// (`riptide mutants` lists them). Never in real use.
    #[arg(long, value_parser = crate::values::bug())]
    bug: Option<riptide_broker::bugs::Bug>,
    /// Largest request accepted, in bytes.
    #[arg(long, default_value_t = 100 * 1024 * 1024)]
    max_request_bytes: usize,
    /// Bytes of produce requests held at once, from when one is read until its batches are
    /// committed; a producer faster than the store waits (TCP backpressure) beyond it (default
    /// 8 MiB).
    #[arg(long)]
    max_produce_bytes_in_flight: Option<usize>,
    /// Bytes of commit objects kept in memory for fetches (default 256 MiB).
    #[arg(long)]
    cache_bytes: Option<usize>,
    /// How often an owner applies its topics' retention (retention.ms, retention.bytes), as
    /// Kafka's log.retention.check.interval.ms.
    #[arg(long, default_value_t = 30_000)]
    retention_check_ms: u64,
    /// How long objects below a partition's log start are kept before they are deleted, so
    /// reads in flight finish (Kafka's file.delete.delay.ms).
    #[arg(long, default_value_t = 60_000)]
    delete_delay_ms: u64,
    /// Serve TLS with this certificate chain (PEM, leaf first); needs --tls-key. Plaintext
    /// without it.
    #[arg(long, requires = "tls_key", help_heading = "Security")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert", help_heading = "Security")]
    tls_key: Option<PathBuf>,
    /// CA certificates (PEM) this broker trusts when it connects to the others over TLS
    /// (transaction markers); the system's roots without it.
    #[arg(long, requires = "tls_cert", help_heading = "Security")]
    tls_ca: Option<PathBuf>,
    /// Require a SASL login (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) from every client; users
    /// and their salted SCRAM credentials in this TOML file, made by `riptide sasl-user`.
    /// The broker logs in to the others as RIPTIDE_SASL_USERNAME / RIPTIDE_SASL_PASSWORD
    /// (or --sasl-credentials), which must be one of these users.
    #[arg(long, help_heading = "Security")]
    sasl_users: Option<PathBuf>,
    /// A TOML file (`username = "..."`, `password = "..."`) with this broker's own login to
    /// the other brokers, instead of the environment.
    #[arg(long, requires = "sasl_users", help_heading = "Security")]
    sasl_credentials: Option<PathBuf>,
}

/// `riptide sasl-user`: a users-file entry for `riptide broker --sasl-users`.
#[derive(Args, Debug)]
pub struct SaslUserArgs {
    /// The user's name.
    name: String,
    /// PBKDF2 iterations of the SCRAM credentials (Kafka accepts 4096..=16384).
    #[arg(long, default_value_t = riptide_auth::sasl::DEFAULT_ITERATIONS)]
    iterations: u32,
}

/// Prints the user's SCRAM-SHA-256 and SCRAM-SHA-512 credentials as TOML (append them to the
/// users file). The password comes from RIPTIDE_SASL_PASSWORD, else from the first line of
/// standard input: never from the command line.
pub fn sasl_user(args: SaslUserArgs) -> anyhow::Result<()> {
    use riptide_auth::sasl::{MAX_ITERATIONS, MIN_ITERATIONS};
    use riptide_auth::users::{UserEntry, PASSWORD_ENV};
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&args.iterations) {
        anyhow::bail!("--iterations must be within {MIN_ITERATIONS}..={MAX_ITERATIONS}");
    }
    let password = match std::env::var(PASSWORD_ENV) {
        Ok(p) => p,
        Err(_) => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    if password.is_empty() {
        anyhow::bail!("no password: set {PASSWORD_ENV} or give it on standard input");
    }
    let salts = [
        riptide_auth::client::random_salt(),
        riptide_auth::client::random_salt(),
    ];
    let entry = UserEntry::from_password(&password, [&salts[0], &salts[1]], args.iterations);
    print!("{}", riptide_auth::Users::entry_toml(&args.name, &entry));
    Ok(())
}

fn open_store(args: &BrokerArgs) -> anyhow::Result<Arc<dyn ObjectStore>> {
    if args.memory {
        return Ok(Arc::new(InMemory::new()));
    }
    if let Some(url) = &args.s3 {
        let retry = RetryConfig {
            max_retries: args.s3_retries,
            ..RetryConfig::default()
        };
        let mut b = AmazonS3Builder::from_env().with_url(url).with_retry(retry);
        if let Some(endpoint) = &args.s3_endpoint {
            b = b
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        return Ok(Arc::new(b.build().context("configuring S3")?));
    }
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("creating data directory {}", args.data.display()))?;
    // Acked means durable: fsync files and directories before a put returns,
    // as a remote object store would.
    let fs = LocalFileSystem::new_with_prefix(&args.data)
        .with_context(|| format!("opening data directory {}", args.data.display()))?
        .with_fsync(!args.no_fsync);
    Ok(Arc::new(fs))
}

#[cfg(not(madsim))]
pub fn run(args: BrokerArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(serve(args))
}

#[cfg(not(madsim))]
async fn serve(args: BrokerArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let local = listener.local_addr()?;
    let advertise = args.advertise.clone().unwrap_or_else(|| local.to_string());
    let (host, port) = advertise
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<i32>().ok()?)))
        .context("--advertise must be HOST:PORT")?;
    let mut cfg = BrokerConfig::new(args.node_id.unwrap_or(local.port() as i32), host, port);
    cfg.zone = args.zone.clone();
    cfg.default_partitions = args.partitions.max(1);
    cfg.auto_create_topics = !args.no_auto_create;
    cfg.heartbeat_interval = Duration::from_millis(args.heartbeat_ms.max(10));
    cfg.session_timeout = Duration::from_millis(args.session_timeout_ms.max(args.heartbeat_ms * 2));
    cfg.max_request_bytes = args.max_request_bytes;
    if let Some(n) = args.max_produce_bytes_in_flight {
        cfg.max_produce_bytes_in_flight = n;
    }
    if let Some(n) = args.cache_bytes {
        cfg.cache_bytes = n;
    }
    cfg.retention_check_interval = Duration::from_millis(args.retention_check_ms.max(10));
    cfg.delete_delay = Duration::from_millis(args.delete_delay_ms);
    if let Some(b) = args.bug {
        cfg.bug = Some(b);
        tracing::warn!(bug = %b, "PLANTED BUG enabled: this broker is broken on purpose");
    }
    cfg.seed = rand::random(); // allow-nondeterminism: a real broker's ids need real entropy
    let store = open_store(&args)?;
    tracing::info!(listen = %local, advertise = %advertise, node_id = cfg.node_id, store = %store, "starting broker");
    let (upgrade, dialer) = security(&args, &mut cfg)?;
    let broker = Broker::start_with_dialer(cfg, store, Arc::new(SystemClock::new()), dialer)
        .await
        .context("joining the cluster (is the object store reachable?)")?;
    let serving = tokio::spawn(broker.clone().serve_with(listener, upgrade));
    wait_for_signal().await;
    tracing::info!("shutting down");
    serving.abort();
    broker.shutdown().await;
    Ok(())
}

/// TLS and SASL from the flags: the listener's upgrade (a TLS handshake), users in `cfg`, and
/// how this broker reaches the others (with TLS and its own login when the listener needs them).
#[cfg(not(madsim))]
fn security(
    args: &BrokerArgs,
    cfg: &mut BrokerConfig,
) -> anyhow::Result<(Option<Upgrade>, Dialer)> {
    use riptide_auth::tls::{server_config, ClientTls};
    use riptide_auth::{ClientSasl, Mechanism, Security, Users};
    let mut peers = Security::default();
    let upgrade = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let acceptor = riptide_auth::tokio_rustls::TlsAcceptor::from(server_config(cert, key)?);
            peers.tls = Some(
                ClientTls {
                    ca_file: args.tls_ca.clone(),
                    client_cert: None,
                }
                .config()?,
            );
            let upgrade: Upgrade = Arc::new(move |stream| {
                let acceptor = acceptor.clone();
                Box::pin(async move {
                    let tls = acceptor.accept(stream).await?;
                    Ok(Box::new(tls) as Box<dyn PeerStream>)
                })
            });
            Some(upgrade)
        }
        _ => None,
    };
    if let Some(path) = &args.sasl_users {
        let users = Users::load(path)?;
        let own = ClientSasl::load(Mechanism::Plain, args.sasl_credentials.as_deref(), |k| {
            std::env::var(k).ok()
        })
        .context("a broker that requires SASL logs in to the other brokers too")?;
        if !users.check_plain(&own.username, own.password()) {
            anyhow::bail!(
                "this broker's own login ({:?}) is not a user of {} with that password",
                own.username,
                path.display()
            );
        }
        // The strongest mechanism its credential allows.
        let mechanism = [Mechanism::ScramSha512, Mechanism::ScramSha256]
            .into_iter()
            .find(|m| {
                m.scram()
                    .is_some_and(|s| users.scram(&own.username, s).is_some())
            })
            .unwrap_or(Mechanism::Plain);
        peers.sasl = Some(ClientSasl::new(mechanism, &own.username, own.password()));
        tracing::info!(users = users.users.len(), mechanisms = ?users.mechanisms(), "SASL required");
        cfg.sasl = Some(Arc::new(users));
    }
    tracing::info!(protocol = peers.protocol(), "security");
    let dialer: Dialer = Arc::new(move |addr: String| {
        let peers = peers.clone();
        Box::pin(async move {
            let stream = peers.connect(&addr).await.map_err(std::io::Error::other)?;
            Ok(Box::new(stream) as Box<dyn PeerStream>)
        })
    });
    Ok((upgrade, dialer))
}

#[cfg(not(madsim))]
pub(crate) async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
