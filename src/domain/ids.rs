//! Identifiers the server makes. Object keys are derived only from these,
//! so caller input never reaches a storage path.

use std::fmt;
use std::str::FromStr;

use rand::RngCore;
use serde::{Deserialize, Serialize};

/// The id of a confirmation request: 32 lowercase hex digits from 128 random bits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConfirmationId(String);

impl ConfirmationId {
    /// A fresh random id.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        ConfirmationId(hex::encode(bytes))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConfirmationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ConfirmationId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(ConfirmationId(s.to_owned()))
        } else {
            Err("a confirmation id is 32 lowercase hex digits".to_owned())
        }
    }
}

impl TryFrom<String> for ConfirmationId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ConfirmationId> for String {
    fn from(id: ConfirmationId) -> String {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back() {
        let id = ConfirmationId::generate();
        assert_eq!(id.as_str().parse::<ConfirmationId>().unwrap(), id);
    }

    #[test]
    fn two_generated_ids_differ() {
        assert_ne!(ConfirmationId::generate(), ConfirmationId::generate());
    }

    #[test]
    fn path_like_or_uppercase_input_is_refused() {
        for bad in [
            "../../etc/passwd",
            "",
            "ABCDEF0123456789ABCDEF0123456789",
            "0123",
        ] {
            assert!(bad.parse::<ConfirmationId>().is_err(), "{bad}");
        }
    }
}
