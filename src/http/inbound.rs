//! The inbound number: `POST /voice/incoming` answers a customer's call, then
//! `POST /voice/inbound` walks language, account number and identity check.
//!
//! Until a request's check passes the caller hears only fixed phrases, the
//! recording is paused while digits are keyed in, and nothing is claimed;
//! after it passes, the call claims the request and runs the consent flow.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use time::{Duration, OffsetDateTime};

use super::extract::Signed;
use super::voice::{caller_id_matches, finish_twiml, Failure};
use super::webhook::{query_token, WebhookError};
use super::AppState;
use crate::confirmations::{digest_id, CallClaim, Outcome, OutcomeFact, RepoError, Written};
use crate::domain::{ChangeKind, ConfirmationId, Locale, PhoneNumber};
use crate::flow::inbound::{INBOUND_PATH, INBOUND_RECORDING_PATH};
use crate::flow::token::{InboundStage, InboundToken, StepState};
use crate::flow::{notice, Notice, Transition};
use crate::identity::store::{Attempt, AttemptResult, SecretFact};
use crate::identity::{account_digits, IdentityCheck, IdentityMethod, PausedSpan};
use crate::provider::{CallInfo, GatherResult, RecordingEvent};
use crate::twiml;

/// Unusable answers at the menu or the account number before the caller
/// goes to an agent.
const MAX_INBOUND_MISSES: u8 = 2;

fn malformed(e: impl std::fmt::Display) -> Failure {
    Failure::Refused(WebhookError::Malformed(e.to_string()))
}

fn internal(locale: Locale) -> impl FnOnce(RepoError) -> Failure {
    move |e| Failure::Internal(locale, e.into())
}

fn now_ms(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

impl AppState {
    fn inbound_url(&self, token: &InboundToken, path: &str) -> String {
        format!(
            "{}{path}?t={}",
            self.public_base,
            self.signer.sign_inbound(token)
        )
    }

    /// The token of the next step: the same call, moved on.
    fn next_token(&self, t: &InboundToken, at: OffsetDateTime) -> InboundToken {
        InboundToken {
            step: t.step + 1,
            expires: (at + Duration::seconds(self.config.flow_step_ttl_secs as i64))
                .unix_timestamp(),
            ..t.clone()
        }
    }
}

/// `POST /voice/incoming`: the inbound number's Voice URL. Starts the
/// recording and asks for the language; nothing is looked up yet.
pub async fn incoming(State(s): State<AppState>, signed: Signed) -> Response {
    let result = (|| {
        let call = CallInfo::parse(&signed.params).map_err(malformed)?;
        let at = signed.at;
        let token = InboundToken {
            stage: InboundStage::Language,
            call: digest_id(&call.call_sid),
            locale: Locale::EnUs,
            step: 0,
            misses: 0,
            candidate: None,
            question: 0,
            matched: true,
            started_ms: now_ms(at),
            paused: Vec::new(),
            stir_verstat: call.stir_verstat.clone(),
            choices: Vec::new(),
            tries: 0,
            expires: (at + Duration::seconds(s.config.flow_step_ttl_secs as i64)).unix_timestamp(),
        };
        let recording = InboundToken {
            stage: InboundStage::Recording,
            expires: (at + Duration::seconds(s.config.recording_callback_ttl_secs as i64))
                .unix_timestamp(),
            ..token.clone()
        };
        tracing::info!(call = %token.call, "inbound call answered; recording started");
        s.metrics.inc("callproof_inbound_calls_total", &[]);
        Ok(s.inbound.menu(
            &s.inbound_url(&token, INBOUND_PATH),
            &s.inbound_url(&recording, INBOUND_RECORDING_PATH),
            s.config.gather_timeout_secs,
        ))
    })();
    finish_twiml(&s, result)
}

/// `POST /voice/inbound`: every step of an inbound call after the menu.
pub async fn step(State(s): State<AppState>, signed: Signed) -> Response {
    let s2 = s.clone();
    let work = async move {
        let result = step_work(&s2, &signed).await;
        finish_twiml(&s2, result)
    };
    super::voice::guarded_inbound(s, work).await
}

async fn step_work(s: &AppState, signed: &Signed) -> Result<twiml::Response, Failure> {
    let token = s
        .signer
        .verify_inbound(
            &query_token(&signed.uri),
            &[
                InboundStage::Language,
                InboundStage::Account,
                InboundStage::Secret,
                InboundStage::Choose,
            ],
            signed.at,
        )
        .map_err(|e| Failure::Refused(WebhookError::Forbidden(e.to_string())))?;
    let call = CallInfo::parse(&signed.params).map_err(malformed)?;
    if digest_id(&call.call_sid) != token.call {
        return Err(Failure::Refused(WebhookError::Forbidden(
            "inbound token of another call".into(),
        )));
    }
    let gathered = GatherResult::parse(&signed.params);
    let ctx = Ctx {
        s,
        call_sid: &call.call_sid,
        from: call
            .from
            .as_deref()
            .and_then(|f| f.parse::<PhoneNumber>().ok()),
        at: signed.at,
    };
    match token.stage {
        InboundStage::Language => ctx.language(token, &gathered).await,
        InboundStage::Account => ctx.account(token, &gathered).await,
        InboundStage::Choose => ctx.choose(token, &gathered).await,
        _ => ctx.secret(token, &gathered).await,
    }
}

/// A pending request an inbound caller may reach.
struct Pending {
    created_at: OffsetDateTime,
    id: ConfirmationId,
    account_id: String,
    kind: ChangeKind,
}

/// One inbound webhook's call and time.
struct Ctx<'a> {
    s: &'a AppState,
    call_sid: &'a str,
    from: Option<PhoneNumber>,
    at: OffsetDateTime,
}

