//! The record schema and its examples: every example validates, parses as the
//! record type callproof writes, and broken copies are refused.

use callproof::record::ConfirmationRecord;
use serde_json::{json, Value};

use crate::helpers::assert_valid_record;

fn examples() -> Vec<(String, Value)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("recordings-schema/examples");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let v = serde_json::from_str(&std::fs::read_to_string(&p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn every_example_validates_and_reads_as_a_record() {
    let all = examples();
    assert!(
        all.len() >= 5,
        "expected at least five examples, found {}",
        all.len()
    );
    for (name, example) in all {
        assert_valid_record(&example);
        let record: ConfirmationRecord =
            serde_json::from_value(example.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        // What callproof would write for it is the example itself.
        assert_eq!(
            serde_json::to_value(&record).unwrap(),
            example,
            "{name} does not round-trip"
        );
    }
}

#[test]
fn the_schema_refuses_broken_records() {
    let (_, good) = examples().into_iter().next().unwrap();
    type Breakage = Box<dyn Fn(&mut Value)>;
    let breakages: Vec<(&str, Breakage)> = vec![
        ("an unknown field", Box::new(|v| v["colour"] = json!("red"))),
        (
            "a wrong outcome",
            Box::new(|v| v["outcome"]["status"] = json!("maybe")),
        ),
        (
            "a missing call",
            Box::new(|v| drop(v.as_object_mut().unwrap().remove("call"))),
        ),
        (
            "a short sha256",
            Box::new(|v| v["recording"]["audio"][0]["sha256"] = json!("abc")),
        ),
        (
            "a reason on a complete record",
            Box::new(|v| {
                v["status"] = json!("complete");
                v["incomplete_reason"] = json!("because");
            }),
        ),
        (
            "a label that is not one",
            Box::new(|v| v["consent_events"][0]["label"] = json!("yes")),
        ),
        (
            "a question id that is not one",
            Box::new(|v| v["consent_events"][0]["question_id"] = json!("Are you sure?")),
        ),
        (
            "a question id that is not text",
            Box::new(|v| v["consent_events"][0]["question_id"] = json!(2)),
        ),
    ];
    for (what, breaking) in breakages {
        let mut broken = good.clone();
        breaking(&mut broken);
        let refused = std::panic::catch_unwind(|| assert_valid_record(&broken)).is_err();
        assert!(refused, "the schema accepted {what}");
    }
}

#[test]
fn the_schema_holds_disputed_and_locked_records_to_what_they_need() {
    let (_, good) = examples()
        .into_iter()
        .find(|(name, _)| name == "06-complete-signed.v2.json")
        .expect("the signed keypad example");
    assert_eq!(good["consent_events"][0]["input_type"], "dtmf");
    // Made whole, each is accepted, so each refusal below is for what it names.
    let mut disputed = good.clone();
    disputed["outcome"]["status"] = json!("disputed");
    let answer = &mut disputed["consent_events"][0];
    answer["input_type"] = json!("speech");
    answer["digits"] = Value::Null;
    answer["transcript"] = json!("I never asked for this");
    answer["confidence"] = json!(0.87);
    answer["label"] = json!("dispute");
    assert_valid_record(&disputed);
    let mut locked = good.clone();
    locked["outcome"]["status"] = json!("locked");
    locked["consent_events"] = json!([]);
    locked["call"]["identity"] =
        json!({"method": "pin", "result": "failed", "tries": 3, "at": good["outcome"]["at"]});
    assert_valid_record(&locked);

    type Breakage = Box<dyn Fn(&mut Value)>;
    let breakages: Vec<(&str, Value, Breakage)> = vec![
        (
            "a disputed outcome without a disputing answer",
            good.clone(),
            Box::new(|v| v["outcome"]["status"] = json!("disputed")),
        ),
        (
            "a keypad answer labelled dispute",
            disputed.clone(),
            Box::new(|v| {
                v["consent_events"][0]["input_type"] = json!("dtmf");
                v["consent_events"][0]["digits"] = json!("2");
                v["consent_events"][0]["transcript"] = Value::Null;
                v["consent_events"][0]["confidence"] = Value::Null;
            }),
        ),
        (
            "a locked outcome after a passed identity check",
            locked.clone(),
            Box::new(|v| v["call"]["identity"]["result"] = json!("passed")),
        ),
        (
            "a locked outcome without an identity check",
            locked.clone(),
            Box::new(|v| drop(v["call"].as_object_mut().unwrap().remove("identity"))),
        ),
        ("a locked outcome with answers", locked.clone(), {
            let answers = good["consent_events"].clone();
            Box::new(move |v| v["consent_events"] = answers.clone())
        }),
    ];
    for (what, whole, breaking) in breakages {
        let mut broken = whole;
        breaking(&mut broken);
        let refused = std::panic::catch_unwind(|| assert_valid_record(&broken)).is_err();
        assert!(refused, "the schema accepted {what}");
    }
}
