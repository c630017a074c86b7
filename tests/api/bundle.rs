//! Evidence bundles, checked the way their reader checks them: unzipped with
//! `unzip`, then exactly the `$ ` lines of VERIFY.txt run with `sh` and OpenSSL 3.
//!
//! Each test also changes what a forger would change (a byte of any file; the
//! audio together with a regenerated SHA256SUMS) and shows a line then fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_callproof");

fn sealing_every_second() -> Options {
    Options {
        extra: vec![("CALLPROOF_SEAL_SECS", "1".into())],
        ..Options::default()
    }
}

/// Waits until a stored seal lists `key`; returns the seal's number.
async fn wait_sealed(app: &TestApp, key: &str) -> u64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        for k in app.store.list("seals/").await.expect("store lists") {
            if !k.as_str().ends_with(".json") {
                continue;
            }
            let bytes = app.store.get(&k).await.expect("reads").expect("stored");
            let seal: serde_json::Value = serde_json::from_slice(&bytes).expect("seal JSON");
            if seal["objects"]
                .as_array()
                .expect("objects")
                .iter()
                .any(|o| o["key"] == key)
            {
                return seal["seal"].as_u64().expect("number");
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{key} not sealed within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn export(app: &TestApp, id: &str, key: &str, reason: Option<&str>) -> reqwest::Response {
    let mut req = app
        .client
        .get(format!("{}/v1/records/{id}/export", app.base))
        .bearer_auth(key);
    if let Some(r) = reason {
        req = req.header("x-callproof-reason", r);
    }
    req.send().await.expect("request sent")
}

/// Exports record `id` over HTTP into `dir/bundle.zip` and unzips it into `dir/bundle`.
async fn export_and_unzip(app: &TestApp, id: &str, dir: &Path) -> PathBuf {
    let resp = export(
        app,
        id,
        COMPLIANCE_KEY,
        Some("dispute 4411: customer denies the change"),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "application/zip");
    assert_eq!(
        resp.headers()["content-disposition"],
        format!("attachment; filename=\"{id}.zip\"").as_str()
    );
    let zip = dir.join("bundle.zip");
    std::fs::write(&zip, resp.bytes().await.expect("body")).expect("zip written");
    unzip(&zip, &dir.join("bundle"));
    dir.join("bundle")
}

fn unzip(zip: &Path, to: &Path) {
    let out = Command::new("unzip")
        .arg("-q")
        .arg(zip)
        .arg("-d")
        .arg(to)
        .output()
        .expect("unzip runs (scripts/test installs it)");
    assert!(
        out.status.success(),
        "unzip: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `$ ` lines of a VERIFY.txt, without the `$ `.
fn commands(verify: &str) -> Vec<String> {
    verify
        .lines()
        .filter_map(|l| l.strip_prefix("$ "))
        .map(str::to_owned)
        .collect()
}

/// Runs each command with `sh -c` in `dir`; returns those that failed, with their output.
fn failing(dir: &Path, commands: &[String]) -> Vec<(String, String)> {
    commands
        .iter()
        .filter_map(|c| {
            let out = Command::new("sh")
                .arg("-c")
                .arg(c)
                .current_dir(dir)
                .output()
                .expect("sh runs");
            (!out.status.success()).then(|| {
                (
                    c.clone(),
                    format!(
                        "{}{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    ),
                )
            })
        })
        .collect()
}

/// Every file under `dir`, as paths relative to it, sorted.
fn files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).expect("dir reads") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).expect("under root");
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    for f in files(from) {
        let dst = to.join(&f);
        std::fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir");
        std::fs::copy(from.join(&f), dst).expect("copy");
    }
}

/// Rewrites SHA256SUMS with `sha256sum` over the files it lists, as a forger would.
fn regenerate_sums(dir: &Path) {
    let listed: Vec<String> = std::fs::read_to_string(dir.join("SHA256SUMS"))
        .expect("SHA256SUMS")
        .lines()
        .map(|l| l.split_once("  ").expect("sha256sum format").1.to_owned())
        .collect();
    let out = Command::new("sha256sum")
        .args(&listed)
        .current_dir(dir)
        .output()
        .expect("sha256sum runs");
    assert!(out.status.success());
    std::fs::write(dir.join("SHA256SUMS"), out.stdout).expect("rewritten");
}

fn sha256_file(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).expect("reads")))
}

