//! The consent dialogue: what the caller hears at each step and where each
//! answer leads. Pure code: it renders TwiML and decides, the HTTP layer stores.
//!
//! The opening starts the recording, reads the change and asks the first
//! question of the kind's script. An affirm to the last question confirms; an
//! affirm to an earlier one moves to the next. A deny follows the question's
//! role: `authorisation` and `second_confirmation` decline, `holder` goes to an
//! agent, `understanding` is explained once and asked again, then goes to an
//! agent. A repeat re-reads the change and the question; an unclear answer is
//! asked again, after two misses by keypad only, after three it goes to an
//! agent or ends as `no_answer`, counted per question. Nothing but an affirm
//! to the last question ever confirms.

pub mod consent;
pub mod inbound;
pub mod prompts;
pub mod token;

use time::{Duration, OffsetDateTime};

use crate::confirmations::{ConfirmationRequest, Outcome};
use crate::domain::{ChangeItem, ConfirmationId, PhoneNumber};
use crate::twiml::{Dial, Gather, GatherInput, Recording, Response, Say, SpeechTimeout, Start};
use consent::ConsentLabel;
use prompts::{render, LocalePrompts, Question, QuestionRole, Script};
use token::{FlowToken, Preface, Purpose, StepState, TokenSigner};

/// Unusable answers to one question before the call goes to an agent or ends as `no_answer`.
pub const MAX_MISSES: u8 = 3;
/// Misses after which only the keypad is accepted.
pub const KEYPAD_AFTER_MISSES: u8 = 2;
/// Repeats of one question granted before a further repeat request counts as a miss.
pub const MAX_REPEATS: u8 = 3;

/// Builds the callback URLs of a flow, each with a fresh signed token.
#[derive(Clone)]
pub struct Links<'a> {
    /// Public base URL, no trailing slash.
    pub base: &'a str,
    /// Token signer.
    pub signer: &'a TokenSigner,
    /// The time tokens are minted at.
    pub now: OffsetDateTime,
    /// Life of an answer token.
    pub step_ttl: Duration,
    /// Life of the recording callback token.
    pub recording_ttl: Duration,
}

/// Path of the transfer URL.
pub const START_PATH: &str = "/voice/start";
/// Path of the consent question's action.
pub const ANSWER_PATH: &str = "/voice/answer";
/// Path of the recording status callback.
pub const RECORDING_PATH: &str = "/voice/recording";
/// Path of the call status callback.
pub const STATUS_PATH: &str = "/voice/status";

impl Links<'_> {
    fn url(&self, path: &str, token: &FlowToken) -> String {
        format!("{}{path}?t={}", self.base, self.signer.sign(token))
    }

    /// The transfer URL of a request, valid until `expires` plus a day, so a
    /// late transfer still hears "expired" rather than an error.
    pub fn start_url(&self, id: &ConfirmationId, expires: OffsetDateTime) -> String {
        let token = FlowToken {
            purpose: Purpose::Start,
            confirmation_id: id.clone(),
            state: StepState::default(),
            expires: (expires + Duration::days(1)).unix_timestamp(),
        };
        self.url(START_PATH, &token)
    }

    fn answer_url(&self, id: &ConfirmationId, state: StepState) -> String {
        let token = FlowToken {
            purpose: Purpose::Answer,
            confirmation_id: id.clone(),
            state,
            expires: (self.now + self.step_ttl).unix_timestamp(),
        };
        self.url(ANSWER_PATH, &token)
    }

    fn recording_url(&self, id: &ConfirmationId) -> String {
        let token = FlowToken {
            purpose: Purpose::Recording,
            confirmation_id: id.clone(),
            state: StepState::default(),
            expires: (self.now + self.recording_ttl).unix_timestamp(),
        };
        self.url(RECORDING_PATH, &token)
    }
}

/// A short message that ends the call without a question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The request already has an outcome.
    AlreadyDone,
    /// The request expired before the call came.
    Expired,
    /// Another call holds the request.
    InUse,
    /// Something failed inside callproof.
    Error,
}

/// Where an answer leads, before anything is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Ask the question of this state.
    Ask(StepState),
    /// The dialogue ends with this outcome.
    End(Outcome),
}

/// What an answer leads to.
#[derive(Debug, Clone)]
pub struct Next {
    /// The outcome to store, if the dialogue ends here.
    pub outcome: Option<Outcome>,
    /// What the caller hears next.
    pub response: Response,
}

