//! Consent classification: turns a caller's keypad press or spoken answer into a [`ConsentLabel`].
//! Deliberately conservative: anything ambiguous is `Unclear`, so only a clean answer is consent.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::domain::{ChangeKind, Locale};

/// What a caller's answer to a consent question means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsentLabel {
    /// The caller confirms the change.
    Affirm,
    /// The caller refuses the change.
    Deny,
    /// The caller refuses the change and says it was not their request
    /// ("I never asked for this", "that's not me"). Never consent.
    Dispute,
    /// The caller asks to hear the question again.
    Repeat,
    /// The caller asks for a human.
    Agent,
    /// Anything else; the question has to be asked again. Never consent.
    Unclear,
}

impl ConsentLabel {
    /// Every label, in a stable order.
    pub const ALL: [ConsentLabel; 6] = [
        ConsentLabel::Affirm,
        ConsentLabel::Deny,
        ConsentLabel::Dispute,
        ConsentLabel::Repeat,
        ConsentLabel::Agent,
        ConsentLabel::Unclear,
    ];

    /// The lowercase name, as used in records, in JSON and in the utterance corpus.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentLabel::Affirm => "affirm",
            ConsentLabel::Deny => "deny",
            ConsentLabel::Dispute => "dispute",
            ConsentLabel::Repeat => "repeat",
            ConsentLabel::Agent => "agent",
            ConsentLabel::Unclear => "unclear",
        }
    }
}

impl fmt::Display for ConsentLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConsentLabel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ConsentLabel::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<&str> = ConsentLabel::ALL.iter().map(|l| l.as_str()).collect();
                format!(
                    "unknown consent label {s:?}: use one of {}",
                    names.join(", ")
                )
            })
    }
}

/// The recogniser confidence below which a spoken answer is `Unclear`, whatever its words.
pub const DEFAULT_MIN_CONFIDENCE: f32 = 0.5;

/// Classifies spoken answers to "Do you confirm <the change>?".
///
/// The decision procedure, in order; the first step that decides wins:
///
/// 1. **Confidence gate.** No confidence from the provider, a NaN confidence, or a
///    confidence below `min_confidence` gives `Unclear`.
/// 2. **Tokenise.** Lowercase, curly apostrophes to `'`, accents folded (`sí` = `si`),
///    every other non-alphanumeric character is a word break. No words gives `Unclear`.
///    Words are matched whole, so `yesterday`, `nobody` or `sino` are not yes or no.
/// 3. **Short repeat requests.** The whole answer is one of a few fixed phrases
///    (`what`, `sorry what`, `pardon me`, `¿cómo?`, `mande`, ...) gives `Repeat`.
/// 4. **Words to cues.** Each word or fixed phrase of the call's locale becomes a cue
///    (yes word, consent verb, no word, negator, hedge, ...). Words of the other
///    locale are unknown: `sí` in an en-US call is not a yes. Then `absolutely not`,
///    `of course not`, `claro que no` and `confirmo que no` become refusals.
///    **Disowning:** `not me`, `wasn't me`, `no soy yo`, `no fui yo` disown the
///    request. So does a request verb (`asked for`, `requested`, `called about`,
///    `pedí`, ...) right after a negator (`never asked`, `didn't request`,
///    `no lo pedí`; only `even`, `ever`, `have` and the like, or Spanish `lo`, `me`,
///    `he`, may stand between; a present-tense verb needs `didn't`, `did not` or
///    `never`), or a past one right after `someone else`, `alguien más` or
///    `otra persona`. Any other request verb is an unknown word.
/// 5. **Agent.** An agent word (`agent`, `operator`, `customer service`, or `person`
///    with `talk`/`speak`) gives `Agent`, or `Unclear` when negated before it.
/// 6. **Repeat.** A repeat phrase (`repeat`, `say that again`, `didn't hear`,
///    `otra vez`, ...) gives `Repeat`, or `Unclear` when negated before it.
/// 7. **Hedges and questions.** A hedge (`maybe`, `I guess`, `not sure`, `hold on`,
///    `let me`, `I mean`, `but`, `if`, question words, `no problem`, `uh-huh`,
///    `tal vez`, `no sé`, ...) or a `?`/`¿` anywhere gives `Unclear`, even next to a yes.
/// 8. **Polarity.** Yes signals: yes words and consent words not negated. No signals:
///    no words, negators (`not`, `n't`, `never`, Spanish `no`), negated consent words
///    (a negator anywhere earlier; a bare yes word only right after `not`), and for a
///    termination, "keep" words, and disowning. Both kinds of signal gives
///    `Unclear`; only no signals gives `Dispute` when one of them disowns the
///    request, `Deny` otherwise. Keypad digits are never `Dispute`.
/// 9. **Clean yes.** Only yes signals gives `Affirm` when every other word is a known
///    filler or courtesy word, or an action word that fits the kind (`cancel` for a
///    termination, `change` for an update). Any unknown word, a "cancel" word for an
///    update, a "change" word for a termination or a "keep" word for an update gives
///    `Unclear`. So `I want to cancel` (no yes word) and `cancel` alone are `Unclear`.
/// 10. Otherwise `Unclear`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Classifier {
    min_confidence: f32,
}

impl Classifier {
    /// A classifier that treats recogniser confidences below `min_confidence` as `Unclear`.
    /// A NaN threshold makes every spoken answer `Unclear`.
    pub fn new(min_confidence: f32) -> Self {
        Self { min_confidence }
    }

    /// The confidence threshold this classifier was built with.
    pub fn min_confidence(&self) -> f32 {
        self.min_confidence
    }

    /// Speech: transcript as the recogniser gave it, its confidence (None when the provider
    /// sent none -> never affirm or deny, return Unclear).
    ///
    /// See [`Classifier`] for the decision procedure.
    pub fn classify_speech(
        &self,
        transcript: &str,
        confidence: Option<f32>,
        locale: Locale,
        kind: ChangeKind,
    ) -> ConsentLabel {
        let Some(confidence) = confidence else {
            return ConsentLabel::Unclear;
        };
        match confidence.partial_cmp(&self.min_confidence) {
            Some(Ordering::Greater | Ordering::Equal) => {}
            _ => return ConsentLabel::Unclear,
        }
        let words = tokenize(transcript);
        if words.is_empty() {
            return ConsentLabel::Unclear;
        }
        if is_short_repeat_request(&words, locale) {
            return ConsentLabel::Repeat;
        }
        let (mut cues, starts) = to_cues(&words, locale);
        resolve_disowning(&words, &starts, &mut cues, locale);
        resolve_complements(&mut cues);
        let is_question = transcript.contains(['?', '¿']);
        decide(&cues, kind, is_question)
    }
}

