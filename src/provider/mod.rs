//! The telephony provider's side of the wire: Twilio's webhook parameter names
//! (shared by SignalWire and Telnyx TeXML), parsed into typed events.
//!
//! Only this module spells `CallSid`, `SpeechResult` and friends; the
//! simulator builds its requests with the same names from here.

pub mod api;
pub mod signature;

/// Webhook parameters in the order they arrived.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// The first value of `name`, if present and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    fn require(&self, name: &'static str) -> Result<&str, MissingParam> {
        self.get(name).ok_or(MissingParam(name))
    }
}

/// A required webhook parameter was absent: the request is malformed (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("webhook parameter {0} is missing")]
pub struct MissingParam(pub &'static str);

/// Parameter names, as the provider spells them.
pub mod names {
    #![allow(missing_docs)]
    pub const ACCOUNT_SID: &str = "AccountSid";
    pub const API_VERSION: &str = "ApiVersion";
    pub const CALL_SID: &str = "CallSid";
    pub const CALL_STATUS: &str = "CallStatus";
    pub const CALL_DURATION: &str = "CallDuration";
    pub const CALLBACK_SOURCE: &str = "CallbackSource";
    pub const CONFIDENCE: &str = "Confidence";
    pub const DIGITS: &str = "Digits";
    pub const DIRECTION: &str = "Direction";
    pub const FROM: &str = "From";
    pub const RECORDING_CHANNELS: &str = "RecordingChannels";
    pub const RECORDING_DURATION: &str = "RecordingDuration";
    pub const RECORDING_SID: &str = "RecordingSid";
    pub const RECORDING_SOURCE: &str = "RecordingSource";
    pub const RECORDING_START_TIME: &str = "RecordingStartTime";
    pub const RECORDING_STATUS: &str = "RecordingStatus";
    pub const RECORDING_TRACK: &str = "RecordingTrack";
    pub const RECORDING_URL: &str = "RecordingUrl";
    pub const SEQUENCE_NUMBER: &str = "SequenceNumber";
    pub const SPEECH_RESULT: &str = "SpeechResult";
    pub const STIR_VERSTAT: &str = "StirVerstat";
    pub const TIMESTAMP: &str = "Timestamp";
    pub const TO: &str = "To";
}

use names::*;

/// Which format to ask the provider for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingFormat {
    /// The provider's WAV: lossless, channels kept.
    Wav,
    /// The provider's MP3: smaller downloads.
    Mp3,
}

impl RecordingFormat {
    /// The extension appended to `RecordingUrl`.
    pub fn extension(self) -> &'static str {
        match self {
            RecordingFormat::Wav => "wav",
            RecordingFormat::Mp3 => "mp3",
        }
    }
}

/// The call a webhook is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInfo {
    /// Provider's call id.
    pub call_sid: String,
    /// Caller's number as the provider gave it.
    pub from: Option<String>,
    /// The provider's caller-ID attestation (`StirVerstat`, e.g.
    /// `TN-Validation-Passed-A`), kept to [`MAX_VERSTAT`] letters, digits and dashes.
    pub stir_verstat: Option<String>,
}

/// Longest `StirVerstat` kept; real values are under 40 characters.
pub const MAX_VERSTAT: usize = 64;

impl CallInfo {
    /// Reads the call fields; `CallSid` is required.
    pub fn parse(p: &Params) -> Result<Self, MissingParam> {
        Ok(CallInfo {
            call_sid: p.require(CALL_SID)?.to_owned(),
            from: p.get(FROM).map(str::to_owned),
            stir_verstat: p
                .get(STIR_VERSTAT)
                .map(|v| {
                    v.chars()
                        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                        .take(MAX_VERSTAT)
                        .collect::<String>()
                })
                .filter(|v| !v.is_empty()),
        })
    }
}

/// What the caller gave a `<Gather>`.
#[derive(Debug, Clone, PartialEq)]
pub struct GatherResult {
    /// Keypad digits.
    pub digits: Option<String>,
    /// Speech transcript.
    pub speech: Option<String>,
    /// Recogniser confidence, 0 to 1, when it sent one that parses.
    pub confidence: Option<f64>,
}

