//! Webhook security and idempotency: forged signatures, expired or tampered
//! flow tokens, malformed and oversized bodies, replays, second calls.

use callproof::domain::ConfirmationId;
use callproof::flow::token::{FlowToken, Purpose, StepState};

use crate::helpers::*;

fn call_params<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    crate::helpers::call_params(CALL, extra)
}

/// Creates a request and starts its call by hand; returns (id, first answer URL).
async fn started(app: &TestApp) -> (String, String) {
    let s = app.start_call(CALL).await;
    (s.id, s.answer)
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

    // A well-formed payload with one field changed, under the original MAC.
    let token = answer.split("t=").nth(1).unwrap();
    let (payload, mac) = token.split_once('.').unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut content: FlowToken = serde_json::from_slice(&b64.decode(payload).unwrap()).unwrap();
    content.state.step += 1;
    let forged = b64.encode(serde_json::to_vec(&content).unwrap());
    let tampered = format!("{}/voice/answer?t={forged}.{mac}", app.base);
    let resp = app
        .webhook(&tampered, &call_params(&[("Digits", "1")]), AUTH_TOKEN)
        .await;
    assert_eq!(resp.status().as_u16(), 403);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("signature does not match"));

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
    // A replay with other digits changes nothing either.
    let other = app
        .webhook(&answer, &call_params(&[("Digits", "2")]), AUTH_TOKEN)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(first, other);
    assert_eq!(event_count(&app, &id).await, 1);
    assert_eq!(app.confirmation(&id).await["status"], "confirmed");
}

#[tokio::test]
async fn concurrent_replays_of_one_answer_store_one_event_and_one_outcome() {
    let app = spawn_app().await;
    let (id, answer) = started(&app).await;
    let replies =
        futures_util::future::join_all(["1", "2", "1", "2", "1", "2", "1", "2"].map(|d| {
            let (app, answer) = (&app, &answer);
            async move {
                let params = [
                    ("AccountSid", ACCOUNT_SID),
                    ("CallSid", CALL),
                    ("Digits", d),
                ];
                app.webhook(answer, &params, AUTH_TOKEN).await
            }
        }))
        .await;
    assert!(replies.iter().all(|r| r.status().as_u16() == 200));
    let view = app.confirmation(&id).await;
    assert_eq!(view["events"].as_array().unwrap().len(), 1);
    let label = view["events"][0]["label"].as_str().unwrap();
    let expected = if label == "affirm" {
        "confirmed"
    } else {
        "declined"
    };
    assert_eq!(
        view["status"], expected,
        "the outcome follows the one stored answer"
    );
}

#[tokio::test]
async fn a_call_that_comes_back_to_the_transfer_url_continues_where_it_was() {
    let app = spawn_app().await;
    let created = app.create(&billing_request()).await;
    let url = created["transfer_url"].as_str().unwrap();
    let first = app
        .webhook(url, &call_params(&[]), AUTH_TOKEN)
        .await
        .text()
        .await
        .unwrap();
    let reply = app
        .webhook(
            &gather_action(&first),
            &call_params(&[("Digits", "9")]),
            AUTH_TOKEN,
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(reply.contains("Here it is again."));
    // The call is sent to the transfer URL again: no second recording, the next question.
    let again = app
        .webhook(url, &call_params(&[]), AUTH_TOKEN)
        .await
        .text()
        .await
        .unwrap();
    assert!(!again.contains("<Recording"), "{again}");
    assert!(again.contains("Here it is again."), "{again}");
    let end = app
        .webhook(
            &gather_action(&again),
            &call_params(&[("Digits", "2")]),
            AUTH_TOKEN,
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(end.contains("No change has been made"), "{end}");
    let view = app.confirmation(created["id"].as_str().unwrap()).await;
    let labels: Vec<_> = view["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["label"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(labels, ["repeat", "deny"]);
    assert_eq!(view["status"], "declined");
}

#[tokio::test]
async fn one_call_through_two_requests_abandons_both_when_it_hangs_up() {
    let app = spawn_app().await;
    let a = app.create(&billing_request()).await;
    let b = app.create(&billing_request()).await;
    for created in [&a, &b] {
        let r = app
            .webhook(
                created["transfer_url"].as_str().unwrap(),
                &call_params(&[]),
                AUTH_TOKEN,
            )
            .await;
        assert_eq!(r.status().as_u16(), 200);
    }
    let status = format!("{}/voice/status", app.base);
    let r = app
        .webhook(
            &status,
            &[
                ("AccountSid", ACCOUNT_SID),
                ("CallSid", CALL),
                ("CallStatus", "completed"),
            ],
            AUTH_TOKEN,
        )
        .await;
    assert_eq!(r.status().as_u16(), 204);
    for created in [&a, &b] {
        assert_eq!(
            app.confirmation(created["id"].as_str().unwrap()).await["status"],
            "abandoned"
        );
    }
}

#[tokio::test]
async fn an_internal_failure_answers_an_apology_in_twiml_not_an_error() {
    let app = spawn_app().await;
    let (id, answer) = started(&app).await;
    let key = callproof::store::ObjectKey::new(format!("confirmations/{id}/request.json")).unwrap();
    app.store.delete(&key).await.unwrap();
    let resp = app
        .webhook(&answer, &call_params(&[("Digits", "1")]), AUTH_TOKEN)
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/xml"));
    let xml = resp.text().await.unwrap();
    assert!(
        xml.contains("something went wrong") && xml.contains("<Hangup />"),
        "{xml}"
    );
}

#[tokio::test]
async fn a_forged_or_foreign_recording_callback_is_refused() {
    let app = spawn_app().await;
    let created = app.create(&billing_request()).await;
    let first = app
        .webhook(
            created["transfer_url"].as_str().unwrap(),
            &call_params(&[]),
            AUTH_TOKEN,
        )
        .await
        .text()
        .await
        .unwrap();
    let doc = callproof::simulate::doc::parse(&first).unwrap();
    let callback = doc.children[0].children[0]
        .attr("recordingStatusCallback")
        .unwrap()
        .to_owned();
    let url = format!(
        "http://127.0.0.1:9/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/RE11111111111111111111111111111111"
    );
    let params = [
        ("AccountSid", ACCOUNT_SID),
        ("CallSid", CALL),
        ("RecordingSid", "RE11111111111111111111111111111111"),
        ("RecordingUrl", url.as_str()),
        ("RecordingStatus", "completed"),
    ];
    assert_eq!(
        app.webhook(&callback, &params, "forged-forged-forged-forged-0000")
            .await
            .status()
            .as_u16(),
        403
    );
    let mut other_call = params;
    other_call[1] = ("CallSid", "CA33333333333333333333333333333333");
    assert_eq!(
        app.webhook(&callback, &other_call, AUTH_TOKEN)
            .await
            .status()
            .as_u16(),
        403
    );
    let answer_token_url = gather_action(&first).replace("/voice/answer", "/voice/recording");
    assert_eq!(
        app.webhook(&answer_token_url, &params, AUTH_TOKEN)
            .await
            .status()
            .as_u16(),
        403
    );
    // The genuine callback, twice: accepted both times, kept once.
    assert_eq!(
        app.webhook(&callback, &params, AUTH_TOKEN)
            .await
            .status()
            .as_u16(),
        204
    );
    assert_eq!(
        app.webhook(&callback, &params, AUTH_TOKEN)
            .await
            .status()
            .as_u16(),
        204
    );
    // One recording job, however often the callback came (its media URL
    // answers nothing, so the job stays queued).
    assert_eq!(app.stored("jobs/recordings/").await, 1);
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
