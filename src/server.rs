//! The server as a value: `Application::build` binds (port 0 works) and wires
//! everything; `run_until` serves until a shutdown signal. Tests use the same path.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::KeyRing;
use crate::callbacks::{CallbackSecret, CallbackSettings, Callbacks};
use crate::config::Environment;
use crate::config::{Config, StoreKind};
use crate::confirmations::{Confirmations, FactCache};
use crate::credentials::{self, DevFile};
use crate::evidence::keys::SigningKey;
use crate::evidence::objects::Evidence;
use crate::evidence::seal::{SealSettings, Sealer};
use crate::evidence::trust::{self, Trust};
use crate::flow::consent::Classifier;
use crate::flow::prompts::Prompts;
use crate::flow::token::TokenSigner;
use crate::http::{router, AppState, Shared};
use crate::index::follow::Indexer;
use crate::index::sqlite::SqliteIndex;
use crate::index::{PhoneKey, SearchIndex, SQLITE_LEASE};
use crate::ingest::fetch::{FetchSettings, Fetcher};
use crate::ingest::{Ingest, IngestSettings};
use crate::jobs::lease::{Leases, Take};
use crate::jobs::{JobKind, Queue};
use crate::metrics::{MeteredStore, Metrics};
use crate::provider::api::RecordingControl;
use crate::record::complete::{Completion, CompletionSettings};
use crate::record::Records;
use crate::store::check::{self, StoreReport};
use crate::store::s3::{S3Settings, S3Store};
use crate::store::{FsStore, ObjectStore};
use crate::sweeper::{SweepSettings, Sweeper};

/// Opens the configured store and probes what it guarantees.
pub async fn open_store(config: &Config) -> anyhow::Result<(Arc<dyn ObjectStore>, StoreReport)> {
    match config.store {
        StoreKind::Fs => {
            let store: Arc<dyn ObjectStore> = Arc::new(open_fs(config)?);
            let report = check::check_fs(store.clone()).await;
            Ok((store, report))
        }
        StoreKind::S3 => {
            let store = connect_s3(config).await?;
            let report = check::check_s3(&store, 8).await;
            Ok((Arc::new(store), report))
        }
    }
}

/// Opens the configured store without probing it, for commands that only read
/// and move bookkeeping (`callproof jobs`).
pub async fn connect_store(config: &Config) -> anyhow::Result<Arc<dyn ObjectStore>> {
    Ok(match config.store {
        StoreKind::Fs => Arc::new(open_fs(config)?),
        StoreKind::S3 => Arc::new(connect_s3(config).await?),
    })
}

/// The keys verification trusts, the rotation statement when a previous key
/// is configured, the public key published in the store, and the sealer.
async fn evidence_setup(
    config: &Config,
    evidence: &Evidence,
    queue: &Queue,
) -> anyhow::Result<(Trust, Sealer)> {
    let public = evidence.signer().public().clone();
    let mut trust = Trust::configured(Some(&public), config.trusted_keys.as_deref())
        .map_err(|e| anyhow::anyhow!("CALLPROOF_TRUSTED_KEYS: {e}"))?;
    let mut accepted: Vec<_> = trust.keys().to_vec();
    if let Some(path) = &config.previous_signing_key_file {
        let previous = SigningKey::from_file(path)?;
        if previous.public() == &public {
            anyhow::bail!("CALLPROOF_PREVIOUS_SIGNING_KEY_FILE is the signing key itself; name the key that signed until now, or unset it");
        }
        if trust::introduce(evidence, &previous).await? {
            tracing::warn!(old = %previous.public().fingerprint(), new = %public.fingerprint(), "key rotation: a statement signed by both keys introduces the new key; it is sealed with the next seal");
        }
        trust.add(previous.public().clone());
        accepted.push(previous.public().clone());
    }
    // Anyone may fetch a key by fingerprint; it is trusted only by configuration.
    let pem_key =
        crate::confirmations::checked_key(format!("keys/public/{}.pem", public.fingerprint()))?;
    if let Err(e) = crate::confirmations::create_bytes_retained(
        evidence.store().as_ref(),
        &pem_key,
        bytes::Bytes::from(public.pem()),
        None,
    )
    .await
    {
        tracing::warn!(key = %pem_key, error = %e, "cannot publish the public key in the store; verifiers that trust it by fingerprint need it there, and the next start tries again");
    }
    let interval = Duration::from_secs(config.seal_secs);
    let sealer = Sealer::new(
        evidence.clone(),
        queue.leases().clone(),
        SealSettings {
            interval,
            grace: config.seal_grace(),
        },
        accepted,
    );
    Ok((trust, sealer))
}

