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
//! agent or ends as `no_answer`, counted per question. A dispute, on any
//! question, ends it `disputed`. Nothing but an affirm to the last question
//! ever confirms.

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
            ConsentLabel::Dispute => Transition::End(Outcome::Disputed),
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
            Outcome::Disputed => Response::new().say(self.say(p.disputed.as_str())).hangup(),
            Outcome::Abandoned => Response::new().hangup(),
            Outcome::Expired => Response::new().say(self.say(p.expired.as_str())).hangup(),
            Outcome::Locked => match self.agent_number {
                Some(number) => Response::new()
                    .say(self.say(p.locked.as_str()))
                    .say(self.say(p.agent_transfer.as_str()))
                    .dial(Dial::new(number.as_str())),
                None => Response::new()
                    .say(self.say(p.locked.as_str()))
                    .say(self.say(p.no_agent.as_str()))
                    .hangup(),
            },
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
        request_of(
            ChangeKind::Plan,
            Locale::EnUs,
            vec![ChangeItem::new(0, "plan", None, Some("Basic"), Some("Plus"), false).unwrap()],
        )
    }

    fn request_of(
        kind: ChangeKind,
        locale: Locale,
        change: Vec<ChangeItem>,
    ) -> ConfirmationRequest {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        ConfirmationRequest {
            id: ConfirmationId::generate(),
            confirmation_number: ConfirmationNumber::generate(),
            account_id: "ACC-1001".into(),
            kind,
            change,
            customer: Customer {
                name: "Dana".into(),
                phone: "+15551230001".parse().unwrap(),
            },
            agent_id: "agent-7".into(),
            created_by_key: None,
            locale,
            callback_url: None,
            created_at: now,
            expires_at: now + Duration::minutes(30),
            identity: Default::default(),
        }
    }

    fn with_flow<T>(agent: Option<&PhoneNumber>, f: impl FnOnce(&Flow<'_>) -> T) -> T {
        with_request(&request(), agent, f)
    }

    fn with_request<T>(
        req: &ConfirmationRequest,
        agent: Option<&PhoneNumber>,
        f: impl FnOnce(&Flow<'_>) -> T,
    ) -> T {
        let prompts = Prompts::builtin().unwrap();
        let signer = TokenSigner::new("a-secret-of-some-length-0123456789");
        let flow = Flow {
            request: req,
            prompts: prompts.locale(req.locale),
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

    #[test]
    fn a_dispute_ends_disputed_whatever_came_before_and_hangs_up() {
        let agent: PhoneNumber = "+15550009999".parse().unwrap();
        with_flow(Some(&agent), |flow| {
            for before in [vec![], vec![Repeat], vec![Unclear, Unclear]] {
                let mut labels = before.clone();
                labels.push(Dispute);
                assert_eq!(
                    flow.replay(labels),
                    Transition::End(Outcome::Disputed),
                    "{before:?}"
                );
            }
            let xml = flow.ending(Outcome::Disputed).to_xml();
            assert!(xml.contains("did not request this change"), "{xml}");
            assert!(xml.ends_with("<Hangup /></Response>"), "{xml}");
            assert!(!xml.contains("<Dial"), "{xml}");
        });
    }

    /// A change of `kind` as an agent would send it, with a masked number
    /// or a secret where the kind has one.
    fn representative(kind: ChangeKind) -> Vec<ChangeItem> {
        let item = |i, field, label, before, after| {
            ChangeItem::new(i, field, label, before, after, false).unwrap()
        };
        match kind {
            ChangeKind::Termination => vec![item(
                0,
                "service",
                Some("home internet"),
                Some("active"),
                Some("terminated"),
            )],
            ChangeKind::Contact => vec![item(
                0,
                "email_address",
                Some("email"),
                Some("a@example.com"),
                Some("b@example.com"),
            )],
            ChangeKind::Billing => vec![item(
                0,
                "card_number",
                Some("card on file"),
                Some("4111111111111111"),
                Some("5500005555555559"),
            )],
            ChangeKind::Security => vec![
                item(0, "pin", Some("PIN"), Some("4921"), Some("7305")),
                item(
                    1,
                    "two_step_phone",
                    None,
                    Some("+15550001234"),
                    Some("+15550009876"),
                ),
            ],
            ChangeKind::Plan => vec![item(0, "plan", None, Some("Basic"), Some("Plus"))],
            ChangeKind::Communication => vec![item(
                0,
                "marketing_emails",
                Some("marketing emails"),
                Some("on"),
                None,
            )],
            ChangeKind::Access => vec![item(
                0,
                "authorized_user",
                Some("authorized user"),
                None,
                Some("Sam Lee"),
            )],
        }
    }

    /// Every state a question of `flow`'s script can be asked in.
    fn every_question_state(flow: &Flow<'_>) -> Vec<StepState> {
        let mut states = Vec::new();
        for (n, q) in flow.script().questions.iter().enumerate() {
            let prefaces = [
                Preface::Greeting,
                Preface::Repeat,
                Preface::Retry,
                Preface::NoAgent,
                Preface::Next,
                Preface::Explain,
            ];
            for preface in prefaces {
                if preface == Preface::Explain && q.role != QuestionRole::Understanding {
                    continue;
                }
                for keypad_only in [false, true] {
                    states.push(StepState {
                        question: u8::try_from(n).unwrap(),
                        explained: preface == Preface::Explain,
                        preface,
                        keypad_only,
                        ..StepState::default()
                    });
                }
            }
        }
        states
    }

    #[test]
    fn every_locale_and_kind_renders_with_no_placeholder_left() {
        let agent: PhoneNumber = "+15550009999".parse().unwrap();
        let prompts = Prompts::builtin().unwrap();
        for locale in Locale::ALL {
            for kind in ChangeKind::ALL {
                let script = &prompts.locale(locale).scripts[&kind];
                assert!(!script.questions.is_empty(), "{locale} {kind}");
                let req = request_of(kind, locale, representative(kind));
                with_request(&req, Some(&agent), |flow| {
                    let mut heard = vec![flow.opening().to_xml()];
                    for state in every_question_state(flow) {
                        heard.push(flow.question_parts(&state).join(" "));
                        heard.push(flow.question(state).to_xml());
                    }
                    for outcome in [
                        Outcome::Confirmed,
                        Outcome::Declined,
                        Outcome::NoAnswer,
                        Outcome::TransferredToAgent,
                        Outcome::Expired,
                    ] {
                        heard.push(flow.ending(outcome).to_xml());
                    }
                    for which in [
                        Notice::AlreadyDone,
                        Notice::Expired,
                        Notice::InUse,
                        Notice::Error,
                    ] {
                        heard.push(notice(flow.prompts, which, Some(&agent)).to_xml());
                    }
                    for text in &heard {
                        assert!(
                            !text.contains('{') && !text.contains('}'),
                            "{locale} {kind}: a placeholder is left in {text}"
                        );
                    }
                    // What is said, without the URLs' random tokens.
                    let all: String = heard
                        .iter()
                        .filter(|t| !t.starts_with("<?xml"))
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("\n");
                    for q in &script.questions {
                        assert!(
                            all.contains(&flow.render_script(&q.text)),
                            "{locale} {kind} {}",
                            q.id
                        );
                    }
                    for secret in ["4921", "7305", "41111111", "55000055"] {
                        assert!(!all.contains(secret), "{locale} {kind}: {secret} is said");
                    }
                    let summary = flow.summary();
                    assert!(summary.contains("1, 0, 0, 1"), "{locale} {kind}: {summary}");
                });
            }
        }
    }

    #[test]
    fn a_spanish_call_says_and_listens_in_spanish() {
        let req = request_of(
            ChangeKind::Security,
            Locale::EsUs,
            representative(ChangeKind::Security),
        );
        with_request(&req, None, |flow| {
            let mut docs = vec![flow.opening().to_xml()];
            docs.extend(
                every_question_state(flow)
                    .into_iter()
                    .map(|s| flow.question(s).to_xml()),
            );
            docs.push(flow.ending(Outcome::Declined).to_xml());
            for xml in docs {
                let says = xml.matches("<Say").count();
                assert!(says > 0, "{xml}");
                assert_eq!(
                    xml.matches(r#"<Say language="es-US" voice="Polly.Lupe">"#)
                        .count(),
                    says,
                    "{xml}"
                );
                assert!(!xml.contains("en-US") && !xml.contains("Joanna"), "{xml}");
                if xml.contains(r#"input="dtmf speech""#) {
                    assert!(xml.contains(r#"hints="sí, no"#), "{xml}");
                    let gather = xml.split("<Gather").nth(1).unwrap_or_default();
                    let attrs = gather.split('>').next().unwrap_or_default();
                    assert!(attrs.contains(r#"language="es-US""#), "{xml}");
                }
            }
            let first = flow.question_parts(&StepState::default()).join(" ");
            assert!(
                first.contains("¿Es usted el titular de la cuenta"),
                "{first}"
            );
            assert!(first.contains("Diga sí o marque 1"), "{first}");
        });
    }

    fn termination() -> ConfirmationRequest {
        request_of(
            ChangeKind::Termination,
            Locale::EnUs,
            representative(ChangeKind::Termination),
        )
    }

    #[test]
    fn a_termination_confirms_only_after_a_yes_to_every_question_in_order() {
        let agent: PhoneNumber = "+15550009999".parse().unwrap();
        for agent in [None, Some(&agent)] {
            with_request(&termination(), agent, |flow| {
                assert_eq!(flow.script().questions.len(), 4);
                assert_eq!(
                    flow.replay([Affirm; 4]),
                    Transition::End(Outcome::Confirmed)
                );
                let Transition::Ask(s) = flow.replay([Affirm; 3]) else {
                    panic!("three yeses end the call")
                };
                assert_eq!((s.question, s.preface), (3, Preface::Next));
                // Every sequence of up to seven answers: consent needs one yes
                // per question, the last answer a yes to the last question.
                let labels = [Affirm, Deny, Repeat, Agent, Unclear];
                let mut confirmed = 0;
                for len in 1..=7u32 {
                    for n in 0..5usize.pow(len) {
                        let seq: Vec<ConsentLabel> =
                            (0..len).map(|i| labels[(n / 5usize.pow(i)) % 5]).collect();
                        // Only sequences whose last answer is the one that ended the call.
                        let before = flow.replay(seq[..seq.len() - 1].to_vec());
                        if matches!(before, Transition::End(_)) {
                            continue;
                        }
                        if flow.replay(seq.clone()) == Transition::End(Outcome::Confirmed) {
                            confirmed += 1;
                            assert_eq!(seq.iter().filter(|l| **l == Affirm).count(), 4, "{seq:?}");
                            assert_eq!(seq.last(), Some(&Affirm), "{seq:?}");
                        }
                    }
                }
                assert!(confirmed > 0);
            });
        }
    }

    #[test]
    fn a_no_follows_the_role_of_the_question() {
        let agent: PhoneNumber = "+15550009999".parse().unwrap();
        for (agent, to_agent) in [
            (None, Outcome::Declined),
            (Some(&agent), Outcome::TransferredToAgent),
        ] {
            with_request(&termination(), agent, |flow| {
                // holder: not the account holder goes to an agent.
                assert_eq!(flow.replay([Deny]), Transition::End(to_agent));
                // authorisation and second_confirmation: declined.
                assert_eq!(
                    flow.replay([Affirm, Deny]),
                    Transition::End(Outcome::Declined)
                );
                assert_eq!(
                    flow.replay([Affirm, Affirm, Affirm, Deny]),
                    Transition::End(Outcome::Declined)
                );
                // understanding: explained once, asked again, then an agent.
                let Transition::Ask(s) = flow.replay([Affirm, Affirm, Deny]) else {
                    panic!("a first no to the fee question ends the call")
                };
                assert_eq!(
                    (s.question, s.explained, s.preface),
                    (2, true, Preface::Explain)
                );
                assert_eq!(
                    flow.replay([Affirm, Affirm, Deny, Deny]),
                    Transition::End(to_agent)
                );
                // A repeat after the explanation does not earn a second one.
                assert_eq!(
                    flow.replay([Affirm, Affirm, Deny, Repeat, Deny]),
                    Transition::End(to_agent)
                );
                assert_eq!(
                    flow.replay([Affirm, Affirm, Deny, Affirm, Affirm]),
                    Transition::End(Outcome::Confirmed)
                );
                let Transition::Ask(s) = flow.replay([Affirm, Affirm, Deny, Affirm]) else {
                    panic!()
                };
                assert!(!s.explained, "the next question starts unexplained");
            });
        }
    }

    #[test]
    fn each_question_is_heard_with_its_own_words_and_the_explanation_once() {
        with_request(&termination(), None, |flow| {
            let mut state = StepState::default();
            let mut heard = Vec::new();
            for label in [Affirm, Affirm, Deny, Affirm] {
                heard.push(flow.question_parts(&state).join(" "));
                let Transition::Ask(next) = flow.transition(&state, label) else {
                    panic!()
                };
                state = next;
            }
            heard.push(flow.question_parts(&state).join(" "));
            assert!(heard[0].starts_with("Hello Dana."), "{}", heard[0]);
            assert!(heard[0].contains("terminate service"), "{}", heard[0]);
            assert!(
                heard[0].contains("Are you the account holder"),
                "{}",
                heard[0]
            );
            assert!(heard[0].ends_with("or press 0."), "{}", heard[0]);
            assert!(
                heard[1].starts_with("Thank you. Next question. Do you authorize the termination"),
                "{}",
                heard[1]
            );
            assert!(
                !heard[1].contains("Hello"),
                "the summary is read once: {}",
                heard[1]
            );
            assert!(heard[2].contains("early termination fee"), "{}", heard[2]);
            assert!(heard[3].starts_with("Let me explain."), "{}", heard[3]);
            assert!(heard[3].contains("Do you understand"), "{}", heard[3]);
            assert!(heard[4].contains("To be sure"), "{}", heard[4]);
            let explained = heard
                .iter()
                .filter(|h| h.contains("Let me explain"))
                .count();
            assert_eq!(explained, 1);
            assert_eq!(flow.question_id(&state), Some("final_confirmation"));
            // A repeat reads the change and the current question again.
            let Transition::Ask(r) = flow.transition(&state, Repeat) else {
                panic!()
            };
            let again = flow.question_parts(&r).join(" ");
            assert!(
                again.contains("Here it is again.")
                    && again.contains("terminate service")
                    && again.contains("To be sure"),
                "{again}"
            );
        });
    }

    #[test]
    fn a_locked_ending_goes_to_the_agent_or_says_none_is_there() {
        let agent: PhoneNumber = "+15550009999".parse().unwrap();
        with_flow(Some(&agent), |flow| {
            let xml = flow.ending(Outcome::Locked).to_xml();
            assert!(xml.contains("could not verify your identity"), "{xml}");
            assert!(xml.contains("transfer you to an agent"), "{xml}");
            assert!(xml.contains("+15550009999</Dial>"), "{xml}");
        });
        with_flow(None, |flow| {
            let xml = flow.ending(Outcome::Locked).to_xml();
            assert!(xml.contains("could not verify your identity"), "{xml}");
            assert!(xml.contains("no agent is available"), "{xml}");
            assert!(xml.ends_with("<Hangup /></Response>"), "{xml}");
        });
    }

    #[test]
    fn misses_and_repeats_count_per_question() {
        with_request(&termination(), None, |flow| {
            let Transition::Ask(s) = flow.replay([Unclear, Unclear]) else {
                panic!()
            };
            assert!(s.keypad_only);
            let Transition::Ask(s) = flow.replay([Unclear, Unclear, Affirm, Repeat, Repeat]) else {
                panic!()
            };
            assert_eq!(
                (s.question, s.misses, s.repeats, s.keypad_only),
                (1, 0, 2, false)
            );
            assert_eq!(s.step, 5);
            // Two misses on each question never end the call.
            let seq = [Unclear, Unclear, Affirm].repeat(4);
            assert_eq!(flow.replay(seq), Transition::End(Outcome::Confirmed));
            assert_eq!(
                flow.replay([Affirm, Unclear, Unclear, Unclear]),
                Transition::End(Outcome::NoAnswer)
            );
        });
    }

    #[test]
    fn a_question_past_the_script_never_confirms() {
        with_request(&termination(), None, |flow| {
            let past = StepState {
                question: 4,
                ..StepState::default()
            };
            assert_eq!(flow.question_id(&past), None);
            assert_eq!(
                flow.transition(&past, Affirm),
                Transition::End(Outcome::NoAnswer)
            );
        });
    }
}
