//! Which public keys a verifier trusts, and for which seals: the keys of the
//! configuration, and keys linked to them by rotation statements in the chain.
//!
//! A key found only in the store is never trusted. A rotation statement
//! `keys/statements/<new fingerprint>.json` names an old and a new key and is
//! signed by both; once a seal lists it, the old key is in force up to that
//! seal and the new key from it on, and a verifier that trusts either trusts
//! the other for exactly its range.

use std::path::Path;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::confirmations::{checked_key, RepoError};
use crate::evidence::keys::{pem_blocks, PublicKey, SigningKey};
use crate::evidence::objects::{sha256_hex, signature_key, Evidence};
use crate::store::ObjectKey;

/// `schema` of a rotation statement.
pub const STATEMENT_SCHEMA: &str = "callproof.key-statement.v1";

/// Where the statement introducing the key `fingerprint` lives.
pub fn statement_key(fingerprint: &str) -> Result<ObjectKey, RepoError> {
    checked_key(format!("keys/statements/{fingerprint}.json"))
}

/// Where the old key's signature of a statement's `bytes` lives (the new key's
/// is the ordinary signature beside the object).
pub fn statement_old_signature_key(
    statement: &ObjectKey,
    bytes: &[u8],
) -> Result<ObjectKey, RepoError> {
    let ordinary = signature_key(statement, bytes)?;
    let stem = ordinary
        .as_str()
        .strip_suffix(".sig")
        .unwrap_or(ordinary.as_str());
    checked_key(format!("{stem}.previous.sig"))
}

/// One key as a statement names it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NamedKey {
    /// Hex SHA-256 of the SubjectPublicKeyInfo DER.
    pub fingerprint: String,
    /// The public key, PEM.
    pub pem: String,
}

impl NamedKey {
    fn of(key: &PublicKey) -> Self {
        NamedKey {
            fingerprint: key.fingerprint(),
            pem: key.pem(),
        }
    }

    /// The key, when the PEM holds one whose fingerprint is the one named.
    pub fn key(&self) -> Option<PublicKey> {
        let der = pem_blocks(&self.pem, "PUBLIC KEY")
            .ok()?
            .into_iter()
            .next()?;
        let key = PublicKey::from_der(&der).ok()?;
        (key.fingerprint() == self.fingerprint).then_some(key)
    }
}

/// A rotation statement: `new_key` succeeds `old_key`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyStatement {
    /// [`STATEMENT_SCHEMA`].
    pub schema: String,
    /// The key that stops signing.
    pub old_key: NamedKey,
    /// The key that signs from the seal listing this statement on.
    pub new_key: NamedKey,
    /// When the statement was made.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl KeyStatement {
    /// The two keys, when `bytes` is a statement signed by both.
    pub fn check(bytes: &[u8], new_sig: &[u8], old_sig: &[u8]) -> Option<(PublicKey, PublicKey)> {
        let s: KeyStatement = serde_json::from_slice(bytes).ok()?;
        if s.schema != STATEMENT_SCHEMA {
            return None;
        }
        let (old, new) = (s.old_key.key()?, s.new_key.key()?);
        (old != new && old.verifies(bytes, old_sig) && new.verifies(bytes, new_sig))
            .then_some((old, new))
    }
}

/// Writes the statement that `signer` (through `evidence`) succeeds
/// `previous`, unless it is stored already. Both signatures come before the
/// statement, like every evidence object's.
pub async fn introduce(evidence: &Evidence, previous: &SigningKey) -> Result<bool, RepoError> {
    let new = evidence.signer().public();
    let key = statement_key(&new.fingerprint())?;
    if evidence.store().get(&key).await?.is_some() {
        return Ok(false);
    }
    let statement = KeyStatement {
        schema: STATEMENT_SCHEMA.to_owned(),
        old_key: NamedKey::of(previous.public()),
        new_key: NamedKey::of(new),
        at: OffsetDateTime::now_utc(),
    };
    let bytes = serde_json::to_vec_pretty(&statement).map_err(|e| RepoError::Corrupt {
        key: key.to_string(),
        reason: e.to_string(),
    })?;
    evidence.announce(&key, statement.at).await?;
    let old_sig = statement_old_signature_key(&key, &bytes)?;
    crate::confirmations::create_bytes_retained(
        evidence.store().as_ref(),
        &old_sig,
        bytes::Bytes::from(previous.sign(&bytes)),
        None,
    )
    .await?;
    evidence.create(&key, bytes::Bytes::from(bytes), None).await
}

/// The keys a verifier trusts by configuration.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    keys: Vec<PublicKey>,
    fingerprints: Vec<String>,
}

