//! The command line: `serve`, `simulate`, `consent classify`, `audio transcode` and the
//! rest, their flags, and the glue from flags to the library. `main.rs` only calls [`main`].

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::auth;
use crate::config::{settings_help, Config, LogFormat};
use crate::credentials::{self, DevFile};
use crate::domain::{ChangeKind, Locale};
use crate::flow::consent::{Classifier, DEFAULT_MIN_CONFIDENCE};
use crate::server::{shutdown_signal, Application};
use crate::simulate::{self, Answer, Simulation};

mod audio;
mod audit;

/// callproof: confirm account changes by phone and keep the call as proof.
#[derive(Debug, Parser)]
#[command(name = "callproof", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the webhook and API server.
    Serve(ServeArgs),
    /// Play the telephony provider against a running server: transfer one call to a
    /// confirmation's transfer URL, or place one inbound call with --inbound.
    Simulate(SimulateArgs),
    /// Check how the server would understand callers' answers.
    Consent {
        #[command(subcommand)]
        command: ConsentCommand,
    },
    /// Search, read, download, verify, export and purge voice confirmation records.
    Records(RecordsArgs),
    /// Read the audit log of every access to evidence through the server (admin role).
    Audit(audit::AuditArgs),
    /// Work on the search index (SQLite in the data directory, or CALLPROOF_INDEX_URL).
    Index {
        #[command(subcommand)]
        command: IndexCommand,
    },
    /// Inspect the configured store.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// See jobs (recordings, outcome callbacks) and retry parked ones, directly on the configured store.
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Work on recordings by hand: make the archival WAV of a provider's file as ingest does.
    Audio {
        #[command(subcommand)]
        command: audio::AudioCommand,
    },
}

#[derive(Debug, Subcommand)]
enum JobsCommand {
    /// List queued and parked jobs (recordings, outcome callbacks) with their failures and reasons.
    /// Takes the same settings as `serve`.
    List {
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        settings: ServeArgs,
    },
    /// Queue parked jobs again with their failure count reset; a running
    /// server picks them up within CALLPROOF_SWEEP_INTERVAL_SECS.
    Retry {
        /// Job ids from `callproof jobs list`.
        #[arg(required_unless_present = "all")]
        ids: Vec<String>,
        /// Every parked job.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        #[command(flatten)]
        settings: ServeArgs,
    },
}

