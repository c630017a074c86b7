//! The secrets a running server uses, resolved from configuration, else from the
//! development credentials generated on first start; production refuses the latter.

use std::path::{Path, PathBuf};

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::auth::ApiKey;
use crate::config::{Config, Environment};
use crate::evidence::keys::SigningKey;

/// Development credentials as stored in `<data_dir>/dev-credentials.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevCredentials {
    /// Provider account SID.
    pub twilio_account_sid: String,
    /// Provider auth token.
    pub twilio_auth_token: String,
    /// `role:key` pairs.
    pub api_keys: String,
    /// Flow-token secret.
    pub token_secret: String,
    /// Outcome-callback secret; files written before it existed derive one
    /// from `token_secret`.
    #[serde(default)]
    pub callback_secret: Option<String>,
    /// Search-index phone secret; files written before it existed derive one
    /// from `token_secret`.
    #[serde(default)]
    pub index_phone_secret: Option<String>,
    /// Identity-check secret; files written before it existed derive one
    /// from `token_secret`.
    #[serde(default)]
    pub identity_secret: Option<String>,
}

/// The resolved secrets of a running server.
#[derive(Clone)]
pub struct Credentials {
    /// Provider account SID.
    pub twilio_account_sid: String,
    /// Provider auth token.
    pub twilio_auth_token: String,
    /// API keys.
    pub api_keys: Vec<ApiKey>,
    /// Flow-token secret.
    pub token_secret: String,
    /// Outcome-callback secret (`whsec_…`).
    pub callback_secret: String,
    /// Key of the phone-number hashes in the search index.
    pub index_phone_secret: String,
    /// Key of identity-check MACs and inbound lookups.
    pub identity_secret: String,
    /// Which settings were filled from the development file.
    pub from_dev_file: Vec<&'static str>,
}

/// What happened to the development credentials file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevFile {
    /// Not needed: every secret was configured.
    NotUsed,
    /// Read from an earlier start.
    Loaded(PathBuf),
    /// Written now; its contents must be shown once.
    Generated(PathBuf),
}

/// The key that signs record versions: `signing_key_file` when set (required
/// in production), else the development key in `data_dir`, generated on first
/// use. Returns the key and, when it was generated now, its file.
pub fn signing_key(config: &Config) -> anyhow::Result<(SigningKey, Option<PathBuf>)> {
    if let Some(path) = &config.signing_key_file {
        return Ok((SigningKey::from_file(path)?, None));
    }
    if config.environment == Environment::Production {
        anyhow::bail!("production needs CALLPROOF_SIGNING_KEY_FILE: the PKCS#8 PEM of the Ed25519 key that signs records (make one with `openssl genpkey -algorithm ed25519 -out signing-key.pem`, keep it outside the store, and publish its fingerprint)");
    }
    let path = config.data_dir.join("dev-signing-key.pem");
    if path.exists() {
        return Ok((SigningKey::from_file(&path)?, None));
    }
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create data directory {}: {e}",
            config.data_dir.display()
        )
    })?;
    write_private(&path, &SigningKey::generate_pem()?)?;
    Ok((SigningKey::from_file(&path)?, Some(path)))
}

/// The keys a verifier run outside the server trusts: the signing key's
/// public key when its file is readable (`signing_key_file`, or the
/// development key in `data_dir`; never generated here), the previous signing
/// key, and `trusted_keys`. Fails when that is no key at all.
pub fn verifier_trust(config: &Config) -> anyhow::Result<crate::evidence::trust::Trust> {
    let dev = config.data_dir.join("dev-signing-key.pem");
    let own = match &config.signing_key_file {
        Some(path) => Some(SigningKey::from_file(path)?),
        None if dev.exists() => Some(SigningKey::from_file(&dev)?),
        None => None,
    };
    let mut trust = crate::evidence::trust::Trust::configured(
        own.as_ref().map(SigningKey::public),
        config.trusted_keys.as_deref(),
    )
    .map_err(|e| anyhow::anyhow!("CALLPROOF_TRUSTED_KEYS: {e}"))?;
    if let Some(path) = &config.previous_signing_key_file {
        trust.add(SigningKey::from_file(path)?.public().clone());
    }
    if trust.fingerprints().is_empty() {
        anyhow::bail!("no trusted key: set CALLPROOF_TRUSTED_KEYS to the published fingerprints (or a file of PEM public keys), or CALLPROOF_SIGNING_KEY_FILE");
    }
    Ok(trust)
}