impl Trust {
    /// The signing key's public key, and `CALLPROOF_TRUSTED_KEYS`: comma-separated
    /// fingerprints, or the path of a file of PEM public keys.
    pub fn configured(signer: Option<&PublicKey>, trusted: Option<&str>) -> Result<Trust, String> {
        let mut t = Trust::default();
        if let Some(k) = signer {
            t.keys.push(k.clone());
        }
        let Some(text) = trusted.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(t);
        };
        let all_hex = text
            .split(',')
            .map(str::trim)
            .all(|f| f.len() == 64 && f.bytes().all(|b| b.is_ascii_hexdigit()));
        if all_hex {
            t.fingerprints = text
                .split(',')
                .map(|f| f.trim().to_ascii_lowercase())
                .collect();
            return Ok(t);
        }
        let path = Path::new(text);
        let pem = std::fs::read_to_string(path).map_err(|e| {
            format!("{}: {e}; give comma-separated key fingerprints (64 hex digits each) or the path of a file of PEM public keys", path.display())
        })?;
        let blocks = pem_blocks(&pem, "PUBLIC KEY")?;
        if blocks.is_empty() {
            return Err(format!(
                "{} holds no PUBLIC KEY block (`openssl pkey -in key.pem -pubout` prints one)",
                path.display()
            ));
        }
        for der in blocks {
            t.keys.push(PublicKey::from_der(&der)?);
        }
        Ok(t)
    }

    /// Adds a key the verifier holds itself (a previous signing key).
    pub fn add(&mut self, key: PublicKey) {
        if !self.keys.contains(&key) {
            self.keys.push(key);
        }
    }

    /// True when configuration trusts the key `fingerprint`.
    pub fn trusts(&self, fingerprint: &str) -> bool {
        self.fingerprints.iter().any(|f| f == fingerprint)
            || self.keys.iter().any(|k| k.fingerprint() == fingerprint)
    }

    /// The configured keys whose bytes are known.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// Every fingerprint configuration names, with or without its key.
    pub fn fingerprints(&self) -> Vec<String> {
        let mut out: Vec<String> = self.keys.iter().map(PublicKey::fingerprint).collect();
        for f in &self.fingerprints {
            if !out.contains(f) {
                out.push(f.clone());
            }
        }
        out
    }
}

/// A key and the seals it is in force for (inclusive; `until: None` is open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    /// The key.
    pub key: PublicKey,
    /// First seal whose objects it may sign (1 for a key no statement introduced).
    pub from: u64,
    /// Last seal whose objects it may sign; the seal that lists its successor.
    pub until: Option<u64>,
}

impl KeyRange {
    /// True when objects listed in seal `n` may carry this key's signature.
    pub fn covers_object(&self, n: u64) -> bool {
        self.from <= n && self.until.is_none_or(|u| n <= u)
    }

    /// True when seal `n` itself may be signed by this key: a successor signs
    /// the seal that lists its statement, its predecessor the ones before.
    pub fn covers_seal(&self, n: u64) -> bool {
        self.from <= n && self.until.is_none_or(|u| n < u)
    }
}

/// The keys in force along one chain: configuration, closed over the
/// rotation statements the chain lists.
#[derive(Debug, Clone, Default)]
pub struct KeyRanges {
    ranges: Vec<KeyRange>,
}

/// A valid statement and the seal listing it.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The retiring key.
    pub old: PublicKey,
    /// Its successor.
    pub new: PublicKey,
    /// The seal that lists the statement.
    pub seal: u64,
}

impl KeyRanges {
    /// The trusted keys and their ranges, given `trust`, extra keys whose
    /// bytes are known without being trusted (found in the store: trusted only
    /// when configuration names their fingerprint), and the chain's rotations.
    pub fn build(trust: &Trust, known: &[PublicKey], rotations: &[Rotation]) -> KeyRanges {
        let mut trusted: Vec<PublicKey> = trust.keys().to_vec();
        for k in known {
            if trust.trusts(&k.fingerprint()) && !trusted.contains(k) {
                trusted.push(k.clone());
            }
        }
        for r in rotations {
            for k in [&r.old, &r.new] {
                if trust.trusts(&k.fingerprint()) && !trusted.contains(k) {
                    trusted.push(k.clone());
                }
            }
        }
        // Close over the links: trusting either end of a valid rotation trusts the other.
        loop {
            let mut grew = false;
            for r in rotations {
                let (a, b) = (trusted.contains(&r.old), trusted.contains(&r.new));
                if a != b {
                    trusted.push(if a { r.new.clone() } else { r.old.clone() });
                    grew = true;
                }
            }
            if !grew {
                break;
            }
        }
        let ranges = trusted
            .into_iter()
            .map(|key| {
                // A key has at most one successor and one predecessor: the first counts.
                let from = rotations
                    .iter()
                    .find(|r| r.new == key)
                    .map_or(1, |r| r.seal);
                let until = rotations.iter().find(|r| r.old == key).map(|r| r.seal);
                KeyRange { key, from, until }
            })
            .collect();
        KeyRanges { ranges }
    }

