//! The provider's REST API as callproof calls it: pausing and resuming the
//! recording of a call in progress (Twilio's `Recordings/Twilio.CURRENT` resource).
//!
//! Every request is `POST {base}/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}/Recordings/Twilio.CURRENT.json`
//! with HTTP basic auth (the account SID and auth token). A pause asks for
//! `PauseBehavior=silence`, so the paused span stays in the recording as
//! silence and every later offset stays true. Both SIDs are checked for their
//! shape before they become part of a path; a bad one sends nothing.
//!
//! The answer is one of three kinds, and the caller decides what each means
//! (see `docs/inbound-and-identity-design.md`, "Changes after review" 5): the
//! change took effect ([`RecordingChange`]); the provider refused it, so the
//! recording is as it was ([`ControlError::Refused`]); or nobody can tell
//! ([`ControlError::Unclear`]: a timeout, a 5xx, a network failure, an answer
//! that cannot be read), which the design counts as paused.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::Url;
use time::format_description::well_known::Rfc2822;
use time::OffsetDateTime;

use crate::config::{Config, Environment};
use crate::metrics::Metrics;
use crate::netguard::{self, AllowList, HostRule};

/// The API version in every path.
pub const API_VERSION: &str = "2010-04-01";

/// The provider API's host in production unless another is listed.
pub const API_HOST: &str = "api.twilio.com";

/// How much of an answer is read at most; Twilio's are well under it.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Checks a provider SID: `prefix` and 32 hexadecimal digits.
fn sid_shape(prefix: &str, value: &str, what: &str) -> Result<(), ControlError> {
    let ok = value.len() == prefix.len() + 32
        && value.starts_with(prefix)
        && value[prefix.len()..].bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(())
    } else {
        Err(ControlError::Invalid(format!(
            "{what} must be {prefix} followed by 32 hexadecimal digits"
        )))
    }
}

/// A call's id at the provider: `CA` and 32 hexadecimal digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSid(String);

impl CallSid {
    /// Checks the shape; anything else is refused.
    pub fn parse(value: &str) -> Result<CallSid, ControlError> {
        sid_shape("CA", value, "a CallSid")?;
        Ok(CallSid(value.to_owned()))
    }

    /// The SID as the provider writes it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An account's id at the provider: `AC` and 32 hexadecimal digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSid(String);

impl AccountSid {
    /// Checks the shape; anything else is refused.
    pub fn parse(value: &str) -> Result<AccountSid, ControlError> {
        sid_shape("AC", value, "the AccountSid (CALLPROOF_TWILIO_ACCOUNT_SID)")?;
        Ok(AccountSid(value.to_owned()))
    }

    /// The SID as the provider writes it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A recording's id at the provider: `RE` and 32 hexadecimal digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSid(String);

impl RecordingSid {
    /// Checks the shape; anything else is refused.
    pub fn parse(value: &str) -> Result<RecordingSid, ControlError> {
        sid_shape("RE", value, "a RecordingSid")?;
        Ok(RecordingSid(value.to_owned()))
    }

    /// The SID as the provider writes it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What is asked of the recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingAction {
    /// `Status=paused&PauseBehavior=silence`.
    Pause,
    /// `Status=in-progress`.
    Resume,
}

impl RecordingAction {
    /// The metric label and log word.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingAction::Pause => "pause",
            RecordingAction::Resume => "resume",
        }
    }

    /// The form sent.
    fn form(self) -> &'static [(&'static str, &'static str)] {
        match self {
            RecordingAction::Pause => &[("Status", "paused"), ("PauseBehavior", "silence")],
            RecordingAction::Resume => &[("Status", "in-progress")],
        }
    }

    /// The recording status that shows the change took effect.
    fn expected_status(self) -> &'static str {
        match self {
            RecordingAction::Pause => "paused",
            RecordingAction::Resume => "in-progress",
        }
    }
}

