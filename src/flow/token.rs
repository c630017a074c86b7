//! Flow state between webhooks, carried in callback URLs as a short signed,
//! expiring token, so any instance can answer any webhook with no call memory.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;

use crate::domain::{ConfirmationId, Locale};

/// What a token may be used for; a token is refused anywhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Purpose {
    /// The transfer URL that starts the flow.
    #[serde(rename = "s")]
    Start,
    /// The action of one consent question.
    #[serde(rename = "a")]
    Answer,
    /// The recording status callback.
    #[serde(rename = "r")]
    Recording,
}

/// Why the text just before a question was said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Preface {
    /// The first question: greeting and change summary.
    #[default]
    #[serde(rename = "g")]
    Greeting,
    /// The caller asked to hear it again.
    #[serde(rename = "r")]
    Repeat,
    /// The last answer was not understood.
    #[serde(rename = "u")]
    Retry,
    /// The caller asked for an agent and none is configured.
    #[serde(rename = "n")]
    NoAgent,
    /// The last question was answered yes; this is the script's next one.
    #[serde(rename = "q")]
    Next,
    /// An understanding question was answered no: its explanation, then it again.
    #[serde(rename = "x")]
    Explain,
}

/// Where the caller is in the consent dialogue. It travels signed in each
/// answer URL, so a caller can neither skip a script question nor claim an
/// explanation that was never given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StepState {
    /// Answer number, from 0; every answer moves it on.
    #[serde(rename = "n")]
    pub step: u32,
    /// Unusable answers to the current question so far.
    #[serde(rename = "m", default)]
    pub misses: u8,
    /// Repeats of the current question asked for so far.
    #[serde(rename = "r", default)]
    pub repeats: u8,
    /// True once only the keypad is accepted.
    #[serde(rename = "k", default)]
    pub keypad_only: bool,
    /// What is said before the question.
    #[serde(rename = "p", default)]
    pub preface: Preface,
    /// Index of the current question in the kind's script, from 0.
    #[serde(rename = "q", default, skip_serializing_if = "is_zero")]
    pub question: u8,
    /// True once the current understanding question has been explained.
    #[serde(rename = "x", default, skip_serializing_if = "is_false")]
    pub explained: bool,
}

fn is_zero(n: &u8) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The signed content of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowToken {
    /// Where it may be used.
    #[serde(rename = "p")]
    pub purpose: Purpose,
    /// The confirmation it belongs to.
    #[serde(rename = "c")]
    pub confirmation_id: ConfirmationId,
    /// Dialogue state (answer tokens only).
    #[serde(rename = "s", default)]
    pub state: StepState,
    /// Expiry, Unix seconds.
    #[serde(rename = "e")]
    pub expires: i64,
}

/// What an inbound call is doing, before it holds a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InboundStage {
    /// Choosing the language.
    #[serde(rename = "l")]
    Language,
    /// Keying in the account number.
    #[serde(rename = "a")]
    Account,
    /// Keying in the secret of the candidate request.
    #[serde(rename = "s")]
    Secret,
    /// The recording status callback of an inbound call.
    #[serde(rename = "r")]
    Recording,
    /// Choosing among the pending requests the passed check opened.
    #[serde(rename = "c")]
    Choose,
}

/// A paused span carried between an inbound call's webhooks: from and to in
/// milliseconds into the recording (to = 0: still paused), and why.
pub type SpanState = (u64, u64, String);

