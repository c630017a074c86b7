//! VERIFY.txt of a bundle and the bundle's small files: plain steps with the
//! literal hashes of this bundle, every command on its own `$ ` line.
//!
//! Each `$ ` line is a complete `sh` command run in the unzipped directory,
//! exiting non-zero when its check fails, so a person and a program run
//! exactly the same commands in the same order.

use time::format_description::well_known::Rfc3339;

use super::Plan;
use crate::evidence::objects::sha256_hex;

/// The fingerprint check of `pem` against the fingerprint in `expected`
/// (a shell word: `"$(cat FINGERPRINT)"` or a quoted literal).
fn fingerprint_line(pem: &str, expected: &str) -> String {
    format!(
        "$ test \"$(openssl pkey -pubin -in {pem} -outform DER | sha256sum | cut -d' ' -f1)\" = {expected}\n"
    )
}

fn pkeyutl_line(pem: &str, file: &str) -> String {
    format!("$ openssl pkeyutl -verify -pubin -inkey {pem} -rawin -in {file} -sigfile {file}.sig\n")
}

fn time(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// The text of VERIFY.txt for `plan`. Prose is indented; commands start at
/// the line's start with `$ `; nothing else does.
pub(super) fn verify_text(plan: &Plan) -> String {
    let fp = plan.key.fingerprint();
    let record_sha = sha256_hex(&plan.record);
    let mut t = format!(
        "HOW TO VERIFY THIS EVIDENCE BUNDLE

Record {id}, version {version} (its newest version when exported).
Written at {written} (by the server's clock); bundled by callproof {pkg}.
Signed by the key with fingerprint {fp}.
",
        id = plan.record_id,
        version = plan.version,
        written = time(plan.created_at),
        pkg = env!("CARGO_PKG_VERSION"),
    );
    t.push_str(&match &plan.seal {
        Some(s) => format!(
            "Listed in seal {}, made at {} (SHA-256 of seal.json: {}).\n",
            s.number,
            time(s.at),
            sha256_hex(&s.bytes)
        ),
        None => "Not listed in a seal yet (see step 4).\n".to_owned(),
    });
    t.push_str(
        "
WHAT IS IN IT

  record.json          the voice confirmation record: exactly the bytes callproof
                       stored and signed. It lists every audio file with its SHA-256.
  record.json.sig      callproof's Ed25519 signature of record.json (64 raw bytes).
  public-key.pem       the public key that made the signature.
  FINGERPRINT          that key's fingerprint: the SHA-256 of the key in DER form.
",
    );
    for a in &plan.audio {
        let what = if a.name.ends_with("archival.wav") {
            "the call recording as 16-bit PCM WAV, made by callproof."
        } else {
            "the call recording exactly as the telephony provider sent it."
        };
        t.push_str(&format!("  {:<20} {what}\n", a.name));
    }
    if let Some(s) = &plan.seal {
        t.push_str(
            "  seal.json            the seal that lists record.json: one link of callproof's
                       chain of seals, which names the SHA-256 of the seal before it.
  seal.json.sig        callproof's signature of seal.json.
",
        );
        if s.other_key.is_some() {
            t.push_str(
                "  seal-public-key.pem  the key that signed seal.json: the operator rotated its
                       signing key between the record and the seal.
",
            );
        }
    }
    t.push_str(
        r#"  SHA256SUMS           the SHA-256 of every other file. It is not signed.
  VERIFY.txt           this file.

WHAT YOU NEED

  A POSIX shell (sh), sha256sum, grep, cut, and OpenSSL 3.0 or later: `openssl
  version` must print "OpenSSL 3" or later. LibreSSL, which macOS ships as
  `openssl`, lacks `pkeyutl -rawin` and cannot check these signatures: install
  OpenSSL 3 (for example `brew install openssl@3`) and put it first on the PATH.

HOW TO RUN THE CHECKS

  Every command is on a line of its own that starts with "$ ". In the directory
  this bundle was unzipped to, run each one without the "$ ", in order. A
  command exits with status 0 when its check holds, and with another status
  when it fails: any failure means these files are not what callproof wrote.
  All at once, stopping at the first failure (this file itself is not signed:
  read the commands before you run them):

      sed -n 's/^[$] //p' VERIFY.txt | sh -ev

1. THE KEY (one check no command can do for you)

  A signature proves only that whoever holds the key in public-key.pem signed
  record.json. Who that is, is known from outside this bundle: compare the
  fingerprint in FINGERPRINT, character by character, with the one the operator
  of callproof publishes (its website, a contract annex, a regulator filing),
  never with anything that came with this bundle. If they differ, stop: nothing
  below proves anything. The commands check that FINGERPRINT is the fingerprint
  of public-key.pem, and that the signed record.json names this key.

"#,
    );
    t.push_str(&format!(
        "$ test \"$(cat FINGERPRINT)\" = '{}'\n",
        plan.key.fingerprint()
    ));
    t.push_str(&fingerprint_line(
        "public-key.pem",
        "\"$(cat FINGERPRINT)\"",
    ));
    t.push_str(
        r#"$ grep -q "\"signing_key\": \"$(cat FINGERPRINT)\"" record.json

2. THE RECORD

  Proves that record.json is exactly the bytes the key signed: not one byte
  was changed since. OpenSSL prints "Signature Verified Successfully".

"#,
    );
    t.push_str(&format!(
        "$ sha256sum record.json | grep -q '^{record_sha} '\n"
    ));
    t.push_str(&pkeyutl_line("public-key.pem", "record.json"));
    t.push_str("\n3. THE AUDIO\n\n");
    if plan.audio.is_empty() {
        t.push_str(
            "  The record lists no audio: no recording was stored for this call
  (record.json says why in incomplete_reason).
",
        );
    } else {
        t.push_str(
            "  For each audio file: the first command checks the file's SHA-256, the
  second that the signed record.json lists that SHA-256. Together they prove
  the file is the one callproof stored for this call.
",
        );
    }
    for a in &plan.audio {
        t.push_str(&format!(
            "\n$ sha256sum {name} | grep -q '^{sha} '\n$ grep -q '\"sha256\": \"{sha}\"' record.json\n",
            name = a.name,
            sha = a.sha256,
        ));
    }
    t.push_str("\n4. THE SEAL\n\n");
    match &plan.seal {
        None => t.push_str(
            "  record.json is not listed in a seal yet: callproof seals what it wrote
  every few minutes (CALLPROOF_SEAL_SECS). Export the record again later for a
  bundle with its seal. Without one, this bundle proves who signed
  record.json, but not that it is part of callproof's chain of seals.
",
        ),
        Some(s) => {
            t.push_str(
                "  The seal lists record.json by its SHA-256 and is signed too. It proves
  that record.json existed, exactly as it is, when the seal was made (by the
  server's clock). On its own it does not prove that nothing was removed from
  the store: that takes the whole chain of seals up to a head the operator
  published.

",
            );
            let pem = match &s.other_key {
                Some(k) => {
                    let other = k.fingerprint();
                    t.push_str(&format!(
                        "  seal.json was signed by another key than record.json: the operator
  rotated its signing key. That key's fingerprint is
  {other};
  compare it with the published ones too, as in step 1.

"
                    ));
                    t.push_str(&fingerprint_line(
                        "seal-public-key.pem",
                        &format!("'{other}'"),
                    ));
                    t.push_str(&format!(
                        "$ grep -q '\"signing_key\": \"{other}\"' seal.json\n"
                    ));
                    "seal-public-key.pem"
                }
                None => {
                    t.push_str(
                        r#"$ grep -q "\"signing_key\": \"$(cat FINGERPRINT)\"" seal.json
"#,
                    );
                    "public-key.pem"
                }
            };
            t.push_str(&pkeyutl_line(pem, "seal.json"));
            t.push_str(&format!(
                "$ sha256sum record.json | grep -q '^{record_sha} '
$ grep -q '\"sha256\": \"{record_sha}\"' seal.json
$ grep -q '\"key\": \"{key}\"' seal.json
",
                key = plan.record_key
            ));
        }
    }
    t.push_str(
        "
5. THE FILE LIST

  SHA256SUMS lists the SHA-256 of every other file. It catches a file damaged
  in transit, but it is not a proof: it is not signed, so whoever can change a
  file can rewrite it too. The checks above are the proof.

$ sha256sum --strict -c SHA256SUMS

WHAT THIS DOES NOT PROVE

  - Who was on the phone: the record holds what was asked and answered, and
    the caller's number masked, not the caller's identity.
  - That the server's clock was right: the times are callproof's own.
  - That there is no later version of the record: this is the newest version
    when it was exported; earlier ones are kept, and a later one supersedes it.
",
    );
    t
}

/// The bundle's files other than the audio and SHA256SUMS, in zip order.
pub(super) fn small_files(plan: &Plan) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![
        ("VERIFY.txt".to_owned(), verify_text(plan).into_bytes()),
        ("record.json".to_owned(), plan.record.to_vec()),
        ("record.json.sig".to_owned(), plan.signature.to_vec()),
        ("public-key.pem".to_owned(), plan.key.pem().into_bytes()),
        (
            "FINGERPRINT".to_owned(),
            format!("{}\n", plan.key.fingerprint()).into_bytes(),
        ),
    ];
    if let Some(s) = &plan.seal {
        out.push(("seal.json".to_owned(), s.bytes.to_vec()));
        out.push(("seal.json.sig".to_owned(), s.signature.to_vec()));
        if let Some(k) = &s.other_key {
            out.push(("seal-public-key.pem".to_owned(), k.pem().into_bytes()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::bundle::{AudioEntry, SealPart};
    use crate::evidence::keys::SigningKey;
    use crate::store::ObjectKey;
    use bytes::Bytes;
    use time::OffsetDateTime;

    fn plan(sealed: bool, rotated: bool) -> Plan {
        let key = SigningKey::from_pem(&SigningKey::generate_pem().expect("pem")).expect("key");
        let other = SigningKey::from_pem(&SigningKey::generate_pem().expect("pem")).expect("key");
        Plan {
            record_id: "r1".into(),
            version: 2,
            record_key: "records/r1/v0002.json".into(),
            record: Bytes::from_static(b"{}"),
            signature: Bytes::from(key.sign(b"{}")),
            key: key.public().clone(),
            audio: vec![AudioEntry {
                name: "audio/archival.wav".into(),
                key: ObjectKey::new("confirmations/r1/audio/x/archival.wav").expect("key"),
                sha256: "ab".repeat(32),
                size: 10,
            }],
            seal: sealed.then(|| SealPart {
                number: 7,
                at: OffsetDateTime::UNIX_EPOCH,
                bytes: Bytes::from_static(b"{\"seal\": 7}"),
                signature: Bytes::from(vec![0u8; 64]),
                other_key: rotated.then(|| other.public().clone()),
            }),
            created_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn commands(text: &str) -> Vec<&str> {
        text.lines().filter_map(|l| l.strip_prefix("$ ")).collect()
    }

    #[test]
    fn every_check_is_a_dollar_line_and_the_seal_steps_follow_the_seal() {
        let p = plan(false, false);
        let unsealed = verify_text(&p);
        let c = commands(&unsealed);
        // The fingerprint and the record's digest are pinned as literals, so
        // a bundle whose key and record were swapped fails its own VERIFY.txt.
        assert_eq!(
            c[0],
            format!("test \"$(cat FINGERPRINT)\" = '{}'", p.key.fingerprint())
        );
        assert!(c[1].starts_with("test \"$(openssl pkey -pubin -in public-key.pem"));
        assert!(c.contains(
            &format!(
                "sha256sum record.json | grep -q '^{} '",
                sha256_hex(&p.record)
            )
            .as_str()
        ));
        assert!(c.contains(&"openssl pkeyutl -verify -pubin -inkey public-key.pem -rawin -in record.json -sigfile record.json.sig"));
        assert!(c.contains(
            &format!("grep -q '\"sha256\": \"{}\"' record.json", "ab".repeat(32)).as_str()
        ));
        assert_eq!(c.last(), Some(&"sha256sum --strict -c SHA256SUMS"));
        assert!(!unsealed.contains("seal.json.sig "));
        assert!(unsealed.contains("not listed in a seal yet"));
        assert!(unsealed.contains("LibreSSL"));

        let sealed = verify_text(&plan(true, false));
        assert!(commands(&sealed).contains(
            &"openssl pkeyutl -verify -pubin -inkey public-key.pem -rawin -in seal.json -sigfile seal.json.sig"
        ));
        let rotated = plan(true, true);
        let text = verify_text(&rotated);
        assert!(commands(&text)
            .iter()
            .any(|c| c.contains("-inkey seal-public-key.pem")));
        let names: Vec<String> = small_files(&rotated).into_iter().map(|(n, _)| n).collect();
        assert!(names.contains(&"seal-public-key.pem".to_owned()));
        // No line that is not a command starts with "$".
        assert!(text
            .lines()
            .all(|l| !l.starts_with('$') || l.starts_with("$ ")));
    }
}
