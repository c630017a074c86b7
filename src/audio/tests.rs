//! Tests of the audio module against the recordings in tests/fixtures/audio (made by
//! scripts/make-audio-fixtures.sh) and against files generated here.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

/// One entry of tests/fixtures/audio/manifest.json.
#[derive(Debug, serde::Deserialize)]
struct Expected {
    format: String,
    codec: String,
    sample_rate: u32,
    channels: u16,
    duration_secs: f64,
    truncated: bool,
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/audio")
        .join(name)
}

fn manifest() -> HashMap<String, Expected> {
    let text = fs::read_to_string(fixture("manifest.json")).expect("read manifest.json");
    serde_json::from_str(&text).expect("parse manifest.json")
}

fn expected(name: &str) -> Expected {
    manifest()
        .remove(name)
        .unwrap_or_else(|| panic!("{name} is not in manifest.json"))
}

/// A WAV read back whole (the archival files in these tests are small).
struct Decoded {
    spec: hound::WavSpec,
    /// One vector per channel.
    channels: Vec<Vec<i16>>,
}

impl Decoded {
    fn frames(&self) -> usize {
        self.channels[0].len()
    }
}

fn read_wav(path: &Path) -> Decoded {
    let mut reader = hound::WavReader::open(path).expect("open WAV with hound");
    let spec = reader.spec();
    let count = usize::from(spec.channels);
    let mut channels = vec![Vec::new(); count];
    for (i, sample) in reader.samples::<i16>().enumerate() {
        channels[i % count].push(sample.expect("read sample"));
    }
    assert!(
        channels.iter().all(|c| c.len() == channels[0].len()),
        "{} ends inside a frame",
        path.display()
    );
    Decoded { spec, channels }
}

/// ffmpeg, a second and independent decoder, must read the archival file without a word.
fn assert_ffmpeg_decodes(path: &Path) {
    let out = match Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "ffmpeg is not on PATH, and this test checks archival WAVs with it: install it \
             (apt-get install -y ffmpeg) and run the tests again"
        ),
        Err(e) => panic!("could not run ffmpeg: {e}"),
    };
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffmpeg could not decode {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// ffmpeg's own decoding of `path` to interleaved 16-bit samples.
fn ffmpeg_samples(path: &Path) -> Vec<i16> {
    let out = match Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "s16le", "-"])
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "ffmpeg is not on PATH, and this test compares with its decoding: install it \
             (apt-get install -y ffmpeg) and run the tests again"
        ),
        Err(e) => panic!("could not run ffmpeg: {e}"),
    };
    assert!(out.status.success(), "ffmpeg failed on {}", path.display());
    out.stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// Nothing but `keep` is left in `dir`: no output, no hidden partial file.