impl Default for Classifier {
    /// A classifier with [`DEFAULT_MIN_CONFIDENCE`].
    fn default() -> Self {
        Self::new(DEFAULT_MIN_CONFIDENCE)
    }
}

/// Keypad: "1" affirm, "2" deny, "9" or "*" repeat, "0" agent; anything else (several digits, "#", empty) unclear.
///
/// The digits must be exactly one of those keys: no whitespace or other characters around them.
pub fn classify_digits(digits: &str) -> ConsentLabel {
    match digits {
        "1" => ConsentLabel::Affirm,
        "2" => ConsentLabel::Deny,
        "9" | "*" => ConsentLabel::Repeat,
        "0" => ConsentLabel::Agent,
        _ => ConsentLabel::Unclear,
    }
}

/// What one word or fixed phrase contributes to the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cue {
    /// A bare yes: yes, yeah, sí. Only negated by a negator right before it.
    Yes,
    /// A yes that a following `not` / `que no` turns into a refusal: absolutely, claro.
    Intensifier,
    /// A consent verb or adjective: confirm, agree, correct, de acuerdo. Negated by any
    /// earlier negator.
    Consent,
    /// A bare English no: no, nope, nah. It does not negate what follows.
    No,
    /// A refusal: decline, incorrect, wrong, no way.
    Refusal,
    /// A negator: not, never, don't; Spanish nunca, jamás.
    Negator,
    /// Spanish `no`: a no that also negates the consent words after it.
    NoNegator,
    /// Spanish `que no` after another word; resolved before the decision.
    ThatNo,
    /// Doubt, condition, question or self-correction: maybe, but, what, tal vez.
    Hedge,
    /// A request to hear the question again.
    Repeat,
    /// A word that on its own asks for a human: agent, operator.
    AgentWord,
    /// A word that asks for a human only with a contact verb: person, someone.
    AgentPerson,
    /// talk, speak, hablar: makes `person` an agent request.
    ContactVerb,
    /// A cancel word: fine next to a yes for a termination, blocks consent for an update.
    CancelAction,
    /// A change word: fine next to a yes for an update, blocks consent for a termination.
    UpdateAction,
    /// A keep word: a refusal for a termination, blocks consent for an update.
    Keep,
    /// A verb of asking for a change: asked for, requested, pedí. Disowned by the
    /// words before it, an unknown word otherwise.
    Request,
    /// The caller says the request was not theirs: not me, I never asked for this.
    Disown,
    /// Filler, pronoun or courtesy word that changes nothing.
    Neutral,
    /// Anything not in the lexicon.
    Unknown,
}

impl Cue {
    fn is_yes_like(self) -> bool {
        matches!(self, Cue::Yes | Cue::Intensifier | Cue::Consent)
    }
}

/// Lowercases, folds accents and curly apostrophes, and splits into words.
fn tokenize(transcript: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    for c in transcript.chars().flat_map(char::to_lowercase) {
        let c = fold(c);
        if c.is_alphanumeric() || c == '\'' {
            current.push(c);
        } else {
            push_word(&mut words, &mut current);
        }
    }
    push_word(&mut words, &mut current);
    words
}

fn push_word(words: &mut Vec<String>, current: &mut String) {
    let word = current.trim_matches('\'');
    if !word.is_empty() {
        words.push(word.to_string());
    }
    current.clear();
}

/// Maps accented Latin letters to their base letter and apostrophe look-alikes to `'`.
fn fold(c: char) -> char {
    match c {
        'á' | 'à' | 'â' | 'ä' | 'ã' => 'a',
        'é' | 'è' | 'ê' | 'ë' => 'e',
        'í' | 'ì' | 'î' | 'ï' => 'i',
        'ó' | 'ò' | 'ô' | 'ö' | 'õ' => 'o',
        'ú' | 'ù' | 'û' | 'ü' => 'u',
        'ñ' => 'n',
        'ç' => 'c',
        '\u{2019}' | '\u{2018}' | '\u{02bc}' | '`' | '\u{00b4}' => '\'',
        other => other,
    }
}

/// Whole answers that are a request to repeat, though their words mean more elsewhere.
fn is_short_repeat_request(words: &[String], locale: Locale) -> bool {
    let whole = words.join(" ");
    let list: &[&str] = match locale {
        Locale::EnUs => &[
            "what",
            "huh",
            "sorry what",
            "what was that",
            "sorry what was that",
            "what did you say",
            "sorry what did you say",
            "excuse me",
            "pardon me",
            "sorry come again",
        ],
        Locale::EsUs => &[
            "que",
            "como",
            "perdon",
            "perdon que",
            "perdon como",
            "mande",
            "disculpe",
            "que dijo",
            "como dijo",
        ],
    };
    list.contains(&whole.as_str())
}

type Phrase = (&'static [&'static str], Cue);

