//! Downloads of call recordings from the provider: only from allowed media hosts,
//! credentials only to the host they belong to, redirects only over https to public addresses.
//!
//! The first request goes to a `RecordingUrl` whose scheme, host and port are
//! on the media allow list (`CALLPROOF_MEDIA_HOSTS`), with the provider's basic
//! auth. Redirects are followed by hand, at most [`MAX_REDIRECTS`] hops, each
//! over https to a host that resolves only to public addresses; credentials are
//! sent again only to the first URL's own origin. Every name is resolved by
//! [`GuardedResolver`], so no connection ever reaches an internal address that
//! the allow list does not name.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::Url;
use tokio::io::AsyncWriteExt;

use crate::metrics::Metrics;
use crate::netguard::{self, AllowList, Refusal};
use crate::provider::{RecordingEvent, RecordingFormat};

/// Redirect hops followed at most.
pub const MAX_REDIRECTS: usize = 3;

/// Why one recording could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The provider refused the credentials.
    #[error("the provider refused the credentials (HTTP {0}): check CALLPROOF_TWILIO_ACCOUNT_SID and CALLPROOF_TWILIO_AUTH_TOKEN")]
    Refused(u16),
    /// Larger than the cap.
    #[error("the recording is larger than CALLPROOF_RECORDING_MAX_BYTES ({0} bytes)")]
    TooLarge(u64),
    /// An answer other than 200.
    #[error("HTTP {0}")]
    Status(u16),
    /// A URL or redirect that may not be followed.
    #[error("not fetched: {0}")]
    Forbidden(String),
    /// The network failed.
    #[error("{0}")]
    Transport(String),
    /// The local file could not be written.
    #[error("cannot write the download: {0}")]
    Io(#[from] std::io::Error),
}

impl FetchError {
    fn retryable(&self) -> bool {
        match self {
            FetchError::Status(s) => *s == 404 || *s == 408 || *s == 429 || *s >= 500,
            FetchError::Transport(_) => true,
            FetchError::Refused(_)
            | FetchError::TooLarge(_)
            | FetchError::Forbidden(_)
            | FetchError::Io(_) => false,
        }
    }
}

/// Download settings.
#[derive(Debug, Clone)]
pub struct FetchSettings {
    /// Where recordings may be fetched from.
    pub media_hosts: AllowList,
    /// Largest recording accepted.
    pub max_bytes: u64,
    /// Time limit of one download attempt.
    pub timeout: Duration,
    /// Attempts before the job fails this time.
    pub attempts: u32,
    /// First retry delay; doubles each time, up to 30 s.
    pub retry_base: Duration,
    /// Provider account SID and auth token, sent as basic auth to the media host.
    pub account_sid: String,
    /// See `account_sid`.
    pub auth_token: String,
}

/// Fetches recordings; cheap to clone.
#[derive(Clone)]
pub struct Fetcher {
    http: reqwest::Client,
    settings: Arc<FetchSettings>,
    metrics: Arc<Metrics>,
}

impl Fetcher {
    /// A fetcher whose connections go only where `settings.media_hosts` allows.
    pub fn new(settings: FetchSettings, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let http = netguard::guarded_client(&settings.media_hosts, settings.timeout)?;
        Ok(Fetcher {
            http,
            settings: Arc::new(settings),
            metrics,
        })
    }

