//! Benchmark of the archival transcode on one hour of 8 kHz two-channel speech (16-bit PCM WAV,
//! mu-law WAV and MP3), against hashing alone and against ffmpeg doing the same work.

// Run with `cargo bench --bench transcode`; `CALLPROOF_BENCH_SECONDS=120` makes a short run (CI),
// `CALLPROOF_BENCH_RUNS` sets the runs per measurement (3; the median is shown). The inputs are
// made once with ffmpeg by looping tests/fixtures/audio/speech-8k-dual.wav and kept under the
// target directory. Measured in the same run, on the same input, each in a child process whose
// CPU time (user + system) and peak resident memory come from `wait4`:
//
// - callproof: this binary again, told by an environment variable to run only `transcode_file`
//   (what ingest and `callproof audio transcode` run: decode, encode, hash both files);
// - the hashing floor: `openssl dgst -sha256 IN OUT` over the input and callproof's output, the
//   least any tool that hashes both files must do (its hashes must equal callproof's);
// - ffmpeg doing the same work: `sh -c 'ffmpeg -i IN -c:a pcm_s16le OUT.wav && sha256sum IN
//   OUT.wav'`, channels and rate kept.
//
// Goals, reported and not enforced: PCM and mu-law within 2x of the floor, MP3 1.5x faster than
// ffmpeg. Exits non-zero only when callproof's peak memory reaches 64 MiB.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use callproof::audio::{transcode_file, TranscodeOptions, TranscodeReport};

/// Set in the child: "INPUT\nOUTPUT"; the child transcodes and prints the report as JSON.
const CHILD_ENV: &str = "CALLPROOF_BENCH_TRANSCODE";
/// Seconds of audio in each input (default one hour).
const SECONDS_ENV: &str = "CALLPROOF_BENCH_SECONDS";
/// Runs of each measurement; the median is reported.
const RUNS_ENV: &str = "CALLPROOF_BENCH_RUNS";
/// callproof's peak resident memory must stay below this.
const PEAK_LIMIT_MIB: f64 = 64.0;

/// One benchmark input: its name, the ffmpeg codec arguments that make it, and the goal for
/// callproof: at most this many times the hashing floor's wall time, or at least this many times
/// faster than ffmpeg.
const FORMS: [(&str, &[&str], Goal); 3] = [
    (
        "8k-2ch-pcm16.wav",
        &["-c:a", "pcm_s16le"],
        Goal::OfFloor(2.0),
    ),
    (
        "8k-2ch-ulaw.wav",
        &["-c:a", "pcm_mulaw"],
        Goal::OfFloor(2.0),
    ),
    (
        "8k-2ch.mp3",
        &["-c:a", "libmp3lame", "-b:a", "32k"],
        Goal::FasterThanFfmpeg(1.5),
    ),
];

#[derive(Clone, Copy)]
enum Goal {
    OfFloor(f64),
    FasterThanFfmpeg(f64),
}

/// What the kernel said about one child.
#[derive(Clone, Copy)]
struct Run {
    wall_secs: f64,
    cpu_secs: f64,
    peak_mib: f64,
}

