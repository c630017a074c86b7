//! Provider webhooks: the transfer URL that starts the flow, the consent
//! answers, the call status callback and the recording status callback.
//!
//! Refusals (bad signature, bad token) are 400/403 and change nothing; once a
//! webhook is accepted it always answers TwiML, an apology if anything failed.

use std::future::Future;
use std::time::Duration as StdDuration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use time::{Duration, OffsetDateTime};

use super::extract::{self, Hook, Signed};
use super::webhook::WebhookError;
use super::AppState;
use crate::confirmations::{
    CallClaim, ConfirmationRequest, ConsentEvent, InputType, Outcome, OutcomeFact, RepoError,
    Written,
};
use crate::domain::{Locale, PhoneNumber};
use crate::flow::consent::{classify_digits, ConsentLabel};
use crate::flow::token::{FlowToken, StepState};
use crate::flow::{notice, Flow, Links, Notice, Transition};
use crate::ingest::Accepted;
use crate::provider::{CallInfo, CallStatusEvent, GatherResult, RecordingEvent};
use crate::twiml;

/// Why an accepted webhook could not be answered normally.
pub(crate) enum Failure {
    /// Refuse with 400/403, changing nothing.
    Refused(WebhookError),
    /// Something inside failed: apologise in `locale`.
    Internal(Locale, anyhow::Error),
}

impl From<WebhookError> for Failure {
    fn from(e: WebhookError) -> Self {
        Failure::Refused(e)
    }
}

fn internal(locale: Locale) -> impl FnOnce(RepoError) -> Failure {
    move |e| Failure::Internal(locale, e.into())
}

fn twiml_response(r: &twiml::Response) -> Response {
    (
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        r.to_xml(),
    )
        .into_response()
}

/// The answer to a webhook: its TwiML, its refusal, or an apology.
pub(crate) fn finish_twiml(state: &AppState, result: Result<twiml::Response, Failure>) -> Response {
    finish(state, result)
}

fn finish(state: &AppState, result: Result<twiml::Response, Failure>) -> Response {
    match result {
        Ok(r) => twiml_response(&r),
        Err(Failure::Refused(e)) => e.into_response(),
        Err(Failure::Internal(locale, cause)) => {
            tracing::error!(
                error = format!("{cause:#}"),
                "webhook failed; the caller hears an apology"
            );
            twiml_response(&notice(
                state.prompts.locale(locale),
                Notice::Error,
                state.config.agent_number.as_ref(),
            ))
        }
    }
}

impl AppState {
    /// The URL builder at `now`.
    pub fn links(&self, now: OffsetDateTime) -> Links<'_> {
        Links {
            base: &self.public_base,
            signer: &self.signer,
            now,
            step_ttl: Duration::seconds(self.config.flow_step_ttl_secs as i64),
            recording_ttl: Duration::seconds(self.config.recording_callback_ttl_secs as i64),
        }
    }

    pub(crate) fn flow<'a>(
        &'a self,
        request: &'a ConfirmationRequest,
        now: OffsetDateTime,
    ) -> Flow<'a> {
        Flow {
            request,
            prompts: self.prompts.locale(request.locale),
            links: self.links(now),
            agent_number: self.config.agent_number.as_ref(),
            gather_timeout_secs: self.config.gather_timeout_secs,
        }
    }

    async fn load(&self, token: &FlowToken) -> Result<ConfirmationRequest, Failure> {
        let fallback = Locale::EnUs;
        self.confirmations
            .request(&token.confirmation_id)
            .await
            .map_err(internal(fallback))?
            .ok_or_else(|| {
                Failure::Internal(
                    fallback,
                    anyhow::anyhow!("signed token names a request that is not stored"),
                )
            })
    }
}

fn malformed(e: impl std::fmt::Display) -> Failure {
    Failure::Refused(WebhookError::Malformed(e.to_string()))
}

/// Whether the presented caller ID is the request's customer phone; `None`
/// when it is withheld or not a phone number.
pub(crate) fn caller_id_matches(from: Option<&str>, request: &ConfirmationRequest) -> Option<bool> {
    from.and_then(|f| f.parse::<PhoneNumber>().ok())
        .map(|p| p == request.customer.phone)
}

