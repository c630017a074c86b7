//! Tampering a store writer could do, each caught by `callproof records verify`
//! by name: changed audio, changed records, deleted versions and seals, a
//! forged key, truncated seals; and key rotation keeping old records valid.

use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use callproof::store::{ObjectKey, ObjectStore};
use serde_json::Value;

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_callproof");

fn key(k: &str) -> ObjectKey {
    ObjectKey::new(k).expect("key")
}

/// Replaces an object's bytes, as a store writer can (delete, then write).
async fn overwrite(store: &dyn ObjectStore, k: &str, bytes: Vec<u8>) {
    store.delete(&key(k)).await.expect("delete");
    store
        .create(&key(k), Bytes::from(bytes))
        .await
        .expect("write");
}

async fn flip_byte(store: &dyn ObjectStore, k: &str, at: usize) {
    let mut b = store
        .get(&key(k))
        .await
        .expect("get")
        .expect("exists")
        .to_vec();
    b[at] ^= 0x01;
    overwrite(store, k, b).await;
}

async fn delete_prefix(store: &dyn ObjectStore, prefix: &str) {
    for k in store.list(prefix).await.expect("list") {
        store.delete(&k).await.expect("delete");
    }
}

fn audio_key(record: &Value, role: &str) -> String {
    record["recording"]["audio"]
        .as_array()
        .expect("audio listed")
        .iter()
        .find(|a| a["role"] == role)
        .and_then(|a| a["key"].as_str())
        .expect("audio of this role")
        .to_owned()
}

fn latest_key(id: &str, record: &Value) -> String {
    format!(
        "records/{id}/v{:04}.json",
        record["version"].as_u64().expect("version")
    )
}

