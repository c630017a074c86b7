//! The voice confirmation record: one JSON document per confirmation that joins
//! the request, the call, every consent event, the outcome and the stored audio.
//!
//! Its shape is `recordings-schema/confirmation-record.v2.schema.json` (v1 before signing). Records
//! are write-once and versioned: a later fact makes a new version that names
//! the one it supersedes. [`build`] is pure; `ingest` decides when to write.

pub mod complete;
pub mod repo;

pub use repo::{audio_prefix as repo_audio_prefix, Records};

use serde::{Deserialize, Serialize};
use time::format_description::well_known::{Rfc2822, Rfc3339};
use time::OffsetDateTime;

use crate::audio::AudioFacts;
use crate::confirmations::{ConfirmationView, InputType, Outcome, OutcomeFact};
use crate::domain::{ChangeItem, ChangeKind, ConfirmationId, ConfirmationNumber, Locale};
use crate::flow::consent::ConsentLabel;

/// The `schema` value of every version-1 record (written before signing).
pub const SCHEMA_V1: &str = "callproof.confirmation-record.v1";
/// The `schema` value of every version-2 record: signed, naming its key.
pub const SCHEMA_V2: &str = "callproof.confirmation-record.v2";

/// True when `bytes` is a version-1 record, written before records were
/// signed: it names no key. Only a backfill seal may list such a version.
pub fn is_unsigned_v1(bytes: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Head {
        schema: String,
        signing_key: Option<String>,
    }
    serde_json::from_slice::<Head>(bytes)
        .is_ok_and(|h| h.schema == SCHEMA_V1 && h.signing_key.is_none())
}

/// Whether every expected fact is in the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordStatus {
    /// The flow finished and the recording is stored and decodes.
    Complete,
    /// Something is missing or failed; `incomplete_reason` says what.
    Incomplete,
}

/// A voice confirmation record, as stored and served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfirmationRecord {
    /// [`SCHEMA_V2`] for records written now; [`SCHEMA_V1`] for those written before signing.
    pub schema: String,
    /// The fingerprint of the key that signed this version (version 2 on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<String>,
    /// Stable id of the record: the confirmation id.
    pub record_id: ConfirmationId,
    /// 1 for the first version, then 2, 3, …
    pub version: u32,
    /// The version this one replaces, if any.
    pub supersedes: Option<u32>,
    /// When this version was written.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Complete or incomplete.
    pub status: RecordStatus,
    /// Why the record is incomplete.
    pub incomplete_reason: Option<String>,
    /// What was asked.
    pub confirmation: ConfirmationPart,
    /// The call that answered.
    pub call: Option<CallPart>,
    /// How it ended.
    pub outcome: OutcomePart,
    /// Every answer, in order.
    pub consent_events: Vec<EventPart>,
    /// The call recording, if it arrived.
    pub recording: Option<RecordingPart>,
    /// How long this record and its audio are kept, and what enforces it.
    pub retention: RetentionPart,
}

/// Retention of a record and its audio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetentionPart {
    /// Days kept, from the request, for this kind of change.
    pub days: u32,
    /// Kept at least until this time.
    #[serde(with = "time::serde::rfc3339")]
    pub retain_until: OffsetDateTime,
    /// `s3_object_lock` when the store enforces it; `none` when only stated.
    pub enforced_by: String,
    /// Object Lock mode (`governance` or `compliance`) when enforced.
    pub mode: Option<String>,
}

/// The request part of a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfirmationPart {
    /// Confirmation id.
    pub id: ConfirmationId,
    /// The number the caller heard.
    pub confirmation_number: ConfirmationNumber,
    /// What changes.
    pub kind: ChangeKind,
    /// Language of the call.
    pub locale: Locale,
    /// The customer's account.
    pub account_id: String,
    /// The agent who asked.
    pub agent_id: String,
    /// Name of the API key that created the request; absent on records of
    /// requests made before keys had names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by_key: Option<String>,
    /// Customer name.
    pub customer_name: String,
    /// Customer phone, masked to its last four digits.
    pub customer_phone_masked: String,
    /// The change, sensitive values masked.
    pub change: Vec<ChangeItem>,
    /// When the agent asked.
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
}