fn main() -> ExitCode {
    if let Ok(paths) = std::env::var(CHILD_ENV) {
        return child(&paths);
    }
    match bench() {
        Ok(code) => code,
        Err(message) => {
            eprintln!("transcode bench: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The child: only the transcode, then its report on stdout.
fn child(paths: &str) -> ExitCode {
    let Some((input, output)) = paths.split_once('\n') else {
        eprintln!("{CHILD_ENV} must hold INPUT and OUTPUT on two lines");
        return ExitCode::FAILURE;
    };
    match transcode_file(
        Path::new(input),
        Path::new(output),
        &TranscodeOptions::default(),
    ) {
        Ok(report) => match serde_json::to_string(&report) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cannot print the report: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("transcode of {input} failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A positive whole number from the environment, or `default`.
fn env_number(name: &str, default: u32) -> Result<u32, String> {
    match std::env::var(name) {
        Ok(text) => match text.trim().parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "{name} must be a whole number above 0, not {text:?}"
            )),
        },
        Err(_) => Ok(default),
    }
}

fn bench() -> Result<ExitCode, String> {
    let seconds = env_number(SECONDS_ENV, 3600)?;
    let runs = env_number(RUNS_ENV, 3)?;
    let dir = bench_dir();
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let source =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/speech-8k-dual.wav");
    let exe = std::env::current_exe().map_err(|e| format!("finding this binary: {e}"))?;
    for tool in ["ffmpeg", "openssl", "sha256sum"] {
        if Command::new(tool)
            .arg(if tool == "openssl" {
                "version"
            } else {
                "--version"
            })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            return Err(format!(
                "{tool} is not on PATH (apt-get install -y ffmpeg openssl coreutils)"
            ));
        }
    }

    let inputs: Vec<PathBuf> = FORMS
        .iter()
        .map(|(name, _, _)| dir.join(format!("{seconds}s-{name}")))
        .collect();
    for (input, (_, codec_args, _)) in inputs.iter().zip(FORMS) {
        make_input(&source, input, codec_args, seconds)?;
    }

    println!(
        "{seconds} s of 8 kHz two-channel speech; median of {runs} run(s); CPU is user + system"
    );
    println!(
        "{:<24} {:<18} {:>8} {:>8} {:>9}",
        "input", "", "wall s", "CPU s", "peak MiB"
    );
    let mut worst_peak: f64 = 0.0;
    let mut missed = Vec::new();
    for (input, (_, _, goal)) in inputs.iter().zip(FORMS) {
        let name = input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Unique per process: two checkouts may share the target directory.
        let ours_out = dir.join(format!("{name}.{}.callproof.wav", std::process::id()));
        let ffmpeg_out = dir.join(format!("{name}.{}.ffmpeg.wav", std::process::id()));

        let (mut ours, mut floor, mut ffmpeg) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let mut command = Command::new(&exe);
            command.env(
                CHILD_ENV,
                format!("{}\n{}", input.display(), ours_out.display()),
            );
            let (run, stdout) = measure(command, "callproof")?;
            ours.push(run);
            let report: TranscodeReport = serde_json::from_slice(&stdout)
                .map_err(|e| format!("reading the child's report for {name}: {e}"))?;
            let audio_secs = report.source.duration_secs;
            if (audio_secs - f64::from(seconds)).abs() > 1.0 {
                return Err(format!(
                    "{name}: decoded {audio_secs:.1} s, expected {seconds} s"
                ));
            }

            let mut command = Command::new("openssl");
            command.args(["dgst", "-sha256"]).arg(input).arg(&ours_out);
            let (run, stdout) = measure(command, "openssl dgst")?;
            floor.push(run);
            let theirs = digests(&stdout);
            let mine = [report.source.sha256.clone(), report.archival.sha256.clone()];
            if theirs != mine {
                return Err(format!(
                    "{name}: callproof reported SHA-256 {mine:?}, openssl found {theirs:?}"
                ));
            }

            let mut command = Command::new("sh");
            command
                .arg("-c")
                .arg(
                    "ffmpeg -nostdin -v error -y -i \"$1\" -c:a pcm_s16le \"$2\" \
                     && sha256sum \"$1\" \"$2\"",
                )
                .arg("sh")
                .arg(input)
                .arg(&ffmpeg_out);
            let (run, _) = measure(command, "ffmpeg and sha256sum")?;
            ffmpeg.push(run);
        }
        for out in [&ours_out, &ffmpeg_out] {
            let _ = fs::remove_file(out);
        }

        let (ours, floor, ffmpeg) = (median(&ours), median(&floor), median(&ffmpeg));
        let row = |label: &str, run: &Run| {
            println!(
                "{:<24} {:<18} {:>8.3} {:>8.3} {:>9.1}",
                "", label, run.wall_secs, run.cpu_secs, run.peak_mib
            );
        };
        println!("{name}");
        row("callproof", &ours);
        row("hashing floor", &floor);
        row("ffmpeg + sha256sum", &ffmpeg);
        let of_floor = ours.wall_secs / floor.wall_secs.max(1e-6);
        let cpu_of_floor = ours.cpu_secs / floor.cpu_secs.max(1e-6);
        let faster = ffmpeg.wall_secs / ours.wall_secs.max(1e-6);
        let cpu_faster = ffmpeg.cpu_secs / ours.cpu_secs.max(1e-6);
        println!(
            "{:<24} {:<18} {:>7.2}x {:>7.2}x",
            "", "callproof / floor", of_floor, cpu_of_floor
        );
        println!(
            "{:<24} {:<18} {:>7.2}x {:>7.2}x",
            "", "ffmpeg / callproof", faster, cpu_faster
        );
        match goal {
            Goal::OfFloor(limit) if of_floor > limit => missed.push(format!(
                "{name}: {of_floor:.2}x the hashing floor's wall time (goal: {limit}x at most)"
            )),
            Goal::FasterThanFfmpeg(limit) if faster < limit => missed.push(format!(
                "{name}: {faster:.2}x faster than ffmpeg (goal: {limit}x at least)"
            )),
            _ => {}
        }
        worst_peak = worst_peak.max(ours.peak_mib);
    }
    println!(
        "goals (reported, not enforced): PCM and mu-law within 2x of the floor, MP3 1.5x faster \
         than ffmpeg; peak under {PEAK_LIMIT_MIB} MiB (enforced)"
    );
    if missed.is_empty() {
        println!("all goals met in this run");
    }
    for miss in &missed {
        println!("goal missed: {miss}");
    }
    if worst_peak >= PEAK_LIMIT_MIB {
        eprintln!(
            "callproof peaked at {worst_peak:.1} MiB, at or over the {PEAK_LIMIT_MIB} MiB limit"
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The median of each measure on its own.
fn median(runs: &[Run]) -> Run {
    let of = |pick: fn(&Run) -> f64| {
        let mut values: Vec<f64> = runs.iter().map(pick).collect();
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
    };
    Run {
        wall_secs: of(|r| r.wall_secs),
        cpu_secs: of(|r| r.cpu_secs),
        peak_mib: of(|r| r.peak_mib),
    }
}

/// The digests `openssl dgst` printed, one per `SHA2-256(FILE)= HEX` line, in order.
fn digests(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|line| line.rsplit_once("= ").map(|(_, hex)| hex.trim().to_owned()))
        .collect()
}

/// Where the generated inputs are kept between runs.
fn bench_dir() -> PathBuf {
    let base = option_env!("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("CARGO_TARGET_TMPDIR").map(PathBuf::from))
        .unwrap_or_else(std::env::temp_dir);
    base.join("callproof-transcode-bench")
}

/// Makes `seconds` of `source` looped, coded with `codec_args`, unless a previous run did.
fn make_input(
    source: &Path,
    input: &Path,
    codec_args: &[&str],
    seconds: u32,
) -> Result<(), String> {
    if input.exists() {
        return Ok(());
    }
    let partial = input.with_extension(format!(
        "partial-{}.{}",
        std::process::id(),
        input.extension().and_then(|e| e.to_str()).unwrap_or("bin")
    ));
    eprintln!("making {} with ffmpeg (once)", input.display());
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-stream_loop", "-1", "-i"])
        .arg(source)
        .args(["-t", &seconds.to_string(), "-ar", "8000", "-ac", "2"])
        .args(codec_args)
        .arg(&partial)
        .status()
        .map_err(|e| format!("running ffmpeg (apt-get install -y ffmpeg): {e}"))?;
    if !status.success() {
        let _ = fs::remove_file(&partial);
        return Err(format!("ffmpeg could not make {}", input.display()));
    }
    fs::rename(&partial, input).map_err(|e| format!("renaming {}: {e}", partial.display()))
}

/// Runs `command` to the end and returns what the kernel measured, and its stdout.
fn measure(mut command: Command, what: &str) -> Result<(Run, Vec<u8>), String> {
    use std::io::Read;

    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {what}: {e}"))?;
    // Read stdout before reaping, so a chatty child never blocks on a full pipe.
    let mut stdout = Vec::new();
    if let Some(mut pipe) = child.stdout.take() {
        pipe.read_to_end(&mut stdout)
            .map_err(|e| format!("reading {what}'s output: {e}"))?;
    }
    let pid = libc::pid_t::try_from(child.id()).map_err(|e| format!("pid: {e}"))?;
    let mut status = 0;
    // SAFETY: rusage is plain data, all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pointers to live locals; pid is our own child, not yet reaped. The usage covers
    // the child and the descendants it waited for (ffmpeg and sha256sum under sh).
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall_secs = started.elapsed().as_secs_f64();
    if waited != pid {
        return Err(format!(
            "wait4 on {what}: {}",
            std::io::Error::last_os_error()
        ));
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!("{what} failed (wait status {status:#x})"));
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok((
        Run {
            wall_secs,
            cpu_secs: seconds(usage.ru_utime) + seconds(usage.ru_stime),
            // ru_maxrss is in KiB on Linux.
            peak_mib: usage.ru_maxrss as f64 / 1024.0,
        },
        stdout,
    ))
}