fn open_fs(config: &Config) -> anyhow::Result<FsStore> {
    let dir = config.data_dir.join("store");
    FsStore::open(&dir).with_context(|| format!("cannot open the store at {}", dir.display()))
}

async fn connect_s3(config: &Config) -> anyhow::Result<S3Store> {
    let s3 = &config.s3;
    let bucket = s3
        .bucket
        .clone()
        .context("CALLPROOF_STORE=s3 needs CALLPROOF_S3_BUCKET")?;
    Ok(S3Store::connect(S3Settings {
        bucket,
        prefix: s3.prefix.clone(),
        region: s3.region.clone(),
        endpoint: s3.endpoint.clone(),
        path_style: s3.path_style,
        sse: s3.sse.clone(),
        lock_mode: s3.lock_mode,
        multipart_threshold: s3.multipart_threshold,
        part_size: s3.part_size,
        credentials: s3.credentials.clone(),
    })
    .await)
}

/// A bound, ready server.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    dev_file: DevFile,
}

impl Application {
    /// Resolves credentials, opens the store, loads prompts and binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        Self::build_wrapped(config, |store| store).await
    }

    /// [`Application::build`], with the checked store passed through `wrap`
    /// first (tests wrap it to fail writes at a chosen point).
    pub async fn build_wrapped(
        config: Config,
        wrap: impl FnOnce(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore>,
    ) -> anyhow::Result<Application> {
        let (credentials, dev_file) = credentials::resolve(&config)?;
        // Refused before anything is opened, like the credentials.
        crate::provider::api::checked_base(&config)?;
        let (signer, generated) = credentials::signing_key(&config)?;
        let signer = Arc::new(signer);
        if let Some(path) = generated {
            tracing::warn!(path = %path.display(), "a development signing key was generated; production needs CALLPROOF_SIGNING_KEY_FILE");
        }
        tracing::info!(key = %signer.public().fingerprint(), "record versions are signed with this key; publish its fingerprint outside callproof");
        let prompts = match &config.prompts_dir {
            Some(dir) => Prompts::from_dir(dir)?,
            None => Prompts::builtin()?,
        };
        let inbound =
            crate::flow::inbound::InboundPrompts::load(&prompts, config.prompts_dir.as_deref())
                .map_err(anyhow::Error::msg)?;
        let (store, report) = open_store(&config).await?;
        let store = wrap(store);
        let metrics = Arc::new(Metrics::default());
        let store: Arc<dyn ObjectStore> = Arc::new(MeteredStore::new(store, metrics.clone()));
        tracing::info!(
            store = %report.store,
            write_once = report.write_once(),
            object_lock = ?report.object_lock,
            versioning = ?report.versioning,
            "store checked"
        );
        if let Some(why) = report.unusable() {
            anyhow::bail!("{why}");
        }
        if !report.write_once() {
            if config.s3.accept_overwrite_risk {
                tracing::warn!(risk = %report.risk(), "starting anyway (CALLPROOF_S3_ACCEPT_OVERWRITE_RISK=true): run exactly one instance");
            } else {
                anyhow::bail!(
                    "{}. Use a store that honours If-None-Match, or set CALLPROOF_S3_ACCEPT_OVERWRITE_RISK=true to start anyway and run exactly one instance",
                    report.risk()
                );
            }
        }
        let listener = TcpListener::bind(config.listen).await.with_context(|| {
            format!(
                "cannot listen on {}: is another server using it? Set CALLPROOF_LISTEN",
                config.listen
            )
        })?;
        let bound = listener.local_addr()?;
        let public_base = config.public_base(bound);
        tracing::info!(store = %store.describe(), public_url = %public_base, "callproof ready");
        let settings = Settings::from_config(&config, &credentials, &report)?;
        let confirmations = Confirmations::new(store.clone()).with_fact_cache(FactCache::new(
            usize::try_from(config.fact_cache_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX),
            std::time::Duration::from_secs(config.fact_cache_secs),
        ));
        let identity = crate::identity::store::IdentityStore::new(
            store.clone(),
            crate::identity::IdentityKeys::new(&credentials.identity_secret),
            config.identity_max_tries,
            time::Duration::seconds(config.flow_step_ttl_secs as i64),
        );
        let records = Records::new(store.clone());
        let queue = Queue::new(store.clone(), settings.lease_ttl, metrics.clone());
        let evidence = Evidence::new(store.clone(), signer.clone());
        let (trust, sealer) = evidence_setup(&config, &evidence, &queue).await?;
        let (index, lease) = open_index(&config, &queue).await?;
        let indexer = Arc::new(
            Indexer::new(
                store.clone(),
                index,
                PhoneKey::new(credentials.index_phone_secret.as_bytes()),
                trust.clone(),
            )
            .with_lease(lease),
        );
        tracing::info!(index = %indexer.index().describe(), "search index opened");
        // A small store is indexed before the first request; a large one
        // goes on in the background while webhooks are answered.
        match tokio::time::timeout(INDEX_START_BUDGET, indexer.catch_up()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the search index could not catch up at start; it retries every CALLPROOF_INDEX_CATCHUP_SECS"),
            Err(_) => tracing::info!("the search index is still catching up with the store; searches answer 503 until it is built"),
        }
        // Every record version, hold and tombstone this server writes is
        // indexed as it is written; the catch-up finds the rest.
        let evidence = evidence.with_listener(indexer.clone());
        let completion = Completion::new(
            confirmations.clone(),
            records.clone(),
            queue.clone(),
            settings.completion,
            metrics.clone(),
            evidence.clone(),
        );
        let recording_control = RecordingControl::from_config(
            &config,
            &credentials.twilio_account_sid,
            &credentials.twilio_auth_token,
            metrics.clone(),
        )?;
        let fetch = Fetcher::new(settings.fetch, metrics.clone())?;
        let ingest = Ingest::new(
            store.clone(),
            confirmations.clone(),
            completion.clone(),
            queue.clone(),
            fetch,
            settings.ingest,
            metrics.clone(),
        );
        let callbacks = Callbacks::new(
            confirmations.clone(),
            queue.clone(),
            settings.callbacks,
            metrics.clone(),
        )?;
        let sweeper = Sweeper::new(
            confirmations.clone(),
            records.clone(),
            completion.clone(),
            queue.clone(),
            settings.sweep,
        );
        // The plain keys are hashed into the key ring and not kept anywhere else.
        let mut credentials = credentials;
        let mut config = config;
        let keys = KeyRing::new(std::mem::take(&mut credentials.api_keys));
        config.secrets.api_keys = None;
        let ui = crate::http::ui::Ui::new(
            &credentials.token_secret,
            &public_base,
            config.ui_session_secs,
            config.ui_idle_secs,
            evidence.clone(),
        );
        let shared = Shared {
            identity,
            inbound,
            ui,
            recording_control,
            keys,
            signer: TokenSigner::new(&credentials.token_secret),
            classifier: Classifier::new(config.speech_min_confidence),
            ingest,
            callbacks,
            completion,
            records,
            queue,
            sweeper,
            store: store.clone(),
            evidence,
            sealer,
            trust,
            indexer,
            confirmations,
            prompts,
            store_report: report,
            metrics,
            public_base,
            credentials,
            config,
            last_probe_failure: std::sync::Mutex::new(None),
            waveforms: tokio::sync::Semaphore::new(crate::http::waveform::CONCURRENT),
        };
        Ok(Application {
            listener,
            state: AppState(Arc::new(shared)),
            dev_file,
        })
    }

    /// The address actually bound.
    pub fn address(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.state.config.listen)
    }

    /// The public base URL webhooks are signed against.
    pub fn public_base(&self) -> &str {
        &self.state.public_base
    }

    /// What happened to the development credentials file.
    pub fn dev_file(&self) -> &DevFile {
        &self.dev_file
    }

    /// The shared state, for tests and tools that sign tokens.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then finishes requests in flight.
    /// A client that has not sent a request's headers within
    /// `header_read_timeout_secs` is disconnected.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let s = &self.state;
        s.ingest.clear_scratch();
        s.queue.start(vec![
            (JobKind::Recording, Arc::new(s.ingest.clone())),
            (JobKind::Callback, Arc::new(s.callbacks.clone())),
        ]);
        s.sweeper.start();
        s.sealer.start();
        let indexing = s
            .indexer
            .start(Duration::from_secs(s.config.index_catchup_secs));
        let app = router(self.state.clone());
        let header_timeout = Duration::from_secs(self.state.config.header_read_timeout_secs);
        // Every connection holds a receiver of `closing` and a sender of
        // `done`: dropping `closing_rx` tells them to finish, and `done_tx`
        // closes once the last of them has.
        let (closing_tx, closing_rx) = watch::channel(());
        let (done_tx, done_rx) = watch::channel(());
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        accept_error(e).await;
                        continue;
                    }
                },
                _ = &mut shutdown => break,
            };
            // Handlers learn the peer (the client, or a proxy in front of it)
            // as `ConnectInfo`; `http::client::ClientAddr` resolves it.
            let service = TowerToHyperService::new(tower::ServiceExt::map_request(
                app.clone(),
                move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    req
                },
            ));
            let mut closing = closing_rx.clone();
            let done = done_rx.clone();
            tokio::spawn(async move {
                let mut builder = http1::Builder::new();
                builder
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_timeout);
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                let mut conn = std::pin::pin!(conn);
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                        }
                    }
                    _ = closing.changed() => {
                        conn.as_mut().graceful_shutdown();
                        if let Err(e) = conn.as_mut().await {
                            tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                        }
                    }
                }
                drop(done);
            });
        }
        drop(self.listener);
        drop(closing_rx);
        drop(closing_tx);
        drop(done_rx);
        done_tx.closed().await;
        indexing.abort();
        Ok(())
    }
}