impl GatherResult {
    /// Reads the gather fields; all are optional (silence sends none).
    pub fn parse(p: &Params) -> Self {
        GatherResult {
            digits: p.get(DIGITS).map(str::to_owned),
            speech: p.get(SPEECH_RESULT).map(str::to_owned),
            confidence: p
                .get(CONFIDENCE)
                .and_then(|c| c.trim().parse::<f64>().ok())
                // A confidence outside 0..1 is not one; without it speech is never consent.
                .filter(|c| (0.0..=1.0).contains(c)),
        }
    }
}

/// A call status callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallStatusEvent {
    /// Provider's call id.
    pub call_sid: String,
    /// The status word, e.g. `completed`.
    pub status: String,
}

impl CallStatusEvent {
    /// Reads the status fields; `CallSid` and `CallStatus` are required.
    pub fn parse(p: &Params) -> Result<Self, MissingParam> {
        Ok(CallStatusEvent {
            call_sid: p.require(CALL_SID)?.to_owned(),
            status: p.require(CALL_STATUS)?.to_owned(),
        })
    }

    /// True when the call is over: completed, busy, failed, no-answer or canceled.
    pub fn is_final(&self) -> bool {
        matches!(
            self.status.as_str(),
            "completed" | "busy" | "failed" | "no-answer" | "canceled"
        )
    }
}

/// A recording status callback.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecordingEvent {
    /// Provider's call id.
    pub call_sid: String,
    /// Provider's recording id; ingest is idempotent on it.
    pub recording_sid: String,
    /// Where the media is fetched (append `.wav` or `.mp3`).
    pub recording_url: String,
    /// `completed`, `absent` or `failed`.
    pub status: String,
    /// Seconds, as the provider measured.
    pub duration_secs: Option<u64>,
    /// 1 or 2.
    pub channels: Option<u8>,
    /// When recording began, as the provider wrote it (RFC 2822).
    pub start_time: Option<String>,
    /// The provider account.
    pub account_sid: Option<String>,
}

impl RecordingEvent {
    /// Reads the recording fields; ids, URL and status are required.
    pub fn parse(p: &Params) -> Result<Self, MissingParam> {
        Ok(RecordingEvent {
            call_sid: p.require(CALL_SID)?.to_owned(),
            recording_sid: p.require(RECORDING_SID)?.to_owned(),
            recording_url: p.require(RECORDING_URL)?.to_owned(),
            status: p.require(RECORDING_STATUS)?.to_owned(),
            duration_secs: p.get(RECORDING_DURATION).and_then(|d| d.parse().ok()),
            channels: p.get(RECORDING_CHANNELS).and_then(|d| d.parse().ok()),
            start_time: p.get(RECORDING_START_TIME).map(str::to_owned),
            account_sid: p.get(ACCOUNT_SID).map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params(
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
    }

    #[test]
    fn a_call_needs_its_sid() {
        assert_eq!(
            CallInfo::parse(&params(&[("From", "+1")])),
            Err(MissingParam("CallSid"))
        );
        assert_eq!(
            CallInfo::parse(&params(&[("CallSid", "CA1")]))
                .unwrap()
                .call_sid,
            "CA1"
        );
    }

    #[test]
    fn silence_is_a_gather_with_nothing() {
        let g = GatherResult::parse(&params(&[("CallSid", "CA1"), ("Digits", "")]));
        assert_eq!(
            g,
            GatherResult {
                digits: None,
                speech: None,
                confidence: None
            }
        );
    }

    #[test]
    fn an_unparsable_confidence_counts_as_none() {
        let g = GatherResult::parse(&params(&[("SpeechResult", "yes"), ("Confidence", "high")]));
        assert_eq!(g.confidence, None);
        let g = GatherResult::parse(&params(&[("SpeechResult", "yes"), ("Confidence", "NaN")]));
        assert_eq!(g.confidence, None);
        let g = GatherResult::parse(&params(&[("SpeechResult", "yes"), ("Confidence", "1.2")]));
        assert_eq!(g.confidence, None);
    }

    #[test]
    fn only_ended_calls_are_final() {
        for (s, fin) in [
            ("completed", true),
            ("no-answer", true),
            ("in-progress", false),
            ("ringing", false),
        ] {
            let e = CallStatusEvent {
                call_sid: "CA".into(),
                status: s.into(),
            };
            assert_eq!(e.is_final(), fin, "{s}");
        }
    }
}
