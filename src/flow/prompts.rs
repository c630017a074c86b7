//! Prompt templates per locale: one confirmation script per change kind
//! (`<kind>.toml`) and the call's phrases (`phrases.toml`), built in or read from a directory.
//!
//! A script is the kind's summary and its ordered questions, each with a role
//! that says what a "no" to it means. Templates use `{{name}}` placeholders;
//! every script and placeholder is checked when the prompts load, so a typo
//! fails at start-up, naming its file, not in the middle of a call.

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
    /// How to answer, said after each question's words: voice and keypad.
    pub answer_choices: String,
    /// How to answer, keypad only.
    pub answer_choices_keypad: String,
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
    /// Said between two questions of a script, after a yes.
    pub next_question: String,
}

/// What a "no" to a script question means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuestionRole {
    /// "Are you the account holder?": no goes to an agent.
    Holder,
    /// "Do you authorise …?": no declines.
    Authorisation,
    /// "Do you understand …?": no hears the question's `explain` once and is
    /// asked again; a second no goes to an agent.
    Understanding,
    /// The explicit final confirmation: no declines.
    SecondConfirmation,
}

/// One question of a script.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// Stable name, kept in each answer's consent event; the same in every locale.
    pub id: String,
    /// What a "no" means.
    pub role: QuestionRole,
    /// The words asked; the summary's placeholders.
    pub text: String,
    /// Said before an `understanding` question is asked again after a no;
    /// required there, refused elsewhere.
    #[serde(default)]
    pub explain: Option<String>,
}

/// The confirmation script of one kind: summary, then questions in order.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// Read before the first question; `{{account_last4}}`, `{{changes}}`, `{{customer_name}}`.
    pub summary: String,
    /// Asked in order; only a yes to the last one confirms.
    #[serde(default)]
    pub questions: Vec<Question>,
}

