//! Settings: embedded defaults, then an optional `callproof.toml`, then
//! `CALLPROOF_*` environment variables, then command-line flags, in that order.
//!
//! One table, [`SETTINGS`], names every setting once; the TOML keys, the
//! environment names, the defaults and the `--help` text all come from it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::auth::ApiKey;
use crate::callbacks::CallbackSecret;
use crate::domain::ChangeKind;
use crate::domain::PhoneNumber;
use crate::netguard::AllowList;
use crate::provider::RecordingFormat;
use crate::store::s3::{LockMode, Sse};

/// One setting: its TOML key, its environment variable, its default and what it does.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// Key in `callproof.toml`.
    pub key: &'static str,
    /// Environment variable.
    pub env: &'static str,
    /// Default, as text; `None` when unset by default.
    pub default: Option<&'static str>,
    /// One sentence for README and `--help`.
    pub help: &'static str,
}

/// Every setting callproof reads.
pub const SETTINGS: &[Setting] = &[
    Setting { key: "listen", env: "CALLPROOF_LISTEN", default: Some("127.0.0.1:8080"), help: "Address and port the HTTP server listens on." },
    Setting { key: "data_dir", env: "CALLPROOF_DATA_DIR", default: Some("./data"), help: "Directory for the local object store and the development credentials." },
    Setting { key: "public_url", env: "CALLPROOF_PUBLIC_URL", default: None, help: "Base URL the telephony provider reaches this server at (e.g. https://callproof.example.com); webhook signatures are checked against it. Defaults to http://<listen address>; required in production." },
    Setting { key: "environment", env: "CALLPROOF_ENV", default: Some("development"), help: "development or production. Production refuses development credentials and needs public_url." },
    Setting { key: "twilio_account_sid", env: "CALLPROOF_TWILIO_ACCOUNT_SID", default: None, help: "Provider account SID, used to fetch recordings. Generated for development when unset." },
    Setting { key: "twilio_auth_token", env: "CALLPROOF_TWILIO_AUTH_TOKEN", default: None, help: "Provider auth token: verifies X-Twilio-Signature on every webhook. Generated for development when unset." },
    Setting { key: "api_keys", env: "CALLPROOF_API_KEYS", default: None, help: "Comma-separated API keys, each role:key or role:name:key, roles agent, compliance, admin (e.g. agent:front-desk:k1,compliance:k2); keys cannot contain :, and a key without a name is named key-<first 12 hex digits of its SHA-256>. Generated for development when unset." },
    Setting { key: "token_secret", env: "CALLPROOF_TOKEN_SECRET", default: None, help: "Secret (at least 32 characters) that signs flow tokens in callback URLs and playback URLs, and keys the hash that stands for phone numbers in the audit log; every instance must share it. Generated for development when unset." },
    Setting { key: "agent_number", env: "CALLPROOF_AGENT_NUMBER", default: None, help: "E.164 number a caller is transferred to on request or after repeated misses; unset ends such calls as no_answer." },
    Setting { key: "confirmation_ttl_secs", env: "CALLPROOF_CONFIRMATION_TTL_SECS", default: Some("1800"), help: "How long a confirmation request's transfer URL stays usable, in seconds." },
    Setting { key: "flow_step_ttl_secs", env: "CALLPROOF_FLOW_STEP_TTL_SECS", default: Some("900"), help: "How long the token in one consent question's callback URL stays valid, in seconds." },
    Setting { key: "recording_callback_ttl_secs", env: "CALLPROOF_RECORDING_CALLBACK_TTL_SECS", default: Some("86400"), help: "How long after the call starts its recording callback is accepted, in seconds." },
    Setting { key: "gather_timeout_secs", env: "CALLPROOF_GATHER_TIMEOUT_SECS", default: Some("6"), help: "Seconds of silence after a question before it counts as no answer." },
    Setting { key: "speech_min_confidence", env: "CALLPROOF_SPEECH_MIN_CONFIDENCE", default: Some("0.5"), help: "Speech recognised with lower confidence (0 to 1) is never taken as an answer." },
    Setting { key: "max_body_bytes", env: "CALLPROOF_MAX_BODY_BYTES", default: Some("65536"), help: "Largest accepted request body, in bytes; larger ones get 413." },
    Setting { key: "request_timeout_secs", env: "CALLPROOF_REQUEST_TIMEOUT_SECS", default: Some("15"), help: "Longest time one HTTP request may take, in seconds." },
    Setting { key: "header_read_timeout_secs", env: "CALLPROOF_HEADER_READ_TIMEOUT_SECS", default: Some("30"), help: "Seconds a client has to send the headers of a request, counted from when the server starts waiting for them (also on an idle kept-alive connection); a connection that has not sent them by then is closed." },
    Setting { key: "webhook_deadline_secs", env: "CALLPROOF_WEBHOOK_DEADLINE_SECS", default: Some("10"), help: "Seconds a provider webhook may take before the caller hears an apology (the work still finishes); keep it under the provider's own timeout (Twilio: 15)." },
    Setting { key: "prompts_dir", env: "CALLPROOF_PROMPTS_DIR", default: None, help: "Directory of prompts (<locale>/<kind>.toml confirmation scripts, <locale>/phrases.toml, <locale>/inbound.toml) replacing the built-in ones." },
    Setting { key: "callback_secret", env: "CALLPROOF_CALLBACK_SECRET", default: None, help: "Signs outcome callbacks the Standard Webhooks way: whsec_ followed by base64 of a 24- to 64-byte key (e.g. whsec_$(openssl rand -base64 32)). Generated for development when unset." },
    Setting { key: "callback_retry_secs", env: "CALLPROOF_CALLBACK_RETRY_SECS", default: Some("5,300,1800,7200,18000,36000,36000"), help: "Seconds before each retry of an outcome callback that failed (each plus up to a quarter, at random); after the last the callback is parked. The default retries for about 24 hours." },
    Setting { key: "callback_timeout_secs", env: "CALLPROOF_CALLBACK_TIMEOUT_SECS", default: Some("10"), help: "Time limit of one outcome callback delivery, in seconds." },
    Setting { key: "callback_allowed_hosts", env: "CALLPROOF_CALLBACK_ALLOWED_HOSTS", default: None, help: "Comma-separated host[:port] that a callback_url may name although they are, or resolve to, loopback, private, link-local or unique-local addresses (any port when none is given). Unset: none, in development too." },
    Setting { key: "signing_key_file", env: "CALLPROOF_SIGNING_KEY_FILE", default: None, help: "PKCS#8 PEM file of the Ed25519 key that signs every record version (openssl genpkey -algorithm ed25519 -out signing-key.pem). Generated as data_dir/dev-signing-key.pem for development when unset; required in production." },
    Setting { key: "previous_signing_key_file", env: "CALLPROOF_PREVIOUS_SIGNING_KEY_FILE", default: None, help: "For a key rotation: the PEM file of the key that signed until now. At start callproof writes a statement signed by both keys that introduces the new one, so records signed before keep verifying; keep it set until the next seal has been written, then remove it." },
    Setting { key: "trusted_keys", env: "CALLPROOF_TRUSTED_KEYS", default: None, help: "Public keys verification trusts besides the signing key's own: comma-separated fingerprints (64 hex digits, the SHA-256 of the key's DER), or the path of a file of PEM public keys. A key found only in the store is never trusted." },
    Setting { key: "seal_secs", env: "CALLPROOF_SEAL_SECS", default: Some("60"), help: "How often evidence written since the last seal is sealed, in seconds. An object deleted together with its marker before the next seal goes unnoticed, so keep it short." },
    Setting { key: "trusted_proxies", env: "CALLPROOF_TRUSTED_PROXIES", default: None, help: "Comma-separated IP addresses or CIDR blocks (e.g. 10.0.0.0/8) of reverse proxies whose X-Forwarded-For is believed: the audit log then records the right-most address in it that is not one of them. Unset: none; the TCP peer is recorded." },
    Setting { key: "index_url", env: "CALLPROOF_INDEX_URL", default: None, help: "Where the search index lives: postgres://user:password@host:port/database for PostgreSQL, which every instance sharing one store must use. Unset: embedded SQLite in data_dir/index.sqlite3." },
    Setting { key: "index_single_instance", env: "CALLPROOF_INDEX_SINGLE_INSTANCE", default: Some("false"), help: "true allows the embedded SQLite index with the S3 store, promising that only one instance runs on that bucket (each instance's SQLite would see only its own writes); a lease in the store then keeps a second instance from starting." },
    Setting { key: "index_phone_secret", env: "CALLPROOF_INDEX_PHONE_SECRET", default: None, help: "Secret (at least 32 characters) of the keyed hash that stands for phone numbers in the search index. Changing it means running `callproof index rebuild`. Generated for development when unset; required in production." },
    Setting { key: "identity_secret", env: "CALLPROOF_IDENTITY_SECRET", default: None, help: "Secret (at least 32 characters) under which PINs, one-time codes and knowledge answers are kept as keyed MACs, and which keys the caller-ID and account-number lookups of the inbound number. Keep it outside the store. Generated for development when unset; required in production." },
    Setting { key: "identity_max_tries", env: "CALLPROOF_IDENTITY_MAX_TRIES", default: Some("3"), help: "Wrong answers to a request's identity check (PIN, code or knowledge questions) after which its confirmation ends locked and the caller goes to the agent number." },
    Setting { key: "otp_ttl_secs", env: "CALLPROOF_OTP_TTL_SECS", default: Some("900"), help: "How long a one-time code from POST /v1/confirmations stays usable, in seconds; never past the request's own expiry." },
    Setting { key: "index_catchup_secs", env: "CALLPROOF_INDEX_CATCHUP_SECS", default: Some("5"), help: "How often the search index reads new seals and objects awaiting a seal, in seconds (it is also updated as each record version or hold is written)." },
    Setting { key: "playback_url_secs", env: "CALLPROOF_PLAYBACK_URL_SECS", default: Some("300"), help: "How long an audio URL from POST /v1/records/{id}/playback, or an evidence bundle URL from POST /v1/records/{id}/export-grant, stays usable without an API key, in seconds." },
    Setting { key: "ui_session_secs", env: "CALLPROOF_UI_SESSION_SECS", default: Some("28800"), help: "Longest life of a sign-in to the replay page /ui/, in seconds, however active it is (8 hours by default); then the user signs in again." },
    Setting { key: "ui_idle_secs", env: "CALLPROOF_UI_IDLE_SECS", default: Some("1800"), help: "A replay page session that makes no request for this many seconds ends (30 minutes by default)." },
    Setting { key: "media_hosts", env: "CALLPROOF_MEDIA_HOSTS", default: None, help: "Comma-separated hosts recordings are fetched from: host[:port] for https, http://host:port for plain http. Unset: api.twilio.com, plus loopback on any port in development. When set, exactly these." },
    Setting { key: "provider_api_url", env: "CALLPROOF_PROVIDER_API_URL", default: Some("https://api.twilio.com"), help: "Base URL of the provider's REST API, which pauses and resumes a call's recording (scheme, host and port only). Production needs https and api.twilio.com, or a host listed in provider_api_hosts; point it at the simulator's --provider-api address to try pauses on a laptop." },
    Setting { key: "provider_api_hosts", env: "CALLPROOF_PROVIDER_API_HOSTS", default: None, help: "Comma-separated host[:port] (https, 443 when no port is given) that provider_api_url may name in production besides api.twilio.com, e.g. a regional edge or an egress proxy. Unset: none." },
    Setting { key: "provider_api_timeout_secs", env: "CALLPROOF_PROVIDER_API_TIMEOUT_SECS", default: Some("5"), help: "Time limit of one request to the provider's REST API, in seconds; a pause whose answer does not come in time counts as unclear, never as done." },
    Setting { key: "max_recordings_per_call", env: "CALLPROOF_MAX_RECORDINGS_PER_CALL", default: Some("4"), help: "Recordings ingested per call at most; later recording callbacks are refused and logged." },
    Setting { key: "recording_format", env: "CALLPROOF_RECORDING_FORMAT", default: Some("wav"), help: "Format asked of the provider for call recordings: wav (lossless, both channels) or mp3 (smaller)." },
    Setting { key: "recording_max_bytes", env: "CALLPROOF_RECORDING_MAX_BYTES", default: Some("1073741824"), help: "Largest recording downloaded, in bytes; a larger one fails its job." },
    Setting { key: "recording_download_timeout_secs", env: "CALLPROOF_RECORDING_DOWNLOAD_TIMEOUT_SECS", default: Some("600"), help: "Time limit of one recording download attempt, in seconds." },
    Setting { key: "recording_download_attempts", env: "CALLPROOF_RECORDING_DOWNLOAD_ATTEMPTS", default: Some("8"), help: "Download attempts per recording; 404, 429, 5xx and network errors are retried with exponential backoff." },
    Setting { key: "recording_retry_base_ms", env: "CALLPROOF_RECORDING_RETRY_BASE_MS", default: Some("1000"), help: "First retry delay of a recording download, in milliseconds; it doubles each attempt, up to 30 s." },
    Setting { key: "recording_wait_secs", env: "CALLPROOF_RECORDING_WAIT_SECS", default: Some("900"), help: "Seconds after a call's outcome before a record without its recording is written as incomplete." },
    Setting { key: "archival_sample_rate", env: "CALLPROOF_ARCHIVAL_SAMPLE_RATE", default: None, help: "Sample rate of archival WAVs, in Hz; unset keeps each recording's own rate." },
    Setting { key: "ingest_concurrency", env: "CALLPROOF_INGEST_CONCURRENCY", default: Some("2"), help: "Recordings downloaded and transcoded at once." },
    Setting { key: "fact_cache_mib", env: "CALLPROOF_FACT_CACHE_MIB", default: Some("8"), help: "MiB of write-once call facts (requests, call claims, answers, outcomes) kept in memory once read or written, so a webhook the provider repeats is answered without reading them again; 0 keeps none. Only facts that exist are kept, never the absence of one." },
    Setting { key: "fact_cache_secs", env: "CALLPROOF_FACT_CACHE_SECS", default: Some("600"), help: "Longest time a kept copy of a fact is used, in seconds. A request's load still asks the store whether the request is there, so a purge by another process (callproof purge) is seen at once." },
    Setting { key: "sweep_interval_secs", env: "CALLPROOF_SWEEP_INTERVAL_SECS", default: Some("30"), help: "How often overdue records and silent flows are looked for, in seconds." },
    Setting { key: "job_lease_secs", env: "CALLPROOF_JOB_LEASE_SECS", default: Some("120"), help: "How long a recording job stays leased to the instance working on it; the lease is renewed while it works, and a stopped instance's job is taken over this long after its last renewal. Instances' clocks must agree to well within it." },
    Setting { key: "job_park_after_failures", env: "CALLPROOF_JOB_PARK_AFTER_FAILURES", default: Some("10"), help: "Failed attempts after which a recording job is parked: it is no longer retried until `callproof jobs retry`, and GET /v1/jobs shows why." },
    Setting { key: "store", env: "CALLPROOF_STORE", default: Some("fs"), help: "Where facts, records and audio are kept: fs (data_dir/store) or s3." },
    Setting { key: "s3_bucket", env: "CALLPROOF_S3_BUCKET", default: None, help: "S3 bucket (store = s3). Credentials come from the standard AWS chain: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, or an instance role." },
    Setting { key: "s3_prefix", env: "CALLPROOF_S3_PREFIX", default: None, help: "Key prefix inside the bucket, e.g. callproof/ (a trailing / is added)." },
    Setting { key: "s3_endpoint", env: "CALLPROOF_S3_ENDPOINT", default: None, help: "Endpoint of an S3-compatible store (MinIO, Ceph RGW, Garage), e.g. http://127.0.0.1:9000; unset for AWS." },
        Setting { key: "s3_access_key_id", env: "CALLPROOF_S3_ACCESS_KEY_ID", default: None, help: "Access key for the store, with s3_secret_access_key; unset uses the standard AWS chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, profile, instance role)." },
    Setting { key: "s3_secret_access_key", env: "CALLPROOF_S3_SECRET_ACCESS_KEY", default: None, help: "Secret key matching s3_access_key_id." },
    Setting { key: "s3_region", env: "CALLPROOF_S3_REGION", default: Some("us-east-1"), help: "Region of the bucket." },
    Setting { key: "s3_path_style", env: "CALLPROOF_S3_PATH_STYLE", default: Some("false"), help: "true for path-style addressing, which most S3-compatible stores need." },
    Setting { key: "s3_sse", env: "CALLPROOF_S3_SSE", default: Some("none"), help: "Server-side encryption asked for every object: none, aes256 (SSE-S3) or aws:kms (SSE-KMS)." },
    Setting { key: "s3_sse_kms_key_id", env: "CALLPROOF_S3_SSE_KMS_KEY_ID", default: None, help: "KMS key id for aws:kms; unset uses the bucket's default key." },
    Setting { key: "s3_object_lock_mode", env: "CALLPROOF_S3_OBJECT_LOCK_MODE", default: Some("governance"), help: "Object Lock mode of retained evidence when the bucket has Object Lock: governance or compliance." },
    Setting { key: "s3_multipart_threshold_bytes", env: "CALLPROOF_S3_MULTIPART_THRESHOLD_BYTES", default: Some("16777216"), help: "Files larger than this are uploaded in parts." },
    Setting { key: "s3_part_size_bytes", env: "CALLPROOF_S3_PART_SIZE_BYTES", default: Some("8388608"), help: "Size of each uploaded part (S3's minimum is 5 MiB)." },
    Setting { key: "s3_accept_overwrite_risk", env: "CALLPROOF_S3_ACCEPT_OVERWRITE_RISK", default: Some("false"), help: "true starts on a store that cannot guarantee write-once (it ignores If-None-Match, or lets concurrent creates all win). Stored evidence can then be overwritten: run exactly one instance." },
    Setting { key: "retention_days", env: "CALLPROOF_RETENTION_DAYS", default: Some("2557"), help: "Days records and audio are retained (7 years by default); written as Object Lock retention when the bucket has Object Lock." },
    Setting { key: "retention_by_kind", env: "CALLPROOF_RETENTION_BY_KIND", default: None, help: "Retention per kind overriding retention_days, e.g. termination=2557,billing=1827,communication=365." },
    Setting { key: "log_format", env: "CALLPROOF_LOG_FORMAT", default: Some("text"), help: "text for people, json for log pipelines." },
];

