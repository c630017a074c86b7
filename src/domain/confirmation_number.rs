//! The confirmation number a caller hears and writes down: nine random digits
//! and a Luhn check digit, shown as `1234-5678-90` and read back digit by digit.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// A ten-digit confirmation number whose last digit is a Luhn check digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConfirmationNumber([u8; 10]);

impl ConfirmationNumber {
    /// A fresh random number with its check digit.
    pub fn generate() -> Self {
        let mut rng = rand::rngs::OsRng;
        let mut digits = [0u8; 10];
        // The first digit is never 0, so the number never looks shortened.
        digits[0] = rng.gen_range(1..10);
        for d in digits.iter_mut().take(9).skip(1) {
            *d = rng.gen_range(0..10);
        }
        digits[9] = luhn_check_digit(&digits[..9]);
        ConfirmationNumber(digits)
    }

    /// The bare digits, e.g. `1234567890`.
    pub fn digits(&self) -> String {
        self.0.iter().map(|d| char::from(b'0' + d)).collect()
    }

    /// The digits in groups of 4, 4 and 2, as a speech engine should read them:
    /// one digit at a time with short pauses between groups.
    pub fn spoken(&self) -> String {
        let groups = [&self.0[0..4], &self.0[4..8], &self.0[8..10]];
        groups
            .iter()
            .map(|g| {
                g.iter()
                    .map(|d| char::from(b'0' + d).to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .collect::<Vec<_>>()
            .join(". ")
    }
}

/// The Luhn check digit for `payload` (most significant digit first).
fn luhn_check_digit(payload: &[u8]) -> u8 {
    let sum: u32 = payload
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 0 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    ((10 - (sum % 10)) % 10) as u8
}

impl fmt::Display for ConfirmationNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.digits();
        write!(f, "{}-{}-{}", &d[0..4], &d[4..8], &d[8..10])
    }
}

impl FromStr for ConfirmationNumber {
    type Err = String;

    /// Accepts the ten digits with or without dashes and spaces.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let cleaned: Vec<u8> = s
            .chars()
            .filter(|c| *c != '-' && *c != ' ')
            .map(|c| c.to_digit(10).map(|d| d as u8).ok_or(()))
            .collect::<Result<_, _>>()
            .map_err(|_| "a confirmation number has only digits, like 1234-5678-90".to_owned())?;
        let digits: [u8; 10] = cleaned
            .try_into()
            .map_err(|_| "a confirmation number has ten digits, like 1234-5678-90".to_owned())?;
        if luhn_check_digit(&digits[..9]) != digits[9] {
            return Err(
                "that confirmation number's check digit does not match: check for a mistyped digit"
                    .to_owned(),
            );
        }
        Ok(ConfirmationNumber(digits))
    }
}

impl TryFrom<String> for ConfirmationNumber {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ConfirmationNumber> for String {
    fn from(n: ConfirmationNumber) -> String {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_digit_is_luhn() {
        // 7992739871 is the textbook Luhn example with check digit 3.
        assert_eq!(luhn_check_digit(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1]), 3);
    }

    #[test]
    fn a_generated_number_parses_back_with_and_without_dashes() {
        for _ in 0..200 {
            let n = ConfirmationNumber::generate();
            assert_eq!(n.to_string().parse::<ConfirmationNumber>().unwrap(), n);
            assert_eq!(n.digits().parse::<ConfirmationNumber>().unwrap(), n);
        }
    }

    #[test]
    fn any_single_mistyped_digit_is_caught() {
        let n = ConfirmationNumber::generate();
        let digits = n.digits();
        for pos in 0..10 {
            for replacement in '0'..='9' {
                let mut typo: Vec<char> = digits.chars().collect();
                if typo[pos] == replacement {
                    continue;
                }
                typo[pos] = replacement;
                let typo: String = typo.into_iter().collect();
                assert!(typo.parse::<ConfirmationNumber>().is_err(), "{typo} passed");
            }
        }
    }

    #[test]
    fn it_is_spoken_digit_by_digit_in_groups() {
        let mut d = [1, 2, 3, 4, 5, 6, 7, 8, 9, 0];
        d[9] = luhn_check_digit(&d[..9]);
        let n = ConfirmationNumber(d);
        assert_eq!(n.spoken(), format!("1, 2, 3, 4. 5, 6, 7, 8. 9, {}", d[9]));
    }

    #[test]
    fn letters_and_wrong_lengths_are_refused() {
        for bad in ["", "12345", "1234-5678-9x", "12345678901"] {
            assert!(bad.parse::<ConfirmationNumber>().is_err(), "{bad}");
        }
    }
}