    /// The trusted key `fingerprint` and its range.
    pub fn get(&self, fingerprint: &str) -> Option<&KeyRange> {
        self.ranges
            .iter()
            .find(|r| r.key.fingerprint() == fingerprint)
    }

    /// Why `signature` of `bytes` by `fingerprint` does not hold for an
    /// object listed in seal `seal` (`None`: not sealed yet, judged by the
    /// keys in force now); `Ok(())` when it holds.
    pub fn check_object(
        &self,
        fingerprint: &str,
        bytes: &[u8],
        signature: &[u8],
        seal: Option<u64>,
    ) -> Result<(), String> {
        let Some(range) = self.get(fingerprint) else {
            return Err(format!("signed by key {fingerprint}, which is not trusted"));
        };
        if !range.key.verifies(bytes, signature) {
            return Err(format!("signature by key {fingerprint} is invalid"));
        }
        let in_force = match seal {
            Some(n) => range.covers_object(n),
            None => range.until.is_none(),
        };
        if !in_force {
            return Err(format!(
                "signed by key {fingerprint}, which was retired at seal {}",
                range.until.unwrap_or_default()
            ));
        }
        Ok(())
    }

    /// The trusted key whose signature of seal `n`'s `bytes` is `signature`.
    pub fn seal_signer(&self, n: u64, bytes: &[u8], signature: &[u8]) -> Option<&KeyRange> {
        self.ranges
            .iter()
            .find(|r| r.covers_seal(n) && r.key.verifies(bytes, signature))
    }

    /// Every trusted key, for `GET /v1/keys`.
    pub fn ranges(&self) -> &[KeyRange] {
        &self.ranges
    }
}

/// Hex SHA-256 of a key's DER, for callers that only hold bytes.
pub fn fingerprint_of_der(der: &[u8]) -> String {
    sha256_hex(der)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_pem(&SigningKey::generate_pem().expect("pem")).expect("key")
    }

    #[test]
    fn a_rotation_links_both_ways_and_caps_the_old_key() {
        let (old, new) = (key(), key());
        let rot = Rotation {
            old: old.public().clone(),
            new: new.public().clone(),
            seal: 5,
        };
        for trusted in [&old, &new] {
            let trust = Trust::configured(Some(trusted.public()), None).expect("trust");
            let ranges = KeyRanges::build(&trust, &[], std::slice::from_ref(&rot));
            let o = ranges
                .get(&old.public().fingerprint())
                .expect("old trusted");
            let n = ranges
                .get(&new.public().fingerprint())
                .expect("new trusted");
            assert!(o.covers_object(5) && !o.covers_object(6));
            assert!(o.covers_seal(4) && !o.covers_seal(5));
            assert!(n.covers_seal(5) && !n.covers_object(4));
        }
        // A key merely found in the store is not trusted.
        let stranger = key();
        let trust = Trust::configured(Some(old.public()), None).expect("trust");
        let ranges = KeyRanges::build(&trust, &[stranger.public().clone()], &[]);
        let sig = stranger.sign(b"x");
        assert!(ranges
            .check_object(&stranger.public().fingerprint(), b"x", &sig, None)
            .unwrap_err()
            .contains("not trusted"));
    }

    #[test]
    fn fingerprints_trust_keys_whose_bytes_come_from_elsewhere() {
        let k = key();
        let fp = k.public().fingerprint();
        let trust = Trust::configured(None, Some(&fp.to_uppercase())).expect("trust");
        let ranges = KeyRanges::build(&trust, &[k.public().clone()], &[]);
        assert!(ranges
            .check_object(&fp, b"m", &k.sign(b"m"), Some(1))
            .is_ok());
        assert!(Trust::configured(None, Some("/nonexistent/keys.pem"))
            .unwrap_err()
            .contains("fingerprints"));
    }

    #[test]
    fn a_statement_needs_both_signatures() {
        let (old, new) = (key(), key());
        let s = KeyStatement {
            schema: STATEMENT_SCHEMA.into(),
            old_key: NamedKey::of(old.public()),
            new_key: NamedKey::of(new.public()),
            at: OffsetDateTime::now_utc(),
        };
        let bytes = serde_json::to_vec(&s).expect("json");
        let (ns, os) = (new.sign(&bytes), old.sign(&bytes));
        assert!(KeyStatement::check(&bytes, &ns, &os).is_some());
        assert!(KeyStatement::check(&bytes, &ns, &ns).is_none());
        let forger = key();
        assert!(KeyStatement::check(&bytes, &ns, &forger.sign(&bytes)).is_none());
    }
}
