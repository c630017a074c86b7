//! Benchmark of the archival transcode on one hour of 8 kHz two-channel speech (16-bit PCM WAV,
//! mu-law WAV and MP3), against ffmpeg, in child processes measured by the kernel.

// Run with `cargo bench --bench transcode`. The inputs are made once with ffmpeg by looping
// tests/fixtures/audio/speech-8k-dual.wav and kept under the target directory. Each transcode
// runs in a child process (this binary again, told by an environment variable to run only
// `transcode_file`), so its CPU time and peak resident memory come from `wait4`; ffmpeg's own
// `-i IN -f wav OUT` runs the same way as the reference. Exits non-zero when callproof's peak
// memory reaches 64 MiB.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use callproof::audio::{transcode_file, TranscodeOptions, TranscodeReport};

/// Set in the child: "INPUT\nOUTPUT"; the child transcodes and prints the report as JSON.
const CHILD_ENV: &str = "CALLPROOF_BENCH_TRANSCODE";
/// callproof's peak resident memory must stay below this.
const PEAK_LIMIT_MIB: f64 = 64.0;
/// Length of the benchmark recording.
const SECONDS: u32 = 3600;

/// One benchmark input: its file name and the ffmpeg codec arguments that make it.
const FORMS: [(&str, &[&str]); 3] = [
    ("hour-8k-pcm16.wav", &["-c:a", "pcm_s16le"]),
    ("hour-8k-ulaw.wav", &["-c:a", "pcm_mulaw"]),
    ("hour-8k.mp3", &["-c:a", "libmp3lame", "-b:a", "32k"]),
];

/// What the kernel said about one child.
struct Run {
    cpu_secs: f64,
    wall_secs: f64,
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

fn bench() -> Result<ExitCode, String> {
    let dir = bench_dir();
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let source =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/speech-8k-dual.wav");
    let exe = std::env::current_exe().map_err(|e| format!("finding this binary: {e}"))?;

    for (name, codec_args) in FORMS {
        make_input(&source, &dir.join(name), codec_args)?;
    }

    println!(
        "one hour of 8 kHz two-channel speech; audio seconds per CPU second (user+sys), peak RSS"
    );
    println!(
        "{:<20} {:>12} {:>12} {:>7} {:>10} {:>10} {:>9} {:>9}",
        "input", "callproof", "ffmpeg", "ratio", "cp MiB", "ff MiB", "cp wall", "ff wall"
    );
    let mut worst_peak: f64 = 0.0;
    for (name, _) in FORMS {
        let input = dir.join(name);
        let ours_out = dir.join(format!("{name}.callproof.wav"));
        let ffmpeg_out = dir.join(format!("{name}.ffmpeg.wav"));

        let mut ours = Command::new(&exe);
        ours.env(
            CHILD_ENV,
            format!("{}\n{}", input.display(), ours_out.display()),
        );
        let (ours_run, stdout) = measure(ours, "callproof")?;
        let report: TranscodeReport = serde_json::from_slice(&stdout)
            .map_err(|e| format!("reading the child's report for {name}: {e}"))?;
        let audio_secs = report.source.duration_secs;

        let mut ffmpeg = Command::new("ffmpeg");
        ffmpeg
            .args(["-nostdin", "-v", "error", "-y", "-i"])
            .arg(&input)
            .args(["-f", "wav"])
            .arg(&ffmpeg_out);
        let (ffmpeg_run, _) = measure(ffmpeg, "ffmpeg")?;

        let ours_speed = audio_secs / ours_run.cpu_secs.max(1e-6);
        let ffmpeg_speed = audio_secs / ffmpeg_run.cpu_secs.max(1e-6);
        println!(
            "{:<20} {:>12.0} {:>12.0} {:>7.2} {:>10.1} {:>10.1} {:>8.2}s {:>8.2}s",
            name,
            ours_speed,
            ffmpeg_speed,
            ours_speed / ffmpeg_speed,
            ours_run.peak_mib,
            ffmpeg_run.peak_mib,
            ours_run.wall_secs,
            ffmpeg_run.wall_secs,
        );
        if (audio_secs - f64::from(SECONDS)).abs() > 1.0 {
            return Err(format!(
                "{name}: decoded {audio_secs:.1} s, expected {SECONDS} s"
            ));
        }
        worst_peak = worst_peak.max(ours_run.peak_mib);
        for out in [&ours_out, &ffmpeg_out] {
            let _ = fs::remove_file(out);
        }
    }
    println!("ratio: callproof's speed over ffmpeg's (callproof also hashes input and output)");
    if worst_peak >= PEAK_LIMIT_MIB {
        eprintln!(
            "callproof peaked at {worst_peak:.1} MiB, at or over the {PEAK_LIMIT_MIB} MiB limit"
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Where the generated inputs are kept between runs.
fn bench_dir() -> PathBuf {
    let base = option_env!("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("CARGO_TARGET_TMPDIR").map(PathBuf::from))
        .unwrap_or_else(std::env::temp_dir);
    base.join("callproof-transcode-bench")
}

/// Makes one hour of `source` looped, coded with `codec_args`, unless a previous run did.
fn make_input(source: &Path, input: &Path, codec_args: &[&str]) -> Result<(), String> {
    if input.exists() {
        return Ok(());
    }
    let partial = input.with_extension(format!(
        "partial.{}",
        input.extension().and_then(|e| e.to_str()).unwrap_or("bin")
    ));
    eprintln!("making {} with ffmpeg (once)", input.display());
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-stream_loop", "-1", "-i"])
        .arg(source)
        .args(["-t", &SECONDS.to_string(), "-ar", "8000", "-ac", "2"])
        .args(codec_args)
        .arg(&partial)
        .status()
        .map_err(|e| format!("running ffmpeg (apt-get install -y ffmpeg): {e}"))?;
    if !status.success() {
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
    // SAFETY: pointers to live locals; pid is our own child, not yet reaped.
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
            cpu_secs: seconds(usage.ru_utime) + seconds(usage.ru_stime),
            wall_secs,
            // ru_maxrss is in KiB on Linux.
            peak_mib: usage.ru_maxrss as f64 / 1024.0,
        },
        stdout,
    ))
}