/// The call part of a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallPart {
    /// Telephony provider (`twilio` for Twilio and TwiML-compatible providers).
    pub provider: String,
    /// Provider's call id.
    pub call_sid: String,
    /// Caller number, masked.
    pub from_masked: Option<String>,
    /// When the call entered the flow.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When the provider reported the call over, if it did.
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    /// `transfer` or `inbound`; absent on records of earlier calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leg: Option<String>,
    /// Whether the presented caller ID is the customer phone (a signal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_id_matches: Option<bool>,
    /// The provider's caller ID attestation, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stir_verstat: Option<String>,
    /// The identity check this call went through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<crate::identity::IdentityCheck>,
    /// Recording spans paused while secrets were entered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paused: Vec<crate::identity::PausedSpan>,
}

/// The outcome part of a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomePart {
    /// How the request ended.
    pub status: Outcome,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// One consent event with its place in the recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventPart {
    /// Answer number, from 0.
    pub step: u32,
    /// The id of the script question answered; absent on records of calls
    /// made before confirmations asked scripts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question_id: Option<String>,
    /// What the caller heard.
    pub question: String,
    /// `dtmf speech` or `dtmf`.
    pub accepted_input: String,
    /// How the caller answered.
    pub input_type: InputType,
    /// Keypad digits.
    pub digits: Option<String>,
    /// Speech transcript.
    pub transcript: Option<String>,
    /// Recogniser confidence.
    pub confidence: Option<f64>,
    /// How callproof understood it.
    pub label: ConsentLabel,
    /// When the answer arrived.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Seconds from the start of the recording to the answer, when the recording's start is known.
    pub offset_secs: Option<f64>,
}

/// The recording part of a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingPart {
    /// Provider's recording id.
    pub recording_sid: String,
    /// When the recording started, as the provider reported.
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    /// Duration the provider reported, in seconds.
    pub provider_duration_secs: Option<u64>,
    /// Whether the audio decoded, and if not why.
    pub decode: DecodePart,
    /// The stored audio objects: the provider's bytes, and the archival WAV when it decoded.
    pub audio: Vec<AudioObject>,
}

/// What decoding the recording found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecodePart {
    /// True when the archival WAV was made.
    pub ok: bool,
    /// Why it was not, in words.
    pub error: Option<String>,
    /// Frames the file's header promised, when it says.
    pub frames_promised: Option<u64>,
    /// Frames actually decoded.
    pub frames_decoded: Option<u64>,
}

/// Which copy of the audio an object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AudioRole {
    /// The provider's bytes, as downloaded.
    Original,
    /// 16-bit PCM WAV made by callproof.
    Archival,
}

/// One stored audio object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioObject {
    /// Original or archival.
    pub role: AudioRole,
    /// Object key in the store.
    pub key: String,
    /// `wav` or `mp3`; `unknown` when the bytes are not audio callproof knows.
    pub format: String,
    /// Codec, e.g. `pcm_s16le`, `pcm_mulaw`, `mp3`.
    pub codec: Option<String>,
    /// Samples per second.
    pub sample_rate: Option<u32>,
    /// Channel count.
    pub channels: Option<u16>,
    /// Decoded duration in seconds.
    pub duration_secs: Option<f64>,
    /// Size in bytes.
    pub byte_size: u64,
    /// Lowercase hex SHA-256 of the bytes.
    pub sha256: String,
}

impl AudioObject {
    /// An object described by decoded facts.
    pub fn from_facts(role: AudioRole, key: String, f: &AudioFacts) -> Self {
        AudioObject {
            role,
            key,
            format: f.format.clone(),
            codec: Some(f.codec.clone()),
            sample_rate: Some(f.sample_rate),
            channels: Some(f.channels),
            duration_secs: Some(f.duration_secs),
            byte_size: f.byte_size,
            sha256: f.sha256.clone(),
        }
    }
}

/// The stored result of ingesting one recording; input to [`build`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingResult {
    /// Provider's recording id.
    pub recording_sid: String,
    /// `RecordingStartTime` as the provider wrote it (RFC 2822).
    pub start_time: Option<String>,
    /// Duration the provider reported.
    pub provider_duration_secs: Option<u64>,
    /// What decoding found.
    pub decode: DecodePart,
    /// Stored objects.
    pub audio: Vec<AudioObject>,
    /// When ingest finished.
    #[serde(with = "time::serde::rfc3339")]
    pub stored_at: OffsetDateTime,
}

/// Parses a provider timestamp: RFC 2822 (Twilio) or RFC 3339.
pub fn parse_provider_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc2822)
        .or_else(|_| OffsetDateTime::parse(text, &Rfc3339))
        .ok()
}