const EN_PHRASES: &[Phrase] = &[
    (&["of", "course"], Cue::Intensifier),
    (&["that's", "right"], Cue::Consent),
    (&["thats", "right"], Cue::Consent),
    (&["that", "is", "right"], Cue::Consent),
    (&["go", "ahead"], Cue::Consent),
    (&["no", "way"], Cue::Refusal),
    (&["not", "at", "all"], Cue::Refusal),
    (&["stay", "with"], Cue::Keep),
    (&["sounds", "good"], Cue::Neutral),
    // Disowning the request, and the verbs that can disown it.
    (&["not", "me"], Cue::Disown),
    (&["wasn't", "me"], Cue::Disown),
    (&["wasnt", "me"], Cue::Disown),
    (&["isn't", "me"], Cue::Disown),
    (&["isnt", "me"], Cue::Disown),
    (&["ask", "for"], Cue::Request),
    (&["asked", "for"], Cue::Request),
    (&["call", "about"], Cue::Request),
    (&["called", "about"], Cue::Request),
    (&["call", "for"], Cue::Request),
    (&["called", "for"], Cue::Request),
    // Repeat requests.
    (&["say", "that", "again"], Cue::Repeat),
    (&["say", "it", "again"], Cue::Repeat),
    (&["say", "again"], Cue::Repeat),
    (&["come", "again"], Cue::Repeat),
    (&["again", "please"], Cue::Repeat),
    (&["one", "more", "time"], Cue::Repeat),
    (&["didn't", "hear"], Cue::Repeat),
    (&["didnt", "hear"], Cue::Repeat),
    (&["did", "not", "hear"], Cue::Repeat),
    (&["didn't", "catch"], Cue::Repeat),
    (&["didnt", "catch"], Cue::Repeat),
    (&["did", "not", "catch"], Cue::Repeat),
    (&["can't", "hear"], Cue::Repeat),
    (&["cant", "hear"], Cue::Repeat),
    (&["cannot", "hear"], Cue::Repeat),
    (&["couldn't", "hear"], Cue::Repeat),
    (&["couldnt", "hear"], Cue::Repeat),
    (&["didn't", "understand"], Cue::Repeat),
    (&["didnt", "understand"], Cue::Repeat),
    (&["did", "not", "understand"], Cue::Repeat),
    (&["don't", "understand"], Cue::Repeat),
    (&["dont", "understand"], Cue::Repeat),
    (&["do", "not", "understand"], Cue::Repeat),
    // Agent requests.
    (&["customer", "service"], Cue::AgentWord),
    (&["customer", "support"], Cue::AgentWord),
    (&["real", "person"], Cue::AgentWord),
    (&["live", "person"], Cue::AgentWord),
    // Hedges, and idioms that sound like a no but are not one.
    (&["not", "sure"], Cue::Hedge),
    (&["not", "really"], Cue::Hedge),
    (&["don't", "know"], Cue::Hedge),
    (&["dont", "know"], Cue::Hedge),
    (&["do", "not", "know"], Cue::Hedge),
    (&["don't", "think"], Cue::Hedge),
    (&["dont", "think"], Cue::Hedge),
    (&["don't", "mind"], Cue::Hedge),
    (&["dont", "mind"], Cue::Hedge),
    (&["don't", "care"], Cue::Hedge),
    (&["dont", "care"], Cue::Hedge),
    (&["no", "idea"], Cue::Hedge),
    (&["no", "problem"], Cue::Hedge),
    (&["no", "worries"], Cue::Hedge),
    (&["no", "doubt"], Cue::Hedge),
    (&["no", "question"], Cue::Hedge),
    (&["not", "a", "problem"], Cue::Hedge),
    (&["wouldn't", "say", "no"], Cue::Hedge),
    (&["wouldnt", "say", "no"], Cue::Hedge),
    (&["can't", "say", "no"], Cue::Hedge),
    (&["cant", "say", "no"], Cue::Hedge),
    (&["hold", "on"], Cue::Hedge),
    (&["hang", "on"], Cue::Hedge),
    (&["let", "me"], Cue::Hedge),
    (&["one", "moment"], Cue::Hedge),
    (&["one", "second"], Cue::Hedge),
    (&["a", "moment"], Cue::Hedge),
    (&["a", "second"], Cue::Hedge),
    (&["a", "minute"], Cue::Hedge),
    (&["never", "mind"], Cue::Hedge),
    (&["kind", "of"], Cue::Hedge),
    (&["sort", "of"], Cue::Hedge),
    (&["i", "mean"], Cue::Hedge),
    // "uh-huh" and "uh-uh" are one vowel apart and easily swapped by a recogniser.
    (&["uh", "huh"], Cue::Hedge),
    (&["uh", "uh"], Cue::Hedge),
    (&["mm", "hmm"], Cue::Hedge),
    (&["mm", "mm"], Cue::Hedge),
];

fn en_word(word: &str) -> Option<Cue> {
    let cue = match word {
        "yes" | "yeah" | "yep" | "yup" | "yea" | "sure" | "affirmative" => Cue::Yes,
        "absolutely" | "definitely" | "certainly" | "indeed" | "exactly" => Cue::Intensifier,
        "confirm" | "confirmed" | "confirming" | "agree" | "agreed" | "authorize" | "authorise"
        | "authorized" | "authorised" | "approve" | "approved" | "accept" | "accepted"
        | "consent" | "correct" | "proceed" => Cue::Consent,
        "no" | "nope" | "nah" | "negative" => Cue::No,
        "incorrect" | "wrong" | "decline" | "declined" | "refuse" | "reject" | "deny"
        | "disagree" | "unauthorized" | "unauthorised" => Cue::Refusal,
        "not" | "never" | "cannot" | "nor" | "dont" | "didnt" | "doesnt" | "isnt" | "cant"
        | "wont" | "wouldnt" | "couldnt" | "shouldnt" | "aint" | "arent" | "wasnt" | "werent"
        | "havent" | "hasnt" | "hadnt" => Cue::Negator,
        "repeat" | "pardon" => Cue::Repeat,
        "agent" | "representative" | "operator" | "human" | "supervisor" | "manager" => {
            Cue::AgentWord
        }
        "person" | "someone" | "somebody" | "anyone" | "anybody" => Cue::AgentPerson,
        "talk" | "speak" | "transfer" | "connect" => Cue::ContactVerb,
        "maybe" | "perhaps" | "possibly" | "probably" | "guess" | "suppose" | "think"
        | "unsure" | "dunno" | "wait" | "check" | "ask" | "hmm" | "hmmm" | "hm" | "mm" | "mmm"
        | "mhm" | "but" | "if" | "unless" | "except" | "although" | "though" | "or" | "whether"
        | "what" | "why" | "how" | "who" | "where" | "when" | "which" | "whatever" | "later"
        | "nevermind" | "kinda" | "sorta" | "hopefully" => Cue::Hedge,
        "cancel" | "canceled" | "cancelled" | "canceling" | "cancelling" | "cancellation"
        | "terminate" | "termination" | "disconnect" | "discontinue" | "close" | "end" => {
            Cue::CancelAction
        }
        "change" | "changes" | "changed" | "update" | "updated" | "updates" | "new" | "address"
        | "email" | "phone" | "number" | "card" | "password" | "plan" | "billing" | "contact"
        | "details" => Cue::UpdateAction,
        "keep" | "retain" | "stay" => Cue::Keep,
        "asked" | "request" | "requested" | "order" | "ordered" => Cue::Request,
        "i" | "i'm" | "im" | "i'd" | "me" | "my" | "it" | "it's" | "its" | "that" | "that's"
        | "thats" | "this" | "is" | "am" | "are" | "be" | "the" | "a" | "an" | "to" | "and"
        | "please" | "thank" | "thanks" | "you" | "very" | "much" | "so" | "well" | "oh" | "ok"
        | "okay" | "alright" | "all" | "um" | "umm" | "uh" | "er" | "erm" | "ah" | "sir"
        | "ma'am" | "maam" | "madam" | "sorry" | "do" | "does" | "want" | "would" | "like"
        | "just" | "now" | "service" | "account" | "everything" | "with" | "for" | "of"
        | "fine" => Cue::Neutral,
        _ => return None,
    };
    Some(cue)
}

