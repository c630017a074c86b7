//! A four-hour, two-channel recording through `callproof serve` on S3
//! (s3s-fs, started here): stored whole, and its waveform drawn from the
//! store, with the server's peak memory under 64 MiB.

use callproof::simulate::media::{MediaFormat, MediaServer};
use serde_json::Value;

use crate::helpers::*;

const HOURS: u32 = 4;
const RATE: u32 = 8000;
const LIMIT_MIB: f64 = 64.0;

/// A two-channel 16-bit WAV of `secs` seconds at 8 kHz: a different tone on
/// each channel, as hound writes it.
fn long_wav(secs: u32) -> bytes::Bytes {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let frames = secs as usize * RATE as usize;
    let mut out = std::io::Cursor::new(Vec::with_capacity(44 + frames * 4));
    {
        let mut w = hound::WavWriter::new(&mut out, spec).expect("wav header");
        // One period of each tone, repeated: 400 Hz (20 samples) and 250 Hz (32).
        let tone = |n: usize, period: usize| {
            let phase = (n % period) as f64 / period as f64;
            (8000.0 * (phase * std::f64::consts::TAU).sin()) as i16
        };
        let (left, right): (Vec<i16>, Vec<i16>) = (
            (0..20).map(|n| tone(n, 20)).collect(),
            (0..32).map(|n| tone(n, 32)).collect(),
        );
        for n in 0..frames {
            w.write_sample(left[n % 20]).expect("sample");
            w.write_sample(right[n % 32]).expect("sample");
        }
        w.finalize().expect("wav");
    }
    bytes::Bytes::from(out.into_inner())
}

/// The peak resident memory of process `pid` (VmHWM), in MiB.
fn peak_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc status");
    kib / 1024.0
}

#[tokio::test(flavor = "multi_thread")]
async fn a_four_hour_two_channel_recording_goes_through_s3_in_under_64_mib() {
    let s3 = crate::s3::start_s3s_fs();
    crate::s3::bucket(&s3.endpoint, "long", false).await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = crate::s3::s3_options(&s3.endpoint, "long");
    opts.extra
        .push(("CALLPROOF_RECORDING_DOWNLOAD_TIMEOUT_SECS", "1800".into()));
    let env = test_env(dir.path(), opts).await;
    let (server, app) = crate::cli::serve_attached(dir.path(), &env).await;

    let secs = HOURS * 3600;
    let wav = tokio::task::spawn_blocking(move || long_wav(secs))
        .await
        .unwrap();
    let size = wav.len() as u64;
    let started = app.start_call(CALL).await;
    app.press(&started.answer, CALL, "1").await;
    let sid = "RE44444444444444444444444444444444";
    let media = MediaServer::start(ACCOUNT_SID, AUTH_TOKEN, sid, wav, MediaFormat::Wav)
        .await
        .unwrap();
    let duration = secs.to_string();
    let mut params = recording_params(CALL, sid, &media.recording_url);
    for (k, v) in params.iter_mut() {
        match *k {
            "RecordingDuration" => *v = &duration,
            "RecordingChannels" => *v = "2",
            _ => {}
        }
    }
    let r = app.webhook(&started.callback, &params, AUTH_TOKEN).await;
    assert_eq!(r.status().as_u16(), 204);

    let record = app.wait_record_for(&started.id, 600, complete).await;
    let audio = record["recording"]["audio"].as_array().unwrap();
    let role = |name: &str| -> &Value {
        audio
            .iter()
            .find(|a| a["role"] == name)
            .unwrap_or_else(|| panic!("no {name} audio in {record}"))
    };
    assert_eq!(role("original")["byte_size"], size);
    let archival = role("archival");
    assert_eq!(archival["channels"], 2);
    let decoded = archival["duration_secs"].as_f64().unwrap();
    assert!((decoded - f64::from(secs)).abs() < 0.01, "{decoded} s");
    let key = callproof::store::ObjectKey::new(archival["key"].as_str().unwrap()).unwrap();
    let stored = app
        .store
        .head(&key)
        .await
        .unwrap()
        .expect("archival stored");
    assert_eq!(stored.size, archival["byte_size"].as_u64().unwrap());

    // Its waveform, streamed from the store by ranged reads.
    let started_at = std::time::Instant::now();
    let resp = app
        .get_with(
            &format!("/v1/records/{}/waveform", started.id),
            Some(COMPLIANCE_KEY),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    let waveform: Value = resp.json().await.unwrap();
    println!(
        "waveform of four hours of two-channel audio in {:.1} s",
        started_at.elapsed().as_secs_f64()
    );
    assert_valid_against("waveform.v1.schema.json", &waveform);
    let duration = waveform["duration_secs"].as_f64().unwrap();
    assert!((duration - f64::from(secs)).abs() < 0.01, "{duration} s");
    let channels = waveform["channels"].as_array().unwrap();
    assert_eq!(channels.len(), 2);
    // Both tones peak near 8000 / 32768 in every span.
    for c in channels {
        let peaks = c.as_array().unwrap();
        assert_eq!(peaks.len(), 2000);
        assert!(
            peaks
                .iter()
                .all(|p| (p.as_f64().unwrap() - 0.244).abs() < 0.01),
            "{c}"
        );
    }

    let peak = peak_mib(server.pid());
    println!(
        "four hours of two-channel audio ({:.0} MiB) through S3: server peak memory {peak:.1} MiB",
        size as f64 / 1048576.0
    );
    assert!(
        peak < LIMIT_MIB,
        "peak memory {peak:.1} MiB is over {LIMIT_MIB} MiB"
    );
}
