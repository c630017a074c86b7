//! Signed records, checked with nothing but OpenSSL: a key made by
//! `openssl genpkey` signs every version, and `openssl pkeyutl` verifies it.

use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::helpers::*;

fn openssl(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (it is part of the test machine)")
}

#[tokio::test]
async fn a_key_made_by_openssl_signs_each_record_version_and_openssl_verifies_it() {
    let keys = tempfile::tempdir().unwrap();
    let k = keys.path();
    let out = openssl(
        &[
            "genpkey",
            "-algorithm",
            "ed25519",
            "-out",
            "signing-key.pem",
        ],
        k,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = openssl(
        &[
            "pkey",
            "-in",
            "signing-key.pem",
            "-pubout",
            "-outform",
            "DER",
        ],
        k,
    );
    assert!(out.status.success());
    let fingerprint = hex::encode(Sha256::digest(&out.stdout));

    let app = spawn_with(Options {
        extra: vec![(
            "CALLPROOF_SIGNING_KEY_FILE",
            k.join("signing-key.pem").display().to_string(),
        )],
        ..Options::default()
    })
    .await;
    // The key callproof serves is the operator's key, fingerprint and all.
    assert_eq!(app.get_with("/v1/keys", None).await.status().as_u16(), 401);
    let served: serde_json::Value = app
        .get_with("/v1/keys", Some(AGENT_KEY))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(served["keys"][0]["fingerprint"], fingerprint.as_str());
    std::fs::write(
        k.join("public-key.pem"),
        served["keys"][0]["public_key_pem"].as_str().unwrap(),
    )
    .unwrap();

    let (id, record) = app.recorded_call(&["press:1"]).await;
    assert_eq!(record["schema"], "callproof.confirmation-record.v2");
    assert_eq!(record["signing_key"], fingerprint.as_str());

    // The signature beside the version, named by the digest of the bytes it signs.
    let bytes = app
        .store
        .get(&callproof::store::ObjectKey::new(format!("records/{id}/v0001.json")).unwrap())
        .await
        .unwrap()
        .unwrap();
    let digest = hex::encode(Sha256::digest(&bytes));
    let sigs: Vec<String> = app
        .store
        .list(&format!("records/{id}/"))
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.ends_with(".sig"))
        .collect();
    assert_eq!(sigs, [format!("records/{id}/v0001.{}.sig", &digest[..16])]);
    let sig = app
        .store
        .get(&callproof::store::ObjectKey::new(sigs[0].clone()).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sig.len(), 64);
    std::fs::write(k.join("record.json"), &bytes).unwrap();
    std::fs::write(k.join("record.json.sig"), &sig).unwrap();
    let verify = |file: &str| {
        openssl(
            &[
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                "public-key.pem",
                "-rawin",
                "-in",
                file,
                "-sigfile",
                "record.json.sig",
            ],
            k,
        )
    };
    let out = verify("record.json");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // One changed byte and the signature no longer holds.
    let mut changed = bytes.to_vec();
    let at = changed.len() / 2;
    changed[at] ^= 1;
    std::fs::write(k.join("changed.json"), &changed).unwrap();
    assert!(!verify("changed.json").status.success());
}
