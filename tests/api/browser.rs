//! The replay page in a real browser: Debian's Chromium, driven by the pinned
//! playwright-core of tests/browser, against a server holding one recorded call.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

/// The reason the browser gives before playing and before exporting.
const PLAY_REASON: &str = "browser test: replay for dispute D-118";
const EXPORT_REASON: &str = "browser test: export for dispute D-118";

/// A customer name and a change label that are markup: the page shows them as text.
const HOSTILE_NAME: &str = "Dana <img src=x id=xss-name> Reyes";
const HOSTILE_LABEL: &str = "card on file <script id=xss-label>window.xss = 1</script>";

/// Where the browser test leaves its screenshots and the zip it downloaded.
fn artefacts() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-artefacts")
}

/// Fails, saying how to install it, when a tool the browser test needs is missing.
fn check_tools(root: &Path) {
    let installed = root.join("tests/browser/node_modules/playwright-core/package.json");
    assert!(
        installed.exists(),
        "playwright-core is not installed in tests/browser: run scripts/test, which runs `npm ci --prefix tests/browser` (with PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1)"
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: run scripts/test, which installs Debian's chromium (apt-get install chromium)"
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "node is missing: the browser test runs tests/browser/replay.mjs with Node 20 or later"
    );
}

/// Entries of the audit log about `id` whose action is `action`.
async fn audited(app: &TestApp, id: &str, action: &str) -> Vec<Value> {
    let resp = app
        .get_with(
            &format!("/v1/audit?record={id}&limit=1000"),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 200, "GET /v1/audit");
    let page: Value = resp.json().await.expect("audit JSON");
    page["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == action)
        .cloned()
        .collect()
}

/// A record search finds, then deleted from the store as a store writer
/// can: search shows it as `missing`. Its id and confirmation number.
async fn missing_record(app: &TestApp) -> (String, String) {
    let (id, _) = app.recorded_call(&["press:1"]).await;
    let record = app.wait_record(&id, complete).await;
    let number = record["confirmation"]["confirmation_number"]
        .as_str()
        .expect("a confirmation number")
        .to_owned();
    let state = |page: Value| page["records"][0]["state"].clone();
    let path = format!("/v1/records?confirmation_number={number}");
    let page: Value = app
        .get_with(&path, Some(COMPLIANCE_KEY))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(state(page), "ok", "search finds the record");
    callproof::store::delete_all(app.store.as_ref(), &format!("records/{id}/"))
        .await
        .expect("the record's versions deleted");
    let page: Value = app
        .get_with(&path, Some(COMPLIANCE_KEY))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(state(page), "missing", "search names it missing");
    (id, number)
}

#[tokio::test]
async fn the_replay_page_signs_in_searches_plays_seeks_to_consent_and_exports() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    check_tools(root);
    let app = spawn_app().await;
    // Text a caller or an agent controls goes into the record as it was given:
    // the page must show it as text, never as markup.
    let mut request = billing_request();
    request["customer"]["name"] = HOSTILE_NAME.into();
    request["change"][0]["label"] = HOSTILE_LABEL.into();
    let created = app.create(&request).await;
    let id = created["id"].as_str().expect("an id").to_owned();
    app.call_with_recording(
        created["transfer_url"].as_str().expect("a transfer URL"),
        &["say:repeat", "say:yes I confirm"],
        fixture("speech-8k-dual.wav"),
    )
    .await;
    let record = app.wait_record(&id, complete).await;
    app.seal_all().await;
    let number = record["confirmation"]["confirmation_number"]
        .as_str()
        .expect("a confirmation number")
        .to_owned();
    assert_eq!(record["consent_events"].as_array().map(Vec::len), Some(2));
    let (missing_id, missing_number) = missing_record(&app).await;

    let out = artefacts();
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("artefact directory");
    let script = root.join("tests/browser/replay.mjs");
    let mut node = tokio::process::Command::new("node");
    node.arg(&script)
        .env("CALLPROOF_URL", &app.base)
        .env("CALLPROOF_KEY", COMPLIANCE_KEY)
        .env("CALLPROOF_RECORD_ID", &id)
        .env("CALLPROOF_CONFIRMATION_NUMBER", &number)
        .env("CALLPROOF_PLAY_REASON", PLAY_REASON)
        .env("CALLPROOF_EXPORT_REASON", EXPORT_REASON)
        .env("CALLPROOF_ARTEFACTS", &out)
        .env("CALLPROOF_HOSTILE_TEXT", HOSTILE_NAME)
        .env("CALLPROOF_MISSING_ID", &missing_id)
        .env("CALLPROOF_MISSING_NUMBER", &missing_number)
        .kill_on_drop(true);
    let ran = tokio::time::timeout(Duration::from_secs(180), node.output())
        .await
        .expect("the browser test finishes within 180 s")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&ran.stdout);
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert!(
        ran.status.success(),
        "tests/browser/replay.mjs failed ({}); screenshots in {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        ran.status,
        out.display()
    );
    println!("{stdout}");

    // The page downloaded the record's evidence bundle.
    let zip_path = out.join(format!("{id}.zip"));
    let file = std::fs::File::open(&zip_path)
        .unwrap_or_else(|e| panic!("the export saved {}: {e}", zip_path.display()));
    let mut zip = zip::ZipArchive::new(file).expect("the export is a zip");
    let names: Vec<String> = (0..zip.len())
        .map(|i| zip.by_index(i).expect("entry").name().to_owned())
        .collect();
    for needed in [
        "record.json",
        "record.json.sig",
        "audio/archival.wav",
        "SHA256SUMS",
    ] {
        assert!(
            names.iter().any(|n| n == needed),
            "the bundle holds {needed}: {names:?}"
        );
    }
    let mut bundled = String::new();
    std::io::Read::read_to_string(
        &mut zip.by_name("record.json").expect("record.json"),
        &mut bundled,
    )
    .expect("record.json reads");
    let bundled: Value = serde_json::from_str(&bundled).expect("record.json is JSON");
    assert_eq!(
        bundled["record_id"],
        id.as_str(),
        "the bundle is of this record"
    );
    for shot in [
        "signed-in",
        "search-results",
        "record",
        "after-seek",
        "exported",
        "signed-out",
    ] {
        assert!(
            out.join(format!("{shot}.png")).exists(),
            "screenshot {shot}.png saved in {}",
            out.display()
        );
    }

    // Each audited action carries the reason the page asked for.
    let played = audited(&app, &id, "records.playback").await;
    assert!(
        played.iter().any(|e| e["reason"] == PLAY_REASON),
        "a playback entry with the reason given in the page: {played:?}"
    );
    let exported = audited(&app, &id, "records.export").await;
    assert!(
        exported.iter().any(|e| e["reason"] == EXPORT_REASON),
        "an export entry with the reason given in the page: {exported:?}"
    );
    app.stop().await;
}