/// Settings that existed once, by TOML key and environment name, with what replaced them.
const RETIRED: &[(&str, &str, &str)] = &[(
    "outcome_callback_attempts",
    "CALLPROOF_OUTCOME_CALLBACK_ATTEMPTS",
    "outcome callbacks are durable jobs retried on the schedule CALLPROOF_CALLBACK_RETRY_SECS; remove it",
)];

fn retired(name: &str) -> Option<&'static str> {
    RETIRED
        .iter()
        .find(|(key, env, _)| *key == name || *env == name)
        .map(|(_, _, why)| *why)
}

/// Where a setting's value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The embedded default.
    Default,
    /// The configuration file.
    File(PathBuf),
    /// An environment variable.
    Env,
    /// A command-line flag.
    Flag,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Env => f.write_str("environment"),
            Source::Flag => f.write_str("command line"),
        }
    }
}

/// A setting that could not be read, said so the operator can fix it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

/// Development or production.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// Laptop defaults; generated credentials allowed.
    Development,
    /// Real traffic; explicit credentials and a public URL required.
    Production,
}

/// The secrets the server needs; any of them may be filled in from the
/// development credentials file (see [`crate::credentials`]).
#[derive(Clone)]
pub struct Secrets {
    /// Provider account SID.
    pub twilio_account_sid: Option<String>,
    /// Provider auth token.
    pub twilio_auth_token: Option<String>,
    /// API keys with their roles.
    pub api_keys: Option<Vec<ApiKey>>,
    /// Flow-token signing secret.
    pub token_secret: Option<String>,
    /// Outcome-callback signing secret (`whsec_…`).
    pub callback_secret: Option<String>,
    /// Key of the phone-number hashes in the search index.
    pub index_phone_secret: Option<String>,
    /// Key of identity-check MACs and inbound lookups.
    pub identity_secret: Option<String>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |b: bool| if b { "set" } else { "unset" };
        f.debug_struct("Secrets")
            .field("twilio_account_sid", &self.twilio_account_sid)
            .field("twilio_auth_token", &set(self.twilio_auth_token.is_some()))
            .field("api_keys", &set(self.api_keys.is_some()))
            .field("token_secret", &set(self.token_secret.is_some()))
            .field("callback_secret", &set(self.callback_secret.is_some()))
            .field(
                "index_phone_secret",
                &set(self.index_phone_secret.is_some()),
            )
            .field("identity_secret", &set(self.identity_secret.is_some()))
            .finish()
    }
}

