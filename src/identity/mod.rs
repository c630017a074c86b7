//! Identity checks before a confirmation: the check a request asks for, its
//! secrets kept only as keyed MACs, attempt slots, and the inbound lookups.
//!
//! See `docs/inbound-and-identity-design.md`. Nothing here ever holds a PIN,
//! code or answer in clear longer than one comparison, and nothing logs one.

pub mod store;

use hmac::{Hmac, Mac};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::domain::{ConfirmationId, PhoneNumber};

type HmacSha256 = Hmac<Sha256>;

/// Shortest PIN accepted.
pub const MIN_PIN_DIGITS: usize = 6;
/// Longest PIN, code or answer accepted.
pub const MAX_SECRET_DIGITS: usize = 16;
/// Digits of a one-time code.
pub const OTP_DIGITS: usize = 8;
/// Knowledge questions per request at most.
pub const MAX_KBA_QUESTIONS: usize = 3;
/// Longest knowledge question prompt.
pub const MAX_KBA_PROMPT_CHARS: usize = 120;

/// The check a request asks for. The request keeps only this; the secret
/// lives as a MAC in [`store::SecretFact`] until the request ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityMethod {
    /// An agent already checked the caller; never reachable inbound.
    #[default]
    None,
    /// The customer's PIN.
    Pin,
    /// A one-time code callproof made and the requester sent.
    Otp,
    /// Knowledge questions answered on the keypad.
    Kba,
}

impl IdentityMethod {
    /// The name used in records, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityMethod::None => "none",
            IdentityMethod::Pin => "pin",
            IdentityMethod::Otp => "otp",
            IdentityMethod::Kba => "kba",
        }
    }

    /// True for the default, so requests without a check serialise as before.
    pub fn is_none(&self) -> bool {
        *self == IdentityMethod::None
    }
}

/// What the record keeps of a check: which, how it went, when, after how
/// many tries. Never a digit that was entered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityCheck {
    /// The check.
    pub method: IdentityMethod,
    /// `passed` or `failed`.
    pub result: String,
    /// Attempts made, this one included.
    pub tries: u32,
    /// When the verdict was reached.
    #[serde(with = "time::serde::rfc3339")]
    pub at: time::OffsetDateTime,
}

/// A span of the recording paused while a secret was entered, in
/// milliseconds from the start of the recording; the audio holds silence there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PausedSpan {
    /// Start, milliseconds into the recording.
    pub from_ms: u64,
    /// End, milliseconds into the recording; `None` when the resume never came.
    pub to_ms: Option<u64>,
    /// What was entered meanwhile: `account_number`, `pin`, `otp` or `kba`.
    pub why: String,
}

/// The check asked for in `POST /v1/confirmations`, secrets still in clear.
/// Dropped as soon as its MACs are made; its `Debug` shows no secret.
pub enum NewIdentity {
    /// `{"method":"none"}`.
    None,
    /// `{"method":"pin","pin":"…"}`.
    Pin(String),
    /// `{"method":"otp"}`: the code is made by callproof.
    Otp,
    /// `{"method":"kba","questions":[{"prompt":"…","answer":"…"}]}`.
    Kba(Vec<(String, String)>),
}

impl std::fmt::Debug for NewIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.method().as_str())
    }
}

impl NewIdentity {
    /// The method alone.
    pub fn method(&self) -> IdentityMethod {
        match self {
            NewIdentity::None => IdentityMethod::None,
            NewIdentity::Pin(_) => IdentityMethod::Pin,
            NewIdentity::Otp => IdentityMethod::Otp,
            NewIdentity::Kba(_) => IdentityMethod::Kba,
        }
    }