/// An inbound call's state between webhooks: signed like a flow token,
/// under its own context, so one can never stand for the other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundToken {
    /// Where it may be used.
    #[serde(rename = "g")]
    pub stage: InboundStage,
    /// Digest of the call's CallSid: the token works for that call only.
    #[serde(rename = "c")]
    pub call: String,
    /// The caller's language.
    #[serde(rename = "l")]
    pub locale: Locale,
    /// Gather number, from 0; every answer moves it on.
    #[serde(rename = "n", default)]
    pub step: u32,
    /// Unusable answers at this stage.
    #[serde(rename = "m", default)]
    pub misses: u8,
    /// The request whose check is being answered.
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<ConfirmationId>,
    /// Knowledge question being answered, from 0.
    #[serde(rename = "q", default)]
    pub question: u8,
    /// Every knowledge answer so far matched; told to nobody before the last.
    #[serde(rename = "k", default)]
    pub matched: bool,
    /// When the recording started, Unix milliseconds.
    #[serde(rename = "t")]
    pub started_ms: i64,
    /// Paused spans so far.
    #[serde(rename = "p", default, skip_serializing_if = "Vec::is_empty")]
    pub paused: Vec<SpanState>,
    /// The provider's caller-ID attestation (`StirVerstat`), which only the
    /// first webhook of a call carries; kept for the record.
    #[serde(rename = "v", default, skip_serializing_if = "Option::is_none")]
    pub stir_verstat: Option<String>,
    /// The requests the passed check opened, oldest first; the first is the
    /// one whose check was asked.
    #[serde(rename = "o", default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<ConfirmationId>,
    /// Tries the first choice's check took.
    #[serde(rename = "y", default)]
    pub tries: u32,
    /// Expiry, Unix seconds.
    #[serde(rename = "e")]
    pub expires: i64,
}

/// Why a token was refused. Every case answers 403.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token at all.
    #[error("flow token is malformed")]
    Malformed,
    /// Signed with another secret, or altered.
    #[error("flow token signature does not match")]
    BadSignature,
    /// Past its expiry.
    #[error("flow token expired")]
    Expired,
    /// Valid, but for another endpoint.
    #[error("flow token is for another endpoint")]
    WrongPurpose,
}

/// Signs and checks tokens with the shared secret.
#[derive(Clone)]
pub struct TokenSigner {
    secret: Vec<u8>,
}

type HmacSha256 = Hmac<Sha256>;

/// Bytes of MAC kept in a token: 160 bits.
const MAC_BYTES: usize = 20;
/// Domain separation, so these MACs mean nothing elsewhere.
const CONTEXT: &[u8] = b"callproof/flow-token/v1.";
/// Domain separation of inbound tokens.
const INBOUND_CONTEXT: &[u8] = b"callproof/inbound-token/v1.";

impl TokenSigner {
    /// A signer over `secret`.
    pub fn new(secret: &str) -> Self {
        TokenSigner {
            secret: secret.as_bytes().to_vec(),
        }
    }

    fn mac_in(&self, context: &[u8], payload: &str) -> HmacSha256 {
        // HMAC takes a key of any length.
        let mut mac = HmacSha256::new_from_slice(&self.secret).unwrap_or_else(|_| unreachable!());
        mac.update(context);
        mac.update(payload.as_bytes());
        mac
    }