/// Everything a record is built from.
#[derive(Debug, Clone, Copy)]
pub struct RecordFacts<'a> {
    /// The request with its call, events and outcome.
    pub view: &'a ConfirmationView,
    /// How it ended.
    pub outcome: &'a OutcomeFact,
    /// When the provider reported the call over.
    pub ended_at: Option<OffsetDateTime>,
    /// The stored recording, if it arrived.
    pub recording: Option<&'a RecordingResult>,
    /// How long the recording was waited for, for the reason when none came.
    pub waited_secs: u64,
    /// Why a recording whose callback arrived is not stored yet, if so.
    pub pending: Option<&'a str>,
    /// The retention to state.
    pub retention: &'a RetentionPart,
    /// The fingerprint of the key that will sign the version.
    pub signing_key: &'a str,
}

/// Builds version `version` of the record from the facts.
pub fn build(facts: &RecordFacts<'_>, version: u32, now: OffsetDateTime) -> ConfirmationRecord {
    let RecordFacts {
        view,
        outcome,
        ended_at,
        recording,
        waited_secs,
        pending,
        retention,
        signing_key,
    } = *facts;
    let r = &view.request;
    let started = recording
        .and_then(|rec| rec.start_time.as_deref())
        .and_then(parse_provider_time);
    let consent_events = view
        .events
        .iter()
        .map(|e| EventPart {
            step: e.step,
            question_id: e.question_id.clone(),
            question: e.question.clone(),
            accepted_input: e.accepted_input.clone(),
            input_type: e.input_type,
            digits: e.digits.clone(),
            transcript: e.transcript.clone(),
            confidence: e.confidence,
            label: e.label,
            at: e.at,
            offset_secs: started.map(|s| ((e.at - s).as_seconds_f64() * 1000.0).round() / 1000.0),
        })
        .collect();
    let (status, incomplete_reason) = match recording {
        None if view.call.is_none() => (
            RecordStatus::Incomplete,
            Some("no call entered the flow, so nothing was recorded".to_owned()),
        ),
        None => (
            RecordStatus::Incomplete,
            Some(match pending {
                Some(why) => format!(
                    "no recording stored within {waited_secs} seconds of the outcome: {why}"
                ),
                None => format!("no recording arrived within {waited_secs} seconds of the outcome"),
            }),
        ),
        Some(rec) if !rec.decode.ok => (
            RecordStatus::Incomplete,
            Some(format!(
                "the recording did not decode ({}); the provider's bytes are kept as they came",
                rec.decode.error.as_deref().unwrap_or("unknown reason")
            )),
        ),
        Some(_) => (RecordStatus::Complete, None),
    };
    ConfirmationRecord {
        schema: SCHEMA_V2.to_owned(),
        signing_key: Some(signing_key.to_owned()),
        record_id: r.id.clone(),
        version,
        supersedes: version.checked_sub(1).filter(|v| *v > 0),
        created_at: now,
        status,
        incomplete_reason,
        confirmation: ConfirmationPart {
            id: r.id.clone(),
            confirmation_number: r.confirmation_number.clone(),
            kind: r.kind,
            locale: r.locale,
            account_id: r.account_id.clone(),
            agent_id: r.agent_id.clone(),
            created_by_key: r.created_by_key.clone(),
            customer_name: r.customer.name.clone(),
            customer_phone_masked: r.customer.phone.masked(),
            change: r.change.clone(),
            requested_at: r.created_at,
        },
        call: view.call.as_ref().map(|c| CallPart {
            provider: "twilio".to_owned(),
            call_sid: c.call_sid.clone(),
            from_masked: c.from_masked.clone(),
            started_at: c.started_at,
            ended_at,
            leg: c.leg.clone(),
            caller_id_matches: c.caller_id_matches,
            stir_verstat: c.stir_verstat.clone(),
            identity: c.identity.clone(),
            paused: c.paused.clone(),
        }),
        outcome: OutcomePart {
            status: outcome.outcome,
            at: outcome.at,
        },
        consent_events,
        recording: recording.map(|rec| RecordingPart {
            recording_sid: rec.recording_sid.clone(),
            started_at: started,
            provider_duration_secs: rec.provider_duration_secs,
            decode: rec.decode.clone(),
            audio: rec.audio.clone(),
        }),
        retention: retention.clone(),
    }
}