/// The transfer URL: claims the request for this call, starts recording, asks.
async fn start_work(s: AppState, hook: Hook<extract::Start>) -> Response {
    let Hook {
        params,
        token,
        at: now,
        ..
    } = hook;
    let result = async {
        let call = CallInfo::parse(&params).map_err(malformed)?;
        let request = s.load(&token).await?;
        let id = &request.id;
        let on_err = internal(request.locale);
        let prompts = s.prompts.locale(request.locale);
        if let Some(done) = s.confirmations.outcome(id).await.map_err(on_err)? {
            let said = match done.outcome {
                Outcome::Expired => Notice::Expired,
                _ => Notice::AlreadyDone,
            };
            return Ok(notice(prompts, said, None));
        }
        if s.confirmations
            .call(id)
            .await
            .map_err(internal(request.locale))?
            .is_none()
            && now >= request.expires_at
        {
            return Ok(notice(prompts, Notice::Expired, None));
        }
        let claim = CallClaim {
            call_sid: call.call_sid.clone(),
            from_masked: call
                .from
                .as_deref()
                .and_then(|f| f.parse::<PhoneNumber>().ok())
                .map(|p| p.masked()),
            started_at: now,
            leg: Some("transfer".into()),
            caller_id_matches: caller_id_matches(call.from.as_deref(), &request),
            stir_verstat: call.stir_verstat.clone(),
            identity: None,
            paused: Vec::new(),
        };
        let flow = s.flow(&request, now);
        match s.confirmations.claim_call(id, claim).await.map_err(internal(request.locale))? {
            Written::New(_) => {
                tracing::info!(confirmation = %id, "call entered the flow");
                Ok(flow.opening())
            }
            Written::Existing(c) if c.call_sid == call.call_sid => {
                // The same call came back (a retry, or a second transfer):
                // continue after the answers already given, recording already on.
                let answers = s.confirmations.answers(id).await.map_err(internal(request.locale))?;
                let labels = answers.into_iter().map(|e| e.label).collect::<Vec<_>>();
                tracing::debug!(confirmation = %id, answers = labels.len(), "same call at the transfer URL again; resuming");
                match flow.replay(labels) {
                    Transition::Ask(state) => Ok(flow.question(state)),
                    Transition::End(outcome) => {
                        let fact = OutcomeFact {
                            outcome,
                            call_sid: Some(call.call_sid.clone()),
                            at: now,
                        };
                        let stored = s.confirmations.set_outcome(id, fact).await.map_err(internal(request.locale))?;
                        if let Written::New(f) = &stored {
                            s.completion.outcome_settled(&request, f);
                        }
                        Ok(flow.ending(stored.into_inner().outcome))
                    }
                }
            }
            Written::Existing(_) => {
                tracing::warn!(confirmation = %id, "transfer URL used by a second call; refused");
                Ok(notice(prompts, Notice::InUse, None))
            }
        }
    }
    .await;
    finish(&s, result)
}

/// Classifies what the caller gave the question of `state`.
fn understand(
    s: &AppState,
    g: &GatherResult,
    state: &StepState,
    request: &ConfirmationRequest,
) -> (InputType, ConsentLabel) {
    if let Some(d) = &g.digits {
        return (InputType::Dtmf, classify_digits(d));
    }
    match &g.speech {
        // Keypad-only questions take no speech, whatever arrives.
        Some(_) if state.keypad_only => (InputType::Speech, ConsentLabel::Unclear),
        Some(t) => (
            InputType::Speech,
            s.classifier.classify_speech(
                t,
                g.confidence.map(|c| c as f32),
                request.locale,
                request.kind,
            ),
        ),
        None => (InputType::None, ConsentLabel::Unclear),
    }
}