/// The prompts of one locale.
#[derive(Debug, Clone)]
pub struct LocalePrompts {
    /// The locale.
    pub locale: Locale,
    /// The confirmation script of each kind.
    pub scripts: HashMap<ChangeKind, Script>,
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
                include_str!(concat!("../../prompts/", $loc, "/termination.toml")),
            ),
            (
                "contact",
                include_str!(concat!("../../prompts/", $loc, "/contact.toml")),
            ),
            (
                "billing",
                include_str!(concat!("../../prompts/", $loc, "/billing.toml")),
            ),
            (
                "security",
                include_str!(concat!("../../prompts/", $loc, "/security.toml")),
            ),
            (
                "plan",
                include_str!(concat!("../../prompts/", $loc, "/plan.toml")),
            ),
            (
                "communication",
                include_str!(concat!("../../prompts/", $loc, "/communication.toml")),
            ),
            (
                "access",
                include_str!(concat!("../../prompts/", $loc, "/access.toml")),
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

/// Placeholders a script's summary and questions may use.
const SCRIPT_VARS: &[&str] = &["account_last4", "changes", "customer_name"];

/// Most questions a script may ask.
pub const MAX_QUESTIONS: usize = 10;

/// Kinds whose script must end with a `second_confirmation` question.
pub const HIGH_RISK: [ChangeKind; 3] = [
    ChangeKind::Termination,
    ChangeKind::Security,
    ChangeKind::Access,
];

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

    /// Prompts from `dir/<locale>/<kind>.toml` and `dir/<locale>/phrases.toml`.
    pub fn from_dir(dir: &Path) -> Result<Prompts, PromptError> {
        Prompts::load_with(|locale, file| {
            let path = dir.join(locale.tag()).join(file);
            std::fs::read_to_string(&path).map_err(|e| PromptError {
                file: path.display().to_string(),
                reason: format!(
                    "cannot read it ({e}); every locale needs phrases.toml and one <kind>.toml script per kind"
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
            let mut scripts = HashMap::new();
            for kind in ChangeKind::ALL {
                let file = format!("{kind}.toml");
                let text = read(locale, &file)?;
                let script = parse_script(&format!("{locale}/{file}"), kind, &text)?;
                scripts.insert(kind, script);
            }
            locales.insert(
                locale,
                LocalePrompts {
                    locale,
                    scripts,
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
        ("answer_choices", &p.answer_choices, none),
        ("answer_choices_keypad", &p.answer_choices_keypad, none),
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
        ("next_question", &p.next_question, none),
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

/// Reads and checks the script of `kind` from `text`, the file `file`.
fn parse_script(file: &str, kind: ChangeKind, text: &str) -> Result<Script, PromptError> {
    let fail = |reason: String| PromptError {
        file: file.to_owned(),
        reason,
    };
    let mut script: Script = toml::from_str(text).map_err(|e| fail(e.to_string()))?;
    script.summary = script.summary.trim().to_owned();
    check(&format!("{file} summary"), &script.summary, SCRIPT_VARS)?;
    if script.questions.is_empty() {
        return Err(fail(
            "has no [[questions]]: a script asks at least one".into(),
        ));
    }
    if script.questions.len() > MAX_QUESTIONS {
        return Err(fail(format!(
            "has {} questions: a script asks at most {MAX_QUESTIONS}",
            script.questions.len()
        )));
    }
    let mut seen: Vec<&str> = Vec::new();
    for (n, q) in script.questions.iter_mut().enumerate() {
        let name = format!("{file} question {} ({:?})", n + 1, q.id);
        if !valid_id(&q.id) {
            return Err(PromptError {
                file: name,
                reason: "needs an id of 1 to 64 lowercase letters, digits, _ or -, starting with a letter or digit".into(),
            });
        }
        q.text = q.text.trim().to_owned();
        check(&format!("{name} text"), &q.text, SCRIPT_VARS)?;
        match (q.role, q.explain.as_mut()) {
            (QuestionRole::Understanding, Some(explain)) => {
                *explain = explain.trim().to_owned();
                check(&format!("{name} explain"), explain, SCRIPT_VARS)?;
            }
            (QuestionRole::Understanding, None) => {
                return Err(PromptError {
                    file: name,
                    reason: "is an understanding question without `explain`, said before it is asked again after a no".into(),
                });
            }
            (_, Some(_)) => {
                return Err(PromptError {
                    file: name,
                    reason: "has `explain`, which only an understanding question takes".into(),
                });
            }
            (_, None) => {}
        }
    }
    for q in &script.questions {
        if seen.contains(&q.id.as_str()) {
            return Err(fail(format!("question id {:?} is used twice", q.id)));
        }
        seen.push(&q.id);
    }
    let roles: Vec<QuestionRole> = script.questions.iter().map(|q| q.role).collect();
    if !roles.contains(&QuestionRole::Authorisation) {
        return Err(fail(
            "has no authorisation question: a script must ask for the change to be authorised"
                .into(),
        ));
    }
    let last = roles.last().copied();
    if roles[..roles.len() - 1].contains(&QuestionRole::SecondConfirmation) {
        return Err(fail(
            "has a second_confirmation question that is not the last: it is the final question"
                .into(),
        ));
    }
    if HIGH_RISK.contains(&kind) && last != Some(QuestionRole::SecondConfirmation) {
        return Err(fail(format!(
            "must end with a second_confirmation question, as {kind} is a high-risk change"
        )));
    }
    Ok(script)
}

/// Whether `id` can name a question in records: `[a-z0-9][a-z0-9_-]{0,63}`.
fn valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= 64
        && b.first().is_some_and(ok)
        && b.iter().all(|c| ok(c) || *c == b'_' || *c == b'-')
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
    fn the_builtin_scripts_cover_every_locale_and_kind_with_the_same_questions() {
        let p = Prompts::builtin().unwrap();
        for kind in ChangeKind::ALL {
            let en = &p.locale(Locale::EnUs).scripts[&kind];
            for locale in Locale::ALL {
                let script = &p.locale(locale).scripts[&kind];
                assert!(script.summary.contains("{{changes}}"), "{locale} {kind}");
                let ids = |s: &Script| -> Vec<(String, QuestionRole)> {
                    s.questions.iter().map(|q| (q.id.clone(), q.role)).collect()
                };
                assert_eq!(
                    ids(script),
                    ids(en),
                    "{locale} {kind}: the questions differ"
                );
            }
        }
        let roles = |kind| -> Vec<QuestionRole> {
            let s = &p.locale(Locale::EnUs).scripts[&kind];
            s.questions.iter().map(|q| q.role).collect()
        };
        use QuestionRole::*;
        assert_eq!(
            roles(ChangeKind::Termination),
            [Holder, Authorisation, Understanding, SecondConfirmation]
        );
        for kind in HIGH_RISK {
            assert_eq!(roles(kind).last(), Some(&SecondConfirmation), "{kind}");
        }
        assert_eq!(roles(ChangeKind::Billing), [Authorisation]);
    }

    #[test]
    fn the_spanish_prompts_are_translated() {
        let p = Prompts::builtin().unwrap();
        let (en, es) = (p.locale(Locale::EnUs), p.locale(Locale::EsUs));
        for kind in ChangeKind::ALL {
            let (a, b) = (&en.scripts[&kind], &es.scripts[&kind]);
            assert_ne!(a.summary, b.summary, "{kind}");
            assert!(b.summary.contains("cuenta"), "{kind}: {}", b.summary);
            for (qa, qb) in a.questions.iter().zip(&b.questions) {
                assert_ne!(qa.text, qb.text, "{kind} {}", qa.id);
                assert!(qb.text.contains('¿'), "{kind}: {}", qb.text);
                assert_eq!(
                    qa.explain.is_some(),
                    qb.explain.is_some(),
                    "{kind} {}",
                    qa.id
                );
                if let (Some(x), Some(y)) = (&qa.explain, &qb.explain) {
                    assert_ne!(x, y, "{kind} {}", qa.id);
                }
            }
        }
        assert_ne!(en.phrases.answer_choices, es.phrases.answer_choices);
        assert_ne!(en.phrases.next_question, es.phrases.next_question);
        assert_eq!(es.phrases.voice, "Polly.Lupe");
    }

    #[test]
    fn the_prompts_directory_matches_the_builtin_set() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
        let from_dir = Prompts::from_dir(&dir).unwrap();
        let builtin = Prompts::builtin().unwrap();
        for locale in Locale::ALL {
            assert_eq!(
                from_dir.locale(locale).scripts,
                builtin.locale(locale).scripts
            );
        }
    }

    /// A copy of the shipped prompts in a temporary directory.
    fn copied() -> tempfile::TempDir {
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
        dir
    }

    /// The error of loading the shipped prompts with `file` written as `text`.
    fn load_error(file: &str, text: &str) -> String {
        let dir = copied();
        std::fs::write(dir.path().join(file), text).unwrap();
        Prompts::from_dir(dir.path()).unwrap_err().to_string()
    }

    const AUTHORISE: &str =
        "[[questions]]\nid = \"ok\"\nrole = \"authorisation\"\ntext = \"Do you confirm?\"\n";

    #[test]
    fn a_custom_directory_with_its_own_script_is_used() {
        let dir = copied();
        let script = format!("summary = \"Plan change: {{{{changes}}}}\"\n{AUTHORISE}");
        std::fs::write(dir.path().join("en-US/plan.toml"), script).unwrap();
        let p = Prompts::from_dir(dir.path()).unwrap();
        let plan = &p.locale(Locale::EnUs).scripts[&ChangeKind::Plan];
        assert_eq!(plan.summary, "Plan change: {{changes}}");
        assert_eq!(plan.questions[0].id, "ok");
    }

    #[test]
    fn an_unknown_placeholder_fails_at_load_naming_the_file() {
        let err = load_error(
            "es-US/plan.toml",
            &format!("summary = \"Cambio {{{{cambios}}}}\"\n{AUTHORISE}"),
        );
        assert!(
            err.contains("es-US/plan.toml") && err.contains("cambios"),
            "{err}"
        );
        let err = load_error(
            "en-US/plan.toml",
            "summary = \"{{changes}}\"\n[[questions]]\nid = \"a\"\nrole = \"authorisation\"\ntext = \"Fee {{fee}}?\"\n",
        );
        assert!(
            err.contains("en-US/plan.toml question 1") && err.contains("fee"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_script_fails_at_load_naming_the_file_and_the_fault() {
        let q = |id: &str, role: &str| {
            format!("[[questions]]\nid = \"{id}\"\nrole = \"{role}\"\ntext = \"Yes?\"\n")
        };
        let head = "summary = \"{{changes}}\"\n";
        let cases = [
            ("unknown role", format!("{head}{}", q("a", "witness")), "witness"),
            (
                "missing id",
                format!("{head}[[questions]]\nrole = \"authorisation\"\ntext = \"Yes?\"\n"),
                "missing field `id`",
            ),
            ("empty id", format!("{head}{}", q("", "authorisation")), "needs an id"),
            ("id with spaces", format!("{head}{}", q("a b", "authorisation")), "needs an id"),
            (
                "duplicate id",
                format!("{head}{}{}", q("same", "holder"), q("same", "authorisation")),
                "\"same\" is used twice",
            ),
            ("no questions", head.to_owned(), "has no [[questions]]"),
            ("no authorisation", format!("{head}{}", q("h", "holder")), "no authorisation"),
            (
                "understanding without explain",
                format!("{head}{}{}", q("u", "understanding"), q("a", "authorisation")),
                "without `explain`",
            ),
            (
                "explain on another role",
                format!("{head}[[questions]]\nid = \"a\"\nrole = \"authorisation\"\ntext = \"Yes?\"\nexplain = \"So.\"\n"),
                "only an understanding question",
            ),
            (
                "second confirmation before the end",
                format!("{head}{}{}", q("s", "second_confirmation"), q("a", "authorisation")),
                "not the last",
            ),
            ("unknown field", format!("{head}colour = \"red\"\n{}", q("a", "authorisation")), "colour"),
            ("empty summary", format!("summary = \" \"\n{}", q("a", "authorisation")), "is empty"),
        ];
        for (what, text, want) in cases {
            let err = load_error("en-US/plan.toml", &text);
            assert!(err.contains("en-US/plan.toml"), "{what}: {err}");
            assert!(err.contains(want), "{what}: {err}");
        }
        // A high-risk kind must end with a second confirmation.
        let err = load_error(
            "es-US/security.toml",
            &format!("{head}{}", q("a", "authorisation")),
        );
        assert!(
            err.contains("es-US/security.toml") && err.contains("second_confirmation"),
            "{err}"
        );
        // The old summary-only file is no longer read.
        let dir = copied();
        std::fs::remove_file(dir.path().join("en-US/billing.toml")).unwrap();
        std::fs::write(dir.path().join("en-US/billing.txt"), "{{changes}}").unwrap();
        let err = Prompts::from_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("billing.toml") && err.contains("cannot read it"),
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