/// Runs `callproof records verify` on the server's data directory and
/// settings; answers its exit status and its stdout+stderr.
async fn verify_cli(
    data_dir: &Path,
    args: &[&str],
    extra: Vec<(&'static str, String)>,
) -> (i32, String) {
    let env = test_env(
        data_dir,
        Options {
            extra,
            ..Options::default()
        },
    )
    .await;
    let file = data_dir.join("test-callproof.toml");
    let out = Command::new(BIN)
        .args(["records", "verify", "--config"])
        .arg(&file)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .output()
        .expect("callproof runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn problem_lines(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.starts_with("PROBLEM")).collect()
}

fn assert_problem(out: &str, object: &str, says: &str) {
    assert!(
        problem_lines(out)
            .iter()
            .any(|l| l.contains(object) && l.contains(says)),
        "expected a problem naming {object} and saying {says:?}; got:\n{out}"
    );
}

#[tokio::test]
async fn verify_all_names_each_change_a_store_writer_makes() {
    let app = spawn_app().await;
    let store = app.store.clone();
    let mut records = Vec::new();
    for _ in 0..5 {
        let (id, record) = app.recorded_call(&["press:1"]).await;
        // One seal per call, so the chain has a middle.
        app.seal_all().await;
        records.push((id, record));
    }
    let (code, out) = verify_cli(&app.data_dir, &["--all"], vec![]).await;
    assert_eq!(code, 0, "an untouched store verifies:\n{out}");
    assert!(problem_lines(&out).is_empty(), "{out}");

    // 1. One byte of an archival WAV; 2. one byte of an original.
    let (_, ra) = &records[0];
    let archival = audio_key(ra, "archival");
    flip_byte(store.as_ref(), &archival, 100).await;
    let (_, rb) = &records[1];
    let original = audio_key(rb, "original");
    flip_byte(store.as_ref(), &original, 100).await;
    // 3. One field of a record.
    let (c, rc) = &records[2];
    let c_key = latest_key(c, rc);
    let text = String::from_utf8(store.get(&key(&c_key)).await.unwrap().unwrap().to_vec()).unwrap();
    overwrite(
        store.as_ref(),
        &c_key,
        text.replacen("ACC-1001", "ACC-9999", 1).into_bytes(),
    )
    .await;
    // 4. A sealed record version deleted, with its signature.
    let (d, _) = &records[3];
    delete_prefix(store.as_ref(), &format!("records/{d}/")).await;
    // 5. A key added to the store, and a changed record signed with it.
    let (e, re) = &records[4];
    let e_key = latest_key(e, re);
    let forger = callproof::evidence::keys::SigningKey::from_pem(
        &callproof::evidence::keys::SigningKey::generate_pem().unwrap(),
    )
    .unwrap();
    let fp = forger.public().fingerprint();
    let mut forged: Value =
        serde_json::from_slice(&store.get(&key(&e_key)).await.unwrap().unwrap()).unwrap();
    forged["outcome"]["outcome"] = Value::from("declined");
    forged["signing_key"] = Value::from(fp.clone());
    let forged = serde_json::to_vec_pretty(&forged).unwrap();
    delete_prefix(store.as_ref(), &format!("records/{e}/")).await;
    let sig_key = callproof::evidence::objects::signature_key(&key(&e_key), &forged).unwrap();
    store
        .create(&sig_key, Bytes::from(forger.sign(&forged)))
        .await
        .unwrap();
    store
        .create(&key(&e_key), Bytes::from(forged))
        .await
        .unwrap();
    store
        .create(
            &key(&format!("keys/public/{fp}.pem")),
            Bytes::from(forger.public().pem()),
        )
        .await
        .unwrap();
    // 6. A seal from the middle of the chain.
    let head = callproof::evidence::seal::head(store.as_ref())
        .await
        .unwrap();
    assert!(head.seal >= 4, "one seal per call at least: {head:?}");
    let middle = head.seal / 2;
    store
        .delete(&key(&format!("seals/{middle:020}.json")))
        .await
        .unwrap();

    let (code, out) = verify_cli(&app.data_dir, &["--all"], vec![]).await;
    assert_eq!(code, 1, "{out}");
    assert_problem(&out, &archival, "audio changed");
    assert_problem(&out, &original, "audio changed");
    assert_problem(&out, &c_key, "changed since seal");
    assert_problem(&out, &c_key, "has no signature");
    assert_problem(
        &out,
        &format!("records/{d}/"),
        "missing from the store: deleted",
    );
    assert_problem(&out, &e_key, "changed since seal");
    assert_problem(
        &out,
        &e_key,
        &format!("signed by key {fp}, which is not trusted"),
    );
    assert_problem(
        &out,
        &format!("seals/{middle:020}.json"),
        &format!(
            "seal {middle} is missing: the chain is broken between seals {} and {}",
            middle - 1,
            middle + 1
        ),
    );

    // The API names the same problems for one record.
    let resp = app
        .compliance_get(&format!("/v1/records/{c}/verify"), None)
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    let report: Value = resp.json().await.unwrap();
    assert_valid_against("verify-report.v1.schema.json", &report);
    assert_eq!(report["status"], "problems");
    assert!(report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["object"] == c_key.as_str() && f["severity"] == "problem"));
    app.stop().await;
}

#[tokio::test]
async fn deleting_the_newest_seals_with_their_records_is_caught_by_a_kept_head() {
    let tmp = tempfile::tempdir().unwrap();
    let app = spawn_in(tmp.path(), Options::default()).await;
    let store = app.store.clone();
    let (first, _) = app.recorded_call(&["press:1"]).await;
    let kept = app.seal_all().await;
    let served: Value = app
        .get_with("/v1/seals/head", Some(AGENT_KEY))
        .await
        .json()
        .await
        .unwrap();
    assert_valid_against("seal-head.v1.schema.json", &served);
    assert_eq!(served["seal"], kept.seal);
    // Every stored seal is what the published schema says.
    for k in store.list("seals/").await.unwrap() {
        if k.as_str().ends_with(".json") {
            let seal: Value =
                serde_json::from_slice(&store.get(&k).await.unwrap().unwrap()).unwrap();
            assert_valid_against("seal.v1.schema.json", &seal);
        }
    }
    assert_eq!(served["sha256"], kept.sha256.clone().unwrap().as_str());
    let (code, out) = verify_cli(
        tmp.path(),
        &[
            &first,
            "--expect-head",
            &format!("{}:{}", kept.seal, kept.sha256.clone().unwrap()),
        ],
        vec![],
    )
    .await;
    assert_eq!(code, 0, "{out}");

    // A second record is sealed and an outside party keeps that head. Then
    // the store writer deletes the newest seals with everything they list
    // (the second record among it) and every marker: the chain that is
    // left is consistent.
    let before = kept.seal;
    let (gone, _) = app.recorded_call(&["press:1"]).await;
    let later = app.seal_all().await;
    assert!(later.seal > before);
    let expect = format!("{}:{}", later.seal, later.sha256.clone().unwrap());
    app.stop().await;
    delete_prefix(store.as_ref(), &format!("records/{gone}/")).await;
    for n in (before + 1)..=later.seal {
        let sk = format!("seals/{n:020}.json");
        let seal: Value =
            serde_json::from_slice(&store.get(&key(&sk)).await.unwrap().unwrap()).unwrap();
        for o in seal["objects"].as_array().unwrap() {
            let k = o["key"].as_str().unwrap();
            delete_prefix(store.as_ref(), k.strip_suffix(".json").unwrap()).await;
        }
        delete_prefix(store.as_ref(), &format!("seals/{n:020}")).await;
    }
    delete_prefix(store.as_ref(), "seal/pending/").await;
    let (code, out) = verify_cli(tmp.path(), &["--all"], vec![]).await;
    assert_eq!(
        code, 0,
        "without a kept head the truncated chain is consistent:\n{out}"
    );
    assert!(out.contains("completeness unproven"), "{out}");
    let (code, out) = verify_cli(tmp.path(), &["--all", "--expect-head", &expect], vec![]).await;
    assert_eq!(code, 1, "{out}");
    assert_problem(
        &out,
        &format!("seals/{:020}.json", later.seal),
        "the head is older than expected",
    );
    let (code, out) = verify_cli(tmp.path(), &["--all", "--expect-head", "nonsense"], vec![]).await;
    assert_eq!(
        code, 2,
        "a head that cannot be read is a usage error:\n{out}"
    );
}

#[tokio::test]
async fn after_a_key_rotation_old_records_verify_and_new_ones_carry_the_new_key() {
    let keys = tempfile::tempdir().unwrap();
    let make = |name: &str| {
        let pem = callproof::evidence::keys::SigningKey::generate_pem().unwrap();
        let path = keys.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path.display().to_string()
    };
    let (old, new) = (make("old.pem"), make("new.pem"));
    let fp = |path: &str| {
        callproof::evidence::keys::SigningKey::from_file(Path::new(path))
            .unwrap()
            .public()
            .fingerprint()
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let app = spawn_in(
        dir,
        Options {
            extra: vec![("CALLPROOF_SIGNING_KEY_FILE", old.clone())],
            ..Options::default()
        },
    )
    .await;
    let (before, rec) = app.recorded_call(&["press:1"]).await;
    assert_eq!(rec["signing_key"], fp(&old).as_str());
    app.seal_all().await;
    app.stop().await;

    let app = spawn_in(
        dir,
        Options {
            extra: vec![
                ("CALLPROOF_SIGNING_KEY_FILE", new.clone()),
                ("CALLPROOF_PREVIOUS_SIGNING_KEY_FILE", old.clone()),
            ],
            ..Options::default()
        },
    )
    .await;
    let (after, rec) = app.recorded_call(&["press:1"]).await;
    assert_eq!(rec["signing_key"], fp(&new).as_str());
    app.seal_all().await;
    let keys_served: Value = app
        .get_with("/v1/keys", Some(AGENT_KEY))
        .await
        .json()
        .await
        .unwrap();
    let served: Vec<&str> = keys_served["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["fingerprint"].as_str().unwrap())
        .collect();
    assert!(
        served.contains(&fp(&old).as_str()) && served.contains(&fp(&new).as_str()),
        "{keys_served}"
    );
    app.stop().await;

    // A verifier that trusts only the new key's fingerprint accepts both records.
    let only_new = vec![
        ("CALLPROOF_TRUSTED_KEYS", fp(&new)),
        ("CALLPROOF_SIGNING_KEY_FILE", new.clone()),
    ];
    for id in [&before, &after] {
        let (code, out) = verify_cli(dir, &[id.as_str()], only_new.clone()).await;
        assert_eq!(code, 0, "record {id}:\n{out}");
    }
    let (code, out) = verify_cli(dir, &["--all"], only_new).await;
    assert_eq!(code, 0, "{out}");
    // A verifier that trusts only the old key follows the statement too.
    let only_old = vec![("CALLPROOF_SIGNING_KEY_FILE", old.clone())];
    let (code, out) = verify_cli(dir, &["--all"], only_old).await;
    assert_eq!(code, 0, "{out}");
    // A key nobody configured trusts nothing.
    let stranger = make("stranger.pem");
    let (code, out) = verify_cli(
        dir,
        &["--all"],
        vec![("CALLPROOF_SIGNING_KEY_FILE", stranger)],
    )
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not trusted"), "{out}");
}

#[tokio::test]
async fn records_from_before_signing_verify_as_unsigned_and_a_stripped_signature_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A store holding a format-1 record written before signing existed.
    let env = test_env(dir, Options::default()).await;
    let store = callproof::server::connect_store(&test_config(dir, &env))
        .await
        .unwrap();
    let old = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("recordings-schema/examples/03-incomplete-no-recording.json"),
    )
    .unwrap();
    let old_key = "records/490f6f1d8571696c5a8e174e1bb19c8d/v0001.json";
    store.create(&key(old_key), Bytes::from(old)).await.unwrap();

    let app = spawn_in(dir, Options::default()).await;
    // The first seal is the backfill seal: it lists what was there before.
    assert_eq!(app.seal_all().await.seal, 1);
    let (id, record) = app.recorded_call(&["press:1"]).await;
    let head = app.seal_all().await;
    assert!(head.seal >= 1);
    let report = app.verify_all().await;
    assert!(!report.has_problems(), "{:?}", report.findings);
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.object == old_key && f.detail == "unsigned (written before signing)"),
        "{:?}",
        report.findings
    );
    // Stripping a signed version's signature and key id does not make it old.
    let k = latest_key(&id, &record);
    let mut stripped: Value =
        serde_json::from_slice(&store.get(&key(&k)).await.unwrap().unwrap()).unwrap();
    stripped["schema"] = Value::from("callproof.confirmation-record.v1");
    stripped.as_object_mut().unwrap().remove("signing_key");
    delete_prefix(store.as_ref(), k.strip_suffix(".json").unwrap()).await;
    store
        .create(
            &key(&k),
            Bytes::from(serde_json::to_vec_pretty(&stripped).unwrap()),
        )
        .await
        .unwrap();
    let report = app.verify_all().await;
    assert!(
        report.findings.iter().any(|f| f.object == k
            && f.severity == callproof::evidence::verify::Severity::Problem
            && f.detail.contains("unsigned, and not in the backfill seal")),
        "{:?}",
        report.findings
    );
    app.stop().await;
}

