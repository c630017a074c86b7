//! Webhook security and idempotency: forged signatures, expired or tampered
//! flow tokens, malformed and oversized bodies, replays, second calls.

use callproof::domain::ConfirmationId;
use callproof::flow::token::{FlowToken, Purpose, StepState};

use crate::helpers::*;

const CALL: &str = "CA11111111111111111111111111111111";

fn call_params<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut p = vec![
        ("AccountSid", ACCOUNT_SID),
        ("CallSid", CALL),
        ("CallStatus", "in-progress"),
        ("From", "+15551230001"),
    ];
    p.extend_from_slice(extra);
    p
}

/// Creates a request and starts its call by hand; returns (id, first answer URL).
async fn started(app: &TestApp) -> (String, String) {
    let created = app.create(&billing_request()).await;
    let resp = app
        .webhook(
            created["transfer_url"].as_str().unwrap(),
            &call_params(&[]),
            AUTH_TOKEN,
        )
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    let xml = resp.text().await.unwrap();
    (
        created["id"].as_str().unwrap().to_owned(),
        gather_action(&xml),
    )
}

async fn event_count(app: &TestApp, id: &str) -> usize {
    app.confirmation(id).await["events"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_forged_signature_gets_403_and_changes_nothing() {
    let app = spawn_app().await;
    let created = app.create(&billing_request()).await;
    let url = created["transfer_url"].as_str().unwrap();
    let resp = app
        .webhook(url, &call_params(&[]), "not-the-auth-token-at-all-000000")
        .await;
    assert_eq!(resp.status().as_u16(), 403);
    let view = app.confirmation(created["id"].as_str().unwrap()).await;
    assert_eq!(view["status"], "pending");
    assert!(view["call"].is_null());

    let (id, answer) = started(&app).await;
    let forged = app
        .webhook(
            &answer,
            &call_params(&[("Digits", "1")]),
            "forged-forged-forged-forged-0000",
        )
        .await;
    assert_eq!(forged.status().as_u16(), 403);
    let missing = app
        .client
        .post(&answer)
        .form(&call_params(&[("Digits", "1")]))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 403, "no signature header");
    assert_eq!(event_count(&app, &id).await, 0);
    assert_eq!(app.confirmation(&id).await["status"], "in_progress");
}

#[tokio::test]
async fn a_signature_over_other_parameters_gets_403() {
    let app = spawn_app().await;
    let (id, answer) = started(&app).await;
    // Signed for Digits=2, sent with Digits=1.
    let params: Vec<(String, String)> = call_params(&[("Digits", "2")])
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let sig = callproof::provider::signature::compute(AUTH_TOKEN, &answer, &params);
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(call_params(&[("Digits", "1")]))
        .finish();
    let resp = app
        .client
        .post(&answer)
        .header("X-Twilio-Signature", sig)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    assert_eq!(event_count(&app, &id).await, 0);
}

#[tokio::test]
async fn an_expired_or_tampered_flow_token_gets_403_and_changes_nothing() {
    let app = spawn_app().await;
    let (id, answer) = started(&app).await;
    let expired = FlowToken {
        purpose: Purpose::Answer,
        confirmation_id: id.parse::<ConfirmationId>().unwrap(),
        state: StepState::default(),
        expires: time::OffsetDateTime::now_utc().unix_timestamp() - 1,
    };
    let url = format!(
        "{}/voice/answer?t={}",
        app.base,
        app.signer().sign(&expired)
    );
    let resp = app
        .webhook(&url, &call_params(&[("Digits", "1")]), AUTH_TOKEN)
        .await;
    assert_eq!(resp.status().as_u16(), 403);

    // Flip one character of the token's payload.
    let token = answer.split("t=").nth(1).unwrap();
    let mut chars: Vec<char> = token.chars().collect();
    chars[3] = if chars[3] == 'A' { 'B' } else { 'A' };
    let tampered = format!(
        "{}/voice/answer?t={}",
        app.base,
        chars.into_iter().collect::<String>()
    );
    let resp = app
        .webhook(&tampered, &call_params(&[("Digits", "1")]), AUTH_TOKEN)
        .await;
    assert_eq!(resp.status().as_u16(), 403);

    // A token made with another secret, and a start token used as an answer token.
    let other = callproof::flow::token::TokenSigner::new("another-secret-another-secret-0000000");
    let valid = FlowToken {
        expires: expired.expires + 3600,
        ..expired.clone()
    };
    let url = format!("{}/voice/answer?t={}", app.base, other.sign(&valid));
    assert_eq!(
        app.webhook(&url, &call_params(&[("Digits", "1")]), AUTH_TOKEN)
            .await
            .status()
            .as_u16(),
        403
    );
    let start = FlowToken {
        purpose: Purpose::Start,
        ..valid
    };
    let url = format!("{}/voice/answer?t={}", app.base, app.signer().sign(&start));
    assert_eq!(
        app.webhook(&url, &call_params(&[("Digits", "1")]), AUTH_TOKEN)
            .await
            .status()
            .as_u16(),
        403
    );

    assert_eq!(event_count(&app, &id).await, 0);
    assert_eq!(app.confirmation(&id).await["status"], "in_progress");
}

#[tokio::test]
async fn a_malformed_body_gets_400_and_an_oversized_one_413() {
    let app = spawn_app().await;
    let (id, answer) = started(&app).await;
    // %FF decodes to a byte that is not UTF-8.
    let resp = app
        .client
        .post(&answer)
        .header("X-Twilio-Signature", "irrelevant")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("CallSid=%FF%FE&Digits=1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);

    let big = "x".repeat(20_000);
    let resp = app
        .webhook(
            &answer,
            &call_params(&[("Digits", "1"), ("Padding", &big)]),
            AUTH_TOKEN,
        )
        .await;
    assert_eq!(resp.status().as_u16(), 413);

    // Signed, but without the CallSid every call webhook carries.
    let resp = app.webhook(&answer, &[("Digits", "1")], AUTH_TOKEN).await;
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(event_count(&app, &id).await, 0);
}

#[tokio::test]
async fn a_replayed_consent_webhook_adds_no_second_event_and_hears_the_same_ending() {
    let app = spawn_app().await;
    let (id, answer) = started(&app).await;
    let first = app
        .webhook(&answer, &call_params(&[("Digits", "1")]), AUTH_TOKEN)
        .await
        .text()
        .await
        .unwrap();
    let second = app
        .webhook(&answer, &call_params(&[("Digits", "1")]), AUTH_TOKEN)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        first.contains("Your request is confirmed") && first.contains("<Hangup />"),
        "{first}"
    );
    assert_eq!(first, second);
    assert_eq!(event_count(&app, &id).await, 1);
    assert_eq!(app.confirmation(&id).await["status"], "confirmed");
}

#[tokio::test]
async fn a_replayed_unclear_answer_keeps_the_first_answer() {
    let app = spawn_app().await;
    let (id, answer) = started(&app).await;
    let first = app
        .webhook(&answer, &call_params(&[]), AUTH_TOKEN)
        .await
        .text()
        .await
        .unwrap();
    let again = app
        .webhook(&answer, &call_params(&[]), AUTH_TOKEN)
        .await
        .text()
        .await
        .unwrap();
    assert!(first.contains("Sorry, I did not understand that."));
    // Same question, each with a freshly signed (but equivalent) action URL.
    assert_eq!(first.split("?t=").next(), again.split("?t=").next());
    assert_eq!(event_count(&app, &id).await, 1);
}

#[tokio::test]
async fn a_transfer_url_works_once() {
    let app = spawn_app().await;
    let created = app.create(&billing_request()).await;
    let url = created["transfer_url"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();
    let report = app.call(url, &["press:2"]).await;
    assert_eq!(app.confirmation(id).await["status"], "declined");

    // A second call after the outcome: told it is done; nothing changes.
    let again = app.call(url, &["press:1"]).await;
    assert!(
        heard(&again).contains("already been answered"),
        "{}",
        heard(&again)
    );
    let view = app.confirmation(id).await;
    assert_eq!(view["status"], "declined");
    assert_eq!(view["events"].as_array().unwrap().len(), 1);
    assert_eq!(view["call"]["call_sid"], report.call_sid.as_str());
}

#[tokio::test]
async fn a_second_call_cannot_take_a_request_in_progress_or_answer_for_it() {
    let app = spawn_app().await;
    let created = app.create(&billing_request()).await;
    let url = created["transfer_url"].as_str().unwrap();
    let first = app
        .webhook(url, &call_params(&[]), AUTH_TOKEN)
        .await
        .text()
        .await
        .unwrap();
    let answer = gather_action(&first);
    let other = [
        ("AccountSid", ACCOUNT_SID),
        ("CallSid", "CA22222222222222222222222222222222"),
    ];
    let second = app
        .webhook(url, &other, AUTH_TOKEN)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        second.contains("already being answered on another call"),
        "{second}"
    );
    let mut with_digits = other.to_vec();
    with_digits.push(("Digits", "1"));
    assert_eq!(
        app.webhook(&answer, &with_digits, AUTH_TOKEN)
            .await
            .status()
            .as_u16(),
        403
    );
    assert_eq!(
        app.confirmation(created["id"].as_str().unwrap()).await["status"],
        "in_progress"
    );
}

#[tokio::test]
async fn the_same_call_reaching_the_transfer_url_again_continues() {
    let app = spawn_app().await;
    let created = app.create(&billing_request()).await;
    let url = created["transfer_url"].as_str().unwrap();
    let a = app
        .webhook(url, &call_params(&[]), AUTH_TOKEN)
        .await
        .text()
        .await
        .unwrap();
    let b = app
        .webhook(url, &call_params(&[]), AUTH_TOKEN)
        .await
        .text()
        .await
        .unwrap();
    assert!(a.contains("<Gather") && b.contains("<Gather"), "{b}");
}

#[tokio::test]
async fn an_expired_request_tells_the_caller_and_becomes_expired() {
    let app = spawn_with(Options {
        extra: vec![("CALLPROOF_CONFIRMATION_TTL_SECS", "1".into())],
        ..Options::default()
    })
    .await;
    let created = app.create(&billing_request()).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let report = app
        .call(created["transfer_url"].as_str().unwrap(), &["press:1"])
        .await;
    assert!(
        heard(&report).contains("This request has expired"),
        "{}",
        heard(&report)
    );
    let view = app.confirmation(created["id"].as_str().unwrap()).await;
    assert_eq!(view["status"], "expired");
    assert!(view["events"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_status_callback_for_an_unknown_call_changes_nothing() {
    let app = spawn_app().await;
    let url = format!("{}/voice/status", app.base);
    let resp = app
        .webhook(
            &url,
            &[("CallSid", "CA999"), ("CallStatus", "completed")],
            AUTH_TOKEN,
        )
        .await;
    assert_eq!(resp.status().as_u16(), 204);
    let forged = app
        .webhook(
            &url,
            &[("CallSid", "CA999"), ("CallStatus", "completed")],
            "nope-nope-nope-nope-nope-nope-00",
        )
        .await;
    assert_eq!(forged.status().as_u16(), 403);
}