    /// Reads the `identity` member. Errors name the field, never its value.
    pub fn parse(value: Option<&Value>) -> Result<NewIdentity, Vec<(String, String)>> {
        let obj = match value {
            None | Some(Value::Null) => return Ok(NewIdentity::None),
            Some(Value::Object(o)) => o,
            Some(_) => {
                return Err(vec![(
                    "identity".into(),
                    "must be an object with a method: none, pin, otp or kba".into(),
                )])
            }
        };
        let mut errors = Vec::new();
        let allowed: &[&str] = match obj.get("method").and_then(Value::as_str) {
            Some("none") | Some("otp") => &["method"],
            Some("pin") => &["method", "pin"],
            Some("kba") => &["method", "questions"],
            _ => {
                return Err(vec![(
                    "identity.method".into(),
                    "use none, pin, otp or kba".into(),
                )])
            }
        };
        for k in obj.keys() {
            if !allowed.contains(&k.as_str()) {
                errors.push((
                    format!("identity.{k}"),
                    format!(
                        "unknown field for this method; the fields are {}",
                        allowed.join(", ")
                    ),
                ));
            }
        }
        let digits = |v: Option<&Value>, path: &str, min: usize, errors: &mut Vec<_>| match v
            .and_then(Value::as_str)
        {
            Some(d) if is_digits(d, min) => Some(d.to_owned()),
            _ => {
                errors.push((
                    path.to_owned(),
                    format!("use {min} to {MAX_SECRET_DIGITS} digits, as a string (leading zeros count)"),
                ));
                None
            }
        };
        let parsed = match obj.get("method").and_then(Value::as_str) {
            Some("none") => Some(NewIdentity::None),
            Some("otp") => Some(NewIdentity::Otp),
            Some("pin") => digits(obj.get("pin"), "identity.pin", MIN_PIN_DIGITS, &mut errors)
                .map(NewIdentity::Pin),
            _ => match obj.get("questions") {
                Some(Value::Array(qs)) if !qs.is_empty() && qs.len() <= MAX_KBA_QUESTIONS => {
                    let mut out = Vec::new();
                    for (i, q) in qs.iter().enumerate() {
                        let path = format!("identity.questions[{i}]");
                        let Some(o) = q.as_object() else {
                            errors.push((path, "must be an object with prompt and answer".into()));
                            continue;
                        };
                        let prompt = match o.get("prompt").and_then(Value::as_str) {
                            Some(p) if valid_prompt(p) => Some(p.trim().to_owned()),
                            _ => {
                                errors.push((
                                    format!("{path}.prompt"),
                                    format!("use 3 to {MAX_KBA_PROMPT_CHARS} letters, digits, spaces and . , ' - (what the caller is asked for, e.g. \"the ZIP code on the account\"; it is heard before the check passes, so it must not name the change)"),
                                ));
                                None
                            }
                        };
                        let answer =
                            digits(o.get("answer"), &format!("{path}.answer"), 1, &mut errors);
                        if let (Some(p), Some(a)) = (prompt, answer) {
                            out.push((p, a));
                        }
                    }
                    Some(NewIdentity::Kba(out))
                }
                _ => {
                    errors.push((
                        "identity.questions".into(),
                        format!("give 1 to {MAX_KBA_QUESTIONS} questions, each {{\"prompt\", \"answer\"}}"),
                    ));
                    None
                }
            },
        };
        match parsed {
            Some(p) if errors.is_empty() => Ok(p),
            _ => Err(errors),
        }
    }
}

/// `text` is `min` to [`MAX_SECRET_DIGITS`] ASCII digits.
pub fn is_digits(text: &str, min: usize) -> bool {
    (min..=MAX_SECRET_DIGITS).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit())
}

fn valid_prompt(p: &str) -> bool {
    let p = p.trim();
    (3..=MAX_KBA_PROMPT_CHARS).contains(&p.chars().count())
        && p.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '.' | ',' | '\'' | '-'))
}

/// A fresh one-time code: [`OTP_DIGITS`] digits from the OS generator.
pub fn one_time_code() -> String {
    let mut rng = rand::rngs::OsRng;
    (0..OTP_DIGITS)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}

/// Keys derived from `CALLPROOF_IDENTITY_SECRET`, one per purpose, so a MAC
/// made for one purpose means nothing for another.
#[derive(Clone)]
pub struct IdentityKeys {
    secrets: [u8; 32],
    attempts: [u8; 32],
    phone: [u8; 32],
    account: [u8; 32],
    caller: [u8; 32],
}

fn derive(secret: &[u8], label: &str) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(b"callproof/identity/v1/");
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().into()
}

fn mac_hex(key: &[u8; 32], parts: &[&str]) -> String {
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        // Length-prefixed, so no two part lists give the same input.
        mac.update(&(p.len() as u64).to_be_bytes());
        mac.update(p.as_bytes());
    }
    hex::encode(mac.finalize().into_bytes())
}

impl IdentityKeys {
    /// The keys under `secret`.
    pub fn new(secret: &str) -> Self {
        let s = secret.as_bytes();
        IdentityKeys {
            secrets: derive(s, "secret"),
            attempts: derive(s, "attempt"),
            phone: derive(s, "phone"),
            account: derive(s, "account"),
            caller: derive(s, "caller"),
        }
    }

    /// The MAC kept for the secret `digits` of request `id`, purpose `what`
    /// (`pin`, `otp`, `kba/<n>`): the same PIN on two requests has two MACs.
    pub fn secret_mac(&self, id: &ConfirmationId, what: &str, digits: &str) -> String {
        mac_hex(&self.secrets, &[id.as_str(), what, digits])
    }

    /// True when `entered` is the secret whose MAC is `kept`, compared in
    /// constant time.
    pub fn secret_matches(
        &self,
        id: &ConfirmationId,
        what: &str,
        entered: &str,
        kept: &str,
    ) -> bool {
        let made = self.secret_mac(id, what, entered);
        bool::from(made.as_bytes().ct_eq(kept.as_bytes()))
    }

