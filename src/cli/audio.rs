//! `callproof audio transcode`: one recording made into its archival WAV by hand, with the
//! same decode, resample, encode and hashing as ingest, and the facts and SHA-256 of both files.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::audio::{self, AudioError, AudioFacts, TranscodeOptions};

#[derive(Debug, Subcommand)]
pub enum AudioCommand {
    /// Make the archival 16-bit PCM WAV of one recording exactly as ingest does (decode,
    /// resample when asked, encode, hash both files), and print the SHA-256, duration,
    /// channels and sample rate of the input and of the output. Needs no server, store or
    /// settings.
    Transcode(TranscodeArgs),
}

#[derive(Debug, Args)]
pub struct TranscodeArgs {
    /// The provider's recording: WAV (16-bit PCM, mu-law or A-law) or MP3, recognised from
    /// its first bytes, not its name.
    input: PathBuf,
    /// The archival WAV to write; written beside itself and renamed into place only once
    /// complete, replacing any file there.
    #[arg(long, short = 'o', value_name = "OUT.wav")]
    output: PathBuf,
    /// Resample to this rate (like CALLPROOF_ARCHIVAL_SAMPLE_RATE) [default: keep the
    /// recording's rate].
    #[arg(long, value_name = "HZ", value_parser = clap::value_parser!(u32).range(
        i64::from(audio::MIN_SAMPLE_RATE)..=i64::from(audio::MAX_SAMPLE_RATE)))]
    sample_rate: Option<u32>,
    /// Print the report as one JSON object (`source`, `archival`, `frames_promised`), the
    /// facts a record stores, instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs an `audio` command.
pub fn run(command: AudioCommand) -> anyhow::Result<ExitCode> {
    match command {
        AudioCommand::Transcode(args) => transcode(&args),
    }
}

fn transcode(args: &TranscodeArgs) -> anyhow::Result<ExitCode> {
    let input = &args.input;
    match std::fs::metadata(input) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => anyhow::bail!(
            "{} is not a file; give the path of a WAV or MP3 recording",
            input.display()
        ),
        Err(e) => anyhow::bail!(
            "cannot read {}: {e}; give the path of a WAV or MP3 recording",
            input.display()
        ),
    }
    let opts = TranscodeOptions {
        sample_rate: args.sample_rate,
    };
    let report = audio::transcode_file(input, &args.output, &opts).map_err(|e| {
        let hint = match e {
            AudioError::Unsupported(_) | AudioError::Decode(_) => {
                "; nothing was written (callproof reads 16-bit PCM, mu-law and A-law WAV, and MP3)"
            }
            AudioError::Truncated { .. } => "; nothing was written",
            AudioError::Io(_) => "; nothing was written (check both paths and the free space)",
        };
        anyhow::anyhow!("cannot transcode {}: {e}{hint}", input.display())
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_facts("input", input, &report.source);
        print_facts("output", &args.output, &report.archival);
    }
    Ok(ExitCode::SUCCESS)
}

/// Three lines about one file: its path, what it holds, its SHA-256.
fn print_facts(role: &str, path: &Path, facts: &AudioFacts) {
    println!("{role:<7} {}", path.display());
    println!(
        "        {} {}, {} Hz, {} channel(s), {:.3} s ({} frames), {} bytes",
        facts.format,
        facts.codec,
        facts.sample_rate,
        facts.channels,
        facts.duration_secs,
        facts.frames,
        facts.byte_size
    );
    println!("        sha256 {}", facts.sha256);
}
