//! What a caller of the inbound number hears before a request is theirs: the
//! language menu, the account number and secret prompts, the endings. Pure code.
//!
//! Nothing rendered here depends on whose request was found: every prompt is
//! a fixed phrase of `prompts/<locale>/inbound.toml`, or a knowledge
//! question's own words. The change itself is heard only through [`super::Flow`].

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::prompts::{render, Prompts};
use crate::domain::{ChangeKind, Locale, PhoneNumber};
use crate::twiml::{Dial, Gather, GatherInput, Recording, Response, Say, SpeechTimeout, Start};

/// Path of the inbound number's Voice URL.
pub const INCOMING_PATH: &str = "/voice/incoming";
/// Path of every later step of an inbound call.
pub const INBOUND_PATH: &str = "/voice/inbound";
/// Path of an inbound call's recording status callback.
pub const INBOUND_RECORDING_PATH: &str = "/voice/inbound/recording";

/// The fixed phrases of one locale's inbound call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundPhrases {
    /// The recording notice and this language's menu entry, in this language.
    pub menu: String,
    /// The key that picks this language.
    pub menu_digit: String,
    /// Words that pick this language by voice, comma-separated.
    pub menu_words: String,
    /// Asks for the account number.
    pub account: String,
    /// No single request was found for the account number.
    pub not_found: String,
    /// Asks for the PIN.
    pub pin: String,
    /// Asks for the one-time code.
    pub otp: String,
    /// Asks a knowledge question; `{{prompt}}` is its words.
    pub kba: String,
    /// A wrong, partial or missing answer: the same words whatever the cause.
    pub no_match: String,
    /// The check passed.
    pub verified: String,
    /// Every try was used.
    pub locked: String,
    /// Nothing to confirm was found.
    pub no_request: String,
    /// Before the transfer to an agent.
    pub agent: String,
    /// Ends a call that has nowhere to go.
    pub goodbye: String,
    /// After a check that opened several requests: how many (`{{count}}`).
    pub choices: String,
    /// One entry of that menu: `{{change}}` is the kind's name in `changes`,
    /// `{{digit}}` its key.
    pub choice: String,
    /// The name of each kind of change, said in that menu.
    pub changes: HashMap<ChangeKind, String>,
}

fn builtin(locale: Locale) -> &'static str {
    match locale {
        Locale::EnUs => include_str!("../../prompts/en-US/inbound.toml"),
        Locale::EsUs => include_str!("../../prompts/es-US/inbound.toml"),
    }
}

/// One locale's inbound phrases with the voice they are said in.
#[derive(Debug, Clone)]
pub struct InboundLocale {
    /// The locale.
    pub locale: Locale,
    /// Its voice (from `phrases.toml`).
    pub voice: String,
    /// Its phrases.
    pub phrases: InboundPhrases,
}

/// Every locale's inbound phrases.
#[derive(Debug, Clone)]
pub struct InboundPrompts {
    locales: HashMap<Locale, InboundLocale>,
}