/// One request's dialogue.
pub struct Flow<'a> {
    /// The request being confirmed.
    pub request: &'a ConfirmationRequest,
    /// Its locale's prompts.
    pub prompts: &'a LocalePrompts,
    /// URL builder.
    pub links: Links<'a>,
    /// Where "agent" goes, if anywhere.
    pub agent_number: Option<&'a PhoneNumber>,
    /// Seconds of silence that end a question.
    pub gather_timeout_secs: u32,
}

/// Spells digits one by one for a speech engine: `1234` -> `1, 2, 3, 4`.
pub fn spell_digits(text: &str) -> String {
    text.chars()
        .map(String::from)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `text` with its first letter in upper case, so each item reads as a sentence.
fn sentence(text: String) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => text,
    }
}

/// The last four letters or digits of an account id, spelled out.
fn account_last4(account_id: &str) -> String {
    let alnum: Vec<char> = account_id.chars().filter(|c| c.is_alphanumeric()).collect();
    let tail: String = alnum[alnum.len().saturating_sub(4)..].iter().collect();
    spell_digits(&tail)
}

impl Flow<'_> {
    fn say(&self, text: impl Into<String>) -> Say {
        Say::new(text)
            .voice(self.prompts.phrases.voice.as_str())
            .language(self.prompts.locale.tag())
    }

    fn spoken_value(&self, item: &ChangeItem, value: &str) -> String {
        if item.sensitive {
            let last: Vec<char> = value.chars().collect();
            let last4: String = last[last.len().saturating_sub(4)..].iter().collect();
            if value == crate::domain::SECRET_VALUE || last4.chars().all(|c| c == '*') {
                return render(&self.prompts.phrases.masked_value, &[("last4", "")])
                    .trim()
                    .to_owned();
            }
            render(
                &self.prompts.phrases.masked_value,
                &[("last4", &spell_digits(&last4))],
            )
        } else {
            value.to_owned()
        }
    }

    /// The confirmation script of the request's kind.
    pub fn script(&self) -> &Script {
        // load_with fills a script for every kind in ChangeKind::ALL.
        &self.prompts.scripts[&self.request.kind]
    }

    /// The script question `state` is at; `None` for an index past the
    /// script's end, which no token this server signs holds.
    pub fn current(&self, state: &StepState) -> Option<&Question> {
        self.script().questions.get(usize::from(state.question))
    }

    /// The id of the script question `state` is at.
    pub fn question_id(&self, state: &StepState) -> Option<&str> {
        self.current(state).map(|q| q.id.as_str())
    }

    /// A script template with the request's values filled in.
    fn render_script(&self, template: &str) -> String {
        let p = &self.prompts.phrases;
        let items: Vec<String> = self
            .request
            .change
            .iter()
            .map(|item| {
                let label = item.label.as_str();
                match (&item.before, &item.after) {
                    (Some(b), Some(a)) => render(
                        &p.item_change,
                        &[
                            ("label", label),
                            ("before", &self.spoken_value(item, b)),
                            ("after", &self.spoken_value(item, a)),
                        ],
                    ),
                    (None, Some(a)) => render(
                        &p.item_set,
                        &[("label", label), ("after", &self.spoken_value(item, a))],
                    ),
                    (Some(b), None) => render(
                        &p.item_remove,
                        &[("label", label), ("before", &self.spoken_value(item, b))],
                    ),
                    (None, None) => String::new(),
                }
            })
            .map(sentence)
            .collect();
        render(
            template,
            &[
                ("account_last4", &account_last4(&self.request.account_id)),
                ("changes", &items.join(" ")),
                ("customer_name", &self.request.customer.name),
            ],
        )
    }

    /// The change as the caller hears it: the kind's summary with every item.
    pub fn summary(&self) -> String {
        self.render_script(&self.script().summary)
    }

    /// The sentences heard in the question of `state`, in order: what comes
    /// before it, the script question's words, then how to answer.
    pub fn question_parts(&self, state: &StepState) -> Vec<String> {
        let p = &self.prompts.phrases;
        let current = self.current(state);
        let mut parts = Vec::new();
        match state.preface {
            Preface::Greeting => {
                parts.push(render(
                    &p.greeting,
                    &[("customer_name", &self.request.customer.name)],
                ));
                parts.push(self.summary());
            }
            Preface::Repeat => {
                parts.push(p.repeat.clone());
                parts.push(self.summary());
            }
            Preface::Retry => parts.push(p.retry.clone()),
            Preface::NoAgent => parts.push(p.no_agent.clone()),
            Preface::Next => parts.push(p.next_question.clone()),
            Preface::Explain => {
                if let Some(explain) = current.and_then(|q| q.explain.as_deref()) {
                    parts.push(self.render_script(explain));
                }
            }
        }
        if let Some(q) = current {
            parts.push(self.render_script(&q.text));
        }
        parts.push(if state.keypad_only {
            p.answer_choices_keypad.clone()
        } else {
            p.answer_choices.clone()
        });
        parts
    }

    /// Which inputs the question of `state` accepts, as TwiML spells it.
    pub fn accepted_input(state: &StepState) -> GatherInput {
        if state.keypad_only {
            GatherInput::Dtmf
        } else {
            GatherInput::DtmfSpeech
        }
    }

    /// The consent `<Gather>` of `state`, alone in a response.
    fn ask(&self, state: StepState) -> Response {
        Response::new().gather(self.gather(state))
    }

    /// The consent `<Gather>` of `state`: one script question.
    fn gather(&self, state: StepState) -> Gather {
        let mut gather = Gather::new()
            .input(Self::accepted_input(&state))
            .num_digits(1)
            .timeout(self.gather_timeout_secs)
            .action(self.links.answer_url(&self.request.id, state))
            .method("POST")
            .action_on_empty_result(true);
        if !state.keypad_only {
            gather = gather
                .speech_timeout(SpeechTimeout::Auto)
                .language(self.prompts.locale.tag())
                .hints(self.prompts.phrases.hints.split(',').map(str::trim));
        }
        for part in self.question_parts(&state) {
            gather = gather.say(self.say(part));
        }
        gather
    }

    /// The first answer of the flow: start the whole-call recording, then ask.
    pub fn opening(&self) -> Response {
        let recording = Recording::new()
            .recording_status_callback(self.links.recording_url(&self.request.id))
            .recording_status_callback_method("POST")
            .recording_status_callback_event("completed")
            .recording_channels("dual")
            .track("both")
            .trim("do-not-trim");
        Response::new()
            .start(Start::new().recording(recording))
            .gather(self.gather(StepState::default()))
    }

    /// Where the answer `label` to the question of `state` leads.
    pub fn transition(&self, state: &StepState, label: ConsentLabel) -> Transition {
        let step = state.step + 1;
        let Some(question) = self.current(state) else {
            // Never signed by this server's flow; never consent.
            return Transition::End(self.to_agent_or(Outcome::NoAnswer));
        };
        let last = usize::from(state.question) + 1 >= self.script().questions.len();
        match label {
            ConsentLabel::Affirm if last => Transition::End(Outcome::Confirmed),
            // The next question starts afresh: its own misses and repeats.
            ConsentLabel::Affirm => Transition::Ask(StepState {
                step,
                question: state.question + 1,
                preface: Preface::Next,
                ..StepState::default()
            }),
            ConsentLabel::Deny => match question.role {
                QuestionRole::Authorisation | QuestionRole::SecondConfirmation => {
                    Transition::End(Outcome::Declined)
                }
                QuestionRole::Understanding if !state.explained => Transition::Ask(StepState {
                    step,
                    explained: true,
                    preface: Preface::Explain,
                    ..*state
                }),
                QuestionRole::Holder | QuestionRole::Understanding => {
                    Transition::End(self.to_agent_or(Outcome::Declined))
                }
            },
            ConsentLabel::Repeat if state.repeats < MAX_REPEATS => Transition::Ask(StepState {
                step,
                repeats: state.repeats + 1,
                preface: Preface::Repeat,
                ..*state
            }),
            ConsentLabel::Agent if self.agent_number.is_some() => {
                Transition::End(Outcome::TransferredToAgent)
            }
            ConsentLabel::Agent => self.miss(state, Preface::NoAgent),
            ConsentLabel::Repeat | ConsentLabel::Unclear => self.miss(state, Preface::Retry),
        }
    }

    /// A transfer when an agent number is set, else `otherwise`.
    fn to_agent_or(&self, otherwise: Outcome) -> Outcome {
        match self.agent_number {
            Some(_) => Outcome::TransferredToAgent,
            None => otherwise,
        }
    }

    fn miss(&self, state: &StepState, preface: Preface) -> Transition {
        let misses = state.misses + 1;
        if misses >= MAX_MISSES {
            return Transition::End(self.to_agent_or(Outcome::NoAnswer));
        }
        Transition::Ask(StepState {
            step: state.step + 1,
            misses,
            keypad_only: misses >= KEYPAD_AFTER_MISSES,
            preface,
            ..*state
        })
    }

    /// Where the answer `label` to the question of `state` leads, rendered.
    pub fn next(&self, state: &StepState, label: ConsentLabel) -> Next {
        match self.transition(state, label) {
            Transition::Ask(s) => Next {
                outcome: None,
                response: self.ask(s),
            },
            Transition::End(outcome) => Next {
                outcome: Some(outcome),
                response: self.ending(outcome),
            },
        }
    }

    /// Where the stored answers, in question order, have led: a call that
    /// comes back to the transfer URL continues from there.
    pub fn replay(&self, labels: impl IntoIterator<Item = ConsentLabel>) -> Transition {
        let mut state = StepState::default();
        for label in labels {
            match self.transition(&state, label) {
                Transition::Ask(s) => state = s,
                end @ Transition::End(_) => return end,
            }
        }
        Transition::Ask(state)
    }

    /// The question of `state` alone (the recording is already running);
    /// `StepState::default()` is the first question, after the summary.
    pub fn question(&self, state: StepState) -> Response {
        self.ask(state)
    }

    /// What the caller hears when the dialogue ends with `outcome`.
    pub fn ending(&self, outcome: Outcome) -> Response {
        let p = &self.prompts.phrases;
        match outcome {
            Outcome::Confirmed => {
                let number = self.request.confirmation_number.spoken();
                Response::new()
                    .say(self.say(render(&p.confirmed, &[("confirmation_number", &number)])))
                    .hangup()
            }
            Outcome::Declined => Response::new().say(self.say(p.declined.as_str())).hangup(),
            Outcome::NoAnswer => Response::new().say(self.say(p.no_answer.as_str())).hangup(),
            Outcome::TransferredToAgent => match self.agent_number {
                Some(number) => Response::new()
                    .say(self.say(p.agent_transfer.as_str()))
                    .dial(Dial::new(number.as_str())),
                None => Response::new().say(self.say(p.no_answer.as_str())).hangup(),
            },
            Outcome::Abandoned => Response::new().hangup(),
            Outcome::Expired => Response::new().say(self.say(p.expired.as_str())).hangup(),
            // Reached only from the inbound number, which says its own words.
            Outcome::Locked => Response::new().hangup(),
        }
    }
}

