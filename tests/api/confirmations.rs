//! The agent API: keys and roles, validation, the documented request, health,
//! and requests that survive a restart of the server.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn health_answers_ok() {
    let app = spawn_app().await;
    let resp = app.get_with("/healthz", None).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["status"],
        "ok"
    );
}

#[tokio::test]
async fn the_documented_request_is_accepted_with_every_promised_field() {
    let app = spawn_app().await;
    let resp = app
        .post_json("/v1/confirmations", Some(AGENT_KEY), &billing_request())
        .await;
    assert_eq!(resp.status().as_u16(), 201);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let body: serde_json::Value = resp.json().await.unwrap();
    let id = body["id"].as_str().unwrap();
    assert_eq!(location, format!("/v1/confirmations/{id}"));
    assert_eq!(body["status"], "pending");
    assert!(body["transfer_url"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}/voice/start?t=", app.base)));
    let number = body["confirmation_number"].as_str().unwrap();
    assert!(
        number
            .parse::<callproof::domain::ConfirmationNumber>()
            .is_ok(),
        "{number}"
    );
    assert!(time::OffsetDateTime::parse(
        body["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339
    )
    .is_ok());

    let view = app.confirmation(id).await;
    assert_eq!(view["status"], "pending");
    assert_eq!(
        view["change"][0]["before"], "************1111",
        "sensitive values are stored masked"
    );
    assert!(!serde_json::to_string(&view)
        .unwrap()
        .contains("4111111111111111"));
}

#[tokio::test]
async fn a_missing_or_unknown_key_gets_401_and_another_role_403() {
    let app = spawn_app().await;
    let body = billing_request();
    assert_eq!(
        app.post_json("/v1/confirmations", None, &body)
            .await
            .status()
            .as_u16(),
        401
    );
    assert_eq!(
        app.post_json("/v1/confirmations", Some("not-a-configured-key"), &body)
            .await
            .status()
            .as_u16(),
        401
    );
    assert_eq!(
        app.post_json("/v1/confirmations", Some(COMPLIANCE_KEY), &body)
            .await
            .status()
            .as_u16(),
        403
    );
    let created = app.create(&body).await;
    let path = format!("/v1/confirmations/{}", created["id"].as_str().unwrap());
    assert_eq!(app.get_with(&path, None).await.status().as_u16(), 401);
    assert_eq!(
        app.get_with(&path, Some(COMPLIANCE_KEY))
            .await
            .status()
            .as_u16(),
        403
    );
}

#[tokio::test]
async fn bad_input_gets_422_with_a_message_per_field() {
    let app = spawn_app().await;
    let mut body = billing_request();
    body["kind"] = json!("upgrade");
    body["customer"]["phone"] = json!("555-0100");
    body["change"][0]["field"] = json!("Card Number");
    let resp = app
        .post_json("/v1/confirmations", Some(AGENT_KEY), &body)
        .await;
    assert_eq!(resp.status().as_u16(), 422);
    let err: serde_json::Value = resp.json().await.unwrap();
    let fields = err["fields"].as_object().unwrap();
    let mut names: Vec<_> = fields.keys().cloned().collect();
    names.sort();
    assert_eq!(names, ["change[0].field", "customer.phone", "kind"]);
    assert!(fields["customer.phone"].as_str().unwrap().contains("E.164"));

    let resp = app
        .client
        .post(format!("{}/v1/confirmations", app.base))
        .bearer_auth(AGENT_KEY)
        .header("content-type", "application/json")
        .body("{\"account_id\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
}

#[tokio::test]
async fn an_unknown_or_malformed_id_is_404() {
    let app = spawn_app().await;
    let unknown = callproof::domain::ConfirmationId::generate();
    assert_eq!(
        app.get_with(&format!("/v1/confirmations/{unknown}"), Some(AGENT_KEY))
            .await
            .status()
            .as_u16(),
        404
    );
    assert_eq!(
        app.get_with("/v1/confirmations/..%2F..%2Fetc", Some(AGENT_KEY))
            .await
            .status()
            .as_u16(),
        404
    );
}

#[tokio::test]
async fn requests_and_outcomes_survive_a_restart() {
    let app = spawn_app().await;
    let decided = app.create(&billing_request()).await;
    app.call(decided["transfer_url"].as_str().unwrap(), &["press:1"])
        .await;
    let waiting = app.create(&billing_request()).await;
    let data_dir = app.data_dir.clone();
    let tmp = app.stop().await;

    let app = spawn_in(&data_dir, Options::default()).await;
    let view = app.confirmation(decided["id"].as_str().unwrap()).await;
    assert_eq!(view["status"], "confirmed");
    assert_eq!(view["events"].as_array().unwrap().len(), 1);
    // The old server's transfer URL still works on the new one.
    let url = waiting["transfer_url"].as_str().unwrap().replace(
        waiting["transfer_url"]
            .as_str()
            .unwrap()
            .split("/voice")
            .next()
            .unwrap(),
        &app.base,
    );
    app.call(&url, &["say:yes"]).await;
    assert_eq!(
        app.confirmation(waiting["id"].as_str().unwrap()).await["status"],
        "confirmed"
    );
    drop(tmp);
}
