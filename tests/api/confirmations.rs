//! The agent API: keys and roles, validation, the documented request, health,
//! masking, key names, readiness and slow clients, and requests that survive a restart.

use serde_json::{json, Value};

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

#[tokio::test]
async fn readyz_says_only_ready_and_the_status_with_its_causes_is_for_admins() {
    let app = spawn_app().await;
    let resp = app.get_with("/readyz", None).await;
    assert_eq!(resp.status().as_u16(), 200);
    let ready: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(ready, json!({"status": "ready"}), "nothing but the word");

    let status = "/v1/status";
    assert_eq!(app.get_with(status, None).await.status().as_u16(), 401);
    for key in [AGENT_KEY, COMPLIANCE_KEY] {
        assert_eq!(app.get_with(status, Some(key)).await.status().as_u16(), 403);
    }
    let resp = app.get_with(status, Some(ADMIN_KEY)).await;
    assert_eq!(resp.status().as_u16(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["error"], serde_json::Value::Null);
    assert_eq!(body["write_once"], true);
    assert_eq!(
        body["store"]["conditional_create"]["result"], "yes",
        "{body}"
    );
    assert_eq!(body["last_probe_failure"], serde_json::Value::Null);
    assert_eq!(body["index"]["problem"], serde_json::Value::Null, "{body}");
    assert!(body["index"]["generation"].as_u64().unwrap() >= 1, "{body}");
    assert!(
        !body["index"]["backend"].to_string().contains("password"),
        "{body}"
    );
}

#[tokio::test]
async fn a_client_that_sends_its_headers_slowly_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_with(Options {
        extra: vec![("CALLPROOF_HEADER_READ_TIMEOUT_SECS", "1".into())],
        ..Options::default()
    })
    .await;
    let addr = app.local.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: callproof\r\nX-Half: ")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        slow.read_to_end(&mut answer),
    )
    .await;
    assert!(
        matches!(read, Ok(Ok(_)) | Ok(Err(_))),
        "the connection is still open after 10 s"
    );
    let waited = started.elapsed().as_secs_f64();
    assert!(
        (0.9..5.0).contains(&waited),
        "closed after {waited} s, expected about 1 s"
    );
    assert!(
        !String::from_utf8_lossy(&answer).contains("200 OK"),
        "the half request was not served"
    );

    // A client that sends its headers at once is served as before.
    let mut quick = tokio::net::TcpStream::connect(&addr).await.unwrap();
    quick
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: callproof\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    quick.read_to_end(&mut answer).await.unwrap();
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200 OK"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test]
async fn plain_api_keys_are_dropped_once_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let env = test_env(dir.path(), Options::default()).await;
    let app = callproof::server::Application::build(test_config(dir.path(), &env))
        .await
        .unwrap();
    let state = app.state();
    assert!(state.credentials.api_keys.is_empty());
    assert!(state.config.secrets.api_keys.is_none());
    for key in [AGENT_KEY, COMPLIANCE_KEY, ADMIN_KEY] {
        assert!(
            !format!("{:?}", state.config).contains(key),
            "the settings hold a plain key"
        );
    }
    let admin = state.keys.role_of(ADMIN_KEY).expect("the hashed key works");
    assert_eq!(admin.role, callproof::auth::Role::Admin);
    assert_eq!(admin.key_name, ADMIN_KEY_NAME);
}

#[tokio::test]
async fn a_confirmation_names_the_key_that_created_it() {
    let app = spawn_app().await;
    let by_agent = app.create(&billing_request()).await;
    let view = app.confirmation(by_agent["id"].as_str().unwrap()).await;
    assert_eq!(
        view["agent_id"], "agent-7",
        "the client's own agent id stays"
    );
    assert_eq!(
        view["created_by_key"],
        callproof::auth::derived_key_name(AGENT_KEY)
    );
    assert!(!view.to_string().contains(AGENT_KEY));

    let resp = app
        .post_json("/v1/confirmations", Some(ADMIN_KEY), &billing_request())
        .await;
    assert_eq!(resp.status().as_u16(), 201);
    let by_admin: serde_json::Value = resp.json().await.unwrap();
    let view = app.confirmation(by_admin["id"].as_str().unwrap()).await;
    assert_eq!(view["created_by_key"], ADMIN_KEY_NAME);
}

#[tokio::test]
async fn numbers_and_secrets_are_masked_by_their_field_name_without_the_flag() {
    let app = spawn_app().await;
    let mut body = billing_request();
    body["kind"] = json!("security");
    body["change"] = json!([
        {"field": "routing_number", "before": "021000021", "after": "011000015"},
        {"field": "pin", "label": "PIN", "before": "4921", "after": "7305"},
        {"field": "security_answer", "after": "Rex the dog"},
        {"field": "email_address", "before": "a@example.com", "after": "b@example.com"},
    ]);
    let created = app.create(&body).await;
    let id = created["id"].as_str().unwrap();
    let view = app.confirmation(id).await;
    let change = &view["change"];
    assert_eq!(change[0]["before"], "*****0021");
    assert_eq!(change[0]["after"], "*****0015");
    assert_eq!(change[0]["sensitive"], true);
    assert_eq!(change[1]["before"], "changed");
    assert_eq!(change[1]["after"], "changed");
    assert_eq!(change[1]["sensitive"], true);
    assert_eq!(change[2]["before"], serde_json::Value::Null);
    assert_eq!(change[2]["after"], "changed");
    assert_eq!(change[3]["after"], "b@example.com");
    assert_eq!(change[3]["sensitive"], false);

    // A security change asks three questions: holder, authorisation, final.
    let report = app
        .call(
            created["transfer_url"].as_str().unwrap(),
            &["press:1", "press:1", "press:1"],
        )
        .await;
    assert_eq!(app.confirmation(id).await["status"], "confirmed");
    let heard = heard(&report);
    for secret in ["4921", "4, 9, 2, 1", "7305", "7, 3, 0, 5", "Rex", "changed"] {
        assert!(
            !heard.contains(secret),
            "the caller heard {secret}: {heard}"
        );
    }
    assert!(heard.contains("0, 0, 1, 5"), "{heard}");
    let record = app.wait_record(id, |_| true).await;
    assert_eq!(record["confirmation"]["change"], *change);
    // Every value of the record except ids, digests and key fingerprints
    // (random hex, which may contain any four digits by chance).
    fn texts(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(t) if t.len() >= 32 && t.bytes().all(|b| b.is_ascii_hexdigit()) => {}
            Value::Array(a) => a.iter().for_each(|x| texts(x, out)),
            Value::Object(o) => o.iter().for_each(|(k, x)| {
                out.push(k.clone());
                texts(x, out)
            }),
            other => out.push(other.to_string()),
        }
    }
    let mut stored = Vec::new();
    texts(&record, &mut stored);
    let stored = stored.join("\n");
    for secret in ["4921", "7305", "Rex", "021000021"] {
        assert!(!stored.contains(secret), "the record holds {secret}");
    }
}