fn assert_dir_holds_only(dir: &Path, keep: &[&Path]) {
    let left: Vec<PathBuf> = fs::read_dir(dir)
        .expect("list temp dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| !keep.contains(&p.as_path()))
        .collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

/// Transcodes a fixture and checks everything the archival copy must be. Returns the report,
/// the decoded archival WAV and the temp dir holding it.
fn archive_fixture(
    name: &str,
    opts: &TranscodeOptions,
) -> (TranscodeReport, Decoded, tempfile::TempDir) {
    let want = expected(name);
    assert!(!want.truncated);
    let input = fixture(name);
    let dir = tempfile::tempdir().expect("temp dir");
    let output = dir.path().join("archival.wav");

    let report = transcode_file(&input, &output, opts)
        .unwrap_or_else(|e| panic!("transcoding {name} failed: {e}"));

    assert_eq!(report.source.format, want.format, "{name}: format");
    assert_eq!(report.source.codec, want.codec, "{name}: codec");
    assert_eq!(report.source.sample_rate, want.sample_rate, "{name}: rate");
    assert_eq!(report.source.channels, want.channels, "{name}: channels");

    let archival = read_wav(&output);
    let rate = opts.sample_rate.unwrap_or(want.sample_rate);
    assert_eq!(archival.spec.bits_per_sample, 16, "{name}: bits");
    assert_eq!(
        archival.spec.sample_format,
        hound::SampleFormat::Int,
        "{name}: PCM"
    );
    assert_eq!(
        archival.spec.channels, want.channels,
        "{name}: archival channels"
    );
    assert_eq!(archival.spec.sample_rate, rate, "{name}: archival rate");
    let seconds = archival.frames() as f64 / f64::from(rate);
    assert!(
        (seconds - want.duration_secs).abs() <= 0.050,
        "{name}: the archival copy lasts {seconds:.4} s, the source {:.4} s",
        want.duration_secs
    );
    assert_eq!(
        report.archival.frames,
        archival.frames() as u64,
        "{name}: frames"
    );
    assert!((report.archival.duration_secs - seconds).abs() < 1e-9);
    assert_eq!(report.archival.format, "wav");
    assert_eq!(report.archival.codec, "pcm_s16le");
    assert_eq!(report.archival.channels, want.channels);
    assert_eq!(report.archival.sample_rate, rate);

    let (in_sha, in_size) = hash_file(&input).expect("hash input");
    assert_eq!(
        (report.source.sha256.as_str(), report.source.byte_size),
        (in_sha.as_str(), in_size)
    );
    let (out_sha, out_size) = hash_file(&output).expect("hash output");
    assert_eq!(
        (report.archival.sha256.as_str(), report.archival.byte_size),
        (out_sha.as_str(), out_size)
    );
    assert_eq!(out_size, fs::metadata(&output).expect("stat output").len());

    assert_ffmpeg_decodes(&output);
    assert_dir_holds_only(dir.path(), &[&output]);
    (report, archival, dir)
}

fn keep_rate() -> TranscodeOptions {
    TranscodeOptions::default()
}

#[test]
fn a_16_bit_pcm_wav_is_archived_sample_for_sample() {
    let (report, archival, _dir) = archive_fixture("speech-8k-pcm16.wav", &keep_rate());
    let source = read_wav(&fixture("speech-8k-pcm16.wav"));
    assert_eq!(archival.channels, source.channels);
    assert_eq!(report.frames_promised, Some(source.frames() as u64));
    assert_eq!(report.source.frames, source.frames() as u64);
}

#[test]
fn a_mu_law_wav_is_expanded_to_the_same_samples_ffmpeg_gives() {
    let (report, archival, _dir) = archive_fixture("speech-8k-ulaw.wav", &keep_rate());
    assert_eq!(
        archival.channels[0],
        ffmpeg_samples(&fixture("speech-8k-ulaw.wav"))
    );
    assert_eq!(report.frames_promised, Some(report.source.frames));
}

#[test]
fn an_a_law_wav_is_expanded_to_the_same_samples_ffmpeg_gives() {
    let (report, archival, _dir) = archive_fixture("speech-8k-alaw.wav", &keep_rate());
    assert_eq!(
        archival.channels[0],
        ffmpeg_samples(&fixture("speech-8k-alaw.wav"))
    );
    assert_eq!(report.frames_promised, Some(report.source.frames));
}

#[test]
fn a_dual_channel_wav_keeps_caller_and_agent_on_their_own_channels() {
    let (_, archival, _dir) = archive_fixture("speech-8k-dual.wav", &keep_rate());
    assert_eq!(archival.channels.len(), 2);
    assert_ne!(
        archival.channels[0], archival.channels[1],
        "the two channels were mixed or duplicated"
    );
    let source = read_wav(&fixture("speech-8k-dual.wav"));
    assert_eq!(
        archival.channels, source.channels,
        "a channel moved or changed"
    );
}

#[test]
fn an_mp3_is_decoded_gaplessly_to_the_length_of_the_audio_encoded() {
    let (report, archival, _dir) = archive_fixture("speech-8k.mp3", &keep_rate());
    // The LAME tag's frame count, less delay and padding, is the encoded audio exactly.
    assert_eq!(report.frames_promised, Some(archival.frames() as u64));
    let want = expected("speech-8k.mp3");
    let frames = (want.duration_secs * f64::from(want.sample_rate)).round() as u64;
    assert_eq!(
        report.source.frames, frames,
        "not gapless: delay or padding left in"
    );
    // The speech is there, not silence.
    let peak = archival.channels[0].iter().map(|s| s.unsigned_abs()).max();
    assert!(peak > Some(3000), "peak {peak:?}");
}

#[test]
fn a_wav_cut_short_is_refused_as_truncated_and_leaves_no_output() {
    assert!(expected("truncated.wav").truncated);
    let dir = tempfile::tempdir().expect("temp dir");
    let output = dir.path().join("archival.wav");
    match transcode_file(&fixture("truncated.wav"), &output, &keep_rate()) {
        Err(AudioError::Truncated { promised, decoded }) => {
            assert!(promised > decoded, "promised {promised}, decoded {decoded}");
            let want = expected("truncated.wav");
            let whole = (want.duration_secs * f64::from(want.sample_rate)).round() as u64;
            assert_eq!(promised, whole);
            assert!(
                decoded > 0 && decoded <= promised / 2 + 1,
                "decoded {decoded}"
            );
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    assert_dir_holds_only(dir.path(), &[]);
    assert!(matches!(
        probe_file(&fixture("truncated.wav")),
        Err(AudioError::Truncated { .. })
    ));
}

#[test]
fn an_mp3_cut_short_is_refused_as_truncated_and_leaves_no_output() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bytes = fs::read(fixture("speech-8k.mp3")).expect("read mp3");
    let input = dir.path().join("cut.mp3");
    fs::write(&input, &bytes[..bytes.len() / 2]).expect("write cut mp3");
    let output = dir.path().join("archival.wav");
    match transcode_file(&input, &output, &keep_rate()) {
        Err(AudioError::Truncated { promised, decoded }) => {
            assert!(promised > decoded, "promised {promised}, decoded {decoded}")
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    assert_dir_holds_only(dir.path(), &[&input]);
}

/// Transcodes `bytes` and returns the error, checking nothing is left behind.
fn refuse(bytes: &[u8]) -> AudioError {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("download.wav");
    fs::write(&input, bytes).expect("write input");
    let output = dir.path().join("archival.wav");
    let error = match transcode_file(&input, &output, &keep_rate()) {
        Ok(report) => panic!("accepted {} bytes of junk: {report:?}", bytes.len()),
        Err(e) => e,
    };
    assert_dir_holds_only(dir.path(), &[&input]);
    assert!(probe_file(&input).is_err());
    error
}

#[test]
fn an_html_error_page_is_refused_naming_its_first_bytes_and_leaves_no_output() {
    let error = refuse(b"<html><body>404 Not Found</body></html>\n");
    let AudioError::Unsupported(message) = &error else {
        panic!("expected Unsupported, got {error:?}");
    };
    assert!(message.contains("3c 68 74 6d"), "{message}");
    assert!(message.contains("HTML"), "{message}");
}

#[test]
fn random_bytes_are_refused_and_leave_no_output() {
    let mut state = 0x2545_f491_u32;
    let bytes: Vec<u8> = (0..8192)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect();
    let error = refuse(&bytes);
    assert!(
        matches!(error, AudioError::Unsupported(_) | AudioError::Decode(_)),
        "{error:?}"
    );
}

#[test]
fn an_empty_file_is_refused_and_leaves_no_output() {
    let error = refuse(b"");
    let AudioError::Unsupported(message) = &error else {
        panic!("expected Unsupported, got {error:?}");
    };
    assert!(message.contains("empty"), "{message}");
}

#[test]
fn a_wav_header_over_garbage_is_refused_and_leaves_no_output() {
    let mut bytes = b"RIFF\x24\x10\x00\x00WAVEfmt \x10\x00\x00\x00".to_vec();
    bytes.extend(std::iter::repeat_n(0xa5, 4096));
    let error = refuse(&bytes);
    assert!(
        matches!(error, AudioError::Unsupported(_) | AudioError::Decode(_)),
        "{error:?}"
    );
}

/// A canonical WAV header for `data_len` bytes of the given format.
fn wav_header(format_tag: u16, channels: u16, rate: u32, bits: u16, data_len: u32) -> Vec<u8> {
    let block_align = channels * bits.div_ceil(8).max(1);
    let mut h = Vec::new();
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&(36 + data_len).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&format_tag.to_le_bytes());
    h.extend_from_slice(&channels.to_le_bytes());
    h.extend_from_slice(&rate.to_le_bytes());
    h.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
    h.extend_from_slice(&block_align.to_le_bytes());
    h.extend_from_slice(&bits.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_len.to_le_bytes());
    h
}

#[test]
fn a_wav_in_a_codec_callproof_cannot_decode_is_refused_by_name() {
    // GSM 6.10, as some telephony systems store it.
    let mut bytes = wav_header(0x0031, 1, 8000, 0, 650);
    bytes.extend(std::iter::repeat_n(0x11, 650));
    let error = refuse(&bytes);
    let AudioError::Unsupported(message) = &error else {
        panic!("expected Unsupported, got {error:?}");
    };
    assert!(message.contains("gsm"), "{message}");
}

#[test]
fn a_wav_whose_header_claims_no_data_over_real_audio_is_refused() {
    let mut bytes = wav_header(1, 1, 8000, 16, 0);
    bytes.extend(std::iter::repeat_n(0x10, 16000));
    let error = refuse(&bytes);
    assert!(matches!(error, AudioError::Decode(_)), "{error:?}");
}

/// Every sample of `path` as the decoder gives it and as the raw path gives it.
fn both_ways(path: &Path) -> (Vec<i16>, Vec<i16>, u64) {
    let mut decoded = Vec::new();
    let mut source = source::Source::open(open(path).expect("open"), false).expect("source");
    while let Some(block) = source.next_block().expect("decode") {
        let source::Block::Decoded(AudioBufferRef::S16(buf)) = block else {
            panic!("{}: the decoder gave no 16-bit block", path.display());
        };
        for frame in 0..buf.frames() {
            for channel in 0..buf.spec().channels.count() {
                decoded.push(buf.chan(channel)[frame]);
            }
        }
    }
    let frames = source.finish().expect("whole");
    let mut raw = Vec::new();
    let mut source = source::Source::open(open(path).expect("open"), true).expect("source");
    while let Some(block) = source.next_block().expect("read") {
        match block {
            source::Block::S16Le(bytes) => raw.extend(
                bytes
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]])),
            ),
            source::Block::Expanded(codes, table) => {
                raw.extend(codes.iter().map(|c| table[usize::from(*c)]))
            }
            source::Block::Decoded(_) => panic!("{}: no raw block", path.display()),
        }
    }
    assert_eq!(source.finish().expect("whole"), frames);
    (decoded, raw, frames)
}

