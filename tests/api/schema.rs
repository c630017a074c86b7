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