/// What the secret prompt of a request is, said before its check passes.
fn secret_prompt(s: &AppState, locale: Locale, fact: &SecretFact, question: u8) -> String {
    let p = &s.inbound.locale(locale).phrases;
    match fact.method {
        IdentityMethod::Pin => p.pin.clone(),
        IdentityMethod::Otp => p.otp.clone(),
        IdentityMethod::Kba => s.inbound.kba_prompt(
            locale,
            fact.prompts
                .get(question as usize)
                .map_or("", String::as_str),
        ),
        IdentityMethod::None => p.no_request.clone(),
    }
}

impl Ctx<'_> {
    fn phrases(&self, locale: Locale) -> &crate::flow::inbound::InboundPhrases {
        &self.s.inbound.locale(locale).phrases
    }

    fn agent(&self) -> Option<&PhoneNumber> {
        self.s.config.agent_number.as_ref()
    }

    /// Offset of `at` into the recording, in milliseconds.
    fn offset_ms(&self, t: &InboundToken, at: OffsetDateTime) -> u64 {
        (now_ms(at) - t.started_ms).max(0) as u64
    }

    /// Pauses the recording before digits are asked for. Only a pause the
    /// provider confirmed lets the caller be asked; an unclear answer is
    /// kept as a span that may be paused, and the caller goes to an agent.
    async fn pause(&self, t: &mut InboundToken, why: &str) -> bool {
        if t.paused.last().is_some_and(|(_, to, _)| *to == 0) {
            return true;
        }
        // The span starts once the provider has confirmed the pause, and ends
        // (in `resume`) before the resume is asked: the record never calls
        // paused what the recording may have caught, however long the
        // lookups before the pause took.
        let asked = self.offset_ms(t, OffsetDateTime::now_utc());
        match self.s.recording_control.pause(self.call_sid).await {
            Ok(_) => {
                let from = self.offset_ms(t, OffsetDateTime::now_utc());
                t.paused.push((from, 0, why.to_owned()));
                true
            }
            Err(e) => {
                if e.is_unclear() {
                    t.paused.push((asked, 0, why.to_owned()));
                }
                tracing::warn!(call = %t.call, error = %e, "the recording could not be paused; no secret is asked, the caller goes to an agent");
                false
            }
        }
    }

    /// Resumes a paused recording; true when the provider confirmed it.
    async fn resume(&self, t: &mut InboundToken) -> bool {
        let to = self.offset_ms(t, OffsetDateTime::now_utc()).max(1);
        let Some(open) = t.paused.last_mut().filter(|(_, to, _)| *to == 0) else {
            return true;
        };
        match self.s.recording_control.resume(self.call_sid).await {
            Ok(_) => {
                open.1 = to.max(open.0).max(1);
                true
            }
            Err(e) => {
                tracing::warn!(call = %t.call, error = %e, "the recording could not be resumed");
                false
            }
        }
    }

    fn spans(t: &InboundToken) -> Vec<PausedSpan> {
        t.paused
            .iter()
            .map(|(from, to, why)| PausedSpan {
                from_ms: *from,
                to_ms: (*to > 0).then_some(*to),
                why: why.clone(),
            })
            .collect()
    }

    /// To an agent, after resuming the recording where it was paused.
    async fn to_agent(&self, t: &mut InboundToken, texts: &[&str]) -> twiml::Response {
        self.resume(t).await;
        self.s.inbound.to_agent(t.locale, texts, self.agent())
    }

    /// Requests among `ids` a caller may reach now: pending, with a check,
    /// unclaimed, unexpired, the oldest first. Markers of ended requests are
    /// cleared on the way.
    async fn reachable(&self, ids: Vec<ConfirmationId>) -> Result<Vec<Pending>, Failure> {
        let mut out = Vec::new();
        let on_err = || internal(Locale::EnUs);
        for id in ids {
            let Some(view) = self.s.confirmations.view(&id).await.map_err(on_err())? else {
                continue;
            };
            let ended = view.outcome.is_some() || self.at >= view.request.expires_at;
            if ended {
                self.s.identity.end(&id).await.map_err(on_err())?;
                continue;
            }
            if view.call.is_none() && !view.request.identity.is_none() {
                out.push(Pending {
                    created_at: view.request.created_at,
                    id,
                    account_id: view.request.account_id,
                    kind: view.request.kind,
                });
            }
        }
        out.sort_by(|a, b| (a.created_at, a.id.as_str()).cmp(&(b.created_at, b.id.as_str())));
        Ok(out)
    }

    async fn language(
        &self,
        mut t: InboundToken,
        g: &GatherResult,
    ) -> Result<twiml::Response, Failure> {
        let chosen = self
            .s
            .inbound
            .language_of(g.digits.as_deref(), g.speech.as_deref());
        if g.digits.as_deref() == Some("0") {
            return Ok(self.to_agent(&mut t, &[]).await);
        }
        // No choice, or one not understood: English, the number's first language.
        t.locale = chosen.unwrap_or(Locale::EnUs);
        let by_phone = match &self.from {
            Some(p) => self
                .s
                .identity
                .by_phone(p)
                .await
                .map_err(internal(t.locale))?,
            None => Vec::new(),
        };
        let found = self.reachable(by_phone).await?;
        match found.first() {
            Some(first) => {
                tracing::info!(call = %t.call, "inbound caller ID matches a pending request; asking its check");
                self.begin_secret(t, first.id.clone(), &[]).await
            }
            None => {
                let mut next = self.s.next_token(&t, self.at);
                next.stage = InboundStage::Account;
                next.misses = 0;
                if !self.pause(&mut next, "account_number").await {
                    return Ok(self.to_agent(&mut next, &[]).await);
                }
                let p = self.phrases(t.locale);
                Ok(self.s.inbound.keypad(
                    t.locale,
                    &[],
                    &p.account,
                    &self.s.inbound_url(&next, INBOUND_PATH),
                    self.s.config.gather_timeout_secs,
                ))
            }
        }
    }

    /// Asks for the secret of request `id`, the recording paused.
    async fn begin_secret(
        &self,
        t: InboundToken,
        id: ConfirmationId,
        before: &[&str],
    ) -> Result<twiml::Response, Failure> {
        let Some(fact) = self
            .s
            .identity
            .secret(&id)
            .await
            .map_err(internal(t.locale))?
        else {
            let mut t = t;
            let p = self.phrases(t.locale).no_request.clone();
            return Ok(self.to_agent(&mut t, &[&p]).await);
        };
        let mut next = self.s.next_token(&t, self.at);
        next.stage = InboundStage::Secret;
        next.candidate = Some(id);
        next.misses = 0;
        next.question = 0;
        next.matched = true;
        if !self.pause(&mut next, fact.method.as_str()).await {
            return Ok(self.to_agent(&mut next, &[]).await);
        }
        let ask = secret_prompt(self.s, t.locale, &fact, 0);
        Ok(self.s.inbound.keypad(
            t.locale,
            before,
            &ask,
            &self.s.inbound_url(&next, INBOUND_PATH),
            self.s.config.gather_timeout_secs,
        ))
    }

    async fn account(
        &self,
        mut t: InboundToken,
        g: &GatherResult,
    ) -> Result<twiml::Response, Failure> {
        let entered = g.digits.as_deref().unwrap_or("").trim_end_matches('#');
        let entered = entered.rsplit('*').next().unwrap_or("");
        let found = if entered.is_empty() || !entered.bytes().all(|b| b.is_ascii_digit()) {
            Vec::new()
        } else {
            let ids = self
                .s
                .identity
                .by_account_digits(entered)
                .await
                .map_err(internal(t.locale))?;
            self.reachable(ids).await?
        };
        let p = self.phrases(t.locale);
        // Exactly one account: two accounts with the same digits are as
        // unknown as none, and get the same words. One account's several
        // requests are one customer's: the oldest's check is asked, and
        // passing it offers the others it also opens.
        let accounts: std::collections::BTreeSet<&str> =
            found.iter().map(|f| f.account_id.as_str()).collect();
        if let (Some(first), 1) = (found.first(), accounts.len()) {
            tracing::info!(call = %t.call, requests = found.len(), "account number matched one account with pending requests; asking the oldest's check");
            return self.begin_secret(t, first.id.clone(), &[]).await;
        }
        if accounts.len() > 1 {
            tracing::warn!(call = %t.call, accounts = accounts.len(), "account number matched several accounts; treated as none");
        }
        if t.misses + 1 >= MAX_INBOUND_MISSES {
            let text = p.not_found.clone();
            return Ok(self.to_agent(&mut t, &[&text]).await);
        }
        let mut next = self.s.next_token(&t, self.at);
        next.misses = t.misses + 1;
        Ok(self.s.inbound.keypad(
            t.locale,
            &[&p.not_found],
            &p.account,
            &self.s.inbound_url(&next, INBOUND_PATH),
            self.s.config.gather_timeout_secs,
        ))
    }

    async fn secret(
        &self,
        mut t: InboundToken,
        g: &GatherResult,
    ) -> Result<twiml::Response, Failure> {
        let locale = t.locale;
        let on_err = || internal(locale);
        let Some(id) = t.candidate.clone() else {
            return Err(malformed("secret step without a request"));
        };
        let Some(fact) = self.s.identity.secret(&id).await.map_err(on_err())? else {
            // The request ended meanwhile (an agent's call, or its expiry).
            let text = self.phrases(locale).no_request.clone();
            return Ok(self.to_agent(&mut t, &[&text]).await);
        };
        let raw = g.digits.as_deref().unwrap_or("");
        let p = self.phrases(locale);
        let ask_again =
            |t: &InboundToken, before: &[&str], question: u8, matched: bool, misses: u8| {
                let mut next = self.s.next_token(t, self.at);
                next.question = question;
                next.matched = matched;
                next.misses = misses;
                self.s.inbound.keypad(
                    locale,
                    before,
                    &secret_prompt(self.s, locale, &fact, question),
                    &self.s.inbound_url(&next, INBOUND_PATH),
                    self.s.config.gather_timeout_secs,
                )
            };
        // `*` starts the entry again, and silence asks again: neither takes a try.
        if raw.contains('*') {
            return Ok(ask_again(&t, &[], t.question, t.matched, t.misses));
        }
        let entered = raw.trim_end_matches('#');
        if entered.is_empty() {
            if t.misses + 1 >= MAX_INBOUND_MISSES {
                let text = p.no_match.clone();
                return Ok(self.to_agent(&mut t, &[&text]).await);
            }
            return Ok(ask_again(
                &t,
                &[&p.no_match],
                t.question,
                t.matched,
                t.misses + 1,
            ));
        }
        let n = t.question as usize;
        let purpose = fact.purpose(n);
        let matches = fact.macs.get(n).is_some_and(|kept| {
            self.s
                .identity
                .keys()
                .secret_matches(&id, &purpose, entered, kept)
        });
        let code_live = fact.code_expires_at.is_none_or(|until| self.at < until);
        let matched = t.matched && matches && code_live;
        if fact.method == IdentityMethod::Kba && n + 1 < fact.macs.len() {
            // One verdict after every answer: the next question whatever this one was.
            return Ok(ask_again(&t, &[], t.question + 1, matched, t.misses));
        }
        let attempt = self
            .s
            .identity
            .attempt(&id, self.call_sid, t.step, fact.method, self.at, || matched)
            .await
            .map_err(on_err())?;
        let (verdict, slot) = match attempt {
            Attempt::Taken(a) | Attempt::Replayed(a) => (a.result, a.slot),
            Attempt::NoSlot => (AttemptResult::Fail, self.s.identity.max_tries()),
            Attempt::PassedElsewhere => {
                tracing::warn!(confirmation = %id, "identity check of a request another call already passed; refused without counting");
                let text = p.no_match.clone();
                return Ok(self.to_agent(&mut t, &[&text]).await);
            }
        };
        self.s.metrics.inc(
            "callproof_identity_checks_total",
            &[
                ("method", fact.method.as_str()),
                (
                    "result",
                    match verdict {
                        AttemptResult::Pass => "pass",
                        AttemptResult::Fail => "fail",
                    },
                ),
            ],
        );
        if verdict == AttemptResult::Pass {
            tracing::info!(confirmation = %id, method = fact.method.as_str(), tries = slot, "identity check passed");
            let opened = self.opened(&id, &fact, entered).await?;
            if opened.len() > 1 {
                return self.offer(t, opened, slot).await;
            }
            return self.passed(t, id, fact.method, slot).await;
        }
        tracing::info!(confirmation = %id, method = fact.method.as_str(), tries = slot, "identity check failed");
        let requests = self
            .s
            .identity
            .signal_failure(self.from.as_ref(), &id, slot, self.at)
            .await
            .map_err(on_err())?;
        if requests > 1 {
            // One caller ID failing the checks of several customers' requests
            // is how account-number guessing looks.
            self.s
                .metrics
                .inc("callproof_identity_repeat_caller_failures_total", &[]);
            tracing::warn!(
                caller = self
                    .from
                    .as_ref()
                    .map(PhoneNumber::masked)
                    .unwrap_or_default(),
                requests,
                "a caller ID failed identity checks of several requests"
            );
        }
        if slot >= self.s.identity.max_tries() {
            return self.locked(t, id, fact.method, slot).await;
        }
        Ok(ask_again(&t, &[&p.no_match], 0, true, 0))
    }

    /// The pending requests of `id`'s account whose check the same entry
    /// passes, `id` first then the oldest first. Only single-secret checks
    /// of the same method count: a PIN is the customer's, so one PIN opens
    /// that customer's requests; a one-time code or knowledge answers open
    /// only their own.
    async fn opened(
        &self,
        id: &ConfirmationId,
        fact: &SecretFact,
        entered: &str,
    ) -> Result<Vec<Pending>, Failure> {
        let on_err = || internal(Locale::EnUs);
        let Some(request) = self.s.confirmations.request(id).await.map_err(on_err())? else {
            return Ok(Vec::new());
        };
        let mut opened = vec![Pending {
            created_at: request.created_at,
            id: id.clone(),
            account_id: request.account_id.clone(),
            kind: request.kind,
        }];
        if fact.method != IdentityMethod::Pin {
            return Ok(opened);
        }
        let digits = account_digits(&request.account_id);
        let ids = self
            .s
            .identity
            .by_account_digits(&digits)
            .await
            .map_err(on_err())?;
        for other in self.reachable(ids).await? {
            if other.id == *id || other.account_id != request.account_id {
                continue;
            }
            let Some(f) = self.s.identity.secret(&other.id).await.map_err(on_err())? else {
                continue;
            };
            let passes = f.method == IdentityMethod::Pin
                && f.macs.len() == 1
                && self.s.identity.keys().secret_matches(
                    &other.id,
                    &f.purpose(0),
                    entered,
                    &f.macs[0],
                );
            if passes {
                opened.push(other);
            }
        }
        Ok(opened)
    }

    /// The check opened several requests: resume the recording and let the
    /// caller choose which to hear, by kind only.
    async fn offer(
        &self,
        t: InboundToken,
        opened: Vec<Pending>,
        tries: u32,
    ) -> Result<twiml::Response, Failure> {
        let locale = t.locale;
        let mut next = self.s.next_token(&t, self.at);
        next.stage = InboundStage::Choose;
        next.candidate = None;
        next.misses = 0;
        next.tries = tries;
        next.choices = opened.iter().map(|o| o.id.clone()).collect();
        if !self.resume(&mut next).await {
            let text = notice_text(self.s, locale);
            return Ok(self.s.inbound.to_agent(locale, &[&text], self.agent()));
        }
        tracing::info!(call = %t.call, requests = opened.len(), "the identity check opened several pending requests; the caller chooses");
        let kinds: Vec<ChangeKind> = opened.iter().map(|o| o.kind).collect();
        let verified = self.phrases(locale).verified.clone();
        Ok(self.choice_menu(&next, &verified, &kinds))
    }

    /// The menu of `kinds`, answered to step `next`, after `before`.
    fn choice_menu(
        &self,
        next: &InboundToken,
        before: &str,
        kinds: &[ChangeKind],
    ) -> twiml::Response {
        self.s.inbound.choose(
            next.locale,
            &[before],
            kinds,
            &self.s.inbound_url(next, INBOUND_PATH),
            self.s.config.gather_timeout_secs,
        )
    }

    /// The caller's choice among the opened requests: the chosen one runs the
    /// flow; the others stay pending for another call.
    async fn choose(
        &self,
        mut t: InboundToken,
        g: &GatherResult,
    ) -> Result<twiml::Response, Failure> {
        let locale = t.locale;
        let on_err = || internal(locale);
        let digits = g.digits.as_deref().unwrap_or("").trim_end_matches('#');
        if digits == "0" {
            return Ok(self.to_agent(&mut t, &[]).await);
        }
        let picked = digits
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| t.choices.get(i).cloned());
        let Some(id) = picked else {
            let p = self.phrases(locale);
            if t.misses + 1 >= MAX_INBOUND_MISSES {
                let text = p.no_match.clone();
                return Ok(self.to_agent(&mut t, &[&text]).await);
            }
            let mut kinds = Vec::new();
            for c in &t.choices {
                match self.s.confirmations.request(c).await.map_err(on_err())? {
                    Some(r) => kinds.push(r.kind),
                    None => return Err(malformed("a choice that is no request")),
                }
            }
            let mut next = self.s.next_token(&t, self.at);
            next.misses = t.misses + 1;
            return Ok(self.choice_menu(&next, &p.no_match, &kinds));
        };
        let Some(fact) = self.s.identity.secret(&id).await.map_err(on_err())? else {
            // Ended meanwhile, by an agent's call or its expiry.
            let text = self.phrases(locale).no_request.clone();
            return Ok(self.to_agent(&mut t, &[&text]).await);
        };
        let tries = if t.choices.first() == Some(&id) {
            t.tries
        } else {
            // The signed choices were each checked against this call's entry;
            // the chosen one's pass is written to its own attempts.
            match self
                .s
                .identity
                .attempt(&id, self.call_sid, t.step, fact.method, self.at, || true)
                .await
                .map_err(on_err())?
            {
                Attempt::Taken(a) | Attempt::Replayed(a) if a.result == AttemptResult::Pass => {
                    a.slot
                }
                _ => {
                    tracing::warn!(confirmation = %id, "a chosen request's check was used up or passed by another call meanwhile");
                    let text = self.phrases(locale).no_request.clone();
                    return Ok(self.to_agent(&mut t, &[&text]).await);
                }
            }
        };
        tracing::info!(confirmation = %id, "the caller chose a request among those the check opened");
        self.passed(t, id, fact.method, tries).await
    }

    fn claim(
        &self,
        t: &InboundToken,
        check: IdentityCheck,
        request: &crate::confirmations::ConfirmationRequest,
    ) -> CallClaim {
        CallClaim {
            call_sid: self.call_sid.to_owned(),
            from_masked: self.from.as_ref().map(PhoneNumber::masked),
            started_at: OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(t.started_ms) * 1_000_000,
            )
            .unwrap_or(self.at),
            leg: Some("inbound".into()),
            caller_id_matches: caller_id_matches(
                self.from.as_ref().map(PhoneNumber::as_str),
                request,
            ),
            stir_verstat: t.stir_verstat.clone(),
            identity: Some(check),
            paused: Self::spans(t),
        }
    }

    /// The check passed: resume the recording, claim the request, and put
    /// the change to the caller.
    async fn passed(
        &self,
        mut t: InboundToken,
        id: ConfirmationId,
        method: IdentityMethod,
        tries: u32,
    ) -> Result<twiml::Response, Failure> {
        let locale = t.locale;
        let on_err = || internal(locale);
        if !self.resume(&mut t).await {
            // No consent is asked on a recording that may not be running.
            let text = notice_text(self.s, locale);
            return Ok(self.s.inbound.to_agent(locale, &[&text], self.agent()));
        }
        let Some(request) = self.s.confirmations.request(&id).await.map_err(on_err())? else {
            return Err(Failure::Internal(
                locale,
                anyhow::anyhow!("a checked request is not stored"),
            ));
        };
        let check = IdentityCheck {
            method,
            result: "passed".into(),
            tries,
            at: self.at,
        };
        let claim = self.claim(&t, check, &request);
        let flow = self.s.flow(&request, self.at);
        // A caller who chose among opened requests heard it before the menu.
        let verified = match t.stage {
            InboundStage::Choose => String::new(),
            _ => self.phrases(locale).verified.clone(),
        };
        match self
            .s
            .confirmations
            .claim_call(&id, claim)
            .await
            .map_err(on_err())?
        {
            Written::New(_) => {
                tracing::info!(confirmation = %id, "inbound call entered the flow");
                Ok(prepend(
                    self.s,
                    locale,
                    &verified,
                    flow.question(StepState::default()),
                ))
            }
            Written::Existing(c) if c.call_sid == self.call_sid => {
                let view = self.s.confirmations.view(&id).await.map_err(on_err())?;
                let labels: Vec<_> = view
                    .map(|v| v.events.into_iter().map(|e| e.label).collect())
                    .unwrap_or_default();
                match flow.replay(labels) {
                    Transition::Ask(state) => Ok(flow.question(state)),
                    Transition::End(_) => Ok(notice(flow.prompts, Notice::AlreadyDone, None)),
                }
            }
            Written::Existing(_) => Ok(notice(flow.prompts, Notice::InUse, None)),
        }
    }

    /// Every try used: the confirmation ends `locked`, with the call claimed
    /// so its record keeps the recording of the failed attempts.
    async fn locked(
        &self,
        mut t: InboundToken,
        id: ConfirmationId,
        method: IdentityMethod,
        tries: u32,
    ) -> Result<twiml::Response, Failure> {
        let locale = t.locale;
        let on_err = || internal(locale);
        self.resume(&mut t).await;
        let text = self.phrases(locale).locked.clone();
        let agent = self.s.inbound.to_agent(locale, &[&text], self.agent());
        let Some(request) = self.s.confirmations.request(&id).await.map_err(on_err())? else {
            return Ok(agent);
        };
        let check = IdentityCheck {
            method,
            result: "failed".into(),
            tries,
            at: self.at,
        };
        let claim = self.claim(&t, check, &request);
        if let Written::Existing(c) = self
            .s
            .confirmations
            .claim_call(&id, claim)
            .await
            .map_err(on_err())?
        {
            if c.call_sid != self.call_sid {
                return Ok(agent);
            }
        }
        let fact = OutcomeFact {
            outcome: Outcome::Locked,
            call_sid: Some(self.call_sid.to_owned()),
            at: self.at,
        };
        if let Written::New(f) = self
            .s
            .confirmations
            .set_outcome(&id, fact)
            .await
            .map_err(on_err())?
        {
            tracing::warn!(confirmation = %id, tries, "identity check failed on every try: locked");
            self.s.completion.outcome_settled(&request, &f);
        }
        Ok(agent)
    }
}

