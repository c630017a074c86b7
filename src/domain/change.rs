//! One item of a requested change (field, before, after) and the masking of
//! sensitive values: a card or account number is never stored or spoken whole.

use serde::{Deserialize, Serialize};

/// One field that changes. Sensitive values are masked on the way in, so the
/// raw value is never stored, logged or spoken.
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
    /// True when `before` and `after` hold masked values.
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
    /// Builds an item from API input, masking sensitive values. `index` names
    /// the item in error paths.
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
        let keep = |v: Option<&str>| {
            v.map(|v| {
                if sensitive {
                    mask_value(v)
                } else {
                    v.trim().to_owned()
                }
            })
        };
        Ok(ChangeItem {
            field: field.to_owned(),
            label,
            before: keep(before),
            after: keep(after),
            sensitive,
        })
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
}
