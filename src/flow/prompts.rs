//! Prompt templates per locale: one summary per change kind (`<kind>.txt`) and
//! the call's phrases (`phrases.toml`), built in or read from a directory.
//!
//! Templates use `{{name}}` placeholders; every placeholder is checked when the
//! prompts load, so a typo fails at start-up, not in the middle of a call.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::domain::{ChangeKind, Locale};

/// The fixed phrases of one locale.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phrases {
    /// TTS voice for `<Say voice>`.
    pub voice: String,
    /// Speech recognition hints for `<Gather hints>`.
    pub hints: String,
    /// First words of the call; `{{customer_name}}`.
    pub greeting: String,
    /// The consent question, voice and keypad.
    pub question: String,
    /// The consent question, keypad only.
    pub question_keypad: String,
    /// Said before the summary is repeated.
    pub repeat: String,
    /// Said after an answer that was not understood.
    pub retry: String,
    /// Said when an agent was asked for and none is configured.
    pub no_agent: String,
    /// Said on consent; `{{confirmation_number}}`, digit by digit.
    pub confirmed: String,
    /// Said on refusal.
    pub declined: String,
    /// Said before dialling the agent.
    pub agent_transfer: String,
    /// Said when no usable answer came.
    pub no_answer: String,
    /// Said when the request already has an outcome.
    pub already_done: String,
    /// Said when the request has expired.
    pub expired: String,
    /// Said when another call holds the request.
    pub in_use: String,
    /// Said when something failed inside callproof.
    pub error: String,
    /// One changed field; `{{label}}`, `{{before}}`, `{{after}}`.
    pub item_change: String,
    /// A field set for the first time; `{{label}}`, `{{after}}`.
    pub item_set: String,
    /// A field removed; `{{label}}`, `{{before}}`.
    pub item_remove: String,
    /// How a masked value is spoken; `{{last4}}`.
    pub masked_value: String,
    /// Said when the caller disputes the request: it was not theirs.
    pub disputed: String,
    /// Said when the identity check failed on every try, before the agent
    /// transfer (or `no_agent`).
    pub locked: String,
}

/// The prompts of one locale.
#[derive(Debug, Clone)]
pub struct LocalePrompts {
    /// The locale.
    pub locale: Locale,
    /// Summary template per kind; `{{account_last4}}`, `{{changes}}`, `{{customer_name}}`.
    pub summaries: HashMap<ChangeKind, String>,
    /// The fixed phrases.
    pub phrases: Phrases,
}

/// Every locale's prompts.
#[derive(Debug, Clone)]
pub struct Prompts {
    locales: HashMap<Locale, LocalePrompts>,
}

/// A template that could not be used, named by file.
#[derive(Debug, thiserror::Error)]
#[error("prompt {file}: {reason}")]
pub struct PromptError {
    file: String,
    reason: String,
}

macro_rules! builtin {
    ($loc:literal) => {
        [
            (
                "termination",
                include_str!(concat!("../../prompts/", $loc, "/termination.txt")),
            ),
            (
                "contact",
                include_str!(concat!("../../prompts/", $loc, "/contact.txt")),
            ),
            (
                "billing",
                include_str!(concat!("../../prompts/", $loc, "/billing.txt")),
            ),
            (
                "security",
                include_str!(concat!("../../prompts/", $loc, "/security.txt")),
            ),
            (
                "plan",
                include_str!(concat!("../../prompts/", $loc, "/plan.txt")),
            ),
            (
                "communication",
                include_str!(concat!("../../prompts/", $loc, "/communication.txt")),
            ),
            (
                "access",
                include_str!(concat!("../../prompts/", $loc, "/access.txt")),
            ),
            (
                "phrases",
                include_str!(concat!("../../prompts/", $loc, "/phrases.toml")),
            ),
        ]
    };
}

fn builtin_file(locale: Locale, name: &str) -> Option<&'static str> {
    let files: [(&str, &str); 8] = match locale {
        Locale::EnUs => builtin!("en-US"),
        Locale::EsUs => builtin!("es-US"),
    };
    files.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Placeholders each template may use.
const SUMMARY_VARS: &[&str] = &["account_last4", "changes", "customer_name"];

impl Prompts {
    /// The prompts compiled into the binary.
    pub fn builtin() -> Result<Prompts, PromptError> {
        Prompts::load_with(|locale, file| {
            let name = file.rsplit_once('.').map(|(n, _)| n).unwrap_or(file);
            builtin_file(locale, name)
                .map(str::to_owned)
                .ok_or_else(|| PromptError {
                    file: format!("{locale}/{file}"),
                    reason: "missing from the build".into(),
                })
        })
    }

    /// Prompts from `dir/<locale>/<kind>.txt` and `dir/<locale>/phrases.toml`.
    pub fn from_dir(dir: &Path) -> Result<Prompts, PromptError> {
        Prompts::load_with(|locale, file| {
            let path = dir.join(locale.tag()).join(file);
            std::fs::read_to_string(&path).map_err(|e| PromptError {
                file: path.display().to_string(),
                reason: format!(
                    "cannot read it ({e}); every locale needs phrases.toml and one .txt per kind"
                ),
            })
        })
    }