fn open_sqlite(config: &Config) -> anyhow::Result<SqliteIndex> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.data_dir.display()
        )
    })?;
    let path = config.data_dir.join("index.sqlite3");
    SqliteIndex::open(&path).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The search index the configuration names, for commands that work on it
/// beside a running server (`callproof index rebuild`): no lease is taken.
pub async fn open_index_for_tools(config: &Config) -> anyhow::Result<Arc<dyn SearchIndex>> {
    match &config.index_url {
        Some(url) => crate::index::open_url(url)
            .await
            .map_err(|e| anyhow::anyhow!("{e}")),
        None => Ok(Arc::new(open_sqlite(config)?)),
    }
}

/// How long a start waits for the search index to catch up before serving.
const INDEX_START_BUDGET: Duration = Duration::from_secs(5);

/// Opens the search index the configuration names: PostgreSQL at
/// `index_url`, else SQLite in the data directory. With the S3 store, SQLite
/// is refused unless `index_single_instance` promises one instance, and that
/// instance then holds the `index-sqlite-owner` lease so a second one fails
/// to start instead of searching only its own writes.
async fn open_index(
    config: &Config,
    queue: &Queue,
) -> anyhow::Result<(Arc<dyn SearchIndex>, Option<Leases>)> {
    if config.index_url.is_some() {
        // A shared index: no lease of one instance's own.
        return Ok((open_index_for_tools(config).await?, None));
    }
    if config.store == StoreKind::S3 && !config.index_single_instance {
        anyhow::bail!("the S3 store is shared by every instance, but the embedded SQLite index would see only this instance's writes: set CALLPROOF_INDEX_URL=postgres://… for a shared index, or CALLPROOF_INDEX_SINGLE_INSTANCE=true if only one instance ever runs on this bucket");
    }
    let index = open_sqlite(config)?;
    if config.store != StoreKind::S3 {
        return Ok((Arc::new(index), None));
    }
    // The lease belongs to the index file: a restart on the same data
    // directory keeps it, a second instance elsewhere is refused.
    let id = index
        .instance_id()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let leases = Leases::new(
        queue.store().clone(),
        format!("sqlite-index-{id}"),
        // Renewed by every catch-up: it must outlast several of them.
        Duration::from_secs(config.job_lease_secs.max(6 * config.index_catchup_secs)),
    );
    if let Take::Busy(holder) = leases
        .take(SQLITE_LEASE, time::OffsetDateTime::now_utc())
        .await?
    {
        anyhow::bail!("another instance ({}) runs on this bucket with its own SQLite search index, until at least {}: run one instance, or give every instance one PostgreSQL index with CALLPROOF_INDEX_URL", holder.owner, holder.expires_at);
    }
    Ok((Arc::new(index), Some(leases)))
}