const ES_PHRASES: &[Phrase] = &[
    (&["por", "supuesto"], Cue::Intensifier),
    (&["desde", "luego"], Cue::Intensifier),
    (&["de", "acuerdo"], Cue::Consent),
    (&["asi", "es"], Cue::Consent),
    (&["que", "si"], Cue::Yes),
    (&["que", "no"], Cue::ThatNo),
    (&["para", "nada"], Cue::Refusal),
    (&["de", "ninguna", "manera"], Cue::Refusal),
    (&["dar", "de", "baja"], Cue::CancelAction),
    (&["de", "baja"], Cue::CancelAction),
    (&["seguir", "con"], Cue::Keep),
    (&["me", "quedo"], Cue::Keep),
    // Disowning the request.
    (&["no", "soy", "yo"], Cue::Disown),
    (&["no", "fui", "yo"], Cue::Disown),
    (&["yo", "no", "fui"], Cue::Disown),
    (&["no", "era", "yo"], Cue::Disown),
    // Repeat requests.
    (&["otra", "vez"], Cue::Repeat),
    (&["de", "nuevo"], Cue::Repeat),
    (&["no", "escuche"], Cue::Repeat),
    (&["no", "le", "escuche"], Cue::Repeat),
    (&["no", "te", "escuche"], Cue::Repeat),
    (&["no", "oi"], Cue::Repeat),
    (&["no", "le", "oi"], Cue::Repeat),
    (&["no", "entendi"], Cue::Repeat),
    (&["no", "le", "entendi"], Cue::Repeat),
    (&["no", "te", "entendi"], Cue::Repeat),
    (&["no", "entiendo"], Cue::Repeat),
    // Agent requests.
    (&["servicio", "al", "cliente"], Cue::AgentWord),
    (&["atencion", "al", "cliente"], Cue::AgentWord),
    // Hedges, and idioms that sound like a no but are not one.
    (&["tal", "vez"], Cue::Hedge),
    (&["a", "lo", "mejor"], Cue::Hedge),
    (&["no", "se"], Cue::Hedge),
    (&["no", "lo", "se"], Cue::Hedge),
    (&["no", "estoy", "seguro"], Cue::Hedge),
    (&["no", "estoy", "segura"], Cue::Hedge),
    (&["no", "sabria"], Cue::Hedge),
    (&["por", "que"], Cue::Hedge),
    (&["no", "hay", "problema"], Cue::Hedge),
    (&["sin", "problema"], Cue::Hedge),
    (&["o", "sea"], Cue::Hedge),
];

fn es_word(word: &str) -> Option<Cue> {
    let cue =
        match word {
            "si" | "sip" | "afirmativo" => Cue::Yes,
            "claro" | "exacto" | "exactamente" => Cue::Intensifier,
            "confirmo" | "confirmado" | "correcto" | "acepto" | "autorizo" | "apruebo"
            | "proceda" | "procedan" => Cue::Consent,
            "no" => Cue::NoNegator,
            "incorrecto" | "equivocado" | "negativo" | "rechazo" => Cue::Refusal,
            "nunca" | "jamas" | "tampoco" | "ni" => Cue::Negator,
            "repita" | "repite" | "repitame" | "repiteme" | "repetir" | "repetirlo" => Cue::Repeat,
            "agente" | "representante" | "operador" | "operadora" | "supervisor"
            | "supervisora" => Cue::AgentWord,
            "persona" | "alguien" => Cue::AgentPerson,
            "hablar" | "comunicar" | "comunicarme" | "transferir" | "transfiera" | "paseme"
            | "pasar" => Cue::ContactVerb,
            "quizas" | "quiza" | "creo" | "espere" | "espera" | "momento" | "segundo"
            | "dejeme" | "dejame" | "permitame" | "pero" | "aunque" | "digo" | "como"
            | "cuanto" | "cuanta" | "cuando" | "donde" | "quien" | "cual" | "porque" | "o"
            | "mmm" | "mm" | "hmm" => Cue::Hedge,
            "cancelar" | "cancele" | "cancelen" | "cancelarlo" | "cancelarla" | "cancela"
            | "cancelacion" | "terminar" | "baja" | "desconectar" => Cue::CancelAction,
            "cambiar" | "cambio" | "cambios" | "cambien" | "actualizar" | "actualizacion"
            | "nuevo" | "nueva" | "direccion" | "correo" | "telefono" | "numero" | "tarjeta"
            | "contrasena" | "plan" => Cue::UpdateAction,
            "mantener" | "mantenerlo" | "mantenerla" | "conservar" | "conservarlo" | "quedarme" => {
                Cue::Keep
            }
            "pedi" | "pedido" | "solicite" | "solicitado" | "pidio" | "pidieron" | "solicito"
            | "solicitaron" => Cue::Request,
            "yo" | "lo" | "la" | "el" | "eso" | "esto" | "es" | "esta" | "estoy" | "que" | "de"
            | "por" | "favor" | "gracias" | "muchas" | "muy" | "bien" | "pues" | "bueno" | "eh"
            | "em" | "este" | "ok" | "okay" | "vale" | "senor" | "senora" | "senorita"
            | "quiero" | "con" | "y" | "todo" | "servicio" | "cuenta" | "mi" | "me" | "un"
            | "una" | "a" | "al" => Cue::Neutral,
            _ => return None,
        };
    Some(cue)
}

/// "I do" is a yes only as a whole answer or before a yes word, so "I do not ..."
/// and "I do have a question" stay out of it.
fn is_i_do(words: &[String], at: usize) -> bool {
    words.get(at).is_some_and(|w| w == "i")
        && words.get(at + 1).is_some_and(|w| w == "do")
        && words
            .get(at + 2)
            .is_none_or(|next| en_word(next) == Some(Cue::Yes))
}

