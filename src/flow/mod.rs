//! The consent dialogue: what the caller hears at each step and where each
//! answer leads. Pure code: it renders TwiML and decides, the HTTP layer stores.
//!
//! Steps: the opening starts the recording and asks; an affirm confirms, a deny
//! declines; a repeat re-reads the change; an unclear answer is asked again,
//! after two misses by keypad only, after three it goes to an agent or ends
//! as `no_answer`. Nothing but an affirm ever confirms.

pub mod consent;
pub mod prompts;
pub mod token;

use time::{Duration, OffsetDateTime};

use crate::confirmations::{ConfirmationRequest, Outcome};
use crate::domain::{ChangeItem, ConfirmationId, PhoneNumber};
use crate::twiml::{Dial, Gather, GatherInput, Recording, Response, Say, SpeechTimeout, Start};
use consent::ConsentLabel;
use prompts::{render, LocalePrompts};
use token::{FlowToken, Preface, Purpose, StepState, TokenSigner};

/// Unusable answers before the call goes to an agent or ends as `no_answer`.
pub const MAX_MISSES: u8 = 3;
/// Misses after which only the keypad is accepted.
pub const KEYPAD_AFTER_MISSES: u8 = 2;
/// Repeats granted before a further repeat request counts as a miss.
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
            if last4.chars().all(|c| c == '*') {
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

    /// The change as the caller hears it: the kind's summary with every item.
    pub fn summary(&self) -> String {
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
        let template = &self.prompts.summaries[&self.request.kind];
        render(
            template,
            &[
                ("account_last4", &account_last4(&self.request.account_id)),
                ("changes", &items.join(" ")),
                ("customer_name", &self.request.customer.name),
            ],
        )
    }

    /// The sentences heard in the question of `state`, in order.
    pub fn question_parts(&self, state: &StepState) -> Vec<String> {
        let p = &self.prompts.phrases;
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
        }
        parts.push(if state.keypad_only {
            p.question_keypad.clone()
        } else {
            p.question.clone()
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

    /// The single consent `<Gather>` of `state`, alone in a response.
    fn ask(&self, state: StepState) -> Response {
        Response::new().gather(self.gather(state))
    }

    /// The single consent `<Gather>` of `state`.
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
    pub fn next(&self, state: &StepState, label: ConsentLabel) -> Next {
        let step = state.step + 1;
        match label {
            ConsentLabel::Affirm => self.finish(Outcome::Confirmed),
            ConsentLabel::Deny => self.finish(Outcome::Declined),
            ConsentLabel::Repeat if state.repeats < MAX_REPEATS => Next {
                outcome: None,
                response: self.ask(StepState {
                    step,
                    repeats: state.repeats + 1,
                    preface: Preface::Repeat,
                    ..*state
                }),
            },
            ConsentLabel::Agent if self.agent_number.is_some() => {
                self.finish(Outcome::TransferredToAgent)
            }
            ConsentLabel::Agent => self.miss(state, Preface::NoAgent),
            ConsentLabel::Repeat | ConsentLabel::Unclear => self.miss(state, Preface::Retry),
        }
    }

    fn miss(&self, state: &StepState, preface: Preface) -> Next {
        let misses = state.misses + 1;
        if misses >= MAX_MISSES {
            return match self.agent_number {
                Some(_) => self.finish(Outcome::TransferredToAgent),
                None => self.finish(Outcome::NoAnswer),
            };
        }
        Next {
            outcome: None,
            response: self.ask(StepState {
                step: state.step + 1,
                misses,
                repeats: state.repeats,
                keypad_only: misses >= KEYPAD_AFTER_MISSES,
                preface,
            }),
        }
    }

    fn finish(&self, outcome: Outcome) -> Next {
        Next {
            outcome: Some(outcome),
            response: self.ending(outcome),
        }
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
