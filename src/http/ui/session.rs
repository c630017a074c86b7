//! Replay page sessions: the signed cookie a compliance or admin key is
//! exchanged for, its lifetimes, and sign-outs kept as signed, sealed facts.
//!
//! The cookie is `base64url(payload JSON).base64url(HMAC-SHA256)` under a key
//! derived from the token secret with a label of its own, so every instance
//! accepts it and no other signed thing of callproof passes for it. The
//! server keeps nothing per session but the sign-out fact
//! `ui/signouts/<sid>.json`, written through [`Evidence::create`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;

use crate::auth::Role;
use crate::confirmations::{checked_key, RepoError};
use crate::evidence::objects::Evidence;
use crate::store::ObjectKey;

/// Label of the key that signs session cookies, derived from the token secret.
const KEY_LABEL: &[u8] = b"callproof/ui-session-key/v1";

/// How long an instance may believe "not signed out" without asking the store.
pub const SIGNOUT_CACHE: Duration = Duration::from_secs(5);

/// Entries of the "not signed out" cache kept at most; older ones are dropped first.
const CACHE_MAX: usize = 10_000;

/// `schema` of a sign-out fact.
pub const SIGNOUT_SCHEMA: &str = "callproof.ui-signout.v1";

/// What a session cookie carries, signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Session {
    /// 128 random bits as 32 hex digits, new at every sign-in.
    pub sid: String,
    /// Hex SHA-256 of the API key that signed in.
    pub key_digest: String,
    /// The key's role when it signed in.
    pub role: Role,
    /// The key's name when it signed in.
    pub name: String,
    /// Signed in at, Unix seconds.
    pub iat: i64,
    /// Ends at, Unix seconds, however active it is.
    pub exp: i64,
    /// The last request it was accepted for, Unix seconds.
    pub last_seen: i64,
}

/// Why a session cookie is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Not a cookie callproof signed, or altered.
    #[error("the session cookie is not valid: sign in again at /ui/")]
    Invalid,
    /// Past its absolute lifetime.
    #[error("the session has expired: sign in again at /ui/")]
    Expired,
    /// No request for longer than the idle timeout.
    #[error("the session ended after a time without use: sign in again at /ui/")]
    Idle,
    /// Its key was removed from configuration or changed role.
    #[error("the API key this session signed in with is no longer configured with its role: sign in again at /ui/")]
    KeyRemoved,
    /// The user signed out.
    #[error("this session was signed out: sign in again at /ui/")]
    SignedOut,
    /// An admin ended every session of its key.
    #[error("an admin ended every session of this API key: sign in again at /ui/")]
    KeyEnded,
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Session {
    /// A new session of the key with SHA-256 `key_digest`, signed in `now`,
    /// lasting `lifetime` seconds, with a fresh random id.
    pub fn new(
        key_digest: &[u8; 32],
        role: Role,
        name: &str,
        now: OffsetDateTime,
        lifetime: u64,
    ) -> Session {
        let mut sid = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut sid);
        let iat = now.unix_timestamp();
        Session {
            sid: hex::encode(sid),
            key_digest: hex::encode(key_digest),
            role,
            name: name.to_owned(),
            iat,
            exp: iat.saturating_add(i64::try_from(lifetime).unwrap_or(i64::MAX)),
            last_seen: iat,
        }
    }

    /// Checks the absolute lifetime and the idle timeout at `now`.
    pub fn check_times(&self, now: OffsetDateTime, idle_secs: u64) -> Result<(), SessionError> {
        let now = now.unix_timestamp();
        if now >= self.exp {
            return Err(SessionError::Expired);
        }
        let idle = i64::try_from(idle_secs).unwrap_or(i64::MAX);
        if now.saturating_sub(self.last_seen) > idle {
            return Err(SessionError::Idle);
        }
        Ok(())
    }

    /// The key digest as bytes, when well formed.
    pub fn key_digest_bytes(&self) -> Option<[u8; 32]> {
        hex::decode(&self.key_digest).ok()?.try_into().ok()
    }

    /// When it ends, as RFC 3339.
    pub fn expires_at(&self) -> String {
        OffsetDateTime::from_unix_timestamp(self.exp)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default()
    }
}