fn phrase_at(words: &[String], at: usize, phrase: &[&str]) -> bool {
    words.len() >= at + phrase.len()
        && phrase
            .iter()
            .zip(&words[at..])
            .all(|(expected, word)| word == expected)
}

/// Maps words to cues, matching the longest fixed phrase of the locale first.
/// Returns the cues and, for each, the index of its first word.
fn to_cues(words: &[String], locale: Locale) -> (Vec<Cue>, Vec<usize>) {
    let phrases = match locale {
        Locale::EnUs => EN_PHRASES,
        Locale::EsUs => ES_PHRASES,
    };
    let mut cues = Vec::with_capacity(words.len());
    let mut starts = Vec::with_capacity(words.len());
    let mut at = 0;
    while at < words.len() {
        if locale == Locale::EnUs && is_i_do(words, at) {
            cues.extend([Cue::Neutral, Cue::Consent]);
            starts.extend([at, at + 1]);
            at += 2;
            continue;
        }
        let longest = phrases
            .iter()
            .filter(|(phrase, _)| phrase_at(words, at, phrase))
            .max_by_key(|(phrase, _)| phrase.len());
        starts.push(at);
        if let Some((phrase, cue)) = longest {
            cues.push(*cue);
            at += phrase.len();
            continue;
        }
        let word = words[at].as_str();
        let cue = match locale {
            Locale::EnUs => en_word(word).unwrap_or(if word.ends_with("n't") {
                Cue::Negator
            } else {
                Cue::Unknown
            }),
            Locale::EsUs => es_word(word).unwrap_or(Cue::Unknown),
        };
        cues.push(cue);
        at += 1;
    }
    (cues, starts)
}

/// Words that may stand between a negator (or `someone else`) and the request verb
/// it bears on: `never even asked`, `no lo he pedido`.
fn is_bridge(word: &str, locale: Locale) -> bool {
    match locale {
        Locale::EnUs => matches!(
            word,
            "even" | "ever" | "really" | "actually" | "have" | "has" | "had" | "must"
        ),
        Locale::EsUs => matches!(
            word,
            "lo" | "la" | "los" | "las" | "le" | "les" | "me" | "he" | "ha" | "hemos" | "habia"
        ),
    }
}

/// True when `before` ends with a negator of the locale.
fn ends_negated(before: &[String], locale: Locale) -> bool {
    let Some(last) = before.last() else {
        return false;
    };
    match locale {
        Locale::EnUs => en_word(last) == Some(Cue::Negator) || last.ends_with("n't"),
        Locale::EsUs => matches!(last.as_str(), "no" | "nunca" | "jamas" | "tampoco"),
    }
}

/// True when `before` ends with a negator of the past: `didn't`, `did not`, `never`.
fn ends_with_past_negator(before: &[String]) -> bool {
    match before {
        [.., last] if matches!(last.as_str(), "didn't" | "didnt" | "never") => true,
        [.., did, not] => did == "did" && not == "not",
        _ => false,
    }
}

/// True when `before` ends with someone other than the caller.
fn ends_with_someone_else(before: &[String], locale: Locale) -> bool {
    let [.., a, b] = before else {
        return false;
    };
    let pair = (a.as_str(), b.as_str());
    match locale {
        Locale::EnUs => matches!(pair, ("someone" | "somebody", "else")),
        Locale::EsUs => matches!(pair, ("alguien", "mas") | ("otra", "persona")),
    }
}

/// Turns a request verb into a disowning when the words before it say the caller
/// did not ask for the change (step 4 of [`Classifier`]); the others stay
/// `Request`, which blocks consent like an unknown word.
fn resolve_disowning(words: &[String], starts: &[usize], cues: &mut [Cue], locale: Locale) {
    for (cue, &start) in cues.iter_mut().zip(starts) {
        if *cue != Cue::Request {
            continue;
        }
        let mut from = start;
        while from > 0 && is_bridge(&words[from - 1], locale) {
            from -= 1;
        }
        let before = &words[..from];
        let verb = words[start].as_str();
        let disowned = match locale {
            Locale::EnUs if matches!(verb, "ask" | "request" | "order" | "call") => {
                ends_with_past_negator(before)
            }
            Locale::EnUs => ends_negated(before, locale) || ends_with_someone_else(before, locale),
            // Spoken by someone else: "alguien más lo pidió".
            Locale::EsUs if matches!(verb, "pidio" | "pidieron" | "solicito" | "solicitaron") => {
                ends_with_someone_else(before, locale)
            }
            // Spoken by the caller: "no lo pedí".
            Locale::EsUs if matches!(verb, "pedi" | "solicite") => ends_negated(before, locale),
            Locale::EsUs => ends_negated(before, locale) || ends_with_someone_else(before, locale),
        };
        if disowned {
            *cue = Cue::Disown;
        }
    }
}

/// Turns "absolutely not", "of course not", "claro que no" and "confirmo que no" into a
/// refusal, and a `que no` with nothing yes-like before it into a plain Spanish `no`.
fn resolve_complements(cues: &mut [Cue]) {
    for at in 0..cues.len() {
        let before = at.checked_sub(1).map(|b| cues[b]);
        match cues[at] {
            Cue::ThatNo if before.is_some_and(Cue::is_yes_like) => {
                cues[at - 1] = Cue::Refusal;
                cues[at] = Cue::Neutral;
            }
            Cue::ThatNo => cues[at] = Cue::NoNegator,
            Cue::Negator if before == Some(Cue::Intensifier) => cues[at - 1] = Cue::Refusal,
            _ => {}
        }
    }
}

/// True when a negator comes before `at`; a Spanish `no` right before it is only a no.
fn negated_before(cues: &[Cue], at: usize) -> bool {
    cues[..at].iter().enumerate().any(|(i, cue)| match cue {
        Cue::Negator => true,
        Cue::NoNegator => i + 1 < at,
        _ => false,
    })
}

