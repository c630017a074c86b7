//! Object keys: `/`-separated segments of `[a-z0-9._-]` that never start with
//! a dot, so a key can never climb out of the store or hide as a temp file.

use std::fmt;

/// A validated object key such as `confirmations/3f…/request.json`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(String);

/// Longest key accepted, in bytes (S3's limit is 1024).
const MAX_KEY_BYTES: usize = 512;

impl ObjectKey {
    /// Validates a key. Keys are built by callproof from ids it made, so a
    /// failure here is a bug, reported with the offending key.
    pub fn new(key: impl Into<String>) -> Result<Self, String> {
        let key = key.into();
        let ok = !key.is_empty()
            && key.len() <= MAX_KEY_BYTES
            && key.split('/').all(|seg| {
                !seg.is_empty()
                    && !seg.starts_with('.')
                    && seg.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                    })
            });
        if ok {
            Ok(ObjectKey(key))
        } else {
            Err(format!("invalid object key {key:?}"))
        }
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last segment, e.g. `request.json`.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_keys_are_accepted() {
        assert!(ObjectKey::new("confirmations/0a1b/events/000.json").is_ok());
    }

    #[test]
    fn keys_that_could_escape_or_hide_are_refused() {
        for bad in [
            "", "/abs", "a//b", "../x", "a/../b", "a/.tmp-1", "A/b", "a b", "a/", "a\\b",
        ] {
            assert!(ObjectKey::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn file_name_is_the_last_segment() {
        assert_eq!(ObjectKey::new("a/b/c.json").unwrap().file_name(), "c.json");
    }
}
