//! What a confirmation is about: a termination or one of the account update kinds.
//! The kind picks the prompt template and the retention class of the record.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The kind of change a customer is asked to confirm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Ending a service.
    Termination,
    /// Contact details: address, email, phone.
    Contact,
    /// Billing: card, bank account, billing address.
    Billing,
    /// Security: password, two-factor settings.
    Security,
    /// The plan or package.
    Plan,
    /// Communication preferences.
    Communication,
    /// Ownership of, or access to, the account.
    Access,
}

impl ChangeKind {
    /// Every kind, in a stable order.
    pub const ALL: [ChangeKind; 7] = [
        ChangeKind::Termination,
        ChangeKind::Contact,
        ChangeKind::Billing,
        ChangeKind::Security,
        ChangeKind::Plan,
        ChangeKind::Communication,
        ChangeKind::Access,
    ];

    /// The name used in the API, in `prompts/` file names and in records.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Termination => "termination",
            ChangeKind::Contact => "contact",
            ChangeKind::Billing => "billing",
            ChangeKind::Security => "security",
            ChangeKind::Plan => "plan",
            ChangeKind::Communication => "communication",
            ChangeKind::Access => "access",
        }
    }

    /// True for a termination; every other kind is an account update.
    pub fn is_termination(self) -> bool {
        self == ChangeKind::Termination
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChangeKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ChangeKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown kind {s:?}: use termination, contact, billing, security, plan, communication or access"
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in ChangeKind::ALL {
            assert_eq!(k.as_str().parse::<ChangeKind>().unwrap(), k);
        }
    }

    #[test]
    fn only_termination_is_a_termination() {
        assert!(ChangeKind::Termination.is_termination());
        assert!(!ChangeKind::Billing.is_termination());
    }
}
