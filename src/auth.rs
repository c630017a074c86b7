//! API keys and roles: parsing `role[:name]:key` lists, and the key ring that
//! holds keys only as SHA-256 digests and compares them in constant time.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Phone agents: create confirmation requests and read their outcome.
    Agent,
    /// Compliance staff: search, replay and export records.
    Compliance,
    /// Operators: everything.
    Admin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::Agent, Role::Compliance, Role::Admin];

    /// The role's name in `CALLPROOF_API_KEYS`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Compliance => "compliance",
            Role::Admin => "admin",
        }
    }

    /// True when a key of this role may use an endpoint that needs `needed`.
    pub fn may(self, needed: Role) -> bool {
        self == needed || self == Role::Admin
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A configured API key with its role and name.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// What the key may do.
    pub role: Role,
    /// Who holds the key, as it appears in confirmations and logs: the name
    /// given in `role:name:key`, or `key-` and the first 12 hex digits of the
    /// key's SHA-256 for `role:key`.
    pub name: String,
    /// The secret itself.
    pub key: String,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}:{}:<hidden>)", self.role, self.name)
    }
}

/// Longest key name, in characters.
const MAX_NAME_CHARS: usize = 64;

/// The name of a key given without one: `key-` and the first 12 hex digits of
/// its SHA-256, so it names the key without revealing it.
pub fn derived_key_name(key: &str) -> String {
    let digest = hex::encode(Sha256::digest(key.as_bytes()));
    format!("key-{}", &digest[..12])
}

fn valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_CHARS
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

impl ApiKey {
    /// Parses a comma-separated list of `role:key` or `role:name:key`. Keys
    /// need at least 16 characters and cannot contain `:`; names are 1 to 64
    /// of `A-Z a-z 0-9 - _ .` and distinct.
    pub fn parse_list(text: &str) -> Result<Vec<ApiKey>, String> {
        let mut out: Vec<ApiKey> = Vec::new();
        for (i, item) in text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .enumerate()
        {
            let n = i + 1;
            let parts: Vec<&str> = item.split(':').map(str::trim).collect();
            let (role, name, key) = match parts.as_slice() {
                [role, key] => (*role, None, *key),
                [role, name, key] => (*role, Some(*name), *key),
                _ => {
                    return Err(format!(
                        "item {n} is not role:key or role:name:key (roles: agent, compliance, admin; keys cannot contain :)"
                    ))
                }
            };
            let role = Role::ALL
                .into_iter()
                .find(|r| r.as_str() == role)
                .ok_or_else(|| {
                    format!("item {n} has an unknown role: use agent, compliance or admin")
                })?;
            if key.len() < 16 || key.contains(char::is_whitespace) {
                return Err(format!(
                    "item {n} ({role}) has a key shorter than 16 characters or with spaces"
                ));
            }
            let name = match name {
                Some(name) if valid_key_name(name) => name.to_owned(),
                Some(_) => {
                    return Err(format!(
                        "item {n} ({role}) has a bad name: use 1 to {MAX_NAME_CHARS} of A-Z a-z 0-9 - _ ."
                    ))
                }
                None => derived_key_name(key),
            };
            if out.iter().any(|k| k.name == name) {
                return Err(format!(
                    "item {n} ({role}) repeats the key name {name}: give every key its own name"
                ));
            }
            out.push(ApiKey {
                role,
                name,
                key: key.to_owned(),
            });
        }
        if out.is_empty() {
            return Err(
                "no keys given: use role:key or role:name:key items separated by commas".into(),
            );
        }
        Ok(out)
    }
}

/// Who presented a key: its role and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// What the key may do.
    pub role: Role,
    /// The key's name.
    pub key_name: String,
}

/// The configured keys, held as digests with their roles and names.
#[derive(Clone)]
pub struct KeyRing {
    entries: Vec<([u8; 32], Role, String)>,
}

impl KeyRing {
    /// Hashes the keys and drops the plain ones.
    pub fn new(keys: Vec<ApiKey>) -> Self {
        KeyRing {
            entries: keys
                .into_iter()
                .map(|k| (Sha256::digest(k.key.as_bytes()).into(), k.role, k.name))
                .collect(),
        }
    }