    fn load_with(
        read: impl Fn(Locale, &str) -> Result<String, PromptError>,
    ) -> Result<Prompts, PromptError> {
        let mut locales = HashMap::new();
        for locale in Locale::ALL {
            let text = read(locale, "phrases.toml")?;
            let phrases: Phrases = toml::from_str(&text).map_err(|e| PromptError {
                file: format!("{locale}/phrases.toml"),
                reason: e.to_string(),
            })?;
            check_phrases(locale, &phrases)?;
            let mut summaries = HashMap::new();
            for kind in ChangeKind::ALL {
                let file = format!("{kind}.txt");
                let t = read(locale, &file)?.trim().to_owned();
                check(&format!("{locale}/{file}"), &t, SUMMARY_VARS)?;
                summaries.insert(kind, t);
            }
            locales.insert(
                locale,
                LocalePrompts {
                    locale,
                    summaries,
                    phrases,
                },
            );
        }
        Ok(Prompts { locales })
    }

    /// The prompts of `locale`.
    pub fn locale(&self, locale: Locale) -> &LocalePrompts {
        // load_with fills every locale in Locale::ALL.
        &self.locales[&locale]
    }
}

fn check_phrases(locale: Locale, p: &Phrases) -> Result<(), PromptError> {
    let f = |name: &str| format!("{locale}/phrases.toml {name}");
    let none: &[&str] = &[];
    for (name, text, vars) in [
        ("greeting", &p.greeting, &["customer_name"][..]),
        ("question", &p.question, none),
        ("question_keypad", &p.question_keypad, none),
        ("repeat", &p.repeat, none),
        ("retry", &p.retry, none),
        ("no_agent", &p.no_agent, none),
        ("confirmed", &p.confirmed, &["confirmation_number"][..]),
        ("declined", &p.declined, none),
        ("agent_transfer", &p.agent_transfer, none),
        ("no_answer", &p.no_answer, none),
        ("already_done", &p.already_done, none),
        ("expired", &p.expired, none),
        ("in_use", &p.in_use, none),
        ("error", &p.error, none),
        (
            "item_change",
            &p.item_change,
            &["label", "before", "after"][..],
        ),
        ("item_set", &p.item_set, &["label", "after"][..]),
        ("item_remove", &p.item_remove, &["label", "before"][..]),
        ("masked_value", &p.masked_value, &["last4"][..]),
        ("disputed", &p.disputed, none),
        ("locked", &p.locked, none),
    ] {
        check(&f(name), text, vars)?;
    }
    if !p.confirmed.contains("{{confirmation_number}}") {
        return Err(PromptError {
            file: f("confirmed"),
            reason: "must read back {{confirmation_number}}".into(),
        });
    }
    Ok(())
}

/// Checks that every `{{name}}` in `text` is one of `allowed`, and that it is not empty.
fn check(file: &str, text: &str, allowed: &[&str]) -> Result<(), PromptError> {
    if text.trim().is_empty() {
        return Err(PromptError {
            file: file.into(),
            reason: "is empty".into(),
        });
    }
    for name in placeholders(text) {
        if !allowed.contains(&name) {
            return Err(PromptError {
                file: file.into(),
                reason: format!("unknown placeholder {{{{{name}}}}}: use one of {allowed:?}"),
            });
        }
    }
    Ok(())
}

fn placeholders(text: &str) -> impl Iterator<Item = &str> {
    text.split("{{")
        .skip(1)
        .filter_map(|rest| rest.split_once("}}").map(|(n, _)| n.trim()))
}

/// Fills `{{name}}` placeholders from `vars`; unknown names were refused at load.
pub fn render(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let name = after[..end].trim();
                match vars.iter().find(|(n, _)| *n == name) {
                    Some((_, v)) => out.push_str(v),
                    None => out.push_str(&rest[start..start + 2 + end + 2]),
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_prompts_cover_every_locale_and_kind() {
        let p = Prompts::builtin().unwrap();
        for locale in Locale::ALL {
            for kind in ChangeKind::ALL {
                assert!(
                    p.locale(locale).summaries[&kind].contains("{{changes}}"),
                    "{locale} {kind}"
                );
            }
        }
    }

    #[test]
    fn the_prompts_directory_matches_the_builtin_set() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
        let from_dir = Prompts::from_dir(&dir).unwrap();
        let builtin = Prompts::builtin().unwrap();
        for locale in Locale::ALL {
            assert_eq!(
                from_dir.locale(locale).summaries,
                builtin.locale(locale).summaries
            );
        }
    }

    #[test]
    fn an_unknown_placeholder_fails_at_load_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
        for locale in Locale::ALL {
            let to = dir.path().join(locale.tag());
            std::fs::create_dir_all(&to).unwrap();
            for entry in std::fs::read_dir(src.join(locale.tag())).unwrap() {
                let entry = entry.unwrap();
                std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
            }
        }
        std::fs::write(dir.path().join("es-US/plan.txt"), "Cambio {{cambios}}").unwrap();
        let err = Prompts::from_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("es-US/plan.txt") && err.contains("cambios"),
            "{err}"
        );
    }

    #[test]
    fn render_fills_known_names_and_leaves_the_rest() {
        assert_eq!(
            render("a {{x}} b {{ y }} c", &[("x", "1"), ("y", "2")]),
            "a 1 b 2 c"
        );
        assert_eq!(render("{{x}} {{", &[("x", "<&>")]), "<&> {{");
    }
}
