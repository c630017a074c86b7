//! The server as a value: `Application::build` binds (port 0 works) and wires
//! everything; `run_until` serves until a shutdown signal. Tests use the same path.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::auth::{self, DevFile, KeyRing};
use crate::config::Config;
use crate::confirmations::Confirmations;
use crate::flow::consent::Classifier;
use crate::flow::prompts::Prompts;
use crate::flow::token::TokenSigner;
use crate::http::{router, AppState, Shared};
use crate::ingest::{Ingest, IngestSettings};
use crate::notify::Notifier;
use crate::store::{FsStore, ObjectStore};

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
        let store_dir = config.data_dir.join("store");
        let store: Arc<dyn ObjectStore> = Arc::new(
            FsStore::open(&store_dir)
                .with_context(|| format!("cannot open the store at {}", store_dir.display()))?,
        );
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
            flow_step_ttl: Duration::from_secs(config.flow_step_ttl_secs),
            flow_grace: Duration::from_secs(config.webhook_deadline_secs),
            account_sid: credentials.twilio_account_sid.clone(),
            auth_token: credentials.twilio_auth_token.clone(),
            work_dir: config.data_dir.join("work"),
        };
        let confirmations = Confirmations::new(store.clone());
        let (ingest, jobs) = Ingest::new(store.clone(), confirmations.clone(), notifier, settings);
        let shared = Shared {
            keys: KeyRing::new(&credentials.api_keys),
            signer: TokenSigner::new(&credentials.token_secret),
            classifier: Classifier::new(config.speech_min_confidence),
            ingest,
            confirmations,
            prompts,
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
