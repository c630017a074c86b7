//! `callproof audit list`: the audit log read through the server with an
//! admin key (`GET /v1/audit`), filtered, a page or every page.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::auth;

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The callproof server.
    #[arg(
        long,
        env = "CALLPROOF_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    server: String,
    /// An admin API key [default: the admin key of the data directory's development credentials].
    #[arg(long, env = "CALLPROOF_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Data directory holding dev-credentials.toml.
    #[arg(long, env = "CALLPROOF_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// List audit entries, newest first, filtered. Reading the log is audited too.
    List {
        /// Only entries about this record.
        #[arg(long)]
        record: Option<String>,
        /// Only entries by the API key of this name.
        #[arg(long)]
        key: Option<String>,
        /// Written on or after this date (2026-11-23) or time (RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// Written on or before this date, or before this time.
        #[arg(long)]
        to: Option<String>,
        /// Entries per page (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Follow every page instead of stopping after the first.
        #[arg(long)]
        all: bool,
        /// Print each entry as stored, one JSON object a line, instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn api_key(args: &AuditArgs) -> anyhow::Result<String> {
    super::given_or_dev_key(args.api_key.as_deref(), &args.data_dir, auth::Role::Admin)
}

/// Runs `callproof audit ...`.
pub async fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let key = api_key(&args)?;
    let base = args.server.trim_end_matches('/');
    let client = reqwest::Client::new();
    let AuditCommand::List {
        record,
        key: key_name,
        from,
        to,
        limit,
        all,
        json,
    } = &args.command;
    let mut query: Vec<(&str, String)> = Vec::new();
    for (name, value) in [
        ("record", record),
        ("key", key_name),
        ("from", from),
        ("to", to),
    ] {
        if let Some(v) = value {
            query.push((name, v.clone()));
        }
    }
    query.push(("limit", limit.to_string()));
    if !json {
        println!(
            "{:<25}  {:<16}  {:<10}  {:<16}  {:<32}  {:<15}  reason",
            "at", "action", "role", "key", "record", "client"
        );
    }
    let mut cursor: Option<String> = None;
    let mut shown = 0usize;
    loop {
        let mut q = query.clone();
        if let Some(c) = &cursor {
            q.push(("cursor", c.clone()));
        }
        let qs = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(q)
            .finish();
        let url = format!("{base}/v1/audit?{qs}");
        let resp = client
            .get(&url)
            .bearer_auth(&key)
            .send()
            .await
            .with_context(|| {
                format!("cannot reach {url}: is callproof serve running? (--server)")
            })?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            match status.as_u16() {
                401 => anyhow::bail!(
                    "the server refused the API key (401): pass an admin key with --api-key"
                ),
                403 => {
                    anyhow::bail!("this API key may not read the audit log (403): use an admin key")
                }
                _ => anyhow::bail!("the server answered HTTP {status}: {body}"),
            }
        }
        let page: serde_json::Value = resp
            .json()
            .await
            .context("the server's answer is not JSON")?;
        for e in page["entries"].as_array().into_iter().flatten() {
            shown += 1;
            if *json {
                println!("{e}");
            } else {
                let f = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_owned();
                println!(
                    "{:<25}  {:<16}  {:<10}  {:<16}  {:<32}  {:<15}  {}",
                    f(&e["at"]),
                    f(&e["action"]),
                    f(&e["actor"]["role"]),
                    f(&e["actor"]["name"]),
                    f(&e["record_id"]),
                    f(&e["client"]),
                    f(&e["reason"])
                );
            }
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if !*all || cursor.is_none() {
            break;
        }
    }
    if !json {
        eprintln!(
            "{shown} entr{}{}",
            if shown == 1 { "y" } else { "ies" },
            if cursor.is_some() {
                "; more with --all"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