#[derive(Debug, Subcommand)]
enum IndexCommand {
    /// Rebuild the search index from the store: every seal in order, then
    /// every object awaiting a seal, into a new generation that replaces the
    /// old one at once, so a running server keeps answering searches from the
    /// old one meanwhile. Needed after CALLPROOF_INDEX_PHONE_SECRET changes,
    /// and safe at any time. Takes the same settings as `serve`.
    Rebuild(ServeArgs),
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Probe what the store guarantees (conditional create, a concurrent
    /// create race, Object Lock, versioning); exits 1 when write-once cannot be
    /// guaranteed. Takes the same settings as `serve`.
    Check(ServeArgs),
}

#[derive(Debug, Args)]
struct RecordsArgs {
    /// The callproof server.
    #[arg(
        long,
        env = "CALLPROOF_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    server: String,
    /// A compliance or admin API key [default: the compliance key of the data directory's development credentials].
    #[arg(long, env = "CALLPROOF_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Data directory holding dev-credentials.toml.
    #[arg(long, env = "CALLPROOF_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: RecordsCommand,
}

#[derive(Debug, Subcommand)]
enum RecordsCommand {
    /// Verify evidence directly on the configured store (no server, not
    /// audited by callproof): every audio object's SHA-256, each version's
    /// signature by a trusted key, seal membership and the seal chain. Exit
    /// status 0: all good; 1: an evidence problem; 2: could not check.
    /// Takes the settings of `serve` (file, CALLPROOF_* environment).
    Verify {
        /// Record id (the confirmation id).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every record, audit entry, hold, tombstone and seal in the store.
        #[arg(long)]
        all: bool,
        /// A seal head kept outside callproof, N:SHA256 (from GET /v1/seals/head
        /// or the log); fails when the stored chain is shorter or different there.
        #[arg(long, value_name = "N:SHA256")]
        expect_head: Option<crate::evidence::verify::ExpectedHead>,
        /// Print the whole report as JSON.
        #[arg(long)]
        json: bool,
        /// Configuration file [default: ./callproof.toml when it exists].
        #[arg(long, env = "CALLPROOF_CONFIG")]
        config: Option<PathBuf>,
    },
    /// List records, newest first, filtered.
    List {
        /// Only this account.
        #[arg(long)]
        account_id: Option<String>,
        /// Only this customer phone (E.164).
        #[arg(long)]
        phone: Option<String>,
        /// Only this kind of change.
        #[arg(long)]
        kind: Option<String>,
        /// Only this outcome: confirmed, declined, no_answer, transferred_to_agent, abandoned,
        /// locked, disputed.
        #[arg(long)]
        outcome: Option<String>,
        /// Requested on or after this date (2026-11-23) or time (RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// Requested on or before this date, or before this time.
        #[arg(long)]
        to: Option<String>,
        /// Only this confirmation number.
        #[arg(long)]
        confirmation_number: Option<String>,
        /// Only requests of this agent.
        #[arg(long)]
        agent_id: Option<String>,
        /// Only complete (or only incomplete) records.
        #[arg(long)]
        status: Option<String>,
        /// Only records on legal hold (true) or not on hold (false).
        #[arg(long)]
        held: Option<bool>,
        /// Records per page.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Follow every page instead of stopping after the first.
        #[arg(long)]
        all: bool,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print one record exactly as stored (the bytes its SHA-256 is taken
    /// over); the version list goes to stderr.
    Show {
        /// Record id (the confirmation id).
        id: String,
        /// A specific version [default: the newest].
        #[arg(long)]
        version: Option<u32>,
        /// Print the list of versions as JSON instead of the record.
        #[arg(long, conflicts_with = "version")]
        versions: bool,
    },
    /// Download a record's audio and check its SHA-256 against the record.
    Fetch {
        /// Record id (the confirmation id).
        id: String,
        /// The provider's original bytes instead of the archival WAV.
        #[arg(long)]
        original: bool,
        /// A specific version [default: the newest].
        #[arg(long)]
        version: Option<u32>,
        /// Output file [default: <id>.wav, or <id>-original.<format>].
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        /// Why the audio is needed (kept in the audit log with your key's name).
        #[arg(long)]
        reason: String,
    },
    /// Delete the confirmations past their retention and not on hold:
    /// everything stored for each, behind a signed, sealed tombstone. Works
    /// on the store directly with the same settings as `serve` and its
    /// signing key; prints each confirmation and what was deleted.
    Purge {
        /// Print what would be deleted; write and delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Why: kept in every tombstone and audit entry.
        #[arg(long)]
        reason: String,
        /// Compare retention with this time (RFC 3339) instead of now; for
        /// tests, refused in production.
        #[arg(long, hide = true)]
        now: Option<String>,
        #[command(flatten)]
        settings: ServeArgs,
    },
    /// Download the evidence bundle of a record's newest version: one zip
    /// with the record, its signature, the public key, the audio, its seal
    /// and VERIFY.txt, which says how to check it with OpenSSL 3.
    Export {
        /// Record id (the confirmation id).
        id: String,
        /// Why the record is exported; the server keeps it in its audit log.
        #[arg(long)]
        reason: String,
        /// Output file [default: <id>.zip]; written whole or not at all.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Configuration file [default: ./callproof.toml when it exists].
    #[arg(long, env = "CALLPROOF_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (setting listen).
    #[arg(long)]
    listen: Option<String>,
    /// Data directory (setting data_dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Public base URL (setting public_url).
    #[arg(long)]
    public_url: Option<String>,
    /// Production mode: refuse development credentials, require a public URL.
    #[arg(long)]
    production: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("first").required(true).args(["transfer_url", "inbound"])))]
struct SimulateArgs {
    /// The transfer_url from POST /v1/confirmations: the call is transferred there.
    transfer_url: Option<String>,
    /// Place an inbound call instead: a caller dials --to from --from, and the
    /// first webhook (CallStatus=ringing, Direction=inbound) goes to this URL,
    /// the server's /voice/incoming (e.g. http://127.0.0.1:8080/voice/incoming).
    #[arg(long, value_name = "URL")]
    inbound: Option<String>,
    /// With --inbound: the StirVerstat of the first webhook, e.g.
    /// TN-Validation-Passed-A (sent only when given).
    #[arg(long, value_name = "VALUE", requires = "inbound")]
    stir_verstat: Option<String>,
    /// An answer to the next question, in order: `press:1` (or `1`), `say:yes I confirm`
    /// (or just the words), `say:yes@0.4` with a confidence, `silence`, `hangup`.
    /// When they run out the simulator asks the terminal, or hangs up without one.
    #[arg(long = "answer", short = 'a')]
    answers: Vec<String>,
    /// Recording to serve (WAV or MP3) [default: a generated 3-second tone].
    #[arg(long)]
    recording: Option<PathBuf>,
    /// Provider auth token that signs webhooks [default: from the data directory's development credentials].
    #[arg(long, env = "CALLPROOF_TWILIO_AUTH_TOKEN", hide_env_values = true)]
    auth_token: Option<String>,
    /// Provider account SID [default: from the development credentials].
    #[arg(long, env = "CALLPROOF_TWILIO_ACCOUNT_SID")]
    account_sid: Option<String>,
    /// Data directory holding dev-credentials.toml.
    #[arg(long, env = "CALLPROOF_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Call status callback URL [default: the transfer URL's origin + /voice/status].
    #[arg(long)]
    status_callback: Option<String>,
    /// Caller number: the caller ID the server sees.
    #[arg(long, default_value = simulate::DEFAULT_FROM)]
    from: String,
    /// Called number: with --inbound, the inbound number the caller dials.
    #[arg(long, default_value = simulate::DEFAULT_TO)]
    to: String,
    /// Serve the provider REST API (pausing and resuming the call's recording)
    /// on this address for the call, e.g. 127.0.0.1:8089; run the server with
    /// CALLPROOF_PROVIDER_API_URL=http://127.0.0.1:8089 to use it. Paused spans
    /// are silent in the recording served after the call.
    #[arg(long, value_name = "ADDR")]
    provider_api: Option<std::net::SocketAddr>,
    /// Milliseconds the caller takes to key in each digit of a keypad answer.
    #[arg(long, default_value_t = 0)]
    key_press_ms: u64,
    /// Seconds to keep serving the recording after the call, until the server fetches it.
    #[arg(long, default_value_t = 30)]
    linger_secs: u64,
    /// Never ask the terminal; hang up when the scripted answers run out.
    #[arg(long)]
    no_input: bool,
}

#[derive(Debug, Subcommand)]
enum ConsentCommand {
    /// Read `transcript<TAB>confidence` lines on stdin; print one label per line
    /// (affirm, deny, dispute, repeat, agent, unclear; `invalid` for a line that cannot be read).
    Classify {
        /// Locale of the call: en-US or es-US.
        #[arg(long, default_value = "en-US")]
        locale: String,
        /// Kind of change: termination, contact, billing, security, plan,
        /// communication, access, or `update` for any update kind.
        #[arg(long, default_value = "termination")]
        kind: String,
        /// Lowest speech confidence taken as an answer.
        #[arg(long, default_value_t = DEFAULT_MIN_CONFIDENCE)]
        min_confidence: f32,
    },
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let command = Cli::command().mut_subcommand("serve", |c| c.after_long_help(settings_help()));
    let cli = match Cli::from_arg_matches(&command.get_matches()) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    // Commands on evidence exit 1 for an evidence problem and 2 when they
    // could not act at all (like `records verify`).
    let on_evidence = matches!(cli.command, Command::Records(_) | Command::Audit(_));
    let result = match cli.command {
        Command::Serve(args) => runtime().and_then(|rt| rt.block_on(serve(args))),
        Command::Simulate(args) => runtime().and_then(|rt| rt.block_on(simulate_cmd(args))),
        Command::Consent {
            command:
                ConsentCommand::Classify {
                    locale,
                    kind,
                    min_confidence,
                },
        } => classify(&locale, &kind, min_confidence),
        Command::Records(RecordsArgs {
            command:
                RecordsCommand::Purge {
                    dry_run,
                    reason,
                    now,
                    settings,
                },
            ..
        }) => runtime().and_then(|rt| rt.block_on(purge_cmd(dry_run, &reason, now, settings))),
        Command::Records(args) => runtime().and_then(|rt| rt.block_on(records_cmd(args))),
        Command::Audit(args) => runtime().and_then(|rt| rt.block_on(audit::run(args))),
        Command::Store {
            command: StoreCommand::Check(args),
        } => runtime().and_then(|rt| rt.block_on(store_check(args))),
        Command::Jobs { command } => runtime().and_then(|rt| rt.block_on(jobs_cmd(command))),
        Command::Index {
            command: IndexCommand::Rebuild(args),
        } => runtime().and_then(|rt| rt.block_on(index_rebuild(args))),
        Command::Audio { command } => audio::run(command),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if !on_evidence
                || e.downcast_ref::<crate::evidence::EvidenceProblem>()
                    .is_some()
            {
                ExitCode::FAILURE
            } else {
                ExitCode::from(2)
            }
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CALLPROOF_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

fn env_settings() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("CALLPROOF_"))
        .collect()
}

/// The configuration of `serve` and `store check`: file, environment, flags.
/// `callproof index rebuild`: the index made anew from the store, with a progress bar.
async fn index_rebuild(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(args)?;
    let (credentials, _) = credentials::resolve(&config)?;
    let trust = credentials::verifier_trust(&config)?;
    let store = crate::server::connect_store(&config).await?;
    let index = crate::server::open_index_for_tools(&config).await?;
    let described = index.describe();
    let head = crate::evidence::seal::head(store.as_ref()).await?;
    let indexer = crate::index::follow::Indexer::new(
        store,
        index,
        crate::index::PhoneKey::new(credentials.index_phone_secret.as_bytes()),
        trust,
    );
    let bar = indicatif::ProgressBar::new(head.seal);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} seals ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message("indexing");
    let progress = |n: u64| bar.set_position(n);
    let (seals, rows) = indexer.rebuild(&progress).await.map_err(|e| {
        anyhow::anyhow!("{e}; the index in use is unchanged, run the rebuild again")
    })?;
    bar.finish_and_clear();
    eprintln!("rebuilt {described}: {seals} seals read, {rows} index rows written");
    Ok(ExitCode::SUCCESS)
}

fn load_config(args: ServeArgs) -> anyhow::Result<Config> {
    let mut flags: Vec<(&str, String)> = Vec::new();
    if let Some(l) = args.listen {
        flags.push(("listen", l));
    }
    if let Some(d) = args.data_dir {
        flags.push(("data_dir", d.display().to_string()));
    }
    if let Some(u) = args.public_url {
        flags.push(("public_url", u));
    }
    if args.production {
        flags.push(("environment", "production".into()));
    }
    Ok(Config::load(
        args.config.as_deref(),
        &env_settings(),
        &flags,
    )?)
}

async fn store_check(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(args)?;
    init_logging(config.log_format);
    let (_, report) = crate::server::open_store(&config).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    let unusable = report.unusable();
    if let Some(why) = &unusable {
        eprintln!("{why}");
        eprintln!("serve refuses this store whatever the settings");
    }
    if report.write_once() {
        eprintln!("{}: write-once is guaranteed", report.store);
    } else {
        eprintln!("{}", report.risk());
        eprintln!("serve refuses this store unless CALLPROOF_S3_ACCEPT_OVERWRITE_RISK=true, and then only one instance may run");
    }
    Ok(if unusable.is_none() && report.write_once() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn jobs_cmd(command: JobsCommand) -> anyhow::Result<ExitCode> {
    match command {
        JobsCommand::List { json, settings } => {
            let config = load_config(settings)?;
            let store = crate::server::connect_store(&config).await?;
            let jobs = crate::jobs::job_statuses(store.as_ref(), None).await?;
            if json {
                for j in &jobs {
                    println!("{}", serde_json::to_string(j)?);
                }
            } else {
                println!(
                    "{:<40}  {:<9}  {:<6}  {:<26}  {:>8}  last error",
                    "job", "kind", "state", "confirmation", "failures"
                );
                for j in &jobs {
                    println!(
                        "{:<40}  {:<9}  {:<6}  {:<26}  {:>8}  {}",
                        j.id,
                        j.kind.as_str(),
                        j.state,
                        j.confirmation_id,
                        j.failures,
                        j.last_error.as_deref().unwrap_or("-")
                    );
                }
            }
            let parked = jobs.iter().filter(|j| j.state == "parked").count();
            eprintln!("{} queued, {parked} parked", jobs.len() - parked);
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Retry { ids, all, settings } => {
            let config = load_config(settings)?;
            let store = crate::server::connect_store(&config).await?;
            let ids = if all { Vec::new() } else { ids };
            let queued = crate::jobs::retry_parked(store.as_ref(), &ids).await?;
            for id in &queued {
                println!("{id}");
            }
            eprintln!(
                "queued {} parked job(s) again; a running server picks them up within {} s (CALLPROOF_SWEEP_INTERVAL_SECS)",
                queued.len(),
                config.sweep_interval_secs
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn purge_cmd(
    dry_run: bool,
    reason: &str,
    now: Option<String>,
    settings: ServeArgs,
) -> anyhow::Result<ExitCode> {
    let config = load_config(settings)?;
    init_logging(config.log_format);
    let now = now
        .map(|t| {
            time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339)
                .with_context(|| format!("--now {t}: use an RFC 3339 time"))
        })
        .transpose()?;
    crate::evidence::purge::command(&config, dry_run, reason, now).await
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(args)?;
    init_logging(config.log_format);
    let app = Application::build(config).await?;
    match app.dev_file() {
        DevFile::Generated(path) => print_dev_credentials(path)?,
        DevFile::Loaded(path) => {
            tracing::warn!(file = %path.display(), "using development credentials; never use them with real callers")
        }
        DevFile::NotUsed => {}
    }
    let shutdown = shutdown_signal();
    tracing::info!(address = %app.address(), public_url = %app.public_base(), "listening");
    app.run_until(shutdown)
        .await
        .context("the server stopped with an error")?;
    Ok(ExitCode::SUCCESS)
}

fn print_dev_credentials(path: &std::path::Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let rule = "=".repeat(78);
    eprintln!("{rule}");
    eprintln!(
        "WARNING: development credentials were generated and saved to {}",
        path.display()
    );
    eprintln!("They are shown only this once. Use them on this machine only, never with real");
    eprintln!("callers; production (CALLPROOF_ENV=production) refuses them.");
    eprintln!();
    for line in text.lines() {
        eprintln!("  {line}");
    }
    eprintln!("{rule}");
    Ok(())
}

async fn simulate_cmd(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let start = match (args.transfer_url, args.inbound) {
        (Some(url), None) => simulate::CallStart::Transfer(url),
        (None, Some(url)) => simulate::CallStart::Inbound {
            url,
            stir_verstat: args.stir_verstat,
        },
        _ => anyhow::bail!("give either a transfer URL or --inbound URL, not both"),
    };
    simulate::check_url(start.url())?;
    let dev = credentials::read_dev_credentials(&args.data_dir)?;
    let auth_token = args
        .auth_token
        .or_else(|| dev.as_ref().map(|d| d.twilio_auth_token.clone()))
        .with_context(|| {
            format!(
                "no auth token: pass --auth-token or CALLPROOF_TWILIO_AUTH_TOKEN, or --data-dir where {} is",
                credentials::dev_credentials_path(&args.data_dir).display()
            )
        })?;
    let account_sid = args
        .account_sid
        .or_else(|| dev.as_ref().map(|d| d.twilio_account_sid.clone()))
        .unwrap_or_else(|| "AC00000000000000000000000000000000".into());
    let answers = args
        .answers
        .iter()
        .map(|a| {
            a.parse::<Answer>()
                .map_err(|e| anyhow::anyhow!("--answer {e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let recording = match &args.recording {
        Some(p) => {
            Some(bytes::Bytes::from(std::fs::read(p).with_context(|| {
                format!("cannot read recording {}", p.display())
            })?))
        }
        None => None,
    };
    let provider_api = match args.provider_api {
        Some(addr) => {
            let api = simulate::provider_api::ProviderApi::bind(addr, &account_sid, &auth_token)
                .await
                .with_context(|| {
                    format!("cannot serve the provider REST API on {addr}: is it in use? Pick another --provider-api address")
                })?;
            println!(
                "provider REST API at {} (the server needs CALLPROOF_PROVIDER_API_URL={})",
                api.url(),
                api.url()
            );
            Some(api)
        }
        None => None,
    };
    let sim = Simulation {
        start,
        account_sid,
        auth_token,
        status_callback: args.status_callback,
        answers,
        interactive: !args.no_input && simulate::interactive_default(),
        recording,
        from: args.from,
        to: args.to,
        linger: Duration::from_secs(args.linger_secs),
        provider_api,
        pause_failure: None,
        resume_failure: None,
        key_press: Duration::from_millis(args.key_press_ms),
    };
    let report = simulate::run(&sim, &mut |line| println!("{line}")).await?;
    Ok(match report.end {
        simulate::CallEnd::Refused(_) => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}

fn classify(locale: &str, kind: &str, min_confidence: f32) -> anyhow::Result<ExitCode> {
    let locale: Locale = locale
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--locale: {e}"))?;
    let kind: ChangeKind = match kind {
        "update" => ChangeKind::Contact,
        k => k
            .parse()
            .map_err(|e: String| anyhow::anyhow!("--kind: {e}, or update"))?,
    };
    if !(0.0..=1.0).contains(&min_confidence) {
        anyhow::bail!("--min-confidence must be from 0 to 1");
    }
    let classifier = Classifier::new(min_confidence);
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut bad = 0usize;
    for (n, line) in stdin.lock().lines().enumerate() {
        let line = line.context("cannot read stdin as UTF-8 text")?;
        let label = match line.split_once('\t') {
            Some((transcript, conf)) => match conf.trim().parse::<f32>() {
                Ok(c) if (0.0..=1.0).contains(&c) => classifier
                    .classify_speech(transcript, Some(c), locale, kind)
                    .to_string(),
                _ => {
                    eprintln!(
                        "line {}: confidence {:?} is not a number from 0 to 1",
                        n + 1,
                        conf.trim()
                    );
                    bad += 1;
                    "invalid".to_owned()
                }
            },
            None => {
                eprintln!("line {}: expected transcript<TAB>confidence", n + 1);
                bad += 1;
                "invalid".to_owned()
            }
        };
        writeln!(out, "{label}").context("cannot write to stdout")?;
    }
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn api_key(args: &RecordsArgs) -> anyhow::Result<String> {
    given_or_dev_key(
        args.api_key.as_deref(),
        &args.data_dir,
        auth::Role::Compliance,
    )
}

/// The API key given on the command line, or else the development key of
/// `role` from the data directory's development credentials.
pub(crate) fn given_or_dev_key(
    given: Option<&str>,
    data_dir: &std::path::Path,
    role: auth::Role,
) -> anyhow::Result<String> {
    if let Some(k) = given {
        return Ok(k.to_owned());
    }
    let dev = credentials::read_dev_credentials(data_dir)?.with_context(|| {
        format!(
            "no API key: pass --api-key or CALLPROOF_API_KEY (a {} key), or --data-dir where {} is",
            role.as_str(),
            credentials::dev_credentials_path(data_dir).display()
        )
    })?;
    auth::ApiKey::parse_list(&dev.api_keys)
        .map_err(anyhow::Error::msg)?
        .into_iter()
        .find(|k| k.role == role)
        .map(|k| k.key)
        .with_context(|| format!("the development credentials hold no {} key", role.as_str()))
}

async fn api_get(
    client: &reqwest::Client,
    url: &str,
    key: &str,
) -> anyhow::Result<reqwest::Response> {
    api_get_for(client, url, key, None).await
}

/// [`api_get`] giving `reason` in `X-Callproof-Reason`, as evidence access needs.
async fn api_get_for(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    reason: Option<&str>,
) -> anyhow::Result<reqwest::Response> {
    let mut req = client.get(url).bearer_auth(key);
    if let Some(r) = reason {
        req = req.header(crate::http::audit::REASON_HEADER, r);
    }
    api_send(req, url).await
}

/// Sends an API request and turns refusals into errors that say what to do.
async fn api_send(req: reqwest::RequestBuilder, url: &str) -> anyhow::Result<reqwest::Response> {
    let resp = req
        .send()
        .await
        .with_context(|| format!("cannot reach {url}: is callproof serve running? (--server)"))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.text().await.unwrap_or_default();
    match status.as_u16() {
        401 => anyhow::bail!(
            "the server refused the API key (401): pass a compliance key with --api-key"
        ),
        403 => {
            anyhow::bail!("this API key may not read records (403): use a compliance or admin key")
        }
        404 => anyhow::bail!("no such record (404)"),
        _ => anyhow::bail!("the server answered HTTP {status}: {body}"),
    }
}

/// One record as JSON: the latest version, or `version`; `reason` is audited with the read.
async fn get_record(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    id: &str,
    version: Option<u32>,
    reason: Option<&str>,
) -> anyhow::Result<serde_json::Value> {
    let v = version.map(|v| format!("?version={v}")).unwrap_or_default();
    Ok(
        api_get_for(client, &format!("{base}/v1/records/{id}{v}"), key, reason)
            .await?
            .json()
            .await?,
    )
}

/// `records verify`: exit 0, 1 or 2 whatever went wrong.
async fn verify_cmd(args: &RecordsArgs) -> ExitCode {
    match verify_run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: could not check: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn verify_run(args: &RecordsArgs) -> anyhow::Result<ExitCode> {
    let RecordsCommand::Verify {
        id,
        all,
        expect_head,
        json,
        config,
    } = &args.command
    else {
        anyhow::bail!("not a verify command");
    };
    let flags = vec![("data_dir", args.data_dir.display().to_string())];
    let config = Config::load(config.as_deref(), &env_settings(), &flags)?;
    let trust = credentials::verifier_trust(&config)?;
    let store = crate::server::connect_store(&config).await?;
    let scope = match (id, all) {
        (Some(id), false) => {
            let id: crate::domain::ConfirmationId = id
                .parse()
                .map_err(|e| anyhow::anyhow!("{id} is not a record id: {e}"))?;
            crate::evidence::verify::Scope::Record(id.to_string())
        }
        _ => crate::evidence::verify::Scope::All,
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} objects ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message("verifying");
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let report = crate::evidence::verify::verify(
        store.as_ref(),
        &trust,
        &scope,
        expect_head.as_ref(),
        config.seal_grace(),
        &progress,
    )
    .await?;
    bar.finish_and_clear();
    if *json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for f in &report.findings {
            let tag = match f.severity {
                crate::evidence::verify::Severity::Problem => "PROBLEM",
                crate::evidence::verify::Severity::State => "state",
            };
            println!("{tag:<8} {}: {}", f.object, f.detail);
        }
    }
    let problems = report
        .findings
        .iter()
        .filter(|f| f.severity == crate::evidence::verify::Severity::Problem)
        .count();
    eprintln!(
        "{}: {} seals, {} objects ({} record versions), {} audio objects checked; {problems} problem(s); head {}:{}; {}",
        if problems == 0 { "ok" } else { "PROBLEMS" },
        report.checked.seals,
        report.checked.objects,
        report.checked.record_versions,
        report.checked.audio,
        report.head.seal,
        report.head.sha256.as_deref().unwrap_or("-"),
        report.completeness
    );
    if let Some(state) = report.record_state {
        if state == "not_found" && problems == 0 {
            eprintln!("no record with this id is stored, sealed or purged");
            return Ok(ExitCode::from(2));
        }
    }
    Ok(if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn records_cmd(args: RecordsArgs) -> anyhow::Result<ExitCode> {
    // Verification reads the store itself and needs no API key.
    if matches!(args.command, RecordsCommand::Verify { .. }) {
        return Ok(verify_cmd(&args).await);
    }
    let key = api_key(&args)?;
    let base = args.server.trim_end_matches('/');
    let client = reqwest::Client::new();
    match &args.command {
        RecordsCommand::List {
            account_id,
            phone,
            kind,
            outcome,
            from,
            to,
            confirmation_number,
            agent_id,
            status,
            held,
            limit,
            all,
            json,
        } => {
            // Filters go in a POST body: a phone number never travels in a URL.
            let mut query = serde_json::Map::new();
            for (name, value) in [
                ("account_id", account_id),
                ("phone", phone),
                ("kind", kind),
                ("outcome", outcome),
                ("from", from),
                ("to", to),
                ("confirmation_number", confirmation_number),
                ("agent_id", agent_id),
                ("status", status),
            ] {
                if let Some(v) = value {
                    query.insert(name.into(), v.clone().into());
                }
            }
            if let Some(h) = held {
                query.insert("held".into(), (*h).into());
            }
            query.insert("limit".into(), (*limit).into());
            let mut cursor: Option<String> = None;
            let mut shown = 0usize;
            if !json {
                println!(
                    "{:<32}  {:>3}  {:<10}  {:<12}  {:<13}  {:<20}  {:<12}  requested_at",
                    "record_id", "v", "status", "number", "kind", "outcome", "account"
                );
            }
            let url = format!("{base}/v1/records/search");
            loop {
                let mut q = query.clone();
                if let Some(c) = &cursor {
                    q.insert("cursor".into(), c.clone().into());
                }
                let req = client.post(&url).bearer_auth(&key).json(&q);
                let page: serde_json::Value = api_send(req, &url).await?.json().await?;
                for r in page["records"].as_array().into_iter().flatten() {
                    shown += 1;
                    if *json {
                        println!("{r}");
                    } else if r["state"] != "ok" {
                        // Purged, missing or not as indexed: only the id and why.
                        println!(
                            "{:<32}  {}",
                            r["record_id"].as_str().unwrap_or_default(),
                            r["state"].as_str().unwrap_or_default()
                        );
                    } else {
                        let f = |k: &str| {
                            r[k].as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| r[k].to_string())
                        };
                        println!(
                            "{:<32}  {:>3}  {:<10}  {:<12}  {:<13}  {:<20}  {:<12}  {}",
                            f("record_id"),
                            f("version"),
                            f("status"),
                            f("confirmation_number"),
                            f("kind"),
                            f("outcome"),
                            f("account_id"),
                            f("requested_at")
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
                    "{shown} record(s){}",
                    if cursor.is_some() {
                        "; more with --all"
                    } else {
                        ""
                    }
                );
            }
        }
        RecordsCommand::Show {
            id,
            version,
            versions,
        } => {
            let list: serde_json::Value =
                api_get(&client, &format!("{base}/v1/records/{id}/versions"), &key)
                    .await?
                    .json()
                    .await?;
            if *versions {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(ExitCode::SUCCESS);
            }
            let v = version.map(|v| format!("?version={v}")).unwrap_or_default();
            let resp = api_get(&client, &format!("{base}/v1/records/{id}{v}"), &key).await?;
            let digest = resp
                .headers()
                .get("x-content-sha256")
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let bytes = resp.bytes().await?;
            let shown: serde_json::Value = serde_json::from_slice(&bytes)
                .context("the server answered a record that is not JSON")?;
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)?;
            if out.is_terminal() {
                out.write_all(b"\n")?;
            }
            out.flush()?;
            let all: Vec<String> = list["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| e["version"].to_string())
                .collect();
            eprintln!(
                "record {id} version {} of versions {}; sha256 {digest} (--versions for details)",
                shown["version"],
                all.join(", ")
            );
        }
        RecordsCommand::Verify { .. } => {
            return Ok(verify_cmd(&args).await);
        }
        RecordsCommand::Fetch {
            id,
            original,
            version,
            output,
            reason,
        } => {
            let record = get_record(&client, base, &key, id, *version, Some(reason)).await?;
            let role = if *original { "original" } else { "archival" };
            let object = record["recording"]["audio"]
                .as_array()
                .and_then(|a| a.iter().find(|o| o["role"] == role))
                .with_context(|| {
                    format!("record {id} has no {role} audio (see `callproof records show {id}`)")
                })?;
            let expected = object["sha256"].as_str().unwrap_or_default().to_owned();
            let format = object["format"].as_str().unwrap_or("bin");
            let path = output.clone().unwrap_or_else(|| {
                PathBuf::from(if *original {
                    format!("{id}-original.{format}")
                } else {
                    format!("{id}.wav")
                })
            });
            let mut params = vec![format!("original={original}")];
            if let Some(v) = version {
                params.push(format!("version={v}"));
            }
            let url = format!("{base}/v1/records/{id}/audio?{}", params.join("&"));
            let resp = api_get_for(&client, &url, &key, Some(reason)).await?;
            let bar = indicatif::ProgressBar::new(resp.content_length().unwrap_or(0));
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let tmp = path.with_extension("part");
            let mut file = std::fs::File::create(&tmp)
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
            let mut stream = resp.bytes_stream();
            use futures_util::StreamExt;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.context("the download was interrupted; run the command again")?;
                sha2::Digest::update(&mut hasher, &chunk);
                file.write_all(&chunk)
                    .with_context(|| format!("cannot write {}", tmp.display()))?;
                bar.inc(chunk.len() as u64);
            }
            bar.finish_and_clear();
            file.sync_all()?;
            let got = hex::encode(sha2::Digest::finalize(hasher));
            if got != expected {
                let _ = std::fs::remove_file(&tmp);
                return Err(crate::evidence::EvidenceProblem(format!("the downloaded bytes do not match the record: sha256 {got}, record says {expected}")).into());
            }
            std::fs::rename(&tmp, &path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!("{}  {}", got, path.display());
            eprintln!("sha256 matches the record");
        }
        // Dispatched in `main` to `purge_cmd`: it works on the store, not the API.
        RecordsCommand::Purge { .. } => anyhow::bail!("records purge works on the store directly"),
        RecordsCommand::Export { id, reason, output } => {
            let path = output
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("{id}.zip")));
            let done =
                crate::evidence::bundle::download::download(&client, base, &key, id, reason, &path)
                    .await?;
            println!("{}  {}", done.sha256, done.path.display());
            eprintln!(
                "wrote the evidence bundle of record {id}: {} files, {} bytes; unzip it and follow VERIFY.txt",
                done.files, done.size
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