#[test]
fn wav_samples_taken_without_the_decoder_are_the_decoders_samples() {
    for name in [
        "speech-8k-pcm16.wav",
        "speech-8k-ulaw.wav",
        "speech-8k-alaw.wav",
        "speech-8k-dual.wav",
    ] {
        let (decoded, raw, frames) = both_ways(&fixture(name));
        assert!(frames > 0);
        assert!(decoded == raw, "{name}: the raw samples differ");
    }
    // Every mu-law and A-law code, in three channels.
    for tag in [6u16, 7] {
        let codes: Vec<u8> = (0..=255u8).cycle().take(3 * 1000).collect();
        // G.711's fmt chunk is a WAVEFORMATEX: 18 bytes, the last two an empty cbSize.
        let mut bytes = wav_header(tag, 3, 8000, 8, codes.len() as u32 + 2);
        bytes[16..20].copy_from_slice(&18u32.to_le_bytes());
        bytes.splice(36..36, [0, 0]);
        let data_len = bytes.len() - 4;
        bytes[data_len..].copy_from_slice(&(codes.len() as u32).to_le_bytes());
        bytes.extend(&codes);
        let file = tempfile::NamedTempFile::new().expect("temp file");
        fs::write(file.path(), &bytes).expect("write");
        let (decoded, raw, frames) = both_ways(file.path());
        assert_eq!(frames, 1000);
        assert!(decoded == raw, "format tag {tag}: the raw samples differ");
    }
}