    /// The MAC that makes an attempt fact count: over everything it says.
    pub fn attempt_mac(&self, fields: &[&str]) -> String {
        mac_hex(&self.attempts, fields)
    }

    /// The lookup name of a customer phone number.
    pub fn phone_tag(&self, phone: &PhoneNumber) -> String {
        mac_hex(&self.phone, &[phone.as_str()])[..40].to_owned()
    }

    /// The lookup name of the digits of an account id (`None` without digits).
    pub fn account_tag(&self, account_id: &str) -> Option<String> {
        let digits = account_digits(account_id);
        (!digits.is_empty()).then(|| mac_hex(&self.account, &[&digits])[..40].to_owned())
    }

    /// The name a caller ID is counted under; withheld numbers share one.
    pub fn caller_tag(&self, from: Option<&PhoneNumber>) -> String {
        match from {
            Some(p) => mac_hex(&self.caller, &[p.as_str()])[..40].to_owned(),
            None => "withheld".to_owned(),
        }
    }
}

/// The digits of an account id, in order: what a caller keys in for it.
pub fn account_digits(account_id: &str) -> String {
    account_id.chars().filter(char::is_ascii_digit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys() -> IdentityKeys {
        IdentityKeys::new("an-identity-secret-of-some-length-0123456789")
    }

    #[test]
    fn the_same_pin_has_another_mac_on_another_request_and_purpose() {
        let k = keys();
        let a = ConfirmationId::generate();
        let b = ConfirmationId::generate();
        let m = k.secret_mac(&a, "pin", "48213907");
        assert_ne!(m, k.secret_mac(&b, "pin", "48213907"));
        assert_ne!(m, k.secret_mac(&a, "otp", "48213907"));
        assert!(!m.contains("48213907"));
        assert!(k.secret_matches(&a, "pin", "48213907", &m));
        assert!(!k.secret_matches(&a, "pin", "48213908", &m));
        assert!(!k.secret_matches(&a, "pin", "048213907", &m));
    }

    #[test]
    fn each_purpose_has_its_own_key() {
        let k = keys();
        let p: PhoneNumber = "+15551230001".parse().unwrap();
        assert_ne!(k.phone_tag(&p), k.caller_tag(Some(&p)));
        assert_eq!(k.caller_tag(None), "withheld");
        assert_eq!(k.account_tag("ACC-1001"), k.account_tag("X1001"));
        assert_eq!(k.account_tag("no digits"), None);
        let other = IdentityKeys::new("another-identity-secret-of-some-length-0123");
        assert_ne!(k.phone_tag(&p), other.phone_tag(&p));
    }

    #[test]
    fn identity_input_is_read_and_errors_never_carry_the_secret() {
        assert!(matches!(NewIdentity::parse(None), Ok(NewIdentity::None)));
        assert!(matches!(
            NewIdentity::parse(Some(&json!({"method":"pin","pin":"48213907"}))),
            Ok(NewIdentity::Pin(p)) if p == "48213907"
        ));
        assert!(matches!(
            NewIdentity::parse(Some(&json!({"method":"otp"}))),
            Ok(NewIdentity::Otp)
        ));
        let kba = NewIdentity::parse(Some(
            &json!({"method":"kba","questions":[{"prompt":"the ZIP code on the account","answer":"94107"}]}),
        ));
        assert!(matches!(kba, Ok(NewIdentity::Kba(q)) if q.len() == 1));
        for (bad, field) in [
            (json!({"method":"pin","pin":"48213"}), "identity.pin"),
            (json!({"method":"pin","pin":"4821390x"}), "identity.pin"),
            (json!({"method":"pin","pin":48213907}), "identity.pin"),
            (json!({"method":"otp","code":"48213907"}), "identity.code"),
            (json!({"method":"sms"}), "identity.method"),
            (json!({"method":"kba","questions":[]}), "identity.questions"),
            (
                json!({"method":"kba","questions":[{"prompt":"<Say>x</Say>","answer":"94107"}]}),
                "identity.questions[0].prompt",
            ),
        ] {
            let errors = NewIdentity::parse(Some(&bad)).unwrap_err();
            assert!(errors.iter().any(|(f, _)| f == field), "{bad}: {errors:?}");
            let text = format!("{errors:?}");
            assert!(!text.contains("48213") && !text.contains("94107"), "{text}");
        }
        assert_eq!(format!("{:?}", NewIdentity::Pin("48213907".into())), "pin");
    }

    #[test]
    fn one_time_codes_are_eight_digits_and_differ() {
        let a = one_time_code();
        assert!(is_digits(&a, OTP_DIGITS) && a.len() == OTP_DIGITS);
        assert!((0..5).any(|_| one_time_code() != a));
    }
}
