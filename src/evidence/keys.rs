//! The Ed25519 key that signs every record version, loaded from a PKCS#8 PEM
//! file (`openssl genpkey -algorithm ed25519`), its public key and fingerprint.
//!
//! A key's id is the hex SHA-256 of its public key's SubjectPublicKeyInfo DER,
//! which is also what `openssl pkey -pubin -outform DER | sha256sum` prints,
//! so operators can publish it and anyone can compare it.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use sha2::{Digest, Sha256};

/// DER prefix of an Ed25519 SubjectPublicKeyInfo; the 32 key bytes follow.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The key that signs record versions.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    public: PublicKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.public.fingerprint())
    }
}

/// An Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// The SubjectPublicKeyInfo DER.
    pub fn der(&self) -> Vec<u8> {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.0);
        der
    }

    /// The key id: hex SHA-256 of the DER.
    pub fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(self.der()))
    }

    /// The PEM form (`-----BEGIN PUBLIC KEY-----`), as OpenSSL reads it.
    pub fn pem(&self) -> String {
        pem("PUBLIC KEY", &self.der())
    }

    /// True when `signature` is this key's Ed25519 signature of `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(message, signature)
            .is_ok()
    }

    /// Reads a `PUBLIC KEY` PEM block's DER.
    pub fn from_der(der: &[u8]) -> Result<PublicKey, String> {
        match der.strip_prefix(&SPKI_PREFIX[..]) {
            Some(key) if key.len() == 32 => {
                let mut k = [0u8; 32];
                k.copy_from_slice(key);
                Ok(PublicKey(k))
            }
            _ => Err("not an Ed25519 public key".into()),
        }
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = BASE64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The DER of every PEM block labelled `label` in `text`.
pub fn pem_blocks(text: &str, label: &str) -> Result<Vec<Vec<u8>>, String> {
    let (begin, end) = (
        format!("-----BEGIN {label}-----"),
        format!("-----END {label}-----"),
    );
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&begin) {
        let after = &rest[start + begin.len()..];
        let stop = after
            .find(&end)
            .ok_or_else(|| format!("a {begin} block has no end"))?;
        let b64: String = after[..stop].split_whitespace().collect();
        out.push(
            BASE64
                .decode(b64)
                .map_err(|_| format!("a {label} block is not base64"))?,
        );
        rest = &after[stop + end.len()..];
    }
    Ok(out)
}

impl SigningKey {
    /// Reads a PKCS#8 `PRIVATE KEY` PEM (OpenSSL's v1, or v2 with the public key).
    pub fn from_pem(text: &str) -> Result<SigningKey, String> {
        let blocks = pem_blocks(text, "PRIVATE KEY")?;
        let [der] = blocks.as_slice() else {
            return Err(
                "expected exactly one PRIVATE KEY block (make one with `openssl genpkey -algorithm ed25519`)"
                    .into(),
            );
        };
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|_| "not a PKCS#8 Ed25519 private key".to_owned())?;
        let mut public = [0u8; 32];
        public.copy_from_slice(pair.public_key().as_ref());
        Ok(SigningKey {
            pair,
            public: PublicKey(public),
        })
    }

    /// Reads the key file at `path`.
    pub fn from_file(path: &Path) -> anyhow::Result<SigningKey> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read the signing key {}: {e}", path.display()))?;
        SigningKey::from_pem(&text)
            .map_err(|e| anyhow::anyhow!("the signing key {} is not usable: {e}", path.display()))
    }

    /// A new random key, as PKCS#8 PEM.
    pub fn generate_pem() -> anyhow::Result<String> {
        let rng = ring::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| anyhow::anyhow!("cannot generate a signing key"))?;
        Ok(pem("PRIVATE KEY", doc.as_ref()))
    }

    /// The public half.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The Ed25519 signature of `message` (64 bytes; deterministic).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8032's first test vector, as the PKCS#8 PEM that OpenSSL writes for it.
    const RFC8032_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n-----END PRIVATE KEY-----\n";

    #[test]
    fn an_openssl_key_signs_as_rfc_8032_says() {
        let key = SigningKey::from_pem(RFC8032_PEM).unwrap();
        assert_eq!(
            hex::encode(key.public().0),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let sig = key.sign(b"");
        assert_eq!(
            hex::encode(&sig),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        assert!(key.public().verifies(b"", &sig));
        assert!(!key.public().verifies(b"x", &sig));
    }

    #[test]
    fn public_keys_round_trip_through_pem_and_name_their_fingerprint() {
        let key = SigningKey::from_pem(&SigningKey::generate_pem().unwrap()).unwrap();
        let pem = key.public().pem();
        let der = &pem_blocks(&pem, "PUBLIC KEY").unwrap()[0];
        assert_eq!(&PublicKey::from_der(der).unwrap(), key.public());
        assert_eq!(key.public().fingerprint(), hex::encode(Sha256::digest(der)));
    }

    #[test]
    fn bad_key_files_are_named() {
        assert!(SigningKey::from_pem("nothing")
            .unwrap_err()
            .contains("openssl genpkey"));
        let rsa_like = pem("PRIVATE KEY", b"not a key");
        assert!(SigningKey::from_pem(&rsa_like)
            .unwrap_err()
            .contains("PKCS#8 Ed25519"));
    }
}