/// The provider confirmed the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordingChange {
    /// The recording is paused (silence is recorded until it resumes).
    Paused {
        /// The recording's SID, when the answer gave one of the right shape.
        recording_sid: Option<RecordingSid>,
        /// Offset into the recording, to the second, when the answer's
        /// `date_updated` and `start_time` give it.
        at: Option<Duration>,
    },
    /// The recording records again.
    Resumed {
        /// The recording's SID, when the answer gave one of the right shape.
        recording_sid: Option<RecordingSid>,
        /// Offset into the recording, to the second, when the answer's
        /// `date_updated` and `start_time` give it.
        at: Option<Duration>,
    },
}

impl RecordingChange {
    /// The recording's SID, when the answer gave one.
    pub fn recording_sid(&self) -> Option<&RecordingSid> {
        match self {
            RecordingChange::Paused { recording_sid, .. }
            | RecordingChange::Resumed { recording_sid, .. } => recording_sid.as_ref(),
        }
    }

    /// The offset into the recording, when the answer gave it.
    pub fn at(&self) -> Option<Duration> {
        match self {
            RecordingChange::Paused { at, .. } | RecordingChange::Resumed { at, .. } => *at,
        }
    }
}

/// Why a change was not confirmed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// A SID of the wrong shape: nothing was sent.
    #[error("not sent: {0}")]
    Invalid(String),
    /// The provider answered 3xx or 4xx: the change was not made and the
    /// recording is as it was (no recording, a call that has ended, refused
    /// credentials).
    #[error("the provider refused (HTTP {status}){}", refusal_detail(.code, .message))]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The provider's error code, when its answer gave one.
        code: Option<u64>,
        /// The provider's message, when its answer gave one (at most 200 characters).
        message: Option<String>,
    },
    /// Nobody can tell whether the change was made: a timeout, a network
    /// failure, a 5xx, or a 2xx that does not show the new status. The design
    /// counts an unclear pause as paused.
    #[error("unclear whether the provider made the change: {reason}")]
    Unclear {
        /// The HTTP status, when an answer came.
        status: Option<u16>,
        /// What happened.
        reason: String,
    },
}

fn refusal_detail(code: &Option<u64>, message: &Option<String>) -> String {
    let mut s = String::new();
    if let Some(c) = code {
        s.push_str(&format!(", error {c}"));
    }
    if let Some(m) = message {
        s.push_str(&format!(": {m}"));
    }
    s
}

impl ControlError {
    /// True when the change may have been made: the caller must act as if it was.
    pub fn is_unclear(&self) -> bool {
        matches!(self, ControlError::Unclear { .. })
    }

    fn label(&self) -> &'static str {
        match self {
            ControlError::Invalid(_) => "invalid",
            ControlError::Refused { .. } => "refused",
            ControlError::Unclear { .. } => "unclear",
        }
    }
}

/// Where and how the provider's REST API is called.
#[derive(Clone)]
pub struct ControlSettings {
    /// Scheme, host and port; the API's paths are appended.
    pub base: Url,
    /// Basic-auth user, and the account in every path.
    pub account_sid: String,
    /// Basic-auth password.
    pub auth_token: String,
    /// Time limit of one request.
    pub timeout: Duration,
}

impl std::fmt::Debug for ControlSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlSettings")
            .field("base", &self.base.as_str())
            .field("account_sid", &self.account_sid)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The base URL `config` names for the provider API, refused in production
/// unless it is https and `api.twilio.com` or a host in `provider_api_hosts`.
pub fn checked_base(config: &Config) -> anyhow::Result<Url> {
    let url = config.provider_api_url.clone();
    if config.environment != Environment::Production {
        return Ok(url);
    }
    if url.scheme() != "https" {
        anyhow::bail!(
            "production refuses the plain-http provider API URL {}: set CALLPROOF_PROVIDER_API_URL to https://{API_HOST}, or to an https URL whose host[:port] is listed in CALLPROOF_PROVIDER_API_HOSTS",
            url.as_str().trim_end_matches('/')
        );
    }
    let allowed = AllowList::parse(API_HOST, false)
        .map_err(|e| anyhow::anyhow!("{API_HOST}: {e}"))?
        .with(config.provider_api_hosts.clone());
    if !allowed.allows(&url) {
        anyhow::bail!(
            "production refuses the provider API URL {}: its host is not {API_HOST}; list its host[:port] in CALLPROOF_PROVIDER_API_HOSTS to allow it, or set CALLPROOF_PROVIDER_API_URL=https://{API_HOST}",
            url.as_str().trim_end_matches('/')
        );
    }
    Ok(url)
}