    /// The role and name of a presented key, or `None`. Every entry is
    /// compared, in constant time, whatever matches.
    pub fn role_of(&self, presented: &str) -> Option<Caller> {
        self.by_digest(&Self::digest(presented))
    }

    /// The SHA-256 a key is held as.
    pub fn digest(key: &str) -> [u8; 32] {
        Sha256::digest(key.as_bytes()).into()
    }

    /// The SHA-256 and role of the configured key named `name` (names are
    /// not secret: the audit log shows them), or `None`.
    pub fn by_name(&self, name: &str) -> Option<([u8; 32], Role)> {
        self.entries
            .iter()
            .find(|(_, _, n)| n == name)
            .map(|(d, role, _)| (*d, *role))
    }

    /// The role and name of the configured key whose SHA-256 is `digest`
    /// (a session remembers its key this way), or `None`; constant time.
    pub fn by_digest(&self, digest: &[u8; 32]) -> Option<Caller> {
        let mut found = None;
        for (d, role, name) in &self.entries {
            if bool::from(d.ct_eq(digest)) {
                found = Some((*role, name));
            }
        }
        found.map(|(role, name)| Caller {
            role,
            key_name: name.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_lists_parse_with_roles() {
        let keys =
            ApiKey::parse_list("agent:aaaaaaaaaaaaaaaa, compliance:bbbbbbbbbbbbbbbb").unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[1].role, Role::Compliance);
    }

    #[test]
    fn bad_key_lists_say_which_item_is_wrong() {
        assert!(ApiKey::parse_list("agent:short")
            .unwrap_err()
            .contains("item 1"));
        assert!(
            ApiKey::parse_list("agent:aaaaaaaaaaaaaaaa,boss:bbbbbbbbbbbbbbbb")
                .unwrap_err()
                .contains("item 2")
        );
        assert!(ApiKey::parse_list("").is_err());
    }

    #[test]
    fn the_key_ring_finds_roles_and_names_and_refuses_strangers() {
        let ring = KeyRing::new(
            ApiKey::parse_list("agent:aaaaaaaaaaaaaaaa,admin:ops-1:cccccccccccccccc").unwrap(),
        );
        let agent = ring.role_of("aaaaaaaaaaaaaaaa").unwrap();
        assert_eq!(agent.role, Role::Agent);
        assert_eq!(agent.key_name, derived_key_name("aaaaaaaaaaaaaaaa"));
        assert_eq!(
            ring.role_of("cccccccccccccccc"),
            Some(Caller {
                role: Role::Admin,
                key_name: "ops-1".into()
            })
        );
        assert_eq!(ring.role_of("aaaaaaaaaaaaaaab"), None);
    }

    #[test]
    fn three_parts_name_a_key_and_two_parts_derive_its_name_from_its_digest() {
        let keys =
            ApiKey::parse_list("agent:front-desk:aaaaaaaaaaaaaaaa,compliance:bbbbbbbbbbbbbbbb")
                .unwrap();
        assert_eq!(keys[0].name, "front-desk");
        assert_eq!(keys[0].key, "aaaaaaaaaaaaaaaa");
        // sha256sum of "bbbbbbbbbbbbbbbb" begins 2e61afd25d3c.
        assert_eq!(keys[1].name, "key-2e61afd25d3c");
        assert!(!keys[1].name.contains("bbbb"), "the name hides the key");
    }

    #[test]
    fn key_names_and_colons_are_checked() {
        for (list, needle) in [
            ("agent:a:b:cccccccccccccccc", "cannot contain :"),
            ("agent:bad name:cccccccccccccccc", "bad name"),
            ("agent::cccccccccccccccc", "bad name"),
            (
                "agent:desk:cccccccccccccccc,admin:desk:dddddddddddddddd",
                "repeats the key name desk",
            ),
        ] {
            let err = ApiKey::parse_list(list).unwrap_err();
            assert!(err.contains(needle), "{list}: {err}");
        }
    }

    #[test]
    fn admin_may_do_everything_and_others_only_their_own() {
        assert!(Role::Admin.may(Role::Compliance));
        assert!(!Role::Agent.may(Role::Compliance));
        assert!(Role::Compliance.may(Role::Compliance));
    }
}