#[test]
fn rounding_to_16_bits_matches_round_and_clamp() {
    let reference = |x: f32| {
        let scaled = (x * 32768.0).round();
        if scaled >= 32767.0 {
            i16::MAX
        } else if scaled <= -32768.0 {
            i16::MIN
        } else {
            scaled as i16
        }
    };
    let mut checked = 0u64;
    // Every 251st bit pattern, NaNs and infinities included...
    for bits in (0..=u32::MAX).step_by(251) {
        let x = f32::from_bits(bits);
        assert_eq!(resample::to_i16(x), reference(x), "{x:e} ({bits:#x})");
        checked += 1;
    }
    // ...and every half-way point of the 16-bit range, with its neighbours.
    for k in -32770i32..=32770 {
        let tie = (k as f32 + 0.5) / 32768.0;
        for x in [
            tie,
            f32::from_bits(tie.to_bits() + 1),
            f32::from_bits(tie.to_bits() - 1),
        ] {
            assert_eq!(resample::to_i16(x), reference(x), "{x:e}");
            checked += 1;
        }
    }
    assert!(checked > 17_000_000);
}

/// Writes a 16-bit WAV of `channels` channels and `frames` frames of a ramp, with `data_len` in
/// its header, and returns its path in `dir`.
fn ramp_wav(dir: &Path, channels: u16, frames: u32, data_len: u32) -> PathBuf {
    let mut bytes = wav_header(1, channels, 8000, 16, 0);
    bytes[4..8].copy_from_slice(&data_len.saturating_add(36).to_le_bytes());
    bytes[40..44].copy_from_slice(&data_len.to_le_bytes());
    for i in 0..frames * u32::from(channels) {
        bytes.extend_from_slice(&((i % 20_000) as i16 - 10_000).to_le_bytes());
    }
    let path = dir.join(format!("ramp-{channels}-{data_len}.wav"));
    fs::write(&path, bytes).expect("write WAV");
    path
}