/// Every setting, parsed.
#[derive(Debug, Clone)]
pub struct Config {
    /// See [`SETTINGS`] for each field's meaning.
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub public_url: Option<String>,
    pub environment: Environment,
    pub secrets: Secrets,
    pub agent_number: Option<PhoneNumber>,
    pub confirmation_ttl_secs: u64,
    pub identity_max_tries: u32,
    pub otp_ttl_secs: u64,
    pub flow_step_ttl_secs: u64,
    pub recording_callback_ttl_secs: u64,
    pub gather_timeout_secs: u32,
    pub speech_min_confidence: f32,
    pub max_body_bytes: usize,
    pub request_timeout_secs: u64,
    pub header_read_timeout_secs: u64,
    pub webhook_deadline_secs: u64,
    pub prompts_dir: Option<PathBuf>,
    pub callback_retry_secs: Vec<u64>,
    pub callback_timeout_secs: u64,
    pub callback_allowed_hosts: AllowList,
    pub media_hosts: Option<AllowList>,
    pub provider_api_url: url::Url,
    pub provider_api_hosts: AllowList,
    pub provider_api_timeout_secs: u64,
    pub signing_key_file: Option<PathBuf>,
    pub previous_signing_key_file: Option<PathBuf>,
    pub trusted_keys: Option<String>,
    pub seal_secs: u64,
    pub trusted_proxies: crate::http::client::TrustedProxies,
    pub playback_url_secs: u64,
    pub index_url: Option<String>,
    pub index_single_instance: bool,
    pub index_catchup_secs: u64,
    pub ui_session_secs: u64,
    pub ui_idle_secs: u64,
    pub max_recordings_per_call: u32,
    pub recording_format: RecordingFormat,
    pub recording_max_bytes: u64,
    pub recording_download_timeout_secs: u64,
    pub recording_download_attempts: u32,
    pub recording_retry_base_ms: u64,
    pub recording_wait_secs: u64,
    pub archival_sample_rate: Option<u32>,
    pub ingest_concurrency: usize,
    pub fact_cache_mib: u64,
    pub fact_cache_secs: u64,
    pub sweep_interval_secs: u64,
    pub job_lease_secs: u64,
    pub job_park_after_failures: u32,
    pub store: StoreKind,
    pub s3: S3Config,
    pub retention: Retention,
    pub log_format: LogFormat,
}