/// Signs and opens session cookies.
#[derive(Clone)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    /// The key derived from the token secret under its own label.
    pub fn derive(token_secret: &str) -> SessionKey {
        SessionKey(hmac_bytes(token_secret.as_bytes(), KEY_LABEL))
    }

    fn mac(&self, payload: &str) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        mac.update(payload.as_bytes());
        mac
    }

    /// The cookie value of `session`.
    pub fn seal(&self, session: &Session) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(session).unwrap_or_default());
        let tag = self.mac(&payload).finalize().into_bytes();
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// The session a cookie value carries, when its MAC holds and its
    /// contents are well formed; times are not checked here.
    pub fn open(&self, text: &str) -> Result<Session, SessionError> {
        let (payload, tag) = text.split_once('.').ok_or(SessionError::Invalid)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| SessionError::Invalid)?;
        self.mac(payload)
            .verify_slice(&tag)
            .map_err(|_| SessionError::Invalid)?;
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| SessionError::Invalid)?;
        let s: Session = serde_json::from_slice(&json).map_err(|_| SessionError::Invalid)?;
        if !is_hex(&s.sid, 32) || !is_hex(&s.key_digest, 64) {
            return Err(SessionError::Invalid);
        }
        Ok(s)
    }
}

fn hmac_bytes(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Where the sign-out fact of session `sid` lives.
pub fn signout_key(sid: &str) -> Result<ObjectKey, RepoError> {
    checked_key(format!("ui/signouts/{sid}.json"))
}

/// [`Epoch::schema`].
pub const EPOCH_SCHEMA: &str = "callproof.ui-epoch.v1";

/// Where the epochs of the key with hex SHA-256 `key_digest` live.
pub fn epoch_prefix(key_digest: &str) -> String {
    format!("ui/epochs/{key_digest}/")
}

/// Where epoch `n` of a key lives.
pub fn epoch_key(key_digest: &str, n: u32) -> Result<ObjectKey, RepoError> {
    checked_key(format!("{}{n:04}.json", epoch_prefix(key_digest)))
}

/// An admin's end of every session a key signed in before `at`, as stored at
/// `ui/epochs/<key digest>/<n:04>.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Epoch {
    /// [`EPOCH_SCHEMA`].
    pub schema: String,
    /// Hex SHA-256 of the key whose sessions ended.
    pub key_digest: String,
    /// The key's name, for readers of the fact.
    pub key_name: String,
    /// Its number, from 1; the newest decides.
    pub n: u32,
    /// Sessions signed in at or before this time are ended.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The admin who ended them.
    pub actor: crate::evidence::audit::Actor,
    /// Why, as the admin said.
    pub reason: String,
}

/// What the newest epoch of a key is.
enum Newest {
    None,
    Epoch(Epoch),
    /// An object under the key's epochs that is not an epoch of it.
    Unreadable(String),
}

/// A sign-out, as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Signout {
    /// [`SIGNOUT_SCHEMA`].
    pub schema: String,
    /// The session signed out.
    pub sid: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The key's role.
    pub role: Role,
    /// The key's name.
    pub name: String,
}

/// Sign-outs: written as evidence, looked up with a short cache of "not signed out".
pub struct Signouts {
    evidence: Evidence,
    not_signed_out: Mutex<HashMap<String, Instant>>,
    /// Per key digest: when it was read, and the newest epoch's time (Unix seconds).
    epochs: Mutex<HashMap<String, (Instant, Option<i64>)>>,
}

impl Signouts {
    /// Sign-outs kept through `evidence`.
    pub fn new(evidence: Evidence) -> Signouts {
        Signouts {
            evidence,
            not_signed_out: Mutex::new(HashMap::new()),
            epochs: Mutex::new(HashMap::new()),
        }
    }

    /// True when session `sid` was signed out. "Not signed out" is believed
    /// for at most [`SIGNOUT_CACHE`]; an error means the store could not say.
    pub async fn signed_out(&self, sid: &str) -> Result<bool, RepoError> {
        if let Ok(cache) = self.not_signed_out.lock() {
            if cache
                .get(sid)
                .is_some_and(|seen| seen.elapsed() < SIGNOUT_CACHE)
            {
                return Ok(false);
            }
        }
        let key = signout_key(sid)?;
        let found = self.evidence.store().head(&key).await?.is_some();
        if let Ok(mut cache) = self.not_signed_out.lock() {
            if found {
                cache.remove(sid);
            } else {
                if cache.len() >= CACHE_MAX {
                    cache.retain(|_, seen| seen.elapsed() < SIGNOUT_CACHE);
                }
                if cache.len() < CACHE_MAX {
                    cache.insert(sid.to_owned(), Instant::now());
                }
            }
        }
        Ok(found)
    }