#[test]
fn the_archival_hash_is_the_files_whatever_the_header_said() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A recorder that streamed the file and never wrote the length; three channels, which
    // hound writes as WAVE_FORMAT_EXTENSIBLE; and an ordinary stereo file.
    for (channels, frames, data_len) in [
        (1u16, 1152 * 7, u32::MAX),
        (3, 5000, 5000 * 6),
        (2, 4000, 4000 * 4),
    ] {
        let input = ramp_wav(dir.path(), channels, frames, data_len);
        let output = dir.path().join("archival.wav");
        for opts in [
            keep_rate(),
            TranscodeOptions {
                sample_rate: Some(16_000),
            },
        ] {
            let report = transcode_file(&input, &output, &opts).expect("transcode");
            let on_disk = hash_file(&output).expect("hash output");
            assert_eq!(
                (report.archival.sha256.clone(), report.archival.byte_size),
                on_disk,
                "{channels} channel(s), data length {data_len}, {opts:?}"
            );
            let archival = read_wav(&output);
            assert_eq!(archival.spec.channels, channels);
            assert_eq!(archival.frames() as u64, report.archival.frames);
            if opts.sample_rate.is_none() {
                assert_eq!(report.archival.frames, u64::from(frames));
            }
            fs::remove_file(&output).expect("remove output");
        }
    }
}

#[test]
fn resampling_8k_to_16k_doubles_the_frames_and_keeps_the_duration() {
    let to_16k = TranscodeOptions {
        sample_rate: Some(16_000),
    };
    for name in [
        "speech-8k-pcm16.wav",
        "speech-8k-ulaw.wav",
        "speech-8k-alaw.wav",
        "speech-8k-dual.wav",
        "speech-8k.mp3",
    ] {
        let (report, archival, _dir) = archive_fixture(name, &to_16k);
        let doubled = 2 * report.source.frames;
        assert!(
            report.archival.frames.abs_diff(doubled) <= 2,
            "{name}: {} frames in, {} out",
            report.source.frames,
            report.archival.frames
        );
        assert!((report.archival.duration_secs - report.source.duration_secs).abs() < 0.001);
        if archival.channels.len() == 2 {
            assert_ne!(
                archival.channels[0], archival.channels[1],
                "{name}: channels mixed"
            );
        }
    }
}

