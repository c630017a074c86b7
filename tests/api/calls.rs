//! Whole confirmation calls through the simulator: consent by keypad and by
//! voice, decline, repeat, hang-up, silence, agent transfer, Spanish, and
//! scripts of several questions.

use callproof::simulate::CallEnd;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_keypad_1_confirms_and_the_caller_hears_the_masked_change_and_the_number() {
    let app = spawn_app().await;
    let created = app.create(&billing_request()).await;
    let number = created["confirmation_number"]
        .as_str()
        .unwrap()
        .replace('-', "");
    let report = app
        .call(created["transfer_url"].as_str().unwrap(), &["press:1"])
        .await;

    assert_eq!(report.end, CallEnd::ServerHungUp);
    let heard = heard(&report);
    assert!(
        heard.contains(
            "Card on file: from the one ending in 1, 1, 1, 1, to the one ending in 5, 5, 5, 9."
        ),
        "{heard}"
    );
    assert!(
        !heard.contains("4111") && !heard.contains("5500"),
        "a card number was spoken: {heard}"
    );
    assert!(heard.contains("account ending in 1, 0, 0, 1"), "{heard}");
    let spoken: String = report
        .heard
        .last()
        .unwrap()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    assert!(
        spoken.starts_with(&number),
        "number {number} not read back digit by digit: {heard}"
    );

    let view = app.confirmation(created["id"].as_str().unwrap()).await;
    assert_eq!(view["status"], "confirmed");
    let events = view["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["input_type"], "dtmf");
    assert_eq!(events[0]["digits"], "1");
    assert_eq!(events[0]["label"], "affirm");
    assert!(events[0]["question"]
        .as_str()
        .unwrap()
        .contains("Do you confirm this change?"));
    assert_eq!(view["outcome"]["outcome"], "confirmed");
    assert_eq!(view["call"]["call_sid"], report.call_sid.as_str());
}

#[tokio::test]
async fn a_spoken_yes_i_confirm_confirms_and_keeps_the_transcript() {
    let app = spawn_app().await;
    let created = app.create(&billing_request()).await;
    let report = app
        .call(
            created["transfer_url"].as_str().unwrap(),
            &["say:yes I confirm@0.93"],
        )
        .await;
    assert_eq!(report.end, CallEnd::ServerHungUp);
    assert!(
        heard(&report).contains("Your request is confirmed"),
        "{}",
        heard(&report)
    );

    let view = app.confirmation(created["id"].as_str().unwrap()).await;
    assert_eq!(view["status"], "confirmed");
    let e = &view["events"][0];
    assert_eq!(e["input_type"], "speech");
    assert_eq!(e["transcript"], "yes I confirm");
    assert!((e["confidence"].as_f64().unwrap() - 0.93).abs() < 1e-6);
    assert_eq!(e["label"], "affirm");
}

#[tokio::test]
async fn a_decline_by_voice_or_keypad_ends_declined() {
    let app = spawn_app().await;
    for answer in ["say:no thank you", "press:2"] {
        let created = app.create(&billing_request()).await;
        let report = app
            .call(created["transfer_url"].as_str().unwrap(), &[answer])
            .await;
        assert!(
            heard(&report).contains("No change has been made"),
            "{answer}: {}",
            heard(&report)
        );
        let view = app.confirmation(created["id"].as_str().unwrap()).await;
        assert_eq!(view["status"], "declined", "{answer}");
        assert_eq!(view["events"][0]["label"], "deny");
    }
}

#[tokio::test]
async fn a_repeat_reads_the_change_again_and_a_yes_then_confirms() {
    let app = spawn_app().await;
    let created = app.create(&billing_request()).await;
    let report = app
        .call(
            created["transfer_url"].as_str().unwrap(),
            &["say:can you repeat that", "say:yes"],
        )
        .await;
    let summaries = report
        .heard
        .iter()
        .filter(|h| h.contains("Card on file"))
        .count();
    assert_eq!(summaries, 2, "{}", heard(&report));
    assert!(heard(&report).contains("Here it is again."));
    let view = app.confirmation(created["id"].as_str().unwrap()).await;
    assert_eq!(view["status"], "confirmed");
    let labels: Vec<_> = view["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["label"].clone())
        .collect();
    assert_eq!(labels, [json!("repeat"), json!("affirm")]);
}

#[tokio::test]
async fn a_caller_who_hangs_up_mid_flow_is_abandoned() {
    let app = spawn_app().await;
    let created = app.create(&billing_request()).await;
    let report = app
        .call(
            created["transfer_url"].as_str().unwrap(),
            &["say:hmm let me think", "hangup"],
        )
        .await;
    assert_eq!(report.end, CallEnd::CallerHungUp);
    assert_eq!(report.status_callback_status, Some(204));
    let view = app.confirmation(created["id"].as_str().unwrap()).await;
    assert_eq!(view["status"], "abandoned");
    assert_eq!(
        view["events"].as_array().unwrap().len(),
        1,
        "the one answer given is kept"
    );
}

#[tokio::test]
async fn silence_three_times_falls_back_to_the_keypad_then_ends_as_no_answer() {
    let app = spawn_app().await;
    let created = app.create(&billing_request()).await;
    let report = app
        .call(
            created["transfer_url"].as_str().unwrap(),
            &["silence", "silence", "silence"],
        )
        .await;
    assert_eq!(report.end, CallEnd::ServerHungUp);
    assert!(
        heard(&report).contains("Please use your keypad"),
        "{}",
        heard(&report)
    );
    assert!(
        heard(&report).contains("We could not get your answer"),
        "{}",
        heard(&report)
    );
    let view = app.confirmation(created["id"].as_str().unwrap()).await;
    assert_eq!(view["status"], "no_answer");
    let events = view["events"].as_array().unwrap();
    assert_eq!(events.len(), 3);
    assert!(events
        .iter()
        .all(|e| e["input_type"] == "none" && e["label"] == "unclear"));
    assert_eq!(
        events[2]["accepted_input"], "dtmf",
        "the third question takes the keypad only"
    );
}

#[tokio::test]
async fn silence_three_times_transfers_to_the_agent_when_one_is_configured() {
    let app = spawn_with(Options {
        agent_number: Some("+15550009999"),
        ..Options::default()
    })
    .await;
    let created = app.create(&billing_request()).await;
    let report = app
        .call(
            created["transfer_url"].as_str().unwrap(),
            &["silence", "silence", "silence"],
        )
        .await;
    assert_eq!(report.end, CallEnd::Dialed("+15550009999".into()));
    let view = app.confirmation(created["id"].as_str().unwrap()).await;
    assert_eq!(view["status"], "transferred_to_agent");
}

#[tokio::test]
async fn asking_for_an_agent_transfers_when_one_is_configured_and_asks_again_when_not() {
    let with_agent = spawn_with(Options {
        agent_number: Some("+15550009999"),
        ..Options::default()
    })
    .await;
    let created = with_agent.create(&billing_request()).await;
    let report = with_agent
        .call(
            created["transfer_url"].as_str().unwrap(),
            &["say:representative"],
        )
        .await;
    assert_eq!(report.end, CallEnd::Dialed("+15550009999".into()));

    let without = spawn_app().await;
    let created = without.create(&billing_request()).await;
    let report = without
        .call(
            created["transfer_url"].as_str().unwrap(),
            &["press:0", "press:1"],
        )
        .await;
    assert!(
        heard(&report).contains("no agent is available"),
        "{}",
        heard(&report)
    );
    let view = without.confirmation(created["id"].as_str().unwrap()).await;
    assert_eq!(view["status"], "confirmed");
}

#[tokio::test]
async fn a_low_confidence_yes_is_never_consent() {
    let app = spawn_app().await;
    let created = app.create(&billing_request()).await;
    let report = app
        .call(
            created["transfer_url"].as_str().unwrap(),
            &["say:yes@0.2", "say:yes no", "hangup"],
        )
        .await;
    assert!(heard(&report).contains("Sorry, I did not understand that."));
    let view = app.confirmation(created["id"].as_str().unwrap()).await;
    assert_eq!(view["status"], "abandoned");
    assert!(view["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["label"] == "unclear"));
}

#[tokio::test]
async fn a_spanish_call_is_held_in_spanish_and_si_confirms() {
    let app = spawn_app().await;
    let mut body = billing_request();
    body["locale"] = json!("es-US");
    body["kind"] = json!("termination");
    body["change"] = json!([{"field": "service", "label": "internet residencial", "before": "activo", "after": "cancelado"}]);
    let created = app.create(&body).await;
    // A termination asks four questions; a yes to each confirms.
    let report = app
        .call(
            created["transfer_url"].as_str().unwrap(),
            &["say:sí", "say:sí", "say:sí", "say:sí"],
        )
        .await;
    let heard = heard(&report);
    assert!(
        heard.contains("cancelar el servicio")
            && heard.contains("Internet residencial: de activo, a cancelado."),
        "{heard}"
    );
    assert!(heard.contains("Su número de confirmación es"), "{heard}");
    let view = app.confirmation(created["id"].as_str().unwrap()).await;
    assert_eq!(view["status"], "confirmed");
    assert_eq!(view["events"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn after_two_misses_speech_is_not_taken_even_a_clear_yes() {
    let app = spawn_app().await;
    let created = app.create(&billing_request()).await;
    app.call(
        created["transfer_url"].as_str().unwrap(),
        &["silence", "silence", "say:yes I confirm"],
    )
    .await;
    let view = app.confirmation(created["id"].as_str().unwrap()).await;
    assert_eq!(view["status"], "no_answer");
    assert_eq!(view["events"][2]["input_type"], "speech");
    assert_eq!(view["events"][2]["label"], "unclear");
}

/// A termination request: the service of the documented account ends.
fn termination_request() -> serde_json::Value {
    let mut body = billing_request();
    body["kind"] = json!("termination");
    body["change"] = json!([{"field": "service", "label": "home internet", "before": "active", "after": "terminated"}]);
    body
}

/// `(question_id, label)` of every consent event of a view or record.
fn answered(events: &serde_json::Value) -> Vec<(String, String)> {
    events
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["question_id"].as_str().unwrap_or("<none>").to_owned(),
                e["label"].as_str().unwrap_or("<none>").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_termination_refused_at_the_authorisation_question_is_declined_with_two_events() {
    let app = spawn_app().await;
    let created = app.create(&termination_request()).await;
    let id = created["id"].as_str().unwrap();
    let report = app
        .call(
            created["transfer_url"].as_str().unwrap(),
            &["say:yes", "say:no"],
        )
        .await;
    assert_eq!(report.end, CallEnd::ServerHungUp);
    let heard = heard(&report);
    assert!(heard.contains("Are you the account holder"), "{heard}");
    assert!(
        heard.contains("Thank you. Next question. | Do you authorize the termination"),
        "{heard}"
    );
    assert!(!heard.contains("early termination fee"), "{heard}");
    assert!(
        report
            .heard
            .last()
            .unwrap()
            .contains("No change has been made"),
        "{heard}"
    );

    let view = app.confirmation(id).await;
    assert_eq!(view["status"], "declined");
    let want = [
        ("account_holder".to_owned(), "affirm".to_owned()),
        ("authorize_termination".to_owned(), "deny".to_owned()),
    ];
    assert_eq!(answered(&view["events"]), want);
    assert!(view["events"][1]["question"].as_str().unwrap().contains(
        "Do you authorize the termination of service on the account ending in 1, 0, 0, 1?"
    ));

    let record = app.wait_record(id, complete).await;
    assert_eq!(record["outcome"]["status"], "declined");
    assert_eq!(record["consent_events"].as_array().unwrap().len(), 2);
    assert_eq!(answered(&record["consent_events"]), want);
    assert_eq!(record["consent_events"][1]["step"], 1);
}

#[tokio::test]
async fn a_spanish_security_change_runs_its_script_in_spanish_and_a_final_no_declines() {
    let app = spawn_app().await;
    let mut body = billing_request();
    body["locale"] = json!("es-US");
    body["kind"] = json!("security");
    body["change"] = json!([{"field": "two_step_phone", "label": "teléfono de verificación",
                             "before": "+15550001234", "after": "+15550009876", "sensitive": true}]);
    let created = app.create(&body).await;
    let id = created["id"].as_str().unwrap();
    let report = app
        .call(
            created["transfer_url"].as_str().unwrap(),
            &["say:sí", "press:1", "say:no"],
        )
        .await;
    assert_eq!(report.end, CallEnd::ServerHungUp);
    let heard = heard(&report);
    for spanish in [
        "Hola Dana Reyes.",
        "Usted nos pidió cambiar la configuración de seguridad",
        "Teléfono de verificación: de ",
        "que termina en 1, 2, 3, 4, a ",
        "que termina en 9, 8, 7, 6.",
        "¿Es usted el titular de la cuenta",
        "Diga sí o marque 1 para sí.",
        "Gracias. Siguiente pregunta. | ¿Autoriza este cambio de la configuración de seguridad",
        "Para estar seguros",
        "Entendido. No se ha hecho ningún cambio. Adiós.",
    ] {
        assert!(heard.contains(spanish), "{spanish:?} not heard: {heard}");
    }
    for english in ["Hello", "Do you", "Say yes", "Thank you", "Goodbye"] {
        assert!(!heard.contains(english), "{english:?} heard: {heard}");
    }
    // Every word is said in the Spanish voice, and speech is heard as Spanish.
    assert_eq!(report.documents.len(), 4, "{:#?}", report.documents);
    for xml in &report.documents {
        let doc = callproof::simulate::doc::parse(xml).unwrap();
        let mut says = 0;
        let mut verbs: Vec<&callproof::simulate::doc::Node> = doc.children.iter().collect();
        while let Some(verb) = verbs.pop() {
            verbs.extend(verb.children.iter());
            match verb.name.as_str() {
                "Say" => {
                    says += 1;
                    assert_eq!(verb.attr("language"), Some("es-US"), "{xml}");
                    assert_eq!(verb.attr("voice"), Some("Polly.Lupe"), "{xml}");
                }
                "Gather" => {
                    assert_eq!(verb.attr("input"), Some("dtmf speech"), "{xml}");
                    assert_eq!(verb.attr("language"), Some("es-US"), "{xml}");
                }
                _ => {}
            }
        }
        assert!(says > 0, "{xml}");
    }

    let view = app.confirmation(id).await;
    assert_eq!(view["status"], "declined");
    assert_eq!(
        answered(&view["events"]),
        [
            ("account_holder".to_owned(), "affirm".to_owned()),
            ("authorize_change".to_owned(), "affirm".to_owned()),
            ("final_confirmation".to_owned(), "deny".to_owned()),
        ]
    );
    let inputs: Vec<_> = view["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["input_type"].clone())
        .collect();
    assert_eq!(inputs, [json!("speech"), json!("dtmf"), json!("speech")]);
    assert_eq!(view["events"][0]["transcript"], "sí");
    let record = app.wait_record(id, complete).await;
    assert_eq!(record["confirmation"]["locale"], "es-US");
    assert_eq!(record["consent_events"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_no_to_the_fee_question_is_explained_once_and_a_second_no_goes_to_the_agent() {
    let app = spawn_with(Options {
        agent_number: Some("+15550009999"),
        ..Options::default()
    })
    .await;
    let created = app.create(&termination_request()).await;
    let report = app
        .call(
            created["transfer_url"].as_str().unwrap(),
            &["press:1", "press:1", "press:2", "say:no"],
        )
        .await;
    assert_eq!(report.end, CallEnd::Dialed("+15550009999".into()));
    let said = heard(&report);
    assert_eq!(said.matches("Let me explain.").count(), 1, "{said}");
    assert_eq!(
        said.matches("Do you understand that any early termination fee")
            .count(),
        2,
        "asked, explained, asked again: {said}"
    );
    assert!(!said.contains("To be sure"), "{said}");
    assert!(said.contains("transfer you to an agent"), "{said}");
    let view = app.confirmation(created["id"].as_str().unwrap()).await;
    assert_eq!(view["status"], "transferred_to_agent");
    let fee = ("early_termination_fee".to_owned(), "deny".to_owned());
    assert_eq!(
        answered(&view["events"]),
        [
            ("account_holder".to_owned(), "affirm".to_owned()),
            ("authorize_termination".to_owned(), "affirm".to_owned()),
            fee.clone(),
            fee,
        ]
    );
    assert!(view["events"][3]["question"]
        .as_str()
        .unwrap()
        .starts_with("Let me explain."));

    // Understood after the explanation: the script goes on to its end.
    let created = app.create(&termination_request()).await;
    let report = app
        .call(
            created["transfer_url"].as_str().unwrap(),
            &["press:1", "press:1", "press:2", "press:1", "press:1"],
        )
        .await;
    assert!(
        heard(&report).contains("Your request is confirmed"),
        "{}",
        heard(&report)
    );
    let view = app.confirmation(created["id"].as_str().unwrap()).await;
    assert_eq!(view["status"], "confirmed");
    assert_eq!(view["events"][4]["question_id"], "final_confirmation");
}

#[tokio::test]
async fn a_replayed_answer_to_an_early_question_skips_nothing() {
    const SID: &str = "CA22222222222222222222222222222222";
    let app = spawn_app().await;
    let created = app.create(&termination_request()).await;
    let started = app.transfer(&created, SID).await;
    let first = app.press(&started.answer, SID, "1").await;
    assert_eq!(first.status().as_u16(), 200);
    let first = first.text().await.unwrap();
    assert!(
        first.contains("Do you authorize the termination"),
        "{first}"
    );
    // The same answer again, and the holder question's token with another
    // answer: the first answer stands and the caller is at question two.
    for digits in ["1", "2", "1"] {
        let again = app.press(&started.answer, SID, digits).await;
        assert_eq!(again.status().as_u16(), 200);
        let again = again.text().await.unwrap();
        assert!(
            again.contains("Do you authorize the termination"),
            "{again}"
        );
        assert!(!again.contains("Your request is confirmed"), "{again}");
    }
    let view = app.confirmation(&started.id).await;
    assert_eq!(view["status"], "in_progress");
    assert_eq!(
        answered(&view["events"]),
        [("account_holder".to_owned(), "affirm".to_owned())]
    );
}