    /// The time (Unix seconds) of the newest epoch of the key with hex SHA-256
    /// `key_digest`: its sessions signed in at or before it are ended. Read
    /// from the store at most every [`SIGNOUT_CACHE`] per key.
    pub async fn key_ended_at(&self, key_digest: &str) -> Result<Option<i64>, RepoError> {
        if let Ok(cache) = self.epochs.lock() {
            if let Some((seen, at)) = cache.get(key_digest) {
                if seen.elapsed() < SIGNOUT_CACHE {
                    return Ok(*at);
                }
            }
        }
        let at = match self.newest_epoch(key_digest).await? {
            Newest::None => None,
            Newest::Epoch(e) => Some(e.at.unix_timestamp()),
            Newest::Unreadable(key) => {
                // Not written by callproof: end every session of the key
                // rather than guess (the safe side); verification names it.
                tracing::error!(key = %key, "the newest session epoch of a key does not read as one; every replay page session of that key is refused until it is removed or a new epoch is written");
                Some(i64::MAX)
            }
        };
        if let Ok(mut cache) = self.epochs.lock() {
            if cache.len() >= CACHE_MAX {
                cache.retain(|_, (seen, _)| seen.elapsed() < SIGNOUT_CACHE);
            }
            if cache.len() < CACHE_MAX {
                cache.insert(key_digest.to_owned(), (Instant::now(), at));
            }
        }
        Ok(at)
    }

    /// The newest epoch of a key, by number.
    async fn newest_epoch(&self, key_digest: &str) -> Result<Newest, RepoError> {
        let store = self.evidence.store();
        let keys = store.list(&epoch_prefix(key_digest)).await?;
        let Some(newest) = keys.iter().filter(|k| k.as_str().ends_with(".json")).max() else {
            return Ok(Newest::None);
        };
        let Some(bytes) = store.get(newest).await? else {
            return Ok(Newest::None);
        };
        Ok(match serde_json::from_slice::<Epoch>(&bytes) {
            Ok(e)
                if e.key_digest == key_digest
                    && epoch_key(key_digest, e.n).ok().as_ref() == Some(newest) =>
            {
                Newest::Epoch(e)
            }
            _ => Newest::Unreadable(newest.to_string()),
        })
    }