#[test]
fn resampling_keeps_each_sound_at_the_same_moment() {
    // A click at exactly 0.5 s in 1 s of silence, on the left only.
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("click.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&input, spec).expect("create click");
    for frame in 0..8000 {
        let left = if frame == 4000 { 20_000 } else { 0 };
        writer.write_sample(left as i16).expect("write");
        writer.write_sample(0i16).expect("write");
    }
    writer.finalize().expect("finalize");

    for (rate, at) in [(16_000u32, 8000usize), (44_100, 22_050), (6_000, 3000)] {
        let output = dir.path().join(format!("click-{rate}.wav"));
        let report = transcode_file(
            &input,
            &output,
            &TranscodeOptions {
                sample_rate: Some(rate),
            },
        )
        .expect("resample click");
        assert_eq!(
            report.archival.frames,
            u64::from(rate),
            "{rate} Hz: one second"
        );
        let archival = read_wav(&output);
        let (peak_at, _) = archival.channels[0]
            .iter()
            .enumerate()
            .max_by_key(|(_, s)| s.unsigned_abs())
            .expect("samples");
        assert!(
            peak_at.abs_diff(at) <= 1,
            "{rate} Hz: click at {peak_at}, expected {at}"
        );
        let right_peak = archival.channels[1].iter().map(|s| s.unsigned_abs()).max();
        assert_eq!(
            right_peak,
            Some(0),
            "{rate} Hz: the click leaked into the right channel"
        );
    }
}

#[test]
fn resampling_a_tone_keeps_it_clean_and_in_phase() {
    // 1 kHz at half scale for 2 s at 8 kHz, compared after resampling with the ideal tone.
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("tone.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let tone =
        |i: usize, rate: f64| 16384.0 * (std::f64::consts::TAU * 1000.0 * i as f64 / rate).sin();
    let mut writer = hound::WavWriter::create(&input, spec).expect("create tone");
    for i in 0..16_000 {
        writer
            .write_sample(tone(i, 8000.0).round() as i16)
            .expect("write");
    }
    writer.finalize().expect("finalize");

    let output = dir.path().join("tone-16k.wav");
    let opts = TranscodeOptions {
        sample_rate: Some(16_000),
    };
    transcode_file(&input, &output, &opts).expect("resample tone");
    let samples = &read_wav(&output).channels[0];
    assert_eq!(samples.len(), 32_000);
    // Away from the edges, where the resampler sees silence beyond the file.
    let (mut signal, mut noise) = (0.0, 0.0);
    for (i, sample) in samples.iter().enumerate().take(30_000).skip(2_000) {
        let ideal = tone(i, 16_000.0);
        signal += ideal * ideal;
        noise += (f64::from(*sample) - ideal).powi(2);
    }
    let snr_db = 10.0 * (signal / noise).log10();
    assert!(
        snr_db > 60.0,
        "the resampled tone is {snr_db:.1} dB above its error"
    );
}

#[test]
fn a_sample_rate_outside_the_archival_range_is_refused_and_leaves_no_output() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = dir.path().join("archival.wav");
    for rate in [0, 1, MAX_SAMPLE_RATE + 1] {
        let opts = TranscodeOptions {
            sample_rate: Some(rate),
        };
        let error = transcode_file(&fixture("speech-8k-pcm16.wav"), &output, &opts)
            .expect_err("a silly rate was accepted");
        assert!(matches!(error, AudioError::Unsupported(_)), "{error:?}");
    }
    assert_dir_holds_only(dir.path(), &[]);
}

#[test]
fn the_archival_copy_is_never_written_over_its_source() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("recording.wav");
    fs::copy(fixture("speech-8k-pcm16.wav"), &input).expect("copy fixture");
    let before = hash_file(&input).expect("hash");
    let error = transcode_file(&input, &input, &keep_rate()).expect_err("overwrote its source");
    assert!(matches!(error, AudioError::Io(_)), "{error:?}");
    assert_eq!(hash_file(&input).expect("hash"), before);
    assert_dir_holds_only(dir.path(), &[&input]);
}

#[test]
fn probing_gives_the_same_source_facts_as_transcoding() {
    for name in [
        "speech-8k-pcm16.wav",
        "speech-8k-ulaw.wav",
        "speech-8k-alaw.wav",
        "speech-8k-dual.wav",
        "speech-8k.mp3",
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let output = dir.path().join("archival.wav");
        let report = transcode_file(&fixture(name), &output, &keep_rate()).expect("transcode");
        assert_eq!(
            probe_file(&fixture(name)).expect("probe"),
            report.source,
            "{name}"
        );
        let archival = probe_file(&output).expect("probe archival");
        assert_eq!(archival, report.archival, "{name}: archival");
    }
}

#[test]
fn hash_file_gives_the_standard_sha256() {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(b"abc").expect("write");
    let (sha, size) = hash_file(file.path()).expect("hash");
    assert_eq!(
        sha,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(size, 3);
}

#[test]
fn a_missing_input_is_an_io_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("never-downloaded.wav");
    let error = transcode_file(&input, &dir.path().join("out.wav"), &keep_rate())
        .expect_err("read a missing file");
    assert!(matches!(error, AudioError::Io(_)), "{error:?}");
    assert!(
        error.to_string().contains("never-downloaded.wav"),
        "{error}"
    );
    assert_dir_holds_only(dir.path(), &[]);
}