impl Config {
    /// How long an evidence object may wait for its seal before verification
    /// calls it a problem: two seal intervals and a lease, as the sealer can
    /// lose its lease to a stopped instance once.
    pub fn seal_grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs(2 * self.seal_secs + self.job_lease_secs)
    }
}

/// Which backend keeps the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The local directory `data_dir/store`.
    Fs,
    /// An S3 bucket.
    S3,
}

/// The S3 settings (used when `store = s3`).
#[derive(Debug, Clone)]
pub struct S3Config {
    /// See [`SETTINGS`].
    pub bucket: Option<String>,
    pub prefix: String,
    pub endpoint: Option<String>,
    pub region: String,
    pub path_style: bool,
    pub sse: Option<Sse>,
    pub lock_mode: LockMode,
    pub multipart_threshold: u64,
    pub part_size: u64,
    pub accept_overwrite_risk: bool,
    pub credentials: Option<(String, String)>,
}

/// How long evidence is kept, per kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Days for kinds without their own entry.
    pub default_days: u32,
    /// Days per kind.
    pub by_kind: Vec<(ChangeKind, u32)>,
}

impl Retention {
    /// Days a record of `kind` is kept.
    pub fn days(&self, kind: ChangeKind) -> u32 {
        self.by_kind
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(self.default_days, |(_, d)| *d)
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Raw layered values: key -> (text, source).
type Layers = BTreeMap<&'static str, (String, Source)>;

/// The provider's media host when `media_hosts` is unset.
pub const DEFAULT_MEDIA_HOST: &str = "api.twilio.com";

impl Config {
    /// The hosts recordings may be fetched from: `media_hosts` when set;
    /// otherwise Twilio's API host, and in development loopback on any port too.
    pub fn media_hosts(&self) -> AllowList {
        if let Some(list) = &self.media_hosts {
            return list.clone();
        }
        let twilio = AllowList::parse(DEFAULT_MEDIA_HOST, false).unwrap_or_default();
        match self.environment {
            Environment::Production => twilio,
            Environment::Development => twilio.with(AllowList::loopback_any_port()),
        }
    }

    /// Reads the layers: defaults, the file (if `file` is given or
    /// `./callproof.toml` exists), the `CALLPROOF_*` variables in `env`, then `flags`.
    pub fn load(
        file: Option<&Path>,
        env: &[(String, String)],
        flags: &[(&str, String)],
    ) -> Result<Config, ConfigError> {
        let mut layers: Layers = BTreeMap::new();
        for s in SETTINGS {
            if let Some(d) = s.default {
                layers.insert(s.key, (d.to_owned(), Source::Default));
            }
        }
        let default_file = Path::new("callproof.toml");
        let file = match file {
            Some(f) => Some(f.to_path_buf()),
            None if default_file.exists() => Some(default_file.to_path_buf()),
            None => None,
        };
        if let Some(path) = file {
            read_file_layer(&path, &mut layers)?;
        }
        for (name, value) in env {
            // The file's path and the log filter are read before the settings are.
            if name == "CALLPROOF_CONFIG"
                || name == "CALLPROOF_LOG"
                || !name.starts_with("CALLPROOF_")
            {
                continue;
            }
            let setting = SETTINGS.iter().find(|s| s.env == name).ok_or_else(|| {
                ConfigError(match retired(name) {
                    Some(why) => format!("{name} is no longer read: {why}"),
                    None => format!(
                        "unknown setting {name} in the environment: see `callproof serve --help` for the list"
                    ),
                })
            })?;
            layers.insert(setting.key, (value.clone(), Source::Env));
        }
        for (key, value) in flags {
            let setting = SETTINGS
                .iter()
                .find(|s| s.key == *key)
                .ok_or_else(|| ConfigError(format!("unknown setting {key}")))?;
            layers.insert(setting.key, (value.clone(), Source::Flag));
        }
        Config::from_layers(&layers)
    }

    fn from_layers(l: &Layers) -> Result<Config, ConfigError> {
        let environment = match get(l, "environment").map(|(v, s)| (v.as_str(), s)) {
            Some(("development", _)) | None => Environment::Development,
            Some(("production", _)) => Environment::Production,
            Some((other, src)) => {
                return Err(bad(
                    "environment",
                    other,
                    src,
                    "use development or production",
                ))
            }
        };
        let log_format = match get(l, "log_format").map(|(v, s)| (v.as_str(), s)) {
            Some(("text", _)) | None => LogFormat::Text,
            Some(("json", _)) => LogFormat::Json,
            Some((other, src)) => return Err(bad("log_format", other, src, "use text or json")),
        };
        let public_url = match get(l, "public_url") {
            None => None,
            Some((v, src)) => {
                Some(parse_public_url(v).map_err(|why| bad("public_url", v, src, &why))?)
            }
        };
        let api_keys = match get(l, "api_keys") {
            None => None,
            Some((v, src)) => {
                Some(ApiKey::parse_list(v).map_err(|why| bad("api_keys", "<hidden>", src, &why))?)
            }
        };
        let token_secret = match get(l, "token_secret") {
            None => None,
            Some((v, src)) if v.len() < 32 => {
                return Err(bad(
                    "token_secret",
                    "<hidden>",
                    src,
                    "use at least 32 characters",
                ))
            }
            Some((v, _)) => Some(v.clone()),
        };
        let speech_min_confidence: f32 = parsed(l, "speech_min_confidence")?;
        if !(0.0..=1.0).contains(&speech_min_confidence) {
            let (v, src) = get(l, "speech_min_confidence")
                .ok_or_else(|| ConfigError("speech_min_confidence missing".into()))?;
            return Err(bad(
                "speech_min_confidence",
                v,
                src,
                "use a number from 0 to 1",
            ));
        }
        Ok(Config {
            listen: parsed(l, "listen")?,
            data_dir: PathBuf::from(required(l, "data_dir")?),
            public_url,
            environment,
            secrets: Secrets {
                twilio_account_sid: get(l, "twilio_account_sid").map(|(v, _)| v.clone()),
                twilio_auth_token: get(l, "twilio_auth_token").map(|(v, _)| v.clone()),
                api_keys,
                token_secret,
                callback_secret: match get(l, "callback_secret") {
                    None => None,
                    Some((v, src)) => {
                        CallbackSecret::parse(v).map_err(|why| bad("callback_secret", "<hidden>", src, &why))?;
                        Some(v.trim().to_owned())
                    }
                },
                index_phone_secret: match get(l, "index_phone_secret") {
                    None => None,
                    Some((v, src)) if v.trim().len() < 32 => {
                        return Err(bad("index_phone_secret", "<hidden>", src, "use at least 32 characters (e.g. openssl rand -hex 32)"))
                    }
                    Some((v, _)) => Some(v.trim().to_owned()),
                },
                identity_secret: match get(l, "identity_secret") {
                    None => None,
                    Some((v, src)) if v.trim().len() < 32 => {
                        return Err(bad("identity_secret", "<hidden>", src, "use at least 32 characters (e.g. openssl rand -hex 32)"))
                    }
                    Some((v, _)) => Some(v.trim().to_owned()),
                },
            },
            agent_number: match get(l, "agent_number") {
                None => None,
                Some((v, src)) => Some(
                    v.parse()
                        .map_err(|why: String| bad("agent_number", v, src, &why))?,
                ),
            },
            confirmation_ttl_secs: positive(l, "confirmation_ttl_secs")?,
            identity_max_tries: positive(l, "identity_max_tries")?,
            otp_ttl_secs: positive(l, "otp_ttl_secs")?,
            flow_step_ttl_secs: positive(l, "flow_step_ttl_secs")?,
            recording_callback_ttl_secs: positive(l, "recording_callback_ttl_secs")?,
            gather_timeout_secs: positive(l, "gather_timeout_secs")?,
            speech_min_confidence,
            max_body_bytes: positive(l, "max_body_bytes")?,
            request_timeout_secs: positive(l, "request_timeout_secs")?,
            header_read_timeout_secs: positive(l, "header_read_timeout_secs")?,
            webhook_deadline_secs: positive(l, "webhook_deadline_secs")?,
            prompts_dir: get(l, "prompts_dir").map(|(v, _)| PathBuf::from(v)),
            callback_retry_secs: match get(l, "callback_retry_secs") {
                None => Vec::new(),
                Some((v, src)) => v
                    .split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(|x| x.parse::<u64>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| bad("callback_retry_secs", v, src, "use comma-separated whole seconds, like 5,300,1800"))?,
            },
            callback_timeout_secs: positive(l, "callback_timeout_secs")?,
            callback_allowed_hosts: match get(l, "callback_allowed_hosts") {
                None => AllowList::default(),
                Some((v, src)) => AllowList::parse_hosts(v).map_err(|why| bad("callback_allowed_hosts", v, src, &why))?,
            },
            media_hosts: match get(l, "media_hosts") {
                None => None,
                Some((v, src)) => Some(AllowList::parse(v, true).map_err(|why| bad("media_hosts", v, src, &why))?),
            },
            provider_api_url: {
                let (v, src) = get(l, "provider_api_url").ok_or_else(|| ConfigError("setting provider_api_url (CALLPROOF_PROVIDER_API_URL) is empty: give it a value, like https://api.twilio.com".into()))?;
                parse_api_base(v).map_err(|why| bad("provider_api_url", v, src, &why))?
            },
            provider_api_hosts: match get(l, "provider_api_hosts") {
                None => AllowList::default(),
                Some((v, src)) => AllowList::parse(v, false).map_err(|why| bad("provider_api_hosts", v, src, &why))?,
            },
            provider_api_timeout_secs: positive(l, "provider_api_timeout_secs")?,
            max_recordings_per_call: positive(l, "max_recordings_per_call")?,
            signing_key_file: get(l, "signing_key_file").map(|(v, _)| PathBuf::from(v)),
            previous_signing_key_file: get(l, "previous_signing_key_file").map(|(v, _)| PathBuf::from(v)),
            trusted_keys: match get(l, "trusted_keys") {
                None => None,
                Some((v, src)) => {
                    crate::evidence::trust::Trust::configured(None, Some(v)).map_err(|why| bad("trusted_keys", v, src, &why))?;
                    Some(v.trim().to_owned())
                }
            },
            seal_secs: positive(l, "seal_secs")?,
            trusted_proxies: match get(l, "trusted_proxies") {
                None => crate::http::client::TrustedProxies::default(),
                Some((v, src)) => crate::http::client::TrustedProxies::parse(v).map_err(|why| bad("trusted_proxies", v, src, &why))?,
            },
            playback_url_secs: positive(l, "playback_url_secs")?,
            index_url: match get(l, "index_url") {
                None => None,
                Some((v, _)) if v.trim().is_empty() => None,
                Some((v, src)) if !(v.starts_with("postgres://") || v.starts_with("postgresql://")) => {
                    return Err(bad("index_url", "<hidden>", src, "use postgres://user:password@host:port/database, or leave it unset for the embedded SQLite index"))
                }
                Some((v, _)) => Some(v.trim().to_owned()),
            },
            index_single_instance: parsed(l, "index_single_instance")?,
            index_catchup_secs: positive(l, "index_catchup_secs")?,
            ui_session_secs: positive(l, "ui_session_secs")?,
            ui_idle_secs: positive(l, "ui_idle_secs")?,
            recording_format: match get(l, "recording_format").map(|(v, s)| (v.as_str(), s)) {
                Some(("wav", _)) | None => RecordingFormat::Wav,
                Some(("mp3", _)) => RecordingFormat::Mp3,
                Some((other, src)) => {
                    return Err(bad("recording_format", other, src, "use wav or mp3"))
                }
            },
            recording_max_bytes: positive(l, "recording_max_bytes")?,
            recording_download_timeout_secs: positive(l, "recording_download_timeout_secs")?,
            recording_download_attempts: positive(l, "recording_download_attempts")?,
            recording_retry_base_ms: positive(l, "recording_retry_base_ms")?,
            recording_wait_secs: positive(l, "recording_wait_secs")?,
            archival_sample_rate: match get(l, "archival_sample_rate") {
                None => None,
                Some((v, src)) => match v.trim().parse::<u32>() {
                    Ok(r) if (4000..=192_000).contains(&r) => Some(r),
                    _ => {
                        return Err(bad(
                            "archival_sample_rate",
                            v,
                            src,
                            "use a rate in Hz from 4000 to 192000, like 16000",
                        ))
                    }
                },
            },
            ingest_concurrency: positive(l, "ingest_concurrency")?,
            fact_cache_mib: parsed(l, "fact_cache_mib")?,
            fact_cache_secs: parsed(l, "fact_cache_secs")?,
            sweep_interval_secs: positive(l, "sweep_interval_secs")?,
            job_lease_secs: positive(l, "job_lease_secs")?,
            job_park_after_failures: positive(l, "job_park_after_failures")?,
            store: match get(l, "store").map(|(v, s)| (v.as_str(), s)) {
                Some(("fs", _)) | None => StoreKind::Fs,
                Some(("s3", _)) => StoreKind::S3,
                Some((other, src)) => return Err(bad("store", other, src, "use fs or s3")),
            },
            s3: S3Config {
                bucket: get(l, "s3_bucket").map(|(v, _)| v.clone()),
                prefix: match get(l, "s3_prefix") {
                    None => String::new(),
                    Some((v, src)) => {
                        let p = v.trim_matches('/');
                        crate::store::ObjectKey::new(p)
                            .map_err(|_| bad("s3_prefix", v, src, "use lowercase letters, digits, . _ - and /"))?;
                        format!("{p}/")
                    }
                },
                endpoint: get(l, "s3_endpoint").map(|(v, _)| v.trim_end_matches('/').to_owned()),
                region: required(l, "s3_region")?.clone(),
                path_style: boolean(l, "s3_path_style")?,
                sse: match get(l, "s3_sse").map(|(v, s)| (v.as_str(), s)) {
                    Some(("none", _)) | None => None,
                    Some(("aes256", _)) | Some(("AES256", _)) => Some(Sse::S3),
                    Some(("aws:kms", _)) => Some(Sse::Kms(get(l, "s3_sse_kms_key_id").map(|(v, _)| v.clone()))),
                    Some((other, src)) => return Err(bad("s3_sse", other, src, "use none, aes256 or aws:kms")),
                },
                lock_mode: match get(l, "s3_object_lock_mode").map(|(v, s)| (v.as_str(), s)) {
                    Some(("governance", _)) | None => LockMode::Governance,
                    Some(("compliance", _)) => LockMode::Compliance,
                    Some((other, src)) => return Err(bad("s3_object_lock_mode", other, src, "use governance or compliance")),
                },
                multipart_threshold: positive(l, "s3_multipart_threshold_bytes")?,
                part_size: {
                    let n: u64 = positive(l, "s3_part_size_bytes")?;
                    if n < 5 * 1024 * 1024 {
                        return Err(bad("s3_part_size_bytes", &n.to_string(), &l["s3_part_size_bytes"].1, "use at least 5242880 (5 MiB)"));
                    }
                    n
                },
                                accept_overwrite_risk: boolean(l, "s3_accept_overwrite_risk")?,
                credentials: match (get(l, "s3_access_key_id"), get(l, "s3_secret_access_key")) {
                    (Some((k, _)), Some((s, _))) => Some((k.clone(), s.clone())),
                    (None, None) => None,
                    (Some((_, src)), None) | (None, Some((_, src))) => {
                        return Err(bad("s3_access_key_id", "<hidden>", src, "give both CALLPROOF_S3_ACCESS_KEY_ID and CALLPROOF_S3_SECRET_ACCESS_KEY, or neither"))
                    }
                },
            },
            retention: Retention {
                default_days: positive(l, "retention_days")?,
                by_kind: match get(l, "retention_by_kind") {
                    None => Vec::new(),
                    Some((v, src)) => parse_retention_by_kind(v).map_err(|why| bad("retention_by_kind", v, src, &why))?,
                },
            },
            log_format,
        })
    }

    /// The public base URL without a trailing slash: the configured one, or
    /// `http://` plus the address the server actually bound.
    pub fn public_base(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(u) => u.clone(),
            None => format!("http://{bound}"),
        }
    }
}

fn get<'a>(l: &'a Layers, key: &str) -> Option<(&'a String, &'a Source)> {
    l.get(key)
        .map(|(v, s)| (v, s))
        .filter(|(v, _)| !v.is_empty())
}