    /// Ends every session of the key `key_digest` signed in up to `now`:
    /// writes its next epoch (write-once; a race for a number takes the next).
    pub async fn end_key_sessions(
        &self,
        key_digest: &str,
        key_name: &str,
        actor: crate::evidence::audit::Actor,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<Epoch, RepoError> {
        for _ in 0..16 {
            let n = match self.newest_epoch(key_digest).await? {
                Newest::None => 1,
                Newest::Epoch(e) => e.n.saturating_add(1),
                // Past one that is not ours: the next number by its name.
                Newest::Unreadable(key) => key
                    .rsplit('/')
                    .next()
                    .and_then(|f| f.strip_suffix(".json"))
                    .and_then(|n| n.parse::<u32>().ok())
                    .map_or(1, |n| n.saturating_add(1)),
            };
            let epoch = Epoch {
                schema: EPOCH_SCHEMA.to_owned(),
                key_digest: key_digest.to_owned(),
                key_name: key_name.to_owned(),
                n,
                at: now,
                actor: actor.clone(),
                reason: reason.to_owned(),
            };
            if self
                .evidence
                .create_json(&epoch_key(key_digest, n)?, &epoch, None)
                .await?
            {
                if let Ok(mut cache) = self.epochs.lock() {
                    cache.remove(key_digest);
                }
                return Ok(epoch);
            }
        }
        Err(RepoError::Corrupt {
            key: epoch_prefix(key_digest),
            reason: "16 epochs were written at once by others; try again".into(),
        })
    }

    /// Writes the sign-out fact of `session` (write-once: signing out twice is
    /// one fact). An error means the session was not signed out.
    pub async fn sign_out(&self, session: &Session, now: OffsetDateTime) -> Result<(), RepoError> {
        let fact = Signout {
            schema: SIGNOUT_SCHEMA.to_owned(),
            sid: session.sid.clone(),
            at: now,
            role: session.role,
            name: session.name.clone(),
        };
        self.evidence
            .create_json(&signout_key(&session.sid)?, &fact, None)
            .await?;
        if let Ok(mut cache) = self.not_signed_out.lock() {
            cache.remove(&session.sid);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(now: OffsetDateTime) -> Session {
        Session::new(&[7u8; 32], Role::Compliance, "desk", now, 3600)
    }

    #[test]
    fn a_sealed_session_opens_only_under_its_key_and_unaltered() {
        let now = OffsetDateTime::now_utc();
        let s = session(now);
        let key = SessionKey::derive("token-secret-one-0123456789abcdef");
        let cookie = key.seal(&s);
        assert_eq!(key.open(&cookie), Ok(s.clone()));
        let other = SessionKey::derive("token-secret-two-0123456789abcdef");
        assert_eq!(other.open(&cookie), Err(SessionError::Invalid));
        let (payload, tag) = cookie.split_once('.').expect("two parts");
        let admin = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Session {
                role: Role::Admin,
                ..s.clone()
            })
            .expect("json"),
        );
        for bad in [
            format!("{admin}.{tag}"),
            format!("{payload}.{}", &tag[1..]),
            payload.to_owned(),
            String::new(),
            "..".into(),
        ] {
            assert_eq!(key.open(&bad), Err(SessionError::Invalid), "{bad}");
        }
    }

    #[test]
    fn the_session_key_is_not_the_token_secret_or_the_playback_key() {
        // A playback grant is an HMAC under the plain token secret: its MAC
        // must not open as a session even if its payload were a session's.
        let secret = "token-secret-one-0123456789abcdef";
        let s = session(OffsetDateTime::now_utc());
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&s).expect("json"));
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
        mac.update(payload.as_bytes());
        let forged = format!(
            "{payload}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        );
        assert_eq!(
            SessionKey::derive(secret).open(&forged),
            Err(SessionError::Invalid)
        );
    }

    #[test]
    fn sessions_end_at_their_expiry_and_when_idle() {
        let now = OffsetDateTime::now_utc();
        let s = session(now);
        assert_eq!(s.check_times(now, 600), Ok(()));
        let later = now + time::Duration::seconds(601);
        assert_eq!(s.check_times(later, 600), Err(SessionError::Idle));
        let seen = Session {
            last_seen: later.unix_timestamp(),
            ..s.clone()
        };
        assert_eq!(seen.check_times(later, 600), Ok(()));
        let past = now + time::Duration::seconds(3600);
        let fresh = Session {
            last_seen: past.unix_timestamp(),
            ..s
        };
        assert_eq!(fresh.check_times(past, 600), Err(SessionError::Expired));
    }

    #[test]
    fn every_sign_in_gets_its_own_random_id() {
        let now = OffsetDateTime::now_utc();
        let (a, b) = (session(now), session(now));
        assert_ne!(a.sid, b.sid);
        assert!(is_hex(&a.sid, 32));
    }

    #[tokio::test]
    async fn a_sign_out_is_signed_evidence_and_is_seen_at_once() {
        let (_dir, ev) = crate::evidence::objects::test_evidence();
        let signouts = Signouts::new(ev.clone());
        let s = session(OffsetDateTime::now_utc());
        assert!(!signouts.signed_out(&s.sid).await.expect("reads"));
        signouts
            .sign_out(&s, OffsetDateTime::now_utc())
            .await
            .expect("written");
        // The cache of "not signed out" is dropped by this instance's own sign-out.
        assert!(signouts.signed_out(&s.sid).await.expect("reads"));
        let key = signout_key(&s.sid).expect("key");
        let (bytes, sig) = crate::evidence::objects::read_signed(ev.store().as_ref(), &key)
            .await
            .expect("read")
            .expect("stored");
        assert!(ev.signer().public().verifies(&bytes, &sig.expect("signed")));
        // Signing out again is the same fact, not an error.
        signouts
            .sign_out(&s, OffsetDateTime::now_utc())
            .await
            .expect("again");
    }
}