/// The action of a consent question: records the answer once, then moves on.
async fn answer_work(s: AppState, hook: Hook<extract::Answer>) -> Response {
    let Hook {
        params,
        token,
        at: now,
        ..
    } = hook;
    let result = async {
        let call = CallInfo::parse(&params).map_err(malformed)?;
        let request = s.load(&token).await?;
        let id = &request.id;
        let on_err = || internal(request.locale);
        match s.confirmations.call(id).await.map_err(on_err())? {
            Some(c) if c.call_sid == call.call_sid => {}
            _ => return Err(Failure::Refused(WebhookError::Forbidden("answer from a call that does not hold this request".into()))),
        }
        let flow = s.flow(&request, now);
        let state = token.state;
        if let Some(done) = s.confirmations.outcome(id).await.map_err(on_err())? {
            // A replay of the answer that ended the dialogue hears the same ending.
            let replay = s.confirmations.event(id, state.step).await.map_err(on_err())?.is_some();
            return Ok(if replay {
                flow.ending(done.outcome)
            } else {
                notice(flow.prompts, Notice::AlreadyDone, None)
            });
        }
        let Some(question_id) = flow.question_id(&state).map(str::to_owned) else {
            return Err(Failure::Internal(
                request.locale,
                anyhow::anyhow!(
                    "the answer token names question {} of the {} script, which has {}; were the prompts changed during the call?",
                    state.question,
                    request.kind,
                    flow.script().questions.len()
                ),
            ));
        };
        let gathered = GatherResult::parse(&params);
        let (input_type, label) = understand(&s, &gathered, &state, &request);
        let event = ConsentEvent {
            step: state.step,
            question_id: Some(question_id.clone()),
            question: flow.question_parts(&state).join(" "),
            accepted_input: Flow::accepted_input(&state).as_str().to_owned(),
            input_type,
            digits: gathered.digits.clone(),
            transcript: gathered.speech.clone(),
            confidence: gathered.confidence,
            label,
            call_sid: call.call_sid.clone(),
            at: now,
        };
        let stored = match s.confirmations.add_event(id, event).await.map_err(on_err())? {
            Written::New(e) => {
                tracing::info!(confirmation = %id, step = e.step, question = %question_id, input = ?e.input_type, label = %e.label, "consent answer");
                e
            }
            Written::Existing(e) => {
                // An answer stored at this step was to this question; any other
                // token for the step is not one this flow gave the call.
                if e.question_id.as_deref().is_some_and(|q| q != question_id) {
                    return Err(Failure::Refused(WebhookError::Forbidden(
                        "answer token does not match the question answered at its step".into(),
                    )));
                }
                tracing::debug!(confirmation = %id, step = e.step, question = %question_id, "replayed answer; the first one stands");
                e
            }
        };
        let next = flow.next(&state, stored.label);
        let Some(outcome) = next.outcome else {
            return Ok(next.response);
        };
        let fact = OutcomeFact {
            outcome,
            call_sid: Some(call.call_sid.clone()),
            at: now,
        };
        Ok(match s.confirmations.set_outcome(id, fact).await.map_err(on_err())? {
            Written::New(f) => {
                tracing::info!(confirmation = %id, outcome = ?f.outcome, "confirmation finished");
                s.completion.outcome_settled(&request, &f);
                next.response
            }
            // Another ending won the race (say, a hang-up): tell the caller it is settled.
            Written::Existing(f) if f.outcome == outcome => flow.ending(f.outcome),
            Written::Existing(_) => notice(flow.prompts, Notice::AlreadyDone, None),
        })
    }
    .await;
    finish(&s, result)
}