fn env_of(key: &str) -> &'static str {
    SETTINGS
        .iter()
        .find(|s| s.key == key)
        .map(|s| s.env)
        .unwrap_or("?")
}

fn bad(key: &str, value: &str, src: &Source, why: &str) -> ConfigError {
    ConfigError(format!(
        "setting {key} ({}) from {src} has the value {value:?}: {why}",
        env_of(key)
    ))
}

fn required<'a>(l: &'a Layers, key: &str) -> Result<&'a String, ConfigError> {
    get(l, key).map(|(v, _)| v).ok_or_else(|| {
        ConfigError(format!(
            "setting {key} ({}) is empty: give it a value",
            env_of(key)
        ))
    })
}

fn parsed<T: std::str::FromStr>(l: &Layers, key: &str) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    let v = required(l, key)?;
    let src = &l[key].1;
    v.trim()
        .parse()
        .map_err(|e: T::Err| bad(key, v, src, &e.to_string()))
}

fn positive<T>(l: &Layers, key: &str) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + Default,
    T::Err: fmt::Display,
{
    let n: T = parsed(l, key)?;
    if n <= T::default() {
        return Err(bad(key, &l[key].0, &l[key].1, "use a whole number above 0"));
    }
    Ok(n)
}

fn boolean(l: &Layers, key: &str) -> Result<bool, ConfigError> {
    let v = required(l, key)?;
    match v.trim() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(bad(key, v, &l[key].1, "use true or false")),
    }
}

