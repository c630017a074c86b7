//! A phone number in E.164 form (`+` and 8 to 15 digits), and its masked form
//! for logs and records: only the last four digits stay visible.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An E.164 phone number such as `+15551230001`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// The number as text, `+` included.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number with every digit but the last four replaced, e.g. `+*******0001`.
    pub fn masked(&self) -> String {
        let digits = &self.0[1..];
        let keep = digits.len().saturating_sub(4);
        format!("+{}{}", "*".repeat(keep), &digits[keep..])
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for PhoneNumber {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s
            .strip_prefix('+')
            .ok_or_else(|| "a phone number is in E.164 form, like +15551230001".to_owned())?;
        if !(8..=15).contains(&digits.len())
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || digits.starts_with('0')
        {
            return Err(
                "a phone number is in E.164 form: + and 8 to 15 digits, like +15551230001"
                    .to_owned(),
            );
        }
        Ok(PhoneNumber(s.to_owned()))
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<PhoneNumber> for String {
    fn from(p: PhoneNumber) -> String {
        p.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_numbers_parse() {
        assert_eq!(
            "+15551230001".parse::<PhoneNumber>().unwrap().as_str(),
            "+15551230001"
        );
    }

    #[test]
    fn numbers_without_plus_or_with_letters_are_refused() {
        for bad in [
            "15551230001",
            "+1555CALLNOW",
            "+1",
            "+0123456789",
            "+1234567890123456",
            "",
        ] {
            assert!(bad.parse::<PhoneNumber>().is_err(), "{bad}");
        }
    }

    #[test]
    fn masking_keeps_only_the_last_four_digits() {
        let p: PhoneNumber = "+15551230001".parse().unwrap();
        assert_eq!(p.masked(), "+*******0001");
    }
}