#[tokio::test]
async fn a_bundle_verifies_with_its_own_commands_and_not_after_any_change() {
    let v = Command::new("openssl")
        .arg("version")
        .output()
        .expect("openssl runs");
    assert!(
        String::from_utf8_lossy(&v.stdout).starts_with("OpenSSL 3"),
        "VERIFY.txt needs OpenSSL 3: {}",
        String::from_utf8_lossy(&v.stdout)
    );
    let app = spawn_with(sealing_every_second()).await;
    let (id, record) = app.recorded_call(&["press:1"]).await;
    let version = record["version"].as_u64().expect("version");
    let record_key = format!("records/{id}/v{version:04}.json");
    wait_sealed(&app, &record_key).await;

    let tmp = tempfile::tempdir().expect("temp dir");
    let good = export_and_unzip(&app, &id, tmp.path()).await;
    let stored = app
        .store
        .get(&callproof::store::ObjectKey::new(record_key.clone()).expect("key"))
        .await
        .expect("reads")
        .expect("stored");

    // Every file at its documented place; the record exactly as stored.
    assert_eq!(
        files(&good),
        [
            "FINGERPRINT",
            "SHA256SUMS",
            "VERIFY.txt",
            "audio/archival.wav",
            "audio/original.wav",
            "public-key.pem",
            "record.json",
            "record.json.sig",
            "seal.json",
            "seal.json.sig",
        ]
    );
    assert_eq!(
        std::fs::read(good.join("record.json")).expect("record"),
        stored
    );
    assert_eq!(
        std::fs::read(good.join("record.json.sig"))
            .expect("sig")
            .len(),
        64
    );
    assert_eq!(
        std::fs::read_to_string(good.join("FINGERPRINT")).expect("fingerprint"),
        format!("{}\n", record["signing_key"].as_str().expect("signed"))
    );
    for a in record["recording"]["audio"].as_array().expect("audio") {
        let name = match a["role"].as_str() {
            Some("archival") => "audio/archival.wav",
            _ => "audio/original.wav",
        };
        assert_eq!(
            sha256_file(&good.join(name)),
            a["sha256"].as_str().expect("sha")
        );
    }

    // The reader's commands, run exactly as written, all hold.
    let verify = std::fs::read_to_string(good.join("VERIFY.txt")).expect("VERIFY.txt");
    assert!(verify.contains("LibreSSL"));
    let cmds = commands(&verify);
    assert!(cmds
        .iter()
        .any(|c| c.contains("-rawin -in record.json -sigfile record.json.sig")));
    assert!(cmds
        .iter()
        .any(|c| c.contains("-rawin -in seal.json -sigfile seal.json.sig")));
    assert!(cmds
        .iter()
        .any(|c| c.starts_with("sha256sum audio/archival.wav")));
    assert!(cmds
        .iter()
        .any(|c| c.starts_with("sha256sum audio/original.wav")));
    assert_eq!(failing(&good, &cmds), Vec::<(String, String)>::new());

    // One flipped byte in any file fails a line. For every file but the two
    // unsigned conveniences, SHA256SUMS is regenerated as a forger would, so
    // the failure comes from the signed checks, not from the list.
    for (n, f) in files(&good).iter().enumerate() {
        let copy = tmp.path().join(format!("flip-{n}"));
        copy_dir(&good, &copy);
        let path = copy.join(f);
        let mut bytes = std::fs::read(&path).expect("reads");
        let at = bytes.len() / 2;
        bytes[at] ^= 0x01;
        std::fs::write(&path, &bytes).expect("writes");
        let unsigned = f == "SHA256SUMS" || f == "VERIFY.txt";
        if !unsigned {
            regenerate_sums(&copy);
        }
        let failed = failing(&copy, &cmds);
        assert!(!failed.is_empty(), "a flipped byte in {f} went unnoticed");
        if !unsigned {
            assert!(
                failed
                    .iter()
                    .all(|(c, _)| c != "sha256sum --strict -c SHA256SUMS"),
                "{f}: the regenerated list passes; the proof is elsewhere"
            );
        }
    }

    // A flip of the space after a hash leaves a malformed line, which plain
    // `sha256sum -c` only warns about (exit 0); `--strict` fails it.
    let malformed = tmp.path().join("malformed-sums");
    copy_dir(&good, &malformed);
    let sums = malformed.join("SHA256SUMS");
    let mut bytes = std::fs::read(&sums).expect("reads");
    assert_eq!(bytes[64], b' ', "a hash, then two spaces");
    bytes[64] ^= 0x01;
    std::fs::write(&sums, &bytes).expect("writes");
    assert_eq!(
        failing(&malformed, &cmds)
            .iter()
            .map(|(c, _)| c.as_str())
            .collect::<Vec<_>>(),
        ["sha256sum --strict -c SHA256SUMS"]
    );

    // Other audio under the same name, with a SHA256SUMS made to match it.
    let forged = tmp.path().join("forged");
    copy_dir(&good, &forged);
    std::fs::write(
        forged.join("audio/archival.wav"),
        fixture("speech-8k-dual.wav"),
    )
    .expect("writes");
    regenerate_sums(&forged);
    let failed = failing(&forged, &cmds);
    assert_eq!(
        failed.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
        [format!(
            "sha256sum audio/archival.wav | grep -q '^{} '",
            sha256_file(&good.join("audio/archival.wav"))
        )
        .as_str()],
        "only the audio's own check fails"
    );

    // No reason: 400 and no zip. A blank reason is no reason.
    for reason in [None, Some("   ")] {
        let resp = export(&app, &id, COMPLIANCE_KEY, reason).await;
        assert_eq!(resp.status().as_u16(), 400);
        assert_ne!(resp.headers()["content-type"], "application/zip");
        let body: serde_json::Value = resp.json().await.expect("a JSON error");
        assert!(body["error"]
            .as_str()
            .expect("error")
            .contains("X-Callproof-Reason"));
    }
    let resp = export(&app, &"0".repeat(32), COMPLIANCE_KEY, Some("audit")).await;
    assert_eq!(resp.status().as_u16(), 404);
    let resp = export(&app, &id, AGENT_KEY, Some("audit")).await;
    assert_eq!(resp.status().as_u16(), 403);
    let resp = export(&app, &id, ADMIN_KEY, Some("audit")).await;
    assert_eq!(resp.status().as_u16(), 200);

    // Each export is in the audit log with its reason; the refused ones are not.
    let log: serde_json::Value = app
        .get_with(
            &format!("/v1/audit?record={id}&limit=1000"),
            Some(ADMIN_KEY),
        )
        .await
        .json()
        .await
        .expect("audit list");
    let exports: Vec<(&str, &str)> = log["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == "records.export")
        .map(|e| {
            (
                e["actor"]["role"].as_str().unwrap_or_default(),
                e["reason"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        exports,
        [
            ("admin", "audit"),
            ("compliance", "dispute 4411: customer denies the change")
        ],
        "newest first: {log}"
    );

    // The CLI writes the same bundle, whole, and names its SHA-256.
    let out_dir = tmp.path().join("cli");
    std::fs::create_dir(&out_dir).expect("mkdir");
    let out_zip = out_dir.join("evidence.zip");
    // Run without blocking the runtime this test shares with the server.
    let cli = async |args: &[&str]| {
        tokio::process::Command::new(BIN)
            .args([
                "records",
                "--server",
                &app.base,
                "--api-key",
                COMPLIANCE_KEY,
            ])
            .args(args)
            .output()
            .await
            .expect("callproof runs")
    };
    let out = cli(&[
        "export",
        &id,
        "-o",
        out_zip.to_str().expect("utf-8 path"),
        "--reason",
        "dispute 4411",
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}  {}\n", sha256_file(&out_zip), out_zip.display())
    );
    let from_cli = tmp.path().join("from-cli");
    unzip(&out_zip, &from_cli);
    assert_eq!(files(&from_cli), files(&good));
    for f in files(&good) {
        assert_eq!(
            std::fs::read(from_cli.join(&f)).expect("reads"),
            std::fs::read(good.join(&f)).expect("reads"),
            "{f} differs between the API and the CLI bundle"
        );
    }
    assert_eq!(failing(&from_cli, &cmds), Vec::<(String, String)>::new());

    // A refused export leaves nothing behind; the reason is required.
    let missing = out_dir.join("missing.zip");
    let out = cli(&[
        "export",
        &"0".repeat(32),
        "-o",
        missing.to_str().expect("utf-8 path"),
        "--reason",
        "audit",
    ])
    .await;
    assert_eq!(out.status.code(), Some(2), "could not export: exit 2");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such record"));
    let out = cli(&["export", &id, "-o", missing.to_str().expect("utf-8 path")]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--reason"));
    let left: Vec<String> = std::fs::read_dir(&out_dir)
        .expect("dir reads")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["evidence.zip"]);

    // Stored evidence that does not check out is not bundled.
    let archival = record["recording"]["audio"]
        .as_array()
        .expect("audio")
        .iter()
        .find(|a| a["role"] == "archival")
        .expect("an archival copy");
    let k = callproof::store::ObjectKey::new(archival["key"].as_str().expect("key")).expect("key");
    app.store.delete(&k).await.expect("deletes");
    app.store
        .create(&k, fixture("speech-8k-dual.wav"))
        .await
        .expect("creates");
    let resp = export(&app, &id, COMPLIANCE_KEY, Some("audit")).await;
    assert_eq!(resp.status().as_u16(), 409);
    let body: serde_json::Value = resp.json().await.expect("a JSON error");
    assert!(
        body["error"].as_str().expect("error").contains(k.as_str()),
        "{body}"
    );
    // The CLI calls it an evidence problem: exit 1, and no file.
    let out_zip = tmp.path().join("refused.zip");
    let out = cli(&[
        "export",
        &id,
        "-o",
        out_zip.to_str().expect("utf-8 path"),
        "--reason",
        "audit",
    ])
    .await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out_zip.exists());
}

#[tokio::test]
async fn a_record_signed_before_a_key_rotation_bundles_the_key_that_sealed_it() {
    let keys = tempfile::tempdir().expect("temp dir");
    let (old, new) = (keys.path().join("old.pem"), keys.path().join("new.pem"));
    for k in [&old, &new] {
        std::fs::write(
            k,
            callproof::evidence::keys::SigningKey::generate_pem().expect("key"),
        )
        .expect("key written");
    }
    let key_file = |p: &Path| p.display().to_string();
    // Signed by the old key and not sealed by it: its seals are an hour apart.
    let app = spawn_with(Options {
        extra: vec![
            ("CALLPROOF_SIGNING_KEY_FILE", key_file(&old)),
            ("CALLPROOF_SEAL_SECS", "3600".into()),
        ],
        ..Options::default()
    })
    .await;
    let (id, record) = app.recorded_call(&["press:1"]).await;
    let data = app.stop().await.expect("data dir");
    let old_fp = record["signing_key"].as_str().expect("signed").to_owned();
    let record_key = format!(
        "records/{id}/v{:04}.json",
        record["version"].as_u64().expect("version")
    );

    // The new key seals it, once the rotation statement introduces it.
    let app = spawn_in(
        data.path(),
        Options {
            extra: vec![
                ("CALLPROOF_SIGNING_KEY_FILE", key_file(&new)),
                ("CALLPROOF_PREVIOUS_SIGNING_KEY_FILE", key_file(&old)),
                ("CALLPROOF_SEAL_SECS", "1".into()),
            ],
            ..Options::default()
        },
    )
    .await;
    wait_sealed(&app, &record_key).await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = export_and_unzip(&app, &id, tmp.path()).await;
    let new_fp = app
        .get_with("/v1/keys", Some(AGENT_KEY))
        .await
        .json::<serde_json::Value>()
        .await
        .expect("keys")["keys"][0]["fingerprint"]
        .as_str()
        .expect("fingerprint")
        .to_owned();
    assert_ne!(new_fp, old_fp);
    assert_eq!(
        std::fs::read_to_string(dir.join("FINGERPRINT")).expect("fingerprint"),
        format!("{old_fp}\n")
    );
    assert!(dir.join("seal-public-key.pem").exists());
    let verify = std::fs::read_to_string(dir.join("VERIFY.txt")).expect("VERIFY.txt");
    assert!(verify.contains(&new_fp), "VERIFY.txt names the sealing key");
    let cmds = commands(&verify);
    assert!(cmds
        .iter()
        .any(|c| c.contains("-inkey seal-public-key.pem")));
    assert_eq!(failing(&dir, &cmds), Vec::<(String, String)>::new());
    // A seal key that is not the one named fails its fingerprint line.
    let copy = tmp.path().join("swapped");
    copy_dir(&dir, &copy);
    std::fs::copy(dir.join("public-key.pem"), copy.join("seal-public-key.pem")).expect("copy");
    regenerate_sums(&copy);
    assert!(!failing(&copy, &cmds).is_empty());
    app.stop().await;

    // Without the previous key configured, the old key is still handed over:
    // the rotation statement, signed by both keys, links it to the new one.
    // The same version and seal give the same bundle.
    let app = spawn_in(
        data.path(),
        Options {
            extra: vec![("CALLPROOF_SIGNING_KEY_FILE", key_file(&new))],
            ..Options::default()
        },
    )
    .await;
    let again = tempfile::tempdir().expect("temp dir");
    let second = export_and_unzip(&app, &id, again.path()).await;
    assert_eq!(
        std::fs::read(again.path().join("bundle.zip")).expect("zip"),
        std::fs::read(tmp.path().join("bundle.zip")).expect("zip"),
        "the same sealed version gives the same zip"
    );
    assert_eq!(files(&second), files(&dir));
    for f in files(&dir) {
        assert_eq!(
            std::fs::read(second.join(&f)).expect("reads"),
            std::fs::read(dir.join(&f)).expect("reads"),
            "{f} differs between two exports of the same sealed version"
        );
    }
    app.stop().await;
}