/// Steps 5 to 10 of the decision procedure described on [`Classifier`].
fn decide(cues: &[Cue], kind: ChangeKind, is_question: bool) -> ConsentLabel {
    let has_contact_verb = cues.contains(&Cue::ContactVerb);
    let agent_at = cues
        .iter()
        .position(|&c| c == Cue::AgentWord || (c == Cue::AgentPerson && has_contact_verb));
    if let Some(at) = agent_at {
        return if negated_before(cues, at) {
            ConsentLabel::Unclear
        } else {
            ConsentLabel::Agent
        };
    }
    if let Some(at) = cues.iter().position(|&c| c == Cue::Repeat) {
        return if negated_before(cues, at) {
            ConsentLabel::Unclear
        } else {
            ConsentLabel::Repeat
        };
    }
    if is_question || cues.contains(&Cue::Hedge) {
        return ConsentLabel::Unclear;
    }

    let termination = kind.is_termination();
    let mut yes = false;
    let mut no = false;
    let mut disowned = false;
    let mut blocks_consent = false;
    let mut in_negation = false;
    let mut before = None;
    for &cue in cues {
        match cue {
            Cue::Yes | Cue::Intensifier => {
                if before == Some(Cue::Negator) {
                    no = true;
                } else {
                    yes = true;
                }
            }
            Cue::Consent => {
                if in_negation {
                    no = true;
                } else {
                    yes = true;
                }
            }
            Cue::No | Cue::Refusal => no = true,
            Cue::Disown => {
                no = true;
                disowned = true;
            }
            Cue::Negator | Cue::NoNegator => {
                no = true;
                in_negation = true;
            }
            Cue::Keep if termination => no = true,
            Cue::CancelAction if termination => {}
            Cue::UpdateAction if !termination => {}
            Cue::Neutral => {}
            _ => blocks_consent = true,
        }
        before = Some(cue);
    }
    match (yes, no) {
        (true, true) => ConsentLabel::Unclear,
        (false, true) if disowned => ConsentLabel::Dispute,
        (false, true) => ConsentLabel::Deny,
        (true, false) if !blocks_consent => ConsentLabel::Affirm,
        _ => ConsentLabel::Unclear,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConsentLabel::{Affirm, Agent, Deny, Dispute, Repeat, Unclear};

    const CORPUS: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/consent-utterances.tsv"
    ));

    const UPDATE_KINDS: [ChangeKind; 6] = [
        ChangeKind::Contact,
        ChangeKind::Billing,
        ChangeKind::Security,
        ChangeKind::Plan,
        ChangeKind::Communication,
        ChangeKind::Access,
    ];

    struct Row {
        line: usize,
        locale: Locale,
        kind: &'static str,
        transcript: &'static str,
        confidence: f32,
        expected: Vec<ConsentLabel>,
    }

    impl Row {
        fn kinds(&self) -> Vec<ChangeKind> {
            match self.kind {
                "termination" => vec![ChangeKind::Termination],
                "update" => UPDATE_KINDS.to_vec(),
                other => panic!("line {}: unknown kind column {other:?}", self.line),
            }
        }
    }

    fn corpus() -> Vec<Row> {
        let rows: Vec<Row> = CORPUS
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.starts_with('#') && !line.trim().is_empty())
            .filter(|(_, line)| !line.starts_with("locale\t"))
            .map(|(i, line)| {
                let cols: Vec<&str> = line.split('\t').collect();
                assert_eq!(cols.len(), 5, "line {}: want 5 columns: {line:?}", i + 1);
                Row {
                    line: i + 1,
                    locale: cols[0].parse().unwrap(),
                    kind: cols[1],
                    transcript: cols[2],
                    confidence: cols[3].parse().unwrap(),
                    expected: cols[4].split('|').map(|l| l.parse().unwrap()).collect(),
                }
            })
            .collect();
        assert!(
            rows.len() > 50,
            "corpus looks truncated: {} rows",
            rows.len()
        );
        rows
    }

    fn speech(transcript: &str, confidence: f32, locale: Locale, kind: ChangeKind) -> ConsentLabel {
        Classifier::default().classify_speech(transcript, Some(confidence), locale, kind)
    }

    fn en(transcript: &str) -> ConsentLabel {
        speech(transcript, 0.9, Locale::EnUs, ChangeKind::Termination)
    }

    fn es(transcript: &str) -> ConsentLabel {
        speech(transcript, 0.9, Locale::EsUs, ChangeKind::Termination)
    }

    /// Runs `transcript` for a termination and for every update kind.
    fn every_kind(transcript: &str, locale: Locale) -> Vec<(ChangeKind, ConsentLabel)> {
        ChangeKind::ALL
            .into_iter()
            .map(|k| (k, speech(transcript, 0.9, locale, k)))
            .collect()
    }

    fn assert_every_kind(transcript: &str, locale: Locale, want: ConsentLabel) {
        for (kind, got) in every_kind(transcript, locale) {
            assert_eq!(got, want, "{transcript:?} ({locale}, {kind})");
        }
    }

    #[test]
    fn every_corpus_row_gets_an_accepted_label() {
        let mut failures = Vec::new();
        for row in corpus() {
            for kind in row.kinds() {
                let got = speech(row.transcript, row.confidence, row.locale, kind);
                if !row.expected.contains(&got) {
                    failures.push(format!(
                        "line {}: {} {kind} {:?} @{} -> {got}, want {:?}",
                        row.line, row.locale, row.transcript, row.confidence, row.expected
                    ));
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{} failing rows:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn no_row_without_affirm_is_ever_affirm() {
        let mut failures = Vec::new();
        for row in corpus().iter().filter(|r| !r.expected.contains(&Affirm)) {
            for kind in row.kinds() {
                if speech(row.transcript, row.confidence, row.locale, kind) == Affirm {
                    failures.push(format!(
                        "line {}: {} {kind} {:?} is affirm",
                        row.line, row.locale, row.transcript
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn every_corpus_transcript_is_unclear_at_low_confidence() {
        for row in corpus() {
            for locale in Locale::ALL {
                for kind in ChangeKind::ALL {
                    let got = speech(row.transcript, 0.1, locale, kind);
                    assert_eq!(got, Unclear, "line {}: {:?}", row.line, row.transcript);
                }
            }
        }
    }

    #[test]
    fn the_confidence_threshold_is_inclusive() {
        assert_eq!(en("yes"), Affirm);
        assert_eq!(speech("yes", 0.49, Locale::EnUs, ChangeKind::Plan), Unclear);
        assert_eq!(speech("yes", 0.5, Locale::EnUs, ChangeKind::Plan), Affirm);
        assert_eq!(speech("no", 0.49, Locale::EnUs, ChangeKind::Plan), Unclear);
        let strict = Classifier::new(0.8);
        assert_eq!(strict.min_confidence(), 0.8);
        let at = |c| strict.classify_speech("yes", Some(c), Locale::EnUs, ChangeKind::Plan);
        assert_eq!(at(0.79), Unclear);
        assert_eq!(at(0.8), Affirm);
    }

    #[test]
    fn a_missing_or_nan_confidence_is_never_consent_or_refusal() {
        let c = Classifier::default();
        for text in ["yes", "I confirm", "no", "agent", "repeat"] {
            for kind in ChangeKind::ALL {
                assert_eq!(c.classify_speech(text, None, Locale::EnUs, kind), Unclear);
                let nan = c.classify_speech(text, Some(f32::NAN), Locale::EnUs, kind);
                assert_eq!(nan, Unclear);
            }
        }
        let nan_threshold = Classifier::new(f32::NAN);
        let got = nan_threshold.classify_speech("yes", Some(1.0), Locale::EnUs, ChangeKind::Plan);
        assert_eq!(got, Unclear);
    }

    #[test]
    fn empty_whitespace_and_punctuation_only_are_unclear() {
        for text in ["", "   ", "\t\n", "?!.", "¿¡...!?", "-- ,, ''", "’"] {
            assert_every_kind(text, Locale::EnUs, Unclear);
            assert_every_kind(text, Locale::EsUs, Unclear);
        }
    }

    #[test]
    fn negation_anywhere_before_a_consent_word_is_never_consent() {
        assert_eq!(en("not yes"), Deny);
        assert_eq!(en("I do not"), Deny);
        assert_eq!(en("I do not agree"), Deny);
        assert_eq!(en("I really don't confirm"), Deny);
        assert_eq!(en("I never said I confirm"), Deny);
        assert_eq!(en("that is not correct"), Deny);
        assert_eq!(en("I don’t want to cancel"), Deny, "curly apostrophe");
        assert_eq!(en("dont cancel"), Deny, "apostrophe dropped");
        assert_eq!(en("of course not"), Deny);
        assert_eq!(en("definitely not"), Deny);
        assert_eq!(en("disagree"), Deny);
    }

    #[test]
    fn a_refusal_next_to_a_standalone_yes_is_unclear() {
        // The refusal covers "confirm", but the trailing "yes" is an answer of its own:
        // the caller said both, so the question is asked again.
        assert_eq!(en("I don't confirm yes"), Unclear);
        assert_eq!(en("yes I do not confirm"), Unclear);
        assert_eq!(en("yes? no."), Unclear);
        assert_eq!(en("yes yes no"), Unclear);
        assert_eq!(en("no correct"), Unclear);
        assert_eq!(en("yes but keep my internet"), Unclear);
    }

    #[test]
    fn words_that_contain_yes_or_no_are_not_yes_or_no() {
        for text in [
            "nobody",
            "noted",
            "know",
            "nothing",
            "yesterday",
            "yessir",
            "nose",
        ] {
            assert_every_kind(text, Locale::EnUs, Unclear);
        }
        for text in ["sino", "nose", "nosotros", "sinfonia"] {
            assert_every_kind(text, Locale::EsUs, Unclear);
        }
    }

    #[test]
    fn a_yes_next_to_an_unknown_word_is_not_consent() {
        // "yesterday yes": the yes is there, but the recogniser also heard a word that has
        // no place in a consent answer, so the record would not show a clean yes.
        assert_eq!(en("yesterday yes"), Unclear);
        assert_eq!(en("yes banana"), Unclear);
        let rambling = "so my neighbour told me last week that the internet was slow \
            and the kids kept complaining about the television and the dog and then \
            my brother came over and we talked for hours and yes";
        assert_every_kind(rambling, Locale::EnUs, Unclear);
        assert_every_kind(&"yes ".repeat(5_000), Locale::EnUs, Affirm);
    }

    #[test]
    fn case_accents_and_punctuation_do_not_matter() {
        assert_eq!(en("YES, I CONFIRM!"), Affirm);
        assert_eq!(en("Yes... I Agree."), Affirm);
        assert_eq!(es("SÍ"), Affirm);
        assert_eq!(es("¡Sí, claro!"), Affirm);
        assert_eq!(es("Sí, confirmo."), Affirm);
        assert_eq!(es("CORRECTO"), Affirm);
    }

    #[test]
    fn a_question_is_never_consent() {
        assert_eq!(en("yes?"), Unclear);
        assert_eq!(es("¿sí?"), Unclear);
        assert_eq!(en("sorry, what?"), Repeat);
    }

    #[test]
    fn spanish_yes_no_mixtures_and_complements() {
        assert_eq!(es("si no"), Unclear);
        assert_eq!(es("no, sí"), Unclear);
        assert_eq!(es("sí, claro"), Affirm);
        assert_eq!(es("claro"), Affirm);
        assert_eq!(es("por supuesto"), Affirm);
        assert_eq!(es("claro que no"), Deny);
        assert_eq!(es("confirmo que no"), Deny);
        assert_eq!(es("no, no quiero"), Deny);
        assert_eq!(es("no estoy de acuerdo"), Deny);
        assert_eq!(es("creo que sí"), Unclear);
        assert_eq!(es("cómo no"), Unclear);
    }

    #[test]
    fn idioms_that_contain_no_are_unclear() {
        for text in [
            "no problem",
            "no worries",
            "not a problem",
            "why not",
            "no doubt",
        ] {
            assert_every_kind(text, Locale::EnUs, Unclear);
        }
        assert_eq!(en("I wouldn't say no"), Unclear);
        assert_eq!(es("no hay problema"), Unclear);
        assert_eq!(en("uh-huh"), Unclear, "too close to uh-uh");
        assert_eq!(en("uh-uh"), Unclear, "too close to uh-huh");
    }

    #[test]
    fn a_word_of_the_other_language_is_unclear() {
        assert_every_kind("sí", Locale::EnUs, Unclear);
        assert_every_kind("claro", Locale::EnUs, Unclear);
        assert_every_kind("yes", Locale::EsUs, Unclear);
        assert_every_kind("I confirm", Locale::EsUs, Unclear);
        assert_every_kind("no", Locale::EnUs, Deny);
        assert_every_kind("no", Locale::EsUs, Deny);
    }

    #[test]
    fn the_kind_decides_what_cancel_and_keep_mean() {
        assert_eq!(en("yes I want to cancel"), Affirm);
        assert_eq!(en("I confirm the cancellation"), Affirm);
        assert_eq!(en("I want to cancel"), Unclear, "no yes word");
        assert_eq!(en("cancel"), Unclear);
        assert_eq!(en("keep my service"), Deny);
        assert_eq!(en("yes change my plan"), Unclear);
        assert_eq!(es("sí, quiero cancelar"), Affirm);
        for kind in UPDATE_KINDS {
            let u = |t| speech(t, 0.9, Locale::EnUs, kind);
            assert_eq!(u("yes I want to cancel"), Unclear, "{kind}");
            assert_eq!(u("yes cancel it"), Unclear, "{kind}");
            assert_eq!(u("cancel"), Unclear, "{kind}");
            assert_eq!(u("keep my service"), Unclear, "{kind}");
            assert_eq!(u("yes change it"), Affirm, "{kind}");
            assert_eq!(u("don't change it"), Deny, "{kind}");
            let s = speech("sí, quiero cancelar", 0.9, Locale::EsUs, kind);
            assert_eq!(s, Unclear, "{kind}");
        }
    }

    #[test]
    fn i_do_is_a_yes_only_on_its_own() {
        assert_eq!(en("I do"), Affirm);
        assert_eq!(en("I do, yes"), Affirm);
        assert_eq!(en("yes I do"), Affirm);
        assert_eq!(en("I do have a question"), Unclear);
    }

    #[test]
    fn agent_and_repeat_requests_and_their_negations() {
        assert_eq!(en("can I speak to someone"), Agent);
        assert_eq!(en("yes, get me an operator"), Agent);
        assert_eq!(en("I don't want an agent"), Unclear);
        assert_eq!(en("someone"), Unclear, "no contact verb");
        assert_eq!(en("what was that"), Repeat);
        assert_eq!(en("one more time please"), Repeat);
        assert_eq!(en("I couldn't hear you"), Repeat);
        assert_eq!(es("no le entendí"), Repeat);
        assert_eq!(es("¿cómo?"), Repeat);
        assert_eq!(es("no, agente"), Agent);
        assert_eq!(es("no quiero hablar con un agente"), Unclear);
    }

    #[test]
    fn saying_the_request_was_not_theirs_is_a_dispute() {
        for text in [
            "I didn't ask for this",
            "I did not request this",
            "no, I never even requested that",
            "I have not asked for any change",
            "this was not ordered by me",
            "that wasn't me",
            "no no not me",
            "someone else must have asked for this",
            "I didn't call about this",
        ] {
            assert_every_kind(text, Locale::EnUs, Dispute);
        }
        for text in [
            "yo no lo pedí",
            "nunca lo he pedido",
            "no, no fui yo",
            "alguien más lo pidió",
            "otra persona lo solicitó",
            "claro que no lo pedí",
        ] {
            assert_every_kind(text, Locale::EsUs, Dispute);
        }
    }

    #[test]
    fn a_request_verb_without_a_disowning_is_no_dispute_and_no_consent() {
        // Asking for it, or a plain refusal that names a request, is not a dispute.
        assert_every_kind("yes I requested this", Locale::EnUs, Unclear);
        assert_every_kind("I asked for this", Locale::EnUs, Unclear);
        assert_every_kind("someone asked for this", Locale::EnUs, Unclear);
        assert_every_kind("don't request it", Locale::EnUs, Deny);
        assert_every_kind("I don't confirm this request", Locale::EnUs, Deny);
        assert_every_kind("no lo pidió", Locale::EsUs, Deny);
        assert_every_kind("sí, lo pedí", Locale::EsUs, Unclear);
        // A disowning with a yes, a doubt or a question is asked again.
        assert_every_kind("yes that's not me", Locale::EnUs, Unclear);
        assert_every_kind("I don't think I asked for this", Locale::EnUs, Unclear);
        assert_every_kind("that's not me?", Locale::EnUs, Unclear);
        assert_every_kind("¿no lo pedí?", Locale::EsUs, Unclear);
        // "someone else" with a contact verb is still a request for a person.
        assert_every_kind("I want to speak to someone else", Locale::EnUs, Agent);
        // Words of the other locale disown nothing.
        assert_every_kind("no soy yo", Locale::EnUs, Deny);
        assert_every_kind("not me", Locale::EsUs, Unclear);
    }

    #[test]
    fn fillers_and_acknowledgements_around_a_clear_answer_change_nothing() {
        for text in ["um yes", "well yes", "okay yes", "yes that's fine"] {
            assert_every_kind(text, Locale::EnUs, Affirm);
        }
        for text in ["uh no", "well no", "okay no"] {
            assert_every_kind(text, Locale::EnUs, Deny);
        }
        // Without a yes word they are no consent.
        for text in ["fine", "that's fine", "sounds good", "okay"] {
            assert_every_kind(text, Locale::EnUs, Unclear);
        }
        assert_every_kind("sounds good go ahead", Locale::EnUs, Affirm);
        assert_every_kind("bueno sí", Locale::EsUs, Affirm);
        assert_every_kind("bueno no", Locale::EsUs, Deny);
    }

    #[test]
    fn keypad_digits_are_never_a_dispute() {
        let keys = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "#"];
        for a in keys {
            assert_ne!(classify_digits(a), Dispute, "{a:?}");
            for b in keys {
                assert_ne!(classify_digits(&format!("{a}{b}")), Dispute, "{a}{b}");
            }
        }
        assert_eq!(classify_digits("2"), Deny, "2 declines without a dispute");
    }

    #[test]
    fn digits_map_one_key_each() {
        assert_eq!(classify_digits("1"), Affirm);
        assert_eq!(classify_digits("2"), Deny);
        assert_eq!(classify_digits("9"), Repeat);
        assert_eq!(classify_digits("*"), Repeat);
        assert_eq!(classify_digits("0"), Agent);
        for other in ["11", "12", "21", "#", "", "3", "1#", " 1", "one", "１"] {
            assert_eq!(classify_digits(other), Unclear, "{other:?}");
        }
    }

    #[test]
    fn labels_display_and_parse_lowercase() {
        for label in ConsentLabel::ALL {
            assert_eq!(label.to_string(), label.as_str());
            assert_eq!(label.to_string().parse::<ConsentLabel>().unwrap(), label);
        }
        assert_eq!("AFFIRM".parse::<ConsentLabel>().unwrap(), Affirm);
        assert!("yes".parse::<ConsentLabel>().is_err());
        assert_eq!(
            Classifier::default().min_confidence(),
            DEFAULT_MIN_CONFIDENCE
        );
    }
}