fn notice_text(s: &AppState, locale: Locale) -> String {
    s.prompts.locale(locale).phrases.error.clone()
}

/// `before`, said ahead of `response`'s first question.
fn prepend(
    s: &AppState,
    locale: Locale,
    before: &str,
    response: twiml::Response,
) -> twiml::Response {
    twiml::Response::new()
        .say(s.inbound.say(locale, before))
        .append(response)
}

/// `POST /voice/inbound/recording`: the recording of an inbound call belongs
/// to the request the call claimed; one of a call that claimed none is
/// logged and not kept.
pub async fn recording(State(s): State<AppState>, signed: Signed) -> Response {
    let result: Result<(), Failure> = async {
        let token = s
            .signer
            .verify_inbound(&query_token(&signed.uri), &[InboundStage::Recording], signed.at)
            .map_err(|e| Failure::Refused(WebhookError::Forbidden(e.to_string())))?;
        let event = RecordingEvent::parse(&signed.params).map_err(malformed)?;
        if digest_id(&event.call_sid) != token.call {
            return Err(Failure::Refused(WebhookError::Forbidden(
                "recording of another call".into(),
            )));
        }
        let ids = s
            .confirmations
            .by_call_sid(&event.call_sid)
            .await
            .map_err(internal(Locale::EnUs))?;
        let Some(id) = ids.first() else {
            tracing::info!(call = %token.call, "recording of an inbound call that reached no request; not kept");
            s.metrics.inc("callproof_inbound_unmatched_recordings_total", &[]);
            return Ok(());
        };
        super::voice::accept_recording(&s, id, event, signed.at).await
    }
    .await;
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(Failure::Refused(e)) => e.into_response(),
        Err(Failure::Internal(_, e)) => {
            tracing::error!(
                error = format!("{e:#}"),
                "inbound recording callback failed; answered 503 so the provider retries"
            );
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

/// Most caller IDs `GET /v1/identity/signals` lists.
const MAX_SIGNALS: usize = 50;

/// `GET /v1/identity/signals` (compliance): the caller IDs with the most
/// failed identity checks across requests in the last 30 days, masked.
pub async fn signals(
    State(s): State<AppState>,
    _: super::extract::Key<super::extract::Compliance>,
) -> Result<axum::Json<serde_json::Value>, super::ApiError> {
    let now = OffsetDateTime::now_utc();
    let list = s.identity.signals(now, MAX_SIGNALS).await?;
    Ok(axum::Json(serde_json::json!({
        "window_days": crate::identity::store::SIGNAL_DAYS,
        "callers": list,
    })))
}