fn parse_retention_by_kind(v: &str) -> Result<Vec<(ChangeKind, u32)>, String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (kind, days) = item
                .split_once('=')
                .ok_or_else(|| format!("{item:?} is not kind=days, like billing=1827"))?;
            let kind: ChangeKind = kind.trim().parse()?;
            let days: u32 = days
                .trim()
                .parse()
                .ok()
                .filter(|d| *d > 0)
                .ok_or_else(|| format!("{item:?}: days must be a whole number above 0"))?;
            Ok((kind, days))
        })
        .collect()
}

fn parse_public_url(v: &str) -> Result<String, String> {
    let trimmed = v.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .ok_or("use an http:// or https:// URL, like https://callproof.example.com")?;
    if rest.is_empty() || rest.contains(['?', '#', ' ']) {
        return Err(
            "use a base URL with a host and no query, like https://callproof.example.com".into(),
        );
    }
    Ok(trimmed.to_owned())
}

/// A base URL of scheme, host and port only: the provider API's paths are
/// appended to it.
fn parse_api_base(v: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(v.trim())
        .map_err(|e| format!("{e}: use a base URL like https://api.twilio.com"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(
            "use an http:// or https:// URL with a host, like https://api.twilio.com".into(),
        );
    }
    if url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err("give the scheme, host and port only (no path, user, query or fragment), like https://api.twilio.com".into());
    }
    Ok(url)
}

