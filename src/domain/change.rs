//! One item of a requested change (field, before, after) and the masking of
//! sensitive values, by flag and by field name: no card number or secret is stored whole.

use serde::{Deserialize, Serialize};

/// One field that changes. Sensitive values are masked on the way in, so the
/// raw value is never stored, logged or spoken: values the client marked
/// `sensitive`, and values of fields whose name says they are ([`Masking::of_field`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeItem {
    /// Machine name of the field, e.g. `card_number`.
    pub field: String,
    /// What the caller hears for the field, e.g. "card on file".
    pub label: String,
    /// The value before the change; `None` when the field is being set for the first time.
    pub before: Option<String>,
    /// The value after the change; `None` when the field is being removed.
    pub after: Option<String>,
    /// True when `before` and `after` hold masked values (the last four
    /// characters, or [`SECRET_VALUE`] for a secret).
    pub sensitive: bool,
}

/// What is wrong with a change item, said so an API client can fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The JSON path of the bad field, e.g. `change[0].field`.
    pub path: String,
    /// What to do about it.
    pub message: String,
}

/// Longest label or value accepted, in characters.
const MAX_VALUE_CHARS: usize = 200;

impl ChangeItem {
    /// Builds an item from API input, masking sensitive values: by the field's
    /// name first, and to the last four characters when only `sensitive` says
    /// so. `index` names the item in error paths.
    pub fn new(
        index: usize,
        field: &str,
        label: Option<&str>,
        before: Option<&str>,
        after: Option<&str>,
        sensitive: bool,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let at = |name: &str| format!("change[{index}].{name}");
        let field_ok = !field.is_empty()
            && field.len() <= 64
            && field
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !field_ok {
            errors.push(FieldError {
                path: at("field"),
                message: "use 1 to 64 characters of a-z, 0-9 and _, like card_number".into(),
            });
        }
        for (name, value) in [("label", label), ("before", before), ("after", after)] {
            if let Some(v) = value {
                if v.chars().count() > MAX_VALUE_CHARS || v.chars().any(char::is_control) {
                    errors.push(FieldError {
                        path: at(name),
                        message: format!(
                            "use at most {MAX_VALUE_CHARS} characters and no control characters"
                        ),
                    });
                }
            }
        }
        if before.is_none() && after.is_none() {
            errors.push(FieldError {
                path: at("after"),
                message: "give before, after, or both".into(),
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let label = match label {
            Some(l) if !l.trim().is_empty() => l.trim().to_owned(),
            _ => field.replace('_', " "),
        };
        let masking = match (Masking::of_field(field), sensitive) {
            (Masking::None, true) => Masking::LastFour,
            (rule, _) => rule,
        };
        let keep = |v: Option<&str>| {
            v.map(|v| match masking {
                Masking::None => v.trim().to_owned(),
                Masking::LastFour => mask_value(v),
                Masking::Secret => SECRET_VALUE.to_owned(),
            })
        };
        Ok(ChangeItem {
            field: field.to_owned(),
            label,
            before: keep(before),
            after: keep(after),
            sensitive: masking != Masking::None,
        })
    }
}

/// What a secret's value is stored as: no character of it is kept.
pub const SECRET_VALUE: &str = "changed";

/// How the values of a change item are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Masking {
    /// As given.
    None,
    /// Every letter and digit but the last four becomes `*` ([`mask_value`]).
    LastFour,
    /// Nothing of the value is kept: it is stored as [`SECRET_VALUE`].
    Secret,
}

/// Words of a field name that make it a secret: no character is kept.
const SECRET_WORDS: &[&str] = &[
    "pin",
    "password",
    "passwd",
    "passcode",
    "passphrase",
    "cvv",
    "cvv2",
    "cvc",
    "csc",
];
/// Words of a field name that make it a number kept to its last four.
const LAST_FOUR_WORDS: &[&str] = &["card", "pan", "iban", "ssn", "routing", "aba"];
/// Pairs of adjacent words that do the same.
const LAST_FOUR_PAIRS: &[(&str, &str)] = &[
    ("account", "number"),
    ("account", "no"),
    ("account", "num"),
    ("acct", "number"),
    ("acct", "no"),
    ("acct", "num"),
    ("bank", "account"),
    ("sort", "code"),
    ("social", "security"),
    ("tax", "id"),
];

impl Masking {
    /// The masking a field name asks for, whatever the client said: the name
    /// is split into words at `_` (`new_card_number` is new, card, number).
    /// A secret is any name with a word of [`SECRET_WORDS`], or with `answer`
    /// and `security` or `secret`; last four is any other name with a word of
    /// [`LAST_FOUR_WORDS`] or two adjacent words of [`LAST_FOUR_PAIRS`].
    pub fn of_field(field: &str) -> Masking {
        let words: Vec<&str> = field.split('_').filter(|w| !w.is_empty()).collect();
        let has = |w: &str| words.contains(&w);
        if words.iter().any(|w| SECRET_WORDS.contains(w))
            || (has("answer") && (has("security") || has("secret")))
        {
            return Masking::Secret;
        }
        let pair = words
            .windows(2)
            .any(|p| LAST_FOUR_PAIRS.contains(&(p[0], p[1])));
        if pair || words.iter().any(|w| LAST_FOUR_WORDS.contains(w)) {
            return Masking::LastFour;
        }
        Masking::None
    }
}

/// Masks a sensitive value: every letter and digit but the last four becomes `*`,
/// and so does every character of a value shorter than five.
pub fn mask_value(value: &str) -> String {
    let alnum: Vec<char> = value.chars().filter(|c| c.is_alphanumeric()).collect();
    if alnum.len() <= 4 {
        return "*".repeat(alnum.len().max(4));
    }
    let keep = &alnum[alnum.len() - 4..];
    format!(
        "{}{}",
        "*".repeat(alnum.len() - 4),
        keep.iter().collect::<String>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_number_keeps_only_its_last_four_digits() {
        assert_eq!(mask_value("4111 1111 1111 1111"), "************1111");
        assert_eq!(mask_value("5500005555555559"), "************5559");
    }

    #[test]
    fn a_short_secret_is_masked_whole() {
        assert_eq!(mask_value("123"), "****");
        assert_eq!(mask_value("1234"), "****");
    }

    #[test]
    fn sensitive_items_never_hold_the_raw_value() {
        let item = ChangeItem::new(
            0,
            "card_number",
            Some("card on file"),
            Some("4111111111111111"),
            Some("5500005555555559"),
            true,
        )
        .unwrap();
        assert_eq!(item.before.as_deref(), Some("************1111"));
        assert_eq!(item.after.as_deref(), Some("************5559"));
    }

    #[test]
    fn a_missing_label_comes_from_the_field_name() {
        let item =
            ChangeItem::new(0, "email_address", None, None, Some("a@example.com"), false).unwrap();
        assert_eq!(item.label, "email address");
    }

    #[test]
    fn bad_items_name_every_bad_field() {
        let errs = ChangeItem::new(2, "Card Number", Some("x"), None, None, false).unwrap_err();
        let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["change[2].field", "change[2].after"]);
    }

    fn kept(field: &str, sensitive: bool) -> ChangeItem {
        ChangeItem::new(
            0,
            field,
            None,
            Some("4111-1111-1111-1111"),
            Some("5500005555555559"),
            sensitive,
        )
        .unwrap()
    }

    #[test]
    fn numbers_named_by_their_field_keep_their_last_four_without_the_flag() {
        for field in [
            "card",
            "card_number",
            "new_card_number",
            "credit_card",
            "pan",
            "account_number",
            "bank_account",
            "acct_no",
            "iban",
            "routing_number",
            "aba",
            "sort_code",
            "ssn",
            "social_security_number",
            "tax_id",
        ] {
            let item = kept(field, false);
            assert_eq!(item.before.as_deref(), Some("************1111"), "{field}");
            assert_eq!(item.after.as_deref(), Some("************5559"), "{field}");
            assert!(item.sensitive, "{field}");
        }
    }

    #[test]
    fn secrets_keep_no_character_at_all() {
        for field in [
            "pin",
            "new_pin",
            "password",
            "account_password",
            "passcode",
            "cvv",
            "security_answer",
            "security_question_answer",
            "secret_answer",
        ] {
            for sensitive in [false, true] {
                let item = kept(field, sensitive);
                assert_eq!(item.before.as_deref(), Some(SECRET_VALUE), "{field}");
                assert_eq!(item.after.as_deref(), Some(SECRET_VALUE), "{field}");
                assert!(item.sensitive, "{field}");
            }
        }
        let set = ChangeItem::new(0, "pin", None, None, Some("1234"), false).unwrap();
        assert_eq!((set.before, set.after.as_deref()), (None, Some("changed")));
    }

    #[test]
    fn other_fields_are_kept_unless_flagged() {
        for field in [
            "email_address",
            "plan",
            "account_owner",
            "spin_class",
            "shipping_address",
            "security_question",
            "answer",
        ] {
            let item = kept(field, false);
            assert_eq!(item.after.as_deref(), Some("5500005555555559"), "{field}");
            assert!(!item.sensitive, "{field}");
        }
        assert_eq!(
            kept("email_address", true).after.as_deref(),
            Some("************5559")
        );
    }
}