/// Waits after a failed accept: a connection the client already reset is
/// skipped at once; anything else (out of file descriptors) gets a second's rest.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "cannot accept a connection; trying again in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Completes on SIGTERM or Ctrl-C. The handlers are installed when this is
/// called, not when the future is first polled, so a signal sent as soon as the
/// server says it is listening is never missed.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (term, int) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(term) => {},
                _ = wait(int) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down: finishing requests in flight");
    }
}

/// The settings of each part of the server, taken from the configuration once.
struct Settings {
    lease_ttl: Duration,
    completion: CompletionSettings,
    fetch: FetchSettings,
    ingest: IngestSettings,
    callbacks: CallbackSettings,
    sweep: SweepSettings,
}

impl Settings {
    fn from_config(
        config: &Config,
        credentials: &credentials::Credentials,
        report: &StoreReport,
    ) -> anyhow::Result<Self> {
        let lock = report.object_lock.is_yes().then_some(config.s3.lock_mode);
        let secs = Duration::from_secs;
        Ok(Settings {
            lease_ttl: secs(config.job_lease_secs),
            completion: CompletionSettings {
                recording_wait: secs(config.recording_wait_secs),
                retention: config.retention.clone(),
                lock,
            },
            fetch: FetchSettings {
                media_hosts: config.media_hosts(),
                max_bytes: config.recording_max_bytes,
                timeout: secs(config.recording_download_timeout_secs),
                attempts: config.recording_download_attempts,
                retry_base: Duration::from_millis(config.recording_retry_base_ms),
                account_sid: credentials.twilio_account_sid.clone(),
                auth_token: credentials.twilio_auth_token.clone(),
            },
            ingest: IngestSettings {
                format: config.recording_format,
                sample_rate: config.archival_sample_rate,
                concurrency: config.ingest_concurrency,
                park_after: config.job_park_after_failures,
                max_per_call: config.max_recordings_per_call,
                work_dir: config.data_dir.join("work"),
                lock,
            },
            callbacks: CallbackSettings {
                secret: CallbackSecret::parse(&credentials.callback_secret)
                    .map_err(|e| anyhow::anyhow!("CALLPROOF_CALLBACK_SECRET: {e}"))?,
                schedule: config
                    .callback_retry_secs
                    .iter()
                    .map(|s| secs(*s))
                    .collect(),
                allowed: config.callback_allowed_hosts.clone(),
                https_only: config.environment == Environment::Production,
                timeout: secs(config.callback_timeout_secs),
            },
            sweep: SweepSettings {
                interval: secs(config.sweep_interval_secs),
                flow_step_ttl: secs(config.flow_step_ttl_secs),
                flow_grace: secs(config.webhook_deadline_secs),
            },
        })
    }
}