/// The call status callback: a call that ends before an outcome is `abandoned`.
async fn status_work(s: AppState, signed: Signed) -> Response {
    let params = signed.params;
    let event = match CallStatusEvent::parse(&params) {
        Ok(e) => e,
        Err(e) => return WebhookError::Malformed(e.to_string()).into_response(),
    };
    if !event.is_final() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let result: Result<(), RepoError> = async {
        let ids = s.confirmations.by_call_sid(&event.call_sid).await?;
        if ids.is_empty() {
            tracing::debug!(status = %event.status, "status of a call that never entered the flow");
        }
        for id in ids {
            s.confirmations.mark_ended(&id, OffsetDateTime::now_utc()).await?;
            if s.confirmations.outcome(&id).await?.is_some() {
                // A record written before the call's end was reported gets
                // a version that states it.
                if s.records.latest(&id).await?.is_some() {
                    s.completion.complete(&id, false).await?;
                }
                continue;
            }
            let fact = OutcomeFact {
                outcome: Outcome::Abandoned,
                call_sid: Some(event.call_sid.clone()),
                at: OffsetDateTime::now_utc(),
            };
            if let Written::New(f) = s.confirmations.set_outcome(&id, fact).await? {
                tracing::info!(confirmation = %id, call_status = %event.status, "caller left before answering: abandoned");
                if let Some(request) = s.confirmations.request(&id).await? {
                    s.completion.outcome_settled(&request, &f);
                }
            }
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => {
            // A 5xx makes the provider retry the callback, which is what we want.
            tracing::error!(error = %e, "call status callback failed");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

/// Keeps a recording callback for request `id`, whose call must be the one
/// the recording is of: checks the account, then queues the recording job once.
pub(crate) async fn accept_recording(
    s: &AppState,
    id: &crate::domain::ConfirmationId,
    event: RecordingEvent,
    now: OffsetDateTime,
) -> Result<(), Failure> {
    if event.account_sid.as_deref() != Some(s.credentials.twilio_account_sid.as_str()) {
        s.metrics.inc(
            "callproof_recordings_refused_total",
            &[("reason", "account")],
        );
        return Err(Failure::Refused(WebhookError::Forbidden(
            "AccountSid is not this server's provider account (CALLPROOF_TWILIO_ACCOUNT_SID)"
                .into(),
        )));
    }
    let locale = Locale::EnUs;
    match s.confirmations.call(id).await.map_err(internal(locale))? {
        Some(c) if c.call_sid == event.call_sid => {}
        _ => {
            return Err(Failure::Refused(WebhookError::Forbidden(
                "recording of a call that does not hold this request".into(),
            )))
        }
    }
    match s
        .ingest
        .accept(id, event, now)
        .await
        .map_err(internal(locale))?
    {
        Accepted::Queued => tracing::info!(confirmation = %id, "recording callback: job queued"),
        Accepted::Duplicate => {
            tracing::debug!(confirmation = %id, "recording callback repeated; the first one stands")
        }
        Accepted::Refused { reason, .. } => {
            return Err(Failure::Refused(WebhookError::Forbidden(reason)));
        }
    }
    Ok(())
}

/// The recording status callback: keeps the provider's notice, once per recording.
async fn recording_work(s: AppState, hook: Hook<extract::Recording>) -> Response {
    let Hook {
        params,
        token,
        at: now,
        ..
    } = hook;
    let result: Result<(), Failure> = async {
        let event = RecordingEvent::parse(&params).map_err(malformed)?;
        accept_recording(&s, &token.confirmation_id, event, now).await
    }
    .await;
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(Failure::Refused(e)) => e.into_response(),
        Err(Failure::Internal(_, e)) => {
            tracing::error!(
                error = format!("{e:#}"),
                "recording callback failed; answered 503 so a provider that retries sends it again, else the record is written incomplete after CALLPROOF_RECORDING_WAIT_SECS"
            );
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

/// Runs a webhook's work in its own task under the webhook deadline. The work
/// is never cut off part-way: past the deadline the provider gets `late`
/// (an apology, or a 503 it may retry) while the work still finishes.
async fn guarded<Fut>(s: AppState, work: Fut, late: fn(&AppState) -> Response) -> Response
where
    Fut: Future<Output = Response> + Send + 'static,
{
    let deadline = StdDuration::from_secs(s.config.webhook_deadline_secs);
    match tokio::time::timeout(deadline, tokio::spawn(work)).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "webhook handler failed");
            late(&s)
        }
        Err(_) => {
            tracing::warn!(
                deadline_secs = deadline.as_secs(),
                "webhook passed its deadline; answering now, the work goes on"
            );
            late(&s)
        }
    }
}

fn apology(s: &AppState) -> Response {
    twiml_response(&notice(
        s.prompts.locale(Locale::EnUs),
        Notice::Error,
        s.config.agent_number.as_ref(),
    ))
}

fn retry_later(_: &AppState) -> Response {
    StatusCode::SERVICE_UNAVAILABLE.into_response()
}

/// Runs an inbound step under the webhook deadline, like every flow webhook.
pub(crate) async fn guarded_inbound<Fut>(s: AppState, work: Fut) -> Response
where
    Fut: Future<Output = Response> + Send + 'static,
{
    guarded(s, work, apology).await
}

/// `POST /voice/start`: see [`start_work`].
pub async fn start(State(s): State<AppState>, hook: Hook<extract::Start>) -> Response {
    guarded(s.clone(), start_work(s, hook), apology).await
}

/// `POST /voice/answer`: see [`answer_work`].
pub async fn answer(State(s): State<AppState>, hook: Hook<extract::Answer>) -> Response {
    guarded(s.clone(), answer_work(s, hook), apology).await
}

/// `POST /voice/status`: see [`status_work`].
pub async fn status(State(s): State<AppState>, signed: Signed) -> Response {
    guarded(s.clone(), status_work(s, signed), retry_later).await
}

/// `POST /voice/recording`: see [`recording_work`].
pub async fn recording(State(s): State<AppState>, hook: Hook<extract::Recording>) -> Response {
    guarded(s.clone(), recording_work(s, hook), retry_later).await
}