/// Set in a child process that should only transcode: "INPUT\nOUTPUT".
const CHILD_ENV: &str = "CALLPROOF_AUDIO_TEST_CHILD";
/// This test's full name, for running it alone in a child process.
const LONG_TEST: &str =
    "audio::tests::a_ten_minute_stereo_recording_streams_through_in_bounded_memory";

#[test]
fn a_ten_minute_stereo_recording_streams_through_in_bounded_memory() {
    if let Ok(paths) = std::env::var(CHILD_ENV) {
        // The child: nothing but the transcode.
        let (input, output) = paths.split_once('\n').expect("two paths");
        transcode_file(Path::new(input), Path::new(output), &keep_rate()).expect("child transcode");
        return;
    }

    const RATE: u32 = 8000;
    const FRAMES: u64 = 10 * 60 * RATE as u64;
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("ten-minutes.wav");
    let short = dir.path().join("one-minute.wav");
    write_stereo_tones(&input, RATE, FRAMES);
    write_stereo_tones(&short, RATE, FRAMES / 10);

    let output = dir.path().join("archival.wav");
    let report = transcode_file(&input, &output, &keep_rate()).expect("transcode long WAV");
    assert_eq!(report.source.frames, FRAMES);
    assert_eq!(report.archival.frames, FRAMES);
    assert_eq!(report.archival.channels, 2);
    assert_eq!(report.frames_promised, Some(FRAMES));
    // PCM in, PCM out at the same rate: the data is copied exactly.
    assert_eq!(report.archival.byte_size, report.source.byte_size);
    assert_eq!(report.archival.sha256, report.source.sha256);
    fs::remove_file(&output).expect("remove output");

    // The same transcode of one minute and of ten, each in a child process of
    // its own whose peak memory the kernel reports. The test binary's own size
    // sets a baseline that differs between builds, so compare the two: holding
    // the decoded samples of the extra nine minutes would add 17 MB as 16-bit.
    let peak_of = |input: &Path| {
        let exe = std::env::current_exe().expect("test binary");
        let mut child = Command::new(exe);
        child
            .args([LONG_TEST, "--exact", "--test-threads=1", "--quiet"])
            .env(
                CHILD_ENV,
                format!("{}\n{}", input.display(), output.display()),
            )
            .stdout(std::process::Stdio::null());
        let (status, peak_kib) = run_with_peak_rss(child);
        assert!(
            status == 0,
            "child test failed with wait status {status:#x}"
        );
        assert!(
            output.exists(),
            "the child ran no transcode (is {LONG_TEST} this test's name?)"
        );
        fs::remove_file(&output).expect("remove output");
        peak_kib as f64 / 1024.0
    };
    let one = peak_of(&short);
    let ten = peak_of(&input);
    eprintln!("transcoding stereo in a child process peaked at {one:.1} MiB for 1 minute, {ten:.1} MiB for 10");
    assert!(
        ten - one < 4.0,
        "10 minutes peaked {:.1} MiB above 1 minute ({ten:.1} vs {one:.1}): memory grows with the length",
        ten - one
    );
}

/// Writes a stereo WAV: a 440 Hz tone on the left, a 300 Hz tone on the right.
fn write_stereo_tones(path: &Path, rate: u32, frames: u64) {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).expect("create long WAV");
    for frame in 0..frames {
        let t = frame as f64 / f64::from(rate);
        let left = (8000.0 * (std::f64::consts::TAU * 440.0 * t).sin()) as i16;
        let right = (8000.0 * (std::f64::consts::TAU * 300.0 * t).sin()) as i16;
        writer.write_sample(left).expect("write");
        writer.write_sample(right).expect("write");
    }
    writer.finalize().expect("finalize long WAV");
}

/// Runs `command` to the end and returns its wait status and peak resident set in KiB.
#[expect(
    clippy::zombie_processes,
    reason = "the child is reaped by wait4, which also reports its resource use"
)]
fn run_with_peak_rss(mut command: Command) -> (i32, i64) {
    let child = command.spawn().expect("spawn child");
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    let mut status = 0;
    // SAFETY: rusage is plain data; all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pointers to live locals; pid is this process's own child, not yet reaped, and is
    // reaped here rather than by `child`.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(
        waited,
        pid,
        "wait4 failed: {}",
        std::io::Error::last_os_error()
    );
    (status, usage.ru_maxrss)
}
