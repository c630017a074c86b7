//! The server as a value: `Application::build` binds (port 0 works) and wires
//! everything; `run_until` serves until a shutdown signal. Tests use the same path.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::auth::{self, DevFile, KeyRing};
use crate::config::{Config, StoreKind};
use crate::confirmations::Confirmations;
use crate::flow::consent::Classifier;
use crate::flow::prompts::Prompts;
use crate::flow::token::TokenSigner;
use crate::http::{router, AppState, Shared};
use crate::ingest::{Ingest, IngestSettings};
use crate::metrics::{MeteredStore, Metrics};
use crate::notify::Notifier;
use crate::store::check::{self, StoreReport};
use crate::store::s3::{S3Settings, S3Store};
use crate::store::{FsStore, ObjectStore};

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
    jobs: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Application {
    /// Resolves credentials, opens the store, loads prompts and binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let (credentials, dev_file) = auth::resolve(&config)?;
        let prompts = match &config.prompts_dir {
            Some(dir) => Prompts::from_dir(dir)?,
            None => Prompts::builtin()?,
        };
        let (store, report) = open_store(&config).await?;
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
        let notifier = Notifier::new(config.outcome_callback_attempts);
        let settings = IngestSettings {
            format: config.recording_format,
            max_bytes: config.recording_max_bytes,
            download_timeout: Duration::from_secs(config.recording_download_timeout_secs),
            attempts: config.recording_download_attempts,
            retry_base: Duration::from_millis(config.recording_retry_base_ms),
            sample_rate: config.archival_sample_rate,
            concurrency: config.ingest_concurrency,
            recording_wait: Duration::from_secs(config.recording_wait_secs),
            sweep_interval: Duration::from_secs(config.sweep_interval_secs),
            lease_ttl: Duration::from_secs(config.job_lease_secs),
            park_after: config.job_park_after_failures,
            flow_step_ttl: Duration::from_secs(config.flow_step_ttl_secs),
            flow_grace: Duration::from_secs(config.webhook_deadline_secs),
            account_sid: credentials.twilio_account_sid.clone(),
            auth_token: credentials.twilio_auth_token.clone(),
            work_dir: config.data_dir.join("work"),
            retention: config.retention.clone(),
            lock: report.object_lock.is_yes().then_some(config.s3.lock_mode),
        };
        let confirmations = Confirmations::new(store.clone());
        let (ingest, jobs) = Ingest::new(
            store.clone(),
            confirmations.clone(),
            notifier,
            settings,
            metrics.clone(),
        );
        let shared = Shared {
            keys: KeyRing::new(&credentials.api_keys),
            signer: TokenSigner::new(&credentials.token_secret),
            classifier: Classifier::new(config.speech_min_confidence),
            ingest,
            confirmations,
            prompts,
            store_report: report,
            metrics,
            public_base,
            credentials,
            config,
        };
        Ok(Application {
            listener,
            state: AppState(Arc::new(shared)),
            dev_file,
            jobs,
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
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.state.ingest.start(self.jobs);
        let app = router(self.state.clone());
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    }
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
