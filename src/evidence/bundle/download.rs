//! `callproof records export`: downloads a record's evidence bundle from the
//! server into a scratch file beside the output, checks it, then renames it.
//!
//! A failed or cut download leaves no partial bundle behind: the scratch file
//! is removed unless the whole zip arrived and opens as a bundle.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

/// What was written.
#[derive(Debug, Clone)]
pub struct Downloaded {
    /// The bundle's path.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Hex SHA-256 of the zip.
    pub sha256: String,
    /// How many files it holds.
    pub files: usize,
}

/// Downloads the bundle of record `id` from `base` with `key`, giving `reason`,
/// to `output`.
pub async fn download(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    id: &str,
    reason: &str,
    output: &Path,
) -> anyhow::Result<Downloaded> {
    let reason = reason.trim();
    if reason.is_empty() {
        anyhow::bail!(
            "give --reason: why this record is exported (the server keeps it in its audit log)"
        );
    }
    let reason_header =
        reqwest::header::HeaderValue::from_bytes(reason.as_bytes()).map_err(|_| {
            anyhow::anyhow!("--reason may not hold line breaks or other control characters")
        })?;
    let id_part: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
    let url = format!("{base}/v1/records/{id_part}/export");
    let resp = client
        .get(&url)
        .bearer_auth(key)
        .header("x-callproof-reason", reason_header)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}: is callproof serve running? (--server)"))?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        let said = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or(body);
        match status.as_u16() {
            401 => anyhow::bail!(
                "the server refused the API key (401): pass a compliance key with --api-key"
            ),
            403 => anyhow::bail!(
                "this API key may not export records (403): use a compliance or admin key"
            ),
            404 => anyhow::bail!("no such record (404)"),
            409 => {
                return Err(crate::evidence::EvidenceProblem(format!(
                    "the server will not bundle this record (409): {said}"
                ))
                .into())
            }
            _ => anyhow::bail!("the server answered HTTP {status}: {said}"),
        }
    }
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle".to_owned());
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".part")
        .tempfile_in(&dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    let expected = resp.content_length();
    let bar = indicatif::ProgressBar::new(expected.unwrap_or(0));
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.context("the download was interrupted; run the command again")?;
        hasher.update(&chunk);
        tmp.write_all(&chunk)
            .with_context(|| format!("cannot write in {}", dir.display()))?;
        size += chunk.len() as u64;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    if expected.is_some_and(|n| n != size) {
        anyhow::bail!("the download was cut short; run the command again");
    }
    tmp.as_file().sync_all()?;
    let files = {
        let archive = zip::ZipArchive::new(tmp.reopen()?)
            .context("the server's answer is not a whole zip; run the command again")?;
        for needed in ["VERIFY.txt", "record.json", "record.json.sig", "SHA256SUMS"] {
            if archive.index_for_name(needed).is_none() {
                anyhow::bail!("the server's zip has no {needed}: it is not an evidence bundle");
            }
        }
        archive.len()
    };
    tmp.persist(output)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", output.display()))?;
    Ok(Downloaded {
        path: output.to_path_buf(),
        size,
        sha256: hex::encode(hasher.finalize()),
        files,
    })
}