impl InboundPrompts {
    /// The phrases from `dir/<locale>/inbound.toml` when `dir` is given, else
    /// the built-in ones; voices from `prompts`.
    pub fn load(prompts: &Prompts, dir: Option<&Path>) -> Result<Self, String> {
        let mut locales = HashMap::new();
        for locale in Locale::ALL {
            let (name, text) = match dir {
                Some(d) => {
                    let path = d.join(locale.tag()).join("inbound.toml");
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| format!("prompt {}: cannot read it ({e})", path.display()))?;
                    (path.display().to_string(), text)
                }
                None => (
                    format!("{}/inbound.toml", locale.tag()),
                    builtin(locale).to_owned(),
                ),
            };
            let phrases: InboundPhrases =
                toml::from_str(&text).map_err(|e| format!("prompt {name}: {e}"))?;
            check(&name, &phrases)?;
            locales.insert(
                locale,
                InboundLocale {
                    locale,
                    voice: prompts.locale(locale).phrases.voice.clone(),
                    phrases,
                },
            );
        }
        let digits: Vec<&str> = locales
            .values()
            .map(|l| l.phrases.menu_digit.as_str())
            .collect();
        if digits
            .iter()
            .enumerate()
            .any(|(i, d)| digits[..i].contains(d))
        {
            return Err("prompt inbound.toml: two languages share one menu_digit".into());
        }
        Ok(InboundPrompts { locales })
    }

    /// The phrases of `locale`.
    pub fn locale(&self, locale: Locale) -> &InboundLocale {
        // load fills every locale in Locale::ALL.
        &self.locales[&locale]
    }

    /// The language a menu answer picks: by key, or by a word of its list.
    pub fn language_of(&self, digits: Option<&str>, speech: Option<&str>) -> Option<Locale> {
        let found = Locale::ALL.into_iter().find(|l| {
            let p = &self.locale(*l).phrases;
            match (digits, speech) {
                (Some(d), _) => d.trim() == p.menu_digit,
                (None, Some(t)) => {
                    let t = t.trim().trim_end_matches(['.', '!', '?']).to_lowercase();
                    p.menu_words.split(',').any(|w| w.trim() == t)
                }
                (None, None) => false,
            }
        });
        found
    }

    /// The first answer to an inbound call: start the whole-call recording,
    /// then the notice and the language menu in every language.
    pub fn menu(&self, language_url: &str, recording_url: &str, timeout_secs: u32) -> Response {
        let recording = Recording::new()
            .recording_status_callback(recording_url)
            .recording_status_callback_method("POST")
            .recording_status_callback_event("completed")
            .recording_channels("dual")
            .track("both")
            .trim("do-not-trim");
        let hints: Vec<String> = Locale::ALL
            .iter()
            .flat_map(|l| {
                self.locale(*l)
                    .phrases
                    .menu_words
                    .split(',')
                    .map(|w| w.trim().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut gather = Gather::new()
            .input(GatherInput::DtmfSpeech)
            .num_digits(1)
            .timeout(timeout_secs)
            .speech_timeout(SpeechTimeout::Auto)
            .language(Locale::EnUs.tag())
            .hints(hints)
            .action(language_url)
            .method("POST")
            .action_on_empty_result(true);
        for l in Locale::ALL {
            gather = gather.say(self.say(l, self.locale(l).phrases.menu.as_str()));
        }
        Response::new()
            .start(Start::new().recording(recording))
            .gather(gather)
    }

    /// `text` in `locale`'s voice.
    pub fn say(&self, locale: Locale, text: impl Into<String>) -> Say {
        Say::new(text)
            .voice(self.locale(locale).voice.as_str())
            .language(locale.tag())
    }

    /// A keypad-only entry ended by `#`, after `before` and the prompt `ask`.
    /// Speech is not accepted: secrets are never spoken.
    pub fn keypad(
        &self,
        locale: Locale,
        before: &[&str],
        ask: &str,
        action: &str,
        timeout_secs: u32,
    ) -> Response {
        let gather = self.keypad_gather(locale, before, action, timeout_secs, |g| {
            g.finish_on_key("#")
        });
        Response::new().gather(gather.say(self.say(locale, ask)))
    }

    /// A keypad-only `<Gather>` posting to `action` (empty results too),
    /// saying `before`; `ends` sets how an entry ends (`#`, or a digit count).
    fn keypad_gather(
        &self,
        locale: Locale,
        before: &[&str],
        action: &str,
        timeout_secs: u32,
        ends: impl FnOnce(Gather) -> Gather,
    ) -> Gather {
        let mut gather = ends(Gather::new().input(GatherInput::Dtmf))
            .timeout(timeout_secs)
            .action(action)
            .method("POST")
            .action_on_empty_result(true);
        for b in before {
            gather = gather.say(self.say(locale, *b));
        }
        gather
    }

    /// The menu of the requests a passed check opened: `kinds` in order, the
    /// first on key 1. One keypad digit, no speech: the caller's answer picks
    /// the change, so it must be unambiguous.
    pub fn choose(
        &self,
        locale: Locale,
        before: &[&str],
        kinds: &[ChangeKind],
        action: &str,
        timeout_secs: u32,
    ) -> Response {
        let p = &self.locale(locale).phrases;
        let count = kinds.len().to_string();
        let mut gather =
            self.keypad_gather(locale, before, action, timeout_secs, |g| g.num_digits(1));
        gather = gather.say(self.say(locale, render(&p.choices, &[("count", &count)])));
        for (i, kind) in kinds.iter().enumerate() {
            let digit = (i + 1).to_string();
            let change = p.changes.get(kind).map_or("", String::as_str);
            gather = gather.say(self.say(
                locale,
                render(&p.choice, &[("change", change), ("digit", &digit)]),
            ));
        }
        Response::new().gather(gather)
    }

    /// The prompt of knowledge question `prompt`.
    pub fn kba_prompt(&self, locale: Locale, prompt: &str) -> String {
        render(&self.locale(locale).phrases.kba, &[("prompt", prompt)])
    }

    /// Says `texts`, then transfers to the agent number, or says goodbye and
    /// hangs up when there is none.
    pub fn to_agent(
        &self,
        locale: Locale,
        texts: &[&str],
        agent: Option<&PhoneNumber>,
    ) -> Response {
        let p = &self.locale(locale).phrases;
        let mut r = Response::new();
        for t in texts {
            r = r.say(self.say(locale, *t));
        }
        match agent {
            Some(n) => r
                .say(self.say(locale, p.agent.as_str()))
                .dial(Dial::new(n.as_str())),
            None => r.say(self.say(locale, p.goodbye.as_str())).hangup(),
        }
    }
}

fn check(name: &str, p: &InboundPhrases) -> Result<(), String> {
    let fixed = [
        ("menu", &p.menu),
        ("account", &p.account),
        ("not_found", &p.not_found),
        ("pin", &p.pin),
        ("otp", &p.otp),
        ("no_match", &p.no_match),
        ("verified", &p.verified),
        ("locked", &p.locked),
        ("no_request", &p.no_request),
        ("agent", &p.agent),
        ("goodbye", &p.goodbye),
    ];
    for (field, text) in fixed {
        if text.trim().is_empty() || text.contains("{{") {
            return Err(format!(
                "prompt {name} {field}: must be a fixed, non-empty phrase (no {{{{placeholders}}}}: nothing about a request is said before its check)"
            ));
        }
    }
    let rest = p.kba.replace("{{prompt}}", "");
    if !p.kba.contains("{{prompt}}") || rest.contains("{{") {
        return Err(format!(
            "prompt {name} kba: must contain {{{{prompt}}}} and no other placeholder"
        ));
    }
    if p.menu_digit.len() != 1 || !p.menu_digit.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("prompt {name} menu_digit: use one digit"));
    }
    only_placeholders(name, "choices", &p.choices, &["count"])?;
    only_placeholders(name, "choice", &p.choice, &["change", "digit"])?;
    for kind in ChangeKind::ALL {
        if p.changes.get(&kind).is_none_or(|c| c.trim().is_empty()) {
            return Err(format!(
                "prompt {name} changes: name the kind {kind} (one phrase per kind of change)"
            ));
        }
    }
    Ok(())
}