/// Path of the development credentials file in `data_dir`.
pub fn dev_credentials_path(data_dir: &Path) -> PathBuf {
    data_dir.join("dev-credentials.toml")
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Reads `<data_dir>/dev-credentials.toml`, or `None` when there is none.
pub fn read_dev_credentials(data_dir: &Path) -> anyhow::Result<Option<DevCredentials>> {
    let path = dev_credentials_path(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{} is damaged ({e}); delete it to generate new development credentials",
                path.display()
            )
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

/// Fills every unset secret from the development file, generating the file
/// on first use. In production any secret from that file is refused.
pub fn resolve(config: &Config) -> anyhow::Result<(Credentials, DevFile)> {
    let s = &config.secrets;
    let all_set = s.twilio_account_sid.is_some()
        && s.twilio_auth_token.is_some()
        && s.api_keys.is_some()
        && s.token_secret.is_some()
        && s.callback_secret.is_some()
        && s.index_phone_secret.is_some()
        && s.identity_secret.is_some();
    if config.environment == Environment::Production {
        let mut missing = Vec::new();
        if s.twilio_account_sid.is_none() {
            missing.push("CALLPROOF_TWILIO_ACCOUNT_SID");
        }
        if s.twilio_auth_token.is_none() {
            missing.push("CALLPROOF_TWILIO_AUTH_TOKEN");
        }
        if s.api_keys.is_none() {
            missing.push("CALLPROOF_API_KEYS");
        }
        if s.token_secret.is_none() {
            missing.push("CALLPROOF_TOKEN_SECRET");
        }
        if s.callback_secret.is_none() {
            missing.push("CALLPROOF_CALLBACK_SECRET");
        }
        if s.index_phone_secret.is_none() {
            missing.push("CALLPROOF_INDEX_PHONE_SECRET");
        }
        if s.identity_secret.is_none() {
            missing.push("CALLPROOF_IDENTITY_SECRET");
        }
        if !missing.is_empty() {
            anyhow::bail!(
                "production refuses development credentials: set {} (development credentials are generated only outside production)",
                missing.join(", ")
            );
        }
        match &config.public_url {
            None => anyhow::bail!("production needs CALLPROOF_PUBLIC_URL: the https URL your telephony provider calls, because webhook signatures are checked against it"),
            Some(url) if !url.starts_with("https://") => anyhow::bail!(
                "production refuses the http public URL {url}: set CALLPROOF_PUBLIC_URL to the https:// URL your telephony provider calls (TLS may end at a proxy in front of callproof)"
            ),
            Some(_) => {}
        }
        if let (Some(secret), Some(token)) = (&s.token_secret, &s.twilio_auth_token) {
            if bool::from(secret.as_bytes().ct_eq(token.as_bytes())) {
                anyhow::bail!("production refuses a CALLPROOF_TOKEN_SECRET equal to CALLPROOF_TWILIO_AUTH_TOKEN: generate a secret of its own (e.g. openssl rand -hex 32)");
            }
        }
    }
    let (dev, file) = if all_set {
        (None, DevFile::NotUsed)
    } else {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create data directory {}: {e}",
                config.data_dir.display()
            )
        })?;
        let path = dev_credentials_path(&config.data_dir);
        match read_dev_credentials(&config.data_dir)? {
            Some(d) => (Some(d), DevFile::Loaded(path)),
            None => {
                let d = DevCredentials {
                    twilio_account_sid: format!("AC{}", random_hex(16)),
                    twilio_auth_token: random_hex(16),
                    api_keys: format!(
                        "agent:agent-{},compliance:compliance-{},admin:admin-{}",
                        random_hex(12),
                        random_hex(12),
                        random_hex(12)
                    ),
                    token_secret: random_hex(32),
                    callback_secret: Some(crate::callbacks::CallbackSecret::generate()),
                    index_phone_secret: Some(random_hex(32)),
                    identity_secret: Some(random_hex(32)),
                };
                write_private(&path, &toml::to_string(&d)?)?;
                (Some(d), DevFile::Generated(path))
            }
        }
    };
    let mut from_dev = Vec::new();
    let mut pick =
        |set: &Option<String>, name: &'static str, dev_value: Option<&String>| -> String {
            match (set, dev_value) {
                (Some(v), _) => v.clone(),
                (None, Some(d)) => {
                    from_dev.push(name);
                    d.clone()
                }
                (None, None) => String::new(),
            }
        };
    let sid = pick(
        &s.twilio_account_sid,
        "twilio_account_sid",
        dev.as_ref().map(|d| &d.twilio_account_sid),
    );
    let token = pick(
        &s.twilio_auth_token,
        "twilio_auth_token",
        dev.as_ref().map(|d| &d.twilio_auth_token),
    );
    let secret = pick(
        &s.token_secret,
        "token_secret",
        dev.as_ref().map(|d| &d.token_secret),
    );
    let dev_callback = dev.as_ref().map(|d| {
        d.callback_secret
            .clone()
            .unwrap_or_else(|| derived_callback_secret(&d.token_secret))
    });
    let callback_secret = pick(&s.callback_secret, "callback_secret", dev_callback.as_ref());
    let dev_phone = dev.as_ref().map(|d| {
        d.index_phone_secret.clone().unwrap_or_else(|| {
            hex::encode(Sha256::digest(
                format!("callproof index phone secret:{}", d.token_secret).as_bytes(),
            ))
        })
    });
    let index_phone_secret = pick(
        &s.index_phone_secret,
        "index_phone_secret",
        dev_phone.as_ref(),
    );
    let dev_identity = dev.as_ref().map(|d| {
        d.identity_secret.clone().unwrap_or_else(|| {
            hex::encode(Sha256::digest(
                format!("callproof identity secret:{}", d.token_secret).as_bytes(),
            ))
        })
    });
    let identity_secret = pick(&s.identity_secret, "identity_secret", dev_identity.as_ref());
    let api_keys = match (&s.api_keys, &dev) {
        (Some(k), _) => k.clone(),
        (None, Some(d)) => {
            from_dev.push("api_keys");
            ApiKey::parse_list(&d.api_keys)
                .map_err(|e| anyhow::anyhow!("dev-credentials.toml api_keys: {e}"))?
        }
        (None, None) => Vec::new(),
    };
    Ok((
        Credentials {
            twilio_account_sid: sid,
            twilio_auth_token: token,
            api_keys,
            token_secret: secret,
            callback_secret,
            index_phone_secret,
            identity_secret,
            from_dev_file: from_dev,
        },
        file,
    ))
}

