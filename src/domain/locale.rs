//! The languages a confirmation call can be held in.
//! A `Locale` is parsed from its BCP 47 tag and can hold nothing else.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A locale the IVR can speak and understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Locale {
    /// English, United States.
    #[serde(rename = "en-US")]
    EnUs,
    /// Spanish, United States.
    #[serde(rename = "es-US")]
    EsUs,
}

impl Locale {
    /// Every supported locale, in a stable order.
    pub const ALL: [Locale; 2] = [Locale::EnUs, Locale::EsUs];

    /// The BCP 47 tag, as TwiML `language` attributes and `prompts/` folders spell it.
    pub fn tag(self) -> &'static str {
        match self {
            Locale::EnUs => "en-US",
            Locale::EsUs => "es-US",
        }
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag())
    }
}

impl FromStr for Locale {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Locale::ALL
            .into_iter()
            .find(|l| l.tag().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unsupported locale {s:?}: use one of en-US, es-US"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip() {
        for l in Locale::ALL {
            assert_eq!(l.tag().parse::<Locale>().unwrap(), l);
        }
    }

    #[test]
    fn an_unknown_tag_is_refused_with_the_choices() {
        let err = "fr-FR".parse::<Locale>().unwrap_err();
        assert!(err.contains("en-US"), "{err}");
    }
}