/// A notice that ends the call, in the request's language.
pub fn notice(
    prompts: &LocalePrompts,
    which: Notice,
    agent_number: Option<&PhoneNumber>,
) -> Response {
    let p = &prompts.phrases;
    let text = match which {
        Notice::AlreadyDone => &p.already_done,
        Notice::Expired => &p.expired,
        Notice::InUse => &p.in_use,
        Notice::Error => &p.error,
    };
    let say = Say::new(text.as_str())
        .voice(p.voice.as_str())
        .language(prompts.locale.tag());
    match (which, agent_number) {
        // After an internal failure a human can still help.
        (Notice::Error, Some(n)) => Response::new()
            .say(
                Say::new(p.agent_transfer.as_str())
                    .voice(p.voice.as_str())
                    .language(prompts.locale.tag()),
            )
            .dial(Dial::new(n.as_str())),
        _ => Response::new().say(say).hangup(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::confirmations::Customer;
    use crate::domain::{ChangeItem, ChangeKind, ConfirmationNumber, Locale};
    use crate::flow::prompts::Prompts;
    use ConsentLabel::*;

    fn request() -> ConfirmationRequest {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        ConfirmationRequest {
            id: ConfirmationId::generate(),
            confirmation_number: ConfirmationNumber::generate(),
            account_id: "ACC-1001".into(),
            kind: ChangeKind::Plan,
            change: vec![
                ChangeItem::new(0, "plan", None, Some("Basic"), Some("Plus"), false).unwrap(),
            ],
            customer: Customer {
                name: "Dana".into(),
                phone: "+15551230001".parse().unwrap(),
            },
            agent_id: "agent-7".into(),
            created_by_key: None,
            locale: Locale::EnUs,
            callback_url: None,
            created_at: now,
            expires_at: now + Duration::minutes(30),
            identity: Default::default(),
        }
    }

    fn with_flow<T>(agent: Option<&PhoneNumber>, f: impl FnOnce(&Flow<'_>) -> T) -> T {
        let prompts = Prompts::builtin().unwrap();
        let signer = TokenSigner::new("a-secret-of-some-length-0123456789");
        let req = request();
        let flow = Flow {
            request: &req,
            prompts: prompts.locale(Locale::EnUs),
            links: Links {
                base: "https://cp.example.com",
                signer: &signer,
                now: req.created_at,
                step_ttl: Duration::minutes(15),
                recording_ttl: Duration::days(1),
            },
            agent_number: agent,
            gather_timeout_secs: 6,
        };
        f(&flow)
    }

    #[test]
    fn only_an_affirm_confirms_whatever_came_before() {
        with_flow(None, |flow| {
            for before in [vec![], vec![Repeat], vec![Unclear], vec![Agent, Unclear]] {
                let mut labels = before.clone();
                labels.push(Affirm);
                assert_eq!(
                    flow.replay(labels),
                    Transition::End(Outcome::Confirmed),
                    "{before:?}"
                );
            }
            for label in [Deny, Repeat, Agent, Unclear] {
                assert_ne!(flow.replay([label]), Transition::End(Outcome::Confirmed));
            }
        });
    }

    #[test]
    fn two_misses_switch_to_the_keypad_and_the_third_ends_without_an_agent() {
        with_flow(None, |flow| {
            let Transition::Ask(s) = flow.replay([Unclear]) else {
                panic!()
            };
            assert!(!s.keypad_only);
            let Transition::Ask(s) = flow.replay([Unclear, Agent]) else {
                panic!()
            };
            assert!(s.keypad_only, "asking for a missing agent counts as a miss");
            assert_eq!(s.preface, Preface::NoAgent);
            assert_eq!(
                flow.replay([Unclear, Agent, Unclear]),
                Transition::End(Outcome::NoAnswer)
            );
        });
    }

    #[test]
    fn with_an_agent_the_third_miss_transfers() {
        let agent: PhoneNumber = "+15550009999".parse().unwrap();
        with_flow(Some(&agent), |flow| {
            assert_eq!(
                flow.replay([Unclear, Unclear, Unclear]),
                Transition::End(Outcome::TransferredToAgent)
            );
            assert_eq!(
                flow.replay([Agent]),
                Transition::End(Outcome::TransferredToAgent)
            );
        });
    }

    #[test]
    fn repeats_beyond_the_limit_count_as_misses() {
        with_flow(None, |flow| {
            let Transition::Ask(s) = flow.replay([Repeat, Repeat, Repeat]) else {
                panic!()
            };
            assert_eq!((s.repeats, s.misses, s.step), (3, 0, 3));
            let Transition::Ask(s) = flow.replay([Repeat, Repeat, Repeat, Repeat]) else {
                panic!()
            };
            assert_eq!((s.repeats, s.misses), (3, 1));
            assert_eq!(s.preface, Preface::Retry);
        });
    }

    #[test]
    fn the_keypad_question_accepts_no_speech() {
        with_flow(None, |flow| {
            let Transition::Ask(s) = flow.replay([Unclear, Unclear]) else {
                panic!()
            };
            let xml = flow.question(s).to_xml();
            assert!(
                xml.contains(r#"input="dtmf""#) && !xml.contains("speechTimeout"),
                "{xml}"
            );
            assert!(xml.contains("Please use your keypad"), "{xml}");
        });
    }

    #[test]
    fn the_opening_records_both_tracks_and_asks_one_question() {
        with_flow(None, |flow| {
            let xml = flow.opening().to_xml();
            assert_eq!(xml.matches("<Gather").count(), 1);
            assert!(
                xml.contains(r#"channels="dual""#) && xml.contains(r#"track="both""#),
                "{xml}"
            );
            assert!(
                xml.contains("https://cp.example.com/voice/recording?t="),
                "{xml}"
            );
            assert!(xml.contains("Plan: from Basic, to Plus."), "{xml}");
        });
    }

    #[test]
    fn the_confirmed_ending_reads_the_number_and_hangs_up_without_asking() {
        with_flow(None, |flow| {
            let xml = flow.ending(Outcome::Confirmed).to_xml();
            assert!(
                xml.contains(&flow.request.confirmation_number.spoken()),
                "{xml}"
            );
            assert!(xml.ends_with("<Hangup /></Response>"), "{xml}");
            assert!(!xml.contains("<Gather"));
        });
    }
}