/// The callback secret of a development file written before callback secrets
/// existed: derived from its token secret, so it stays the same across starts.
fn derived_callback_secret(token_secret: &str) -> String {
    use base64::Engine;
    let key = Sha256::digest(format!("callproof callback secret:{token_secret}").as_bytes());
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_credentials_are_generated_once_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let env = vec![(
            "CALLPROOF_DATA_DIR".to_string(),
            dir.path().display().to_string(),
        )];
        let config = Config::load(None, &env, &[]).unwrap();
        let (first, file) = resolve(&config).unwrap();
        assert!(matches!(file, DevFile::Generated(_)));
        let (second, file) = resolve(&config).unwrap();
        assert!(matches!(file, DevFile::Loaded(_)));
        assert_eq!(first.twilio_auth_token, second.twilio_auth_token);
        assert_eq!(first.api_keys.len(), 3);
        assert!(first.from_dev_file.contains(&"token_secret"));
    }

    #[test]
    fn production_refuses_development_credentials_a_missing_or_http_url_and_a_shared_secret() {
        let dir = tempfile::tempdir().unwrap();
        let base = vec![
            (
                "CALLPROOF_DATA_DIR".to_string(),
                dir.path().display().to_string(),
            ),
            ("CALLPROOF_ENV".to_string(), "production".to_string()),
        ];
        let err = resolve(&Config::load(None, &base, &[]).unwrap())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("CALLPROOF_TWILIO_AUTH_TOKEN"), "{err}");
        let mut full = base.clone();
        full.extend([
            (
                "CALLPROOF_TWILIO_ACCOUNT_SID".to_string(),
                "AC0".to_string(),
            ),
            ("CALLPROOF_TWILIO_AUTH_TOKEN".to_string(), "t".repeat(32)),
            (
                "CALLPROOF_API_KEYS".to_string(),
                format!("agent:{}", "k".repeat(20)),
            ),
            ("CALLPROOF_TOKEN_SECRET".to_string(), "s".repeat(40)),
            (
                "CALLPROOF_CALLBACK_SECRET".to_string(),
                crate::callbacks::CallbackSecret::generate(),
            ),
            ("CALLPROOF_INDEX_PHONE_SECRET".to_string(), "i".repeat(40)),
            ("CALLPROOF_IDENTITY_SECRET".to_string(), "d".repeat(40)),
        ]);
        let err = resolve(&Config::load(None, &full, &[]).unwrap())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("CALLPROOF_PUBLIC_URL"), "{err}");
        full.push((
            "CALLPROOF_PUBLIC_URL".to_string(),
            "http://cp.example.com".to_string(),
        ));
        let err = resolve(&Config::load(None, &full, &[]).unwrap())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("https://"), "{err}");
        full.push((
            "CALLPROOF_PUBLIC_URL".to_string(),
            "https://cp.example.com".to_string(),
        ));
        let mut same = full.clone();
        same.push(("CALLPROOF_TOKEN_SECRET".to_string(), "t".repeat(32)));
        let err = resolve(&Config::load(None, &same, &[]).unwrap())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("CALLPROOF_TOKEN_SECRET equal to CALLPROOF_TWILIO_AUTH_TOKEN"),
            "{err}"
        );
        let (creds, file) = resolve(&Config::load(None, &full, &[]).unwrap()).unwrap();
        assert_eq!(file, DevFile::NotUsed);
        assert!(creds.from_dev_file.is_empty());
        assert!(!dev_credentials_path(dir.path()).exists());
    }
}