#[tokio::test]
async fn a_deleted_audit_entry_is_reported_by_verification() {
    let app = spawn_app().await;
    let (id, _) = app.recorded_call(&["press:1"]).await;
    let resp = app
        .compliance_get(&format!("/v1/records/{id}/audio"), None)
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    app.seal_all().await;
    let report = app.verify_all().await;
    assert!(!report.has_problems(), "{:?}", report.findings);
    let entries: Vec<String> = app
        .store
        .list("audit/")
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.ends_with(".json"))
        .collect();
    let mut replay = None;
    for k in &entries {
        let e: Value =
            serde_json::from_slice(&app.store.get(&key(k)).await.unwrap().unwrap()).unwrap();
        if e["action"] == "records.audio" {
            replay = Some(k.clone());
        }
    }
    let replay = replay.expect("the replay is audited");
    app.store.delete(&key(&replay)).await.unwrap();
    let report = app.verify_all().await;
    assert!(
        report.findings.iter().any(|f| f.object == replay
            && f.severity == callproof::evidence::verify::Severity::Problem
            && f.detail.contains("missing from the store: deleted")),
        "{:?}",
        report.findings
    );
    app.stop().await;
}

#[tokio::test]
async fn a_signed_object_copied_over_another_and_sealing_blocked_are_caught() {
    let app = spawn_app().await;
    let (id, _) = app.recorded_call(&["press:1"]).await;
    for _ in 0..2 {
        let resp = app
            .compliance_get(&format!("/v1/records/{id}/audio"), None)
            .await;
        assert_eq!(resp.status().as_u16(), 200);
    }
    app.seal_all().await;
    let mut entries: Vec<String> = app
        .store
        .list("audit/")
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.ends_with(".json"))
        .collect();
    entries.sort();
    let (a, b) = (entries[0].clone(), entries[1].clone());
    // B is replaced by A's bytes and A's signature, and announced again, so
    // the sealer sees a validly signed object and seals it once more.
    let a_bytes = app.store.get(&key(&a)).await.unwrap().unwrap();
    let a_sig_key = callproof::evidence::objects::signature_key(&key(&a), &a_bytes).unwrap();
    let a_sig = app.store.get(&a_sig_key).await.unwrap().unwrap();
    overwrite(app.store.as_ref(), &b, a_bytes.to_vec()).await;
    let b_sig_key = callproof::evidence::objects::signature_key(&key(&b), &a_bytes).unwrap();
    app.store.create(&b_sig_key, a_sig).await.unwrap();
    let marker = callproof::evidence::objects::marker_key(&b).unwrap();
    app.store
        .create(
            &marker,
            Bytes::from(format!(r#"{{"key":"{b}","at":"2026-01-01T00:00:00Z"}}"#)),
        )
        .await
        .unwrap();
    app.seal_all().await;
    let report = app.verify_all().await;
    let about_b: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| f.object == b && f.severity == callproof::evidence::verify::Severity::Problem)
        .map(|f| f.detail.as_str())
        .collect();
    assert!(
        about_b.iter().any(|d| d.contains("and again in seal")),
        "{about_b:?}"
    );
    assert!(
        about_b.iter().any(|d| d.contains("its contents belong at")),
        "{about_b:?}"
    );

    // A lease claiming to last for ever, or one that does not read, does not stop sealing.
    app.store
        .create(
            &key("jobs/leases/seal/18000000000000000000.json"),
            Bytes::from_static(
                br#"{"owner":"someone","generation":18000000000000000000,"taken_at":"2026-01-01T00:00:00Z","expires_at":"9999-01-01T00:00:00Z"}"#,
            ),
        )
        .await
        .unwrap();
    app.store
        .create(
            &key("jobs/leases/seal/99999999999999999999.json"),
            Bytes::from_static(b"not a lease"),
        )
        .await
        .unwrap();
    let before = app.seal_all().await.seal;
    let (later, _) = app.recorded_call(&["press:1"]).await;
    // Unsealed past its grace is a problem, whatever the markers say.
    let trust = callproof::evidence::trust::Trust::configured(
        Some(
            callproof::evidence::keys::SigningKey::from_file(
                &app.data_dir.join("dev-signing-key.pem"),
            )
            .unwrap()
            .public(),
        ),
        None,
    )
    .unwrap();
    let noop = |_: u64, _: u64| {};
    let strict = callproof::evidence::verify::verify(
        app.store.as_ref(),
        &trust,
        &callproof::evidence::verify::Scope::Record(later.clone()),
        None,
        std::time::Duration::ZERO,
        &noop,
    )
    .await
    .unwrap();
    assert!(
        strict
            .findings
            .iter()
            .any(|f| f.detail.contains("still not sealed")),
        "{:?}",
        strict.findings
    );
    assert!(
        app.seal_all().await.seal > before,
        "the planted lease was taken over"
    );
    app.stop().await;
}