/// Pauses and resumes the recording of a call in progress; cheap to clone.
#[derive(Clone)]
pub struct RecordingControl {
    http: reqwest::Client,
    settings: Arc<ControlSettings>,
    metrics: Arc<Metrics>,
}

impl RecordingControl {
    /// The control `config` names, with the provider credentials; refused in
    /// production for a base URL [`checked_base`] refuses.
    pub fn from_config(
        config: &Config,
        account_sid: &str,
        auth_token: &str,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<RecordingControl> {
        let base = checked_base(config)?;
        RecordingControl::new(
            ControlSettings {
                base,
                account_sid: account_sid.to_owned(),
                auth_token: auth_token.to_owned(),
                timeout: Duration::from_secs(config.provider_api_timeout_secs),
            },
            metrics,
        )
    }

    /// A control calling `settings.base`: no proxy from the environment, no
    /// redirect followed, every request within `settings.timeout`.
    pub fn new(settings: ControlSettings, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        // The base is the operator's choice, so its host may resolve to any
        // address; no other host is ever asked (redirects are not followed).
        let host = netguard::host_of(&settings.base)
            .ok_or_else(|| anyhow::anyhow!("the provider API URL has no host"))?;
        let only_base = AllowList(vec![HostRule {
            https: settings.base.scheme() == "https",
            host,
            port: settings.base.port_or_known_default(),
            any_scheme: false,
        }]);
        let http = netguard::guarded_client(&only_base, settings.timeout).map_err(|e| {
            anyhow::anyhow!("cannot build the HTTP client of the provider API: {e}")
        })?;
        Ok(RecordingControl {
            http,
            settings: Arc::new(settings),
            metrics,
        })
    }

    /// The URL of the current recording of `call`.
    pub fn url(&self, call: &CallSid) -> Result<Url, ControlError> {
        let account = AccountSid::parse(&self.settings.account_sid)?;
        recording_url(&self.settings.base, &account, call)
    }

    /// Pauses the recording of `call_sid`, recording silence until it resumes.
    pub async fn pause(&self, call_sid: &str) -> Result<RecordingChange, ControlError> {
        self.change(call_sid, RecordingAction::Pause).await
    }

    /// Resumes the recording of `call_sid`.
    pub async fn resume(&self, call_sid: &str) -> Result<RecordingChange, ControlError> {
        self.change(call_sid, RecordingAction::Resume).await
    }

    /// Asks for `action` on the current recording of `call_sid`, and counts the result.
    pub async fn change(
        &self,
        call_sid: &str,
        action: RecordingAction,
    ) -> Result<RecordingChange, ControlError> {
        let result = self.send(call_sid, action).await;
        let label = match &result {
            Ok(RecordingChange::Paused { .. }) => "paused",
            Ok(RecordingChange::Resumed { .. }) => "resumed",
            Err(e) => e.label(),
        };
        self.metrics.inc(
            "callproof_provider_api_total",
            &[("action", action.as_str()), ("result", label)],
        );
        if let Err(e) = &result {
            tracing::warn!(action = action.as_str(), error = %e, "provider API: recording not changed for sure");
        }
        result
    }

    async fn send(
        &self,
        call_sid: &str,
        action: RecordingAction,
    ) -> Result<RecordingChange, ControlError> {
        let call = CallSid::parse(call_sid)?;
        let url = self.url(&call)?;
        let resp = self
            .http
            .post(url)
            .basic_auth(&self.settings.account_sid, Some(&self.settings.auth_token))
            .header(reqwest::header::ACCEPT, "application/json")
            .form(action.form())
            .send()
            .await
            .map_err(|e| ControlError::Unclear {
                status: None,
                reason: if e.is_timeout() {
                    format!(
                        "no answer within {} s (CALLPROOF_PROVIDER_API_TIMEOUT_SECS)",
                        self.settings.timeout.as_secs_f32()
                    )
                } else {
                    format!("{e:#}")
                },
            })?;
        let status = resp.status().as_u16();
        let body = read_capped(resp).await;
        interpret(action, status, body)
    }
}

/// `{base}/2010-04-01/Accounts/{account}/Calls/{call}/Recordings/Twilio.CURRENT.json`.
pub fn recording_url(
    base: &Url,
    account: &AccountSid,
    call: &CallSid,
) -> Result<Url, ControlError> {
    let text = format!(
        "{}/{API_VERSION}/Accounts/{}/Calls/{}/Recordings/Twilio.CURRENT.json",
        base.as_str().trim_end_matches('/'),
        account.as_str(),
        call.as_str()
    );
    Url::parse(&text).map_err(|e| ControlError::Invalid(format!("{text}: {e}")))
}

/// The body of an answer, or `Err` when it could not be read in full (cut
/// off, timed out, larger than [`MAX_ANSWER_BYTES`]).
async fn read_capped(resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("{e:#}"))?;
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(format!("an answer over {MAX_ANSWER_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The fields of Twilio's recording resource callproof reads.
#[derive(Debug, Default, serde::Deserialize)]
struct RecordingAnswer {
    status: Option<String>,
    sid: Option<String>,
    start_time: Option<String>,
    date_updated: Option<String>,
}

/// The fields of Twilio's error answer callproof reads.
#[derive(Debug, Default, serde::Deserialize)]
struct ErrorAnswer {
    code: Option<u64>,
    message: Option<String>,
}

/// What an answer of `status` with `body` means for `action`.
fn interpret(
    action: RecordingAction,
    status: u16,
    body: Result<Vec<u8>, String>,
) -> Result<RecordingChange, ControlError> {
    if (300..500).contains(&status) {
        let err: ErrorAnswer = body
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        return Err(ControlError::Refused {
            status,
            code: err.code,
            message: err.message.map(|m| m.chars().take(200).collect()),
        });
    }
    if !(200..300).contains(&status) {
        return Err(ControlError::Unclear {
            status: Some(status),
            reason: format!("HTTP {status}"),
        });
    }
    let body = body.map_err(|why| ControlError::Unclear {
        status: Some(status),
        reason: format!("the answer could not be read: {why}"),
    })?;
    let answer: RecordingAnswer =
        serde_json::from_slice(&body).map_err(|e| ControlError::Unclear {
            status: Some(status),
            reason: format!("the answer is not the recording's JSON: {e}"),
        })?;
    let expected = action.expected_status();
    if answer.status.as_deref() != Some(expected) {
        return Err(ControlError::Unclear {
            status: Some(status),
            reason: format!(
                "the recording's status is {}, not {expected}",
                answer.status.as_deref().unwrap_or("missing")
            ),
        });
    }
    let recording_sid = answer
        .sid
        .as_deref()
        .and_then(|s| RecordingSid::parse(s).ok());
    let at = offset(answer.start_time.as_deref(), answer.date_updated.as_deref());
    Ok(match action {
        RecordingAction::Pause => RecordingChange::Paused { recording_sid, at },
        RecordingAction::Resume => RecordingChange::Resumed { recording_sid, at },
    })
}

/// `date_updated - start_time`, when both are RFC 2822 dates in that order.
fn offset(start_time: Option<&str>, date_updated: Option<&str>) -> Option<Duration> {
    let start = OffsetDateTime::parse(start_time?, &Rfc2822).ok()?;
    let updated = OffsetDateTime::parse(date_updated?, &Rfc2822).ok()?;
    Duration::try_from(updated - start).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
    const CALL: &str = "CA0123456789abcdef0123456789abcdef";

    fn config(pairs: &[(&str, &str)]) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("empty.toml");
        std::fs::write(&file, "").unwrap();
        let env: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load(Some(&file), &env, &[]).unwrap()
    }

    #[test]
    fn sids_of_the_wrong_shape_are_refused() {
        assert!(CallSid::parse(CALL).is_ok());
        assert!(CallSid::parse("CA0123456789ABCDEF0123456789abcdef").is_ok());
        for bad in [
            "",
            "CA",
            "CA0123456789abcdef0123456789abcde",
            "CA0123456789abcdef0123456789abcdef0",
            "AC0123456789abcdef0123456789abcdef",
            "CA0123456789abcdef0123456789abcdeg",
            "CA0123456789abcdef0123456789abc/..",
            "CA0123456789abcdef0123456789ab%2F",
            "ca0123456789abcdef0123456789abcdef",
            "CA0123456789abcdef0123456789abcdé",
        ] {
            assert!(
                matches!(CallSid::parse(bad), Err(ControlError::Invalid(_))),
                "{bad:?}"
            );
        }
        assert!(AccountSid::parse(ACCOUNT).is_ok());
        assert!(AccountSid::parse(CALL).is_err());
        assert!(AccountSid::parse("AC1").is_err());
        assert!(RecordingSid::parse("RE0123456789abcdef0123456789abcdef").is_ok());
        assert!(RecordingSid::parse("RE../../x").is_err());
    }

    #[test]
    fn the_url_names_the_current_recording_of_the_call() {
        let account = AccountSid::parse(ACCOUNT).unwrap();
        let call = CallSid::parse(CALL).unwrap();
        let url = recording_url(
            &Url::parse("https://api.twilio.com").unwrap(),
            &account,
            &call,
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            format!("https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Calls/{CALL}/Recordings/Twilio.CURRENT.json")
        );
        let url = recording_url(
            &Url::parse("http://127.0.0.1:8089/").unwrap(),
            &account,
            &call,
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            format!("http://127.0.0.1:8089/2010-04-01/Accounts/{ACCOUNT}/Calls/{CALL}/Recordings/Twilio.CURRENT.json")
        );
    }

    #[tokio::test]
    async fn a_bad_sid_sends_nothing() {
        // Port 9 on loopback: nothing listens, but nothing is sent anyway.
        let control = RecordingControl::new(
            ControlSettings {
                base: Url::parse("http://127.0.0.1:9").unwrap(),
                account_sid: ACCOUNT.into(),
                auth_token: "token".into(),
                timeout: Duration::from_secs(1),
            },
            Arc::new(Metrics::default()),
        )
        .unwrap();
        assert!(matches!(
            control.pause("CA../../../Accounts").await,
            Err(ControlError::Invalid(_))
        ));
        let bad_account = RecordingControl::new(
            ControlSettings {
                base: Url::parse("http://127.0.0.1:9").unwrap(),
                account_sid: "AC1".into(),
                auth_token: "token".into(),
                timeout: Duration::from_secs(1),
            },
            Arc::new(Metrics::default()),
        )
        .unwrap();
        let err = bad_account.resume(CALL).await.unwrap_err();
        assert!(
            matches!(&err, ControlError::Invalid(m) if m.contains("CALLPROOF_TWILIO_ACCOUNT_SID"))
        );
        let rendered = control.metrics.render();
        assert!(
            rendered.contains(r#"callproof_provider_api_total{action="pause",result="invalid"} 1"#),
            "{rendered}"
        );
    }

    #[test]
    fn production_takes_only_https_to_twilio_or_a_listed_host() {
        let prod = [("CALLPROOF_ENV", "production")];
        assert_eq!(
            checked_base(&config(&prod)).unwrap().as_str(),
            "https://api.twilio.com/"
        );
        let err = checked_base(&config(&[
            ("CALLPROOF_ENV", "production"),
            ("CALLPROOF_PROVIDER_API_URL", "http://api.twilio.com"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("CALLPROOF_PROVIDER_API_URL=https://api.twilio.com")
                || err.contains("https://api.twilio.com"),
            "{err}"
        );
        let err = checked_base(&config(&[
            ("CALLPROOF_ENV", "production"),
            ("CALLPROOF_PROVIDER_API_URL", "https://edge.example.net"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("CALLPROOF_PROVIDER_API_HOSTS"), "{err}");
        // Listed: allowed, at the listed port only.
        let listed = config(&[
            ("CALLPROOF_ENV", "production"),
            ("CALLPROOF_PROVIDER_API_URL", "https://edge.example.net"),
            ("CALLPROOF_PROVIDER_API_HOSTS", "edge.example.net"),
        ]);
        assert!(checked_base(&listed).is_ok());
        assert!(checked_base(&config(&[
            ("CALLPROOF_ENV", "production"),
            (
                "CALLPROOF_PROVIDER_API_URL",
                "https://edge.example.net:8443"
            ),
            ("CALLPROOF_PROVIDER_API_HOSTS", "edge.example.net"),
        ]))
        .is_err());
        // Listing a host never allows plain http to it.
        assert!(checked_base(&config(&[
            ("CALLPROOF_ENV", "production"),
            ("CALLPROOF_PROVIDER_API_URL", "http://edge.example.net:8080"),
            ("CALLPROOF_PROVIDER_API_HOSTS", "edge.example.net:8080"),
        ]))
        .is_err());
        // Development takes the simulator on loopback.
        let dev = config(&[("CALLPROOF_PROVIDER_API_URL", "http://127.0.0.1:8089")]);
        assert_eq!(
            checked_base(&dev).unwrap().as_str(),
            "http://127.0.0.1:8089/"
        );
    }

    #[test]
    fn a_base_url_with_a_path_or_user_is_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("empty.toml");
        std::fs::write(&file, "").unwrap();
        for bad in [
            "https://api.twilio.com/2010-04-01",
            "https://user:pw@api.twilio.com",
            "https://api.twilio.com?x=1",
            "ftp://api.twilio.com",
            "api.twilio.com",
        ] {
            let env = vec![("CALLPROOF_PROVIDER_API_URL".to_string(), bad.to_string())];
            let err = Config::load(Some(&file), &env, &[])
                .unwrap_err()
                .to_string();
            assert!(err.contains("CALLPROOF_PROVIDER_API_URL"), "{bad}: {err}");
        }
    }

    #[test]
    fn answers_are_read_as_done_refused_or_unclear() {
        let ok = br#"{"sid":"RE0123456789abcdef0123456789abcdef","status":"paused","start_time":"Mon, 23 Nov 2026 06:00:00 +0000","date_updated":"Mon, 23 Nov 2026 06:00:07 +0000"}"#;
        assert_eq!(
            interpret(RecordingAction::Pause, 200, Ok(ok.to_vec())),
            Ok(RecordingChange::Paused {
                recording_sid: Some(
                    RecordingSid::parse("RE0123456789abcdef0123456789abcdef").unwrap()
                ),
                at: Some(Duration::from_secs(7)),
            })
        );
        // A pause answered with another status did not surely take effect.
        assert!(interpret(RecordingAction::Resume, 200, Ok(ok.to_vec()))
            .unwrap_err()
            .is_unclear());
        assert!(
            interpret(RecordingAction::Pause, 200, Ok(b"<html>".to_vec()))
                .unwrap_err()
                .is_unclear()
        );
        assert!(interpret(RecordingAction::Pause, 200, Err("cut".into()))
            .unwrap_err()
            .is_unclear());
        assert!(interpret(RecordingAction::Pause, 503, Ok(Vec::new()))
            .unwrap_err()
            .is_unclear());
        let refused = interpret(
            RecordingAction::Pause,
            404,
            Ok(
                br#"{"code":20404,"message":"The requested resource was not found","status":404}"#
                    .to_vec(),
            ),
        )
        .unwrap_err();
        assert_eq!(
            refused,
            ControlError::Refused {
                status: 404,
                code: Some(20404),
                message: Some("The requested resource was not found".into())
            }
        );
        assert!(!refused.is_unclear());
        // A SID of another shape is not kept; the change still counts.
        let odd = br#"{"sid":"../x","status":"in-progress"}"#;
        assert_eq!(
            interpret(RecordingAction::Resume, 200, Ok(odd.to_vec())),
            Ok(RecordingChange::Resumed {
                recording_sid: None,
                at: None
            })
        );
    }
}