fn read_file_layer(path: &Path, layers: &mut Layers) -> Result<(), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "cannot read configuration file {}: {e}",
            path.display()
        ))
    })?;
    let table: toml::Table = text.parse().map_err(|e| {
        ConfigError(format!(
            "configuration file {} is not valid TOML: {e}",
            path.display()
        ))
    })?;
    for (key, value) in table {
        let setting = SETTINGS.iter().find(|s| s.key == key).ok_or_else(|| {
            ConfigError(match retired(&key) {
                Some(why) => format!("{key:?} in {} is no longer read: {why}", path.display()),
                None => format!(
                    "unknown setting {key:?} in {}: see `callproof serve --help` for the list",
                    path.display()
                ),
            })
        })?;
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned).ok_or(()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    ConfigError(format!(
                        "setting {key} in {}: a list holds only strings",
                        path.display()
                    ))
                })?
                .join(","),
            other => {
                return Err(ConfigError(format!(
                    "setting {key} in {} has a {} value: use a string or number",
                    path.display(),
                    other.type_str()
                )))
            }
        };
        layers.insert(setting.key, (text, Source::File(path.to_path_buf())));
    }
    Ok(())
}

/// The settings table as text for `--help` and README.
pub fn settings_help() -> String {
    let mut out = String::from(
        "Settings (callproof.toml key / environment variable, default): later layers win: defaults, callproof.toml, environment, flags.\n",
    );
    for s in SETTINGS {
        out.push_str(&format!(
            "\n  {} / {} [default: {}]\n      {}\n",
            s.key,
            s.env,
            s.default.unwrap_or("unset"),
            s.help
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_embedded_defaults_make_a_working_config() {
        let c = Config::load(None, &[], &[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.environment, Environment::Development);
        assert!(c.public_url.is_none());
    }

    #[test]
    fn the_file_overrides_defaults_and_the_environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("callproof.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\ngather_timeout_secs = 8\napi_keys = [\"agent:a-key-of-enough-length\"]\n").unwrap();
        let c = Config::load(
            Some(&path),
            &env(&[("CALLPROOF_LISTEN", "127.0.0.1:9100")]),
            &[],
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9100);
        assert_eq!(c.gather_timeout_secs, 8);
        assert_eq!(
            c.secrets.api_keys.unwrap()[0].role,
            crate::auth::Role::Agent
        );
    }

    #[test]
    fn flags_override_the_environment() {
        let c = Config::load(
            None,
            &env(&[("CALLPROOF_DATA_DIR", "/a")]),
            &[("data_dir", "/b".into())],
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/b"));
    }

    #[test]
    fn a_bad_value_names_the_setting_the_source_and_the_fix() {
        let err = Config::load(None, &env(&[("CALLPROOF_LISTEN", "nowhere")]), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("CALLPROOF_LISTEN") && err.contains("environment"),
            "{err}"
        );
        let err = Config::load(None, &env(&[("CALLPROOF_PUBLIC_URL", "ftp://x")]), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("https://"), "{err}");
    }

    #[test]
    fn a_misspelt_variable_or_key_is_refused() {
        let err = Config::load(None, &env(&[("CALLPROOF_LISTNE", "x")]), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("CALLPROOF_LISTNE"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "lisen = 1\n").unwrap();
        assert!(Config::load(Some(&path), &[], &[]).is_err());
    }

    #[test]
    fn a_short_token_secret_is_refused_without_echoing_it() {
        let err = Config::load(
            None,
            &env(&[("CALLPROOF_TOKEN_SECRET", "short-secret")]),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains("short-secret") && err.contains("32"), "{err}");
    }

    #[test]
    fn every_setting_has_a_distinct_env_name_that_matches_its_key() {
        for s in SETTINGS {
            assert!(s.env.starts_with("CALLPROOF_"), "{}", s.env);
        }
        let mut envs: Vec<_> = SETTINGS.iter().map(|s| s.env).collect();
        envs.sort();
        envs.dedup();
        assert_eq!(envs.len(), SETTINGS.len());
    }

    #[test]
    fn the_public_base_defaults_to_the_bound_address() {
        let c = Config::load(None, &[], &[]).unwrap();
        assert_eq!(
            c.public_base("127.0.0.1:4321".parse().unwrap()),
            "http://127.0.0.1:4321"
        );
    }

    #[test]
    fn s3_settings_and_retention_per_kind_parse() {
        let c = Config::load(
            None,
            &env(&[
                ("CALLPROOF_STORE", "s3"),
                ("CALLPROOF_S3_BUCKET", "evidence"),
                ("CALLPROOF_S3_PREFIX", "/calls/"),
                ("CALLPROOF_S3_SSE", "aws:kms"),
                ("CALLPROOF_S3_SSE_KMS_KEY_ID", "key-1"),
                (
                    "CALLPROOF_RETENTION_BY_KIND",
                    "termination=3650, communication=365",
                ),
            ]),
            &[],
        )
        .unwrap();
        assert_eq!(c.store, StoreKind::S3);
        assert_eq!(c.s3.prefix, "calls/");
        assert_eq!(c.s3.sse, Some(Sse::Kms(Some("key-1".into()))));
        assert_eq!(c.retention.days(ChangeKind::Termination), 3650);
        assert_eq!(c.retention.days(ChangeKind::Communication), 365);
        assert_eq!(c.retention.days(ChangeKind::Billing), 2557);
    }

    #[test]
    fn bad_s3_and_retention_settings_are_refused_with_the_fix() {
        for (k, v, needle) in [
            ("CALLPROOF_STORE", "gcs", "fs or s3"),
            ("CALLPROOF_S3_PART_SIZE_BYTES", "1000", "5 MiB"),
            ("CALLPROOF_RETENTION_BY_KIND", "billing:5", "kind=days"),
            ("CALLPROOF_RETENTION_BY_KIND", "upgrade=5", "unknown kind"),
            ("CALLPROOF_S3_ACCESS_KEY_ID", "AK", "both"),
            (
                "CALLPROOF_OUTCOME_CALLBACK_ATTEMPTS",
                "5",
                "CALLPROOF_CALLBACK_RETRY_SECS",
            ),
            (
                "CALLPROOF_MEDIA_HOSTS",
                "http://127.0.0.1",
                "needs its port",
            ),
            (
                "CALLPROOF_CALLBACK_ALLOWED_HOSTS",
                "https://x",
                "without a scheme",
            ),
            ("CALLPROOF_CALLBACK_RETRY_SECS", "5,soon", "whole seconds"),
            ("CALLPROOF_CALLBACK_SECRET", "plain", "whsec_"),
        ] {
            let err = Config::load(None, &env(&[(k, v)]), &[])
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{k}={v}: {err}");
        }
    }
}