    fn sign_in<T: Serialize>(&self, context: &[u8], token: &T) -> String {
        let json = serde_json::to_vec(token).unwrap_or_default();
        let payload = URL_SAFE_NO_PAD.encode(json);
        let tag = self.mac_in(context, &payload).finalize().into_bytes();
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(&tag[..MAC_BYTES]))
    }

    fn open_in<T: serde::de::DeserializeOwned>(
        &self,
        context: &[u8],
        text: &str,
    ) -> Result<T, TokenError> {
        let (payload, tag) = text.split_once('.').ok_or(TokenError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TokenError::Malformed)?;
        if tag.len() != MAC_BYTES {
            return Err(TokenError::Malformed);
        }
        self.mac_in(context, payload)
            .verify_truncated_left(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)
    }

    /// Encodes and signs a token.
    pub fn sign(&self, token: &FlowToken) -> String {
        self.sign_in(CONTEXT, token)
    }

    /// Encodes and signs an inbound call's token.
    pub fn sign_inbound(&self, token: &InboundToken) -> String {
        self.sign_in(INBOUND_CONTEXT, token)
    }

    /// Checks an inbound token's signature, expiry at `now` and stage.
    pub fn verify_inbound(
        &self,
        text: &str,
        stages: &[InboundStage],
        now: OffsetDateTime,
    ) -> Result<InboundToken, TokenError> {
        let token: InboundToken = self.open_in(INBOUND_CONTEXT, text)?;
        if now.unix_timestamp() >= token.expires {
            return Err(TokenError::Expired);
        }
        if !stages.contains(&token.stage) {
            return Err(TokenError::WrongPurpose);
        }
        Ok(token)
    }

    /// Checks signature, expiry at `now` and purpose, and returns the content.
    pub fn verify(
        &self,
        text: &str,
        purpose: Purpose,
        now: OffsetDateTime,
    ) -> Result<FlowToken, TokenError> {
        let token: FlowToken = self.open_in(CONTEXT, text)?;
        if now.unix_timestamp() >= token.expires {
            return Err(TokenError::Expired);
        }
        if token.purpose != purpose {
            return Err(TokenError::WrongPurpose);
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(expires: i64) -> FlowToken {
        FlowToken {
            purpose: Purpose::Answer,
            confirmation_id: ConfirmationId::generate(),
            state: StepState {
                step: 2,
                misses: 1,
                repeats: 0,
                keypad_only: false,
                preface: Preface::Retry,
                question: 2,
                explained: true,
            },
            expires,
        }
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    #[test]
    fn a_signed_token_verifies_to_its_content() {
        let s = TokenSigner::new("a-secret-of-some-length-0123456789");
        let t = token(1_800_000_100);
        assert_eq!(s.verify(&s.sign(&t), Purpose::Answer, now()).unwrap(), t);
    }

    #[test]
    fn tokens_are_short_enough_for_a_url() {
        let s = TokenSigner::new("a-secret-of-some-length-0123456789");
        assert!(s.sign(&token(1_800_000_100)).len() < 200);
    }

    #[test]
    fn the_question_and_explanation_travel_in_the_token() {
        let s = TokenSigner::new("a-secret-of-some-length-0123456789");
        let t = token(1_800_000_100);
        let back = s.verify(&s.sign(&t), Purpose::Answer, now()).unwrap();
        assert_eq!((back.state.question, back.state.explained), (2, true));
        // A token of the first question, as signed before scripts, reads as question 0.
        let mut first = token(1_800_000_100);
        first.state.question = 0;
        first.state.explained = false;
        let text = s.sign(&first);
        let (payload, _) = text.split_once('.').unwrap();
        let json = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert!(!json.contains("\"q\"") && !json.contains("\"x\""), "{json}");
        assert_eq!(s.verify(&text, Purpose::Answer, now()).unwrap(), first);
    }

    #[test]
    fn an_expired_token_is_refused() {
        let s = TokenSigner::new("a-secret-of-some-length-0123456789");
        let text = s.sign(&token(1_800_000_000));
        assert_eq!(
            s.verify(&text, Purpose::Answer, now()),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn a_tampered_payload_or_another_secret_is_refused() {
        let s = TokenSigner::new("a-secret-of-some-length-0123456789");
        let text = s.sign(&token(1_800_000_100));
        let (payload, tag) = text.split_once('.').unwrap();
        let mut forged = token(1_800_000_100);
        forged.state.misses = 0;
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(
            s.verify(&format!("{forged_payload}.{tag}"), Purpose::Answer, now()),
            Err(TokenError::BadSignature)
        );
        // Nor can a later question, or an explanation never given, be claimed.
        let forges: [fn(&mut FlowToken); 2] =
            [|t| t.state.question = 3, |t| t.state.explained = false];
        for forge in forges {
            let mut forged = token(1_800_000_100);
            forge(&mut forged);
            let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
            assert_eq!(
                s.verify(&format!("{forged_payload}.{tag}"), Purpose::Answer, now()),
                Err(TokenError::BadSignature)
            );
        }
        let other = TokenSigner::new("another-secret-of-some-length-012345");
        assert_eq!(
            other.verify(&text, Purpose::Answer, now()),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            s.verify(payload, Purpose::Answer, now()),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            s.verify("", Purpose::Answer, now()),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn a_token_for_another_endpoint_is_refused() {
        let s = TokenSigner::new("a-secret-of-some-length-0123456789");
        let text = s.sign(&token(1_800_000_100));
        assert_eq!(
            s.verify(&text, Purpose::Start, now()),
            Err(TokenError::WrongPurpose)
        );
    }
}
