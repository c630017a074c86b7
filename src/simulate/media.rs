//! The simulator's media endpoint: serves the call recording the way the
//! provider does, behind HTTP basic auth with the account SID and auth token.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use tokio::net::TcpListener;

/// Audio format of a served recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaFormat {
    /// RIFF WAVE.
    Wav,
    /// MPEG audio layer III.
    Mp3,
}

impl MediaFormat {
    /// Guesses the format from the first bytes of a file.
    pub fn sniff(bytes: &[u8]) -> Option<MediaFormat> {
        match crate::audio::sniff_format(bytes) {
            Some("wav") => Some(MediaFormat::Wav),
            Some("mp3") => Some(MediaFormat::Mp3),
            _ => None,
        }
    }

    /// File extension the provider uses.
    pub fn extension(self) -> &'static str {
        match self {
            MediaFormat::Wav => "wav",
            MediaFormat::Mp3 => "mp3",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            MediaFormat::Wav => "audio/x-wav",
            MediaFormat::Mp3 => "audio/mpeg",
        }
    }
}

struct Media {
    user: String,
    password: String,
    recording_sid: String,
    bytes: Bytes,
    format: MediaFormat,
    fetches: AtomicUsize,
    requests: AtomicUsize,
    failures_left: AtomicUsize,
    fail_status: std::sync::atomic::AtomicU16,
}

/// A running media endpoint.
pub struct MediaServer {
    /// URL of the recording without extension, as the provider sends it.
    pub recording_url: String,
    media: Arc<Media>,
    task: tokio::task::JoinHandle<()>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl MediaServer {
    /// Serves `bytes` as recording `recording_sid` on a loopback port.
    pub async fn start(
        account_sid: &str,
        auth_token: &str,
        recording_sid: &str,
        bytes: Bytes,
        format: MediaFormat,
    ) -> std::io::Result<MediaServer> {
        let media = Arc::new(Media {
            user: account_sid.to_owned(),
            password: auth_token.to_owned(),
            recording_sid: recording_sid.to_owned(),
            bytes,
            format,
            fetches: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            failures_left: AtomicUsize::new(0),
            fail_status: std::sync::atomic::AtomicU16::new(500),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route(
                "/2010-04-01/Accounts/{account}/Recordings/{file}",
                get(serve),
            )
            .with_state(media.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(MediaServer {
            recording_url: format!(
                "http://{addr}/2010-04-01/Accounts/{account_sid}/Recordings/{recording_sid}"
            ),
            media,
            task,
            stop: Some(stop),
        })
    }

    /// Stops accepting fetches and waits for those in flight to finish.
    pub async fn close(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Makes the next `count` authorised fetches fail with `status` (500, 404, …),
    /// as a provider does right after a recording ends or during an outage.
    pub fn fail_next(&self, count: usize, status: u16) {
        self.media.fail_status.store(status, Ordering::SeqCst);
        self.media.failures_left.store(count, Ordering::SeqCst);
    }

    /// How many authorised fetches were made, failed or not.
    pub fn requests(&self) -> usize {
        self.media.requests.load(Ordering::SeqCst)
    }

    /// How many times the recording was served.
    pub fn fetches(&self) -> usize {
        self.media.fetches.load(Ordering::SeqCst)
    }
}

impl Drop for MediaServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn authorized(media: &Media, headers: &HeaderMap) -> bool {
    let expected = STANDARD.encode(format!("{}:{}", media.user, media.password));
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .is_some_and(|v| v.trim() == expected)
}

async fn serve(
    State(media): State<Arc<Media>>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&media, &headers) || account != media.user {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"recordings\"")],
            "",
        )
            .into_response();
    }
    let (sid, ext) = file
        .split_once('.')
        .map(|(s, e)| (s, Some(e)))
        .unwrap_or((file.as_str(), None));
    if sid != media.recording_sid || ext.is_some_and(|e| e != media.format.extension()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    media.requests.fetch_add(1, Ordering::SeqCst);
    let failing = media
        .failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        let status = StatusCode::from_u16(media.fail_status.load(Ordering::SeqCst))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return status.into_response();
    }
    media.fetches.fetch_add(1, Ordering::SeqCst);
    (
        [(header::CONTENT_TYPE, media.format.content_type())],
        media.bytes.clone(),
    )
        .into_response()
}