    /// The URL to fetch a recording from, if its callback's `RecordingUrl` may
    /// be fetched at all: an allowed media host (scheme, host and port), no
    /// user, query or fragment, and a path that ends in
    /// `/Accounts/<this account>/Recordings/<its RecordingSid>`, the shape
    /// Twilio, SignalWire and Telnyx use. The extension for `format` is added
    /// to the path. Checked when the callback arrives and again before each fetch.
    pub fn media_url(
        &self,
        event: &RecordingEvent,
        format: RecordingFormat,
    ) -> Result<Url, Refusal> {
        let mut url = Url::parse(&event.recording_url).map_err(|_| Refusal::NotHttp)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refusal::NotHttp);
        }
        if !self.settings.media_hosts.allows(&url) {
            return Err(Refusal::HostNotAllowed);
        }
        if !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(Refusal::Shape(
                "a user, query or fragment in the URL".into(),
            ));
        }
        let sid = &event.recording_sid;
        if sid.is_empty() || sid.len() > 64 || !sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Refusal::Shape("a RecordingSid that is not an id".into()));
        }
        let tail = format!("/Accounts/{}/Recordings/{sid}", self.settings.account_sid);
        if !url.path().ends_with(&tail) {
            return Err(Refusal::Shape(format!(
                "a path that does not end in {tail}"
            )));
        }
        let path = format!("{}.{}", url.path(), format.extension());
        url.set_path(&path);
        Ok(url)
    }

    /// Downloads `url` to `to`, retrying 404, 408, 429, 5xx and network errors
    /// with exponential backoff and jitter.
    pub async fn download_with_retries(&self, url: &Url, to: &Path) -> anyhow::Result<()> {
        let s = &self.settings;
        let mut delay = s.retry_base;
        for attempt in 1..=s.attempts {
            match self.download(url, to).await {
                Ok(bytes) => {
                    tracing::info!(attempt, bytes, "recording downloaded");
                    return Ok(());
                }
                Err(e) if e.retryable() && attempt < s.attempts => {
                    tracing::warn!(attempt, error = %e, retry_in_ms = delay.as_millis() as u64, "recording download failed; retrying");
                    self.metrics
                        .inc("callproof_recording_download_retries_total", &[]);
                    tokio::time::sleep(crate::jobs::jitter(delay)).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
                Err(e) => {
                    return Err(anyhow::anyhow!(
                        "downloading the recording failed after {attempt} attempts: {e}"
                    ))
                }
            }
        }
        anyhow::bail!("no download attempts configured (CALLPROOF_RECORDING_DOWNLOAD_ATTEMPTS)")
    }

    /// The first answer that is not a redirect, having followed the allowed redirects.
    async fn follow(&self, first: &Url) -> Result<reqwest::Response, FetchError> {
        let s = &self.settings;
        if !s.media_hosts.allows(first) {
            return Err(FetchError::Forbidden(format!(
                "{}: {}",
                first.origin().ascii_serialization(),
                Refusal::HostNotAllowed
            )));
        }
        netguard::check_literal(first, &s.media_hosts)
            .map_err(|e| FetchError::Forbidden(e.to_string()))?;
        let mut current = first.clone();
        for hop in 0..=MAX_REDIRECTS {
            let mut req = self.http.get(current.clone());
            // Credentials go only to the origin they were issued for.
            if current.origin() == first.origin() {
                req = req.basic_auth(&s.account_sid, Some(&s.auth_token));
            }
            let resp = req
                .send()
                .await
                .map_err(|e| FetchError::Transport(format!("{e:#}")))?;
            if !resp.status().is_redirection() {
                return Ok(resp);
            }
            if hop == MAX_REDIRECTS {
                break;
            }
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| FetchError::Status(resp.status().as_u16()))?;
            let next = current
                .join(location)
                .map_err(|_| FetchError::Forbidden("a redirect to a malformed URL".into()))?;
            if next.scheme() != "https" {
                return Err(FetchError::Forbidden(format!(
                    "a redirect to {}: redirects are followed only over https",
                    next.scheme()
                )));
            }
            // Public addresses only, or a listed host at its listed port.
            netguard::check_target(&next, &s.media_hosts)
                .map_err(|e| FetchError::Forbidden(format!("a redirect to {e}")))?;
            current = next;
        }
        Err(FetchError::Forbidden(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }

    async fn download(&self, url: &Url, to: &Path) -> Result<u64, FetchError> {
        let s = &self.settings;
        let resp = self.follow(url).await?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            return Err(FetchError::Refused(status));
        }
        if status != 200 {
            return Err(FetchError::Status(status));
        }
        if resp.content_length().is_some_and(|n| n > s.max_bytes) {
            return Err(FetchError::TooLarge(s.max_bytes));
        }
        let mut file = tokio::fs::File::create(to).await?;
        let mut stream = resp.bytes_stream();
        let mut total = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| FetchError::Transport(e.to_string()))?;
            total += chunk.len() as u64;
            if total > s.max_bytes {
                return Err(FetchError::TooLarge(s.max_bytes));
            }
            file.write_all(&chunk).await?;
        }
        file.sync_all().await?;
        Ok(total)
    }
}