/// `text` is non-empty and uses each of `names` as `{{name}}`, and nothing else.
fn only_placeholders(name: &str, field: &str, text: &str, names: &[&str]) -> Result<(), String> {
    let mut rest = text.to_owned();
    for n in names {
        let p = format!("{{{{{n}}}}}");
        if !rest.contains(&p) {
            return Err(format!("prompt {name} {field}: must contain {p}"));
        }
        rest = rest.replace(&p, "");
    }
    if rest.trim().is_empty() || rest.contains("{{") {
        return Err(format!(
            "prompt {name} {field}: use only the placeholders {names:?}, around words"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompts() -> InboundPrompts {
        InboundPrompts::load(&Prompts::builtin().unwrap(), None).unwrap()
    }

    #[test]
    fn the_menu_records_first_and_names_each_language_in_its_own_voice() {
        let p = prompts();
        let xml = p
            .menu(
                "https://cp.example.com/voice/inbound?t=x",
                "https://cp.example.com/voice/inbound/recording?t=y",
                6,
            )
            .to_xml();
        let start = xml.find("<Start>").unwrap();
        assert!(start < xml.find("<Gather").unwrap(), "{xml}");
        assert!(xml.contains("English") && xml.contains("español"), "{xml}");
        assert!(xml.contains(r#"language="es-US""#) && xml.contains(r#"language="en-US""#));
        assert!(
            xml.contains("recorded") && xml.contains("se graba"),
            "{xml}"
        );
    }

    #[test]
    fn the_language_is_picked_by_key_or_word() {
        let p = prompts();
        assert_eq!(p.language_of(Some("1"), None), Some(Locale::EnUs));
        assert_eq!(p.language_of(Some("2"), None), Some(Locale::EsUs));
        assert_eq!(p.language_of(None, Some("Español.")), Some(Locale::EsUs));
        assert_eq!(p.language_of(None, Some("english")), Some(Locale::EnUs));
        assert_eq!(p.language_of(Some("7"), None), None);
        assert_eq!(p.language_of(None, Some("yes")), None);
    }

    #[test]
    fn secret_entries_take_the_keypad_only_and_end_at_pound() {
        let p = prompts();
        let xml = p
            .keypad(
                Locale::EnUs,
                &[],
                &p.locale(Locale::EnUs).phrases.pin,
                "https://x/voice/inbound?t=z",
                8,
            )
            .to_xml();
        assert!(
            xml.contains(r#"input="dtmf""#) && xml.contains(r##"finishOnKey="#""##),
            "{xml}"
        );
        assert!(
            !xml.contains("speechTimeout") && xml.contains("PIN"),
            "{xml}"
        );
        let es = &p.locale(Locale::EsUs).phrases;
        assert!(
            es.pin.contains("PIN")
                && es.otp.contains("código")
                && es.account.contains("número de cuenta")
        );
    }

    #[test]
    fn a_placeholder_in_a_fixed_phrase_is_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        for l in Locale::ALL {
            std::fs::create_dir_all(dir.path().join(l.tag())).unwrap();
            std::fs::write(dir.path().join(l.tag()).join("inbound.toml"), builtin(l)).unwrap();
        }
        let bad = builtin(Locale::EnUs).replace(
            "We could not find a request",
            "{{customer_name}}, we could not find a request",
        );
        std::fs::write(dir.path().join("en-US").join("inbound.toml"), bad).unwrap();
        let err = InboundPrompts::load(&Prompts::builtin().unwrap(), Some(dir.path())).unwrap_err();
        assert!(err.contains("not_found"), "{err}");
    }

    #[test]
    fn the_choice_menu_names_each_kind_on_its_own_key_and_takes_one_digit() {
        let p = prompts();
        let xml = p
            .choose(
                Locale::EsUs,
                &["Gracias."],
                &[ChangeKind::Billing, ChangeKind::Termination],
                "https://cp.example.com/voice/inbound?t=x",
                5,
            )
            .to_xml();
        assert!(xml.contains("Tiene 2 cambios por confirmar."), "{xml}");
        assert!(
            xml.contains("Para el cambio de sus datos de facturación, oprima 1."),
            "{xml}"
        );
        assert!(
            xml.contains("Para la cancelación de un servicio, oprima 2."),
            "{xml}"
        );
        assert!(xml.contains(r#"numDigits="1""#), "{xml}");
        assert!(xml.contains(r#"input="dtmf""#), "{xml}");
        assert!(xml.contains(r#"language="es-US""#), "{xml}");
    }

    #[test]
    fn a_choice_phrase_without_its_placeholders_or_a_kind_without_a_name_is_refused() {
        let base = include_str!("../../prompts/en-US/inbound.toml");
        let no_digit = base.replace(", press {{digit}}.", ".");
        let p: InboundPhrases = toml::from_str(&no_digit).unwrap();
        assert!(check("x", &p).unwrap_err().contains("{{digit}}"));
        let no_plan = base.replace("plan = \"the change of your plan\"\n", "");
        let p: InboundPhrases = toml::from_str(&no_plan).unwrap();
        assert!(check("x", &p).unwrap_err().contains("plan"));
    }
}
