//! `GET /v1/records/{id}/waveform` (compliance): the peaks of a record's
//! archival WAV per channel, computed as it streams from the store.
//!
//! The resolution is the server's ([`MAX_PEAKS`] per channel at most, whatever
//! the request says), so a waveform can never stand in for the audio, whose
//! replay needs a reason. Memory holds one store chunk and the peaks, not the
//! recording; at most [`MAX_CHANNELS`] channels are drawn, and [`CONCURRENT`]
//! waveforms at once. The WAV is hashed as it streams and nothing is answered
//! unless it is the audio the record names, so a replaced WAV never draws a timeline.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::{Buf, BytesMut};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::audit::{audited, Access};
use super::client::ClientAddr;
use super::extract::{Compliance, Key};
use super::{ApiError, AppState};
use crate::domain::ConfirmationId;
use crate::record::{AudioObject, AudioRole};
use crate::store::{ObjectKey, ObjectStore};

/// Peaks per channel at most.
pub const MAX_PEAKS: u64 = 2000;

/// Channels a waveform is drawn of, at most: calls are mono or dual-channel.
pub const MAX_CHANNELS: u16 = 2;

/// Waveforms drawn at once, at most; more are answered 503 with `Retry-After`.
pub const CONCURRENT: usize = 2;

/// Seconds a refused waveform request is told to wait.
const RETRY_AFTER_SECS: u64 = 5;

/// Bytes of a WAV read to find its chunks, at most.
const HEADER_READ: u64 = 64 * 1024;

/// Longest time one waveform may take: hours of audio from S3 take more than
/// the request timeout, so the route is outside it (see `http::router`).
pub const COMPUTE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// `version=N`, as on record reads; anything else is ignored.
#[derive(Debug, Default, Deserialize)]
pub struct WaveformQuery {
    version: Option<u32>,
}

/// Where the samples of a 16-bit PCM WAV are, and what they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavLayout {
    /// Channels, interleaved.
    pub channels: u16,
    /// Frames per second.
    pub sample_rate: u32,
    /// Offset of the first sample byte.
    pub data_start: u64,
    /// Bytes of samples (whole frames).
    pub data_len: u64,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Finds `fmt ` and `data` in the first bytes of a WAV of `size` bytes;
/// only 16-bit integer PCM (the archival format) is accepted.
pub fn parse_wav_header(head: &[u8], size: u64) -> Result<WavLayout, String> {
    if head.get(0..4) != Some(b"RIFF") || head.get(8..12) != Some(b"WAVE") {
        return Err("not a RIFF WAVE file".into());
    }
    let mut at = 12usize;
    let mut fmt: Option<(u16, u32)> = None;
    loop {
        let id = head
            .get(at..at + 4)
            .ok_or("no data chunk in the first 64 KiB")?;
        let len = u32_at(head, at + 4).ok_or("a chunk header is cut")?;
        let body = at + 8;
        if id == b"fmt " {
            let format = u16_at(head, body).ok_or("the fmt chunk is cut")?;
            let channels = u16_at(head, body + 2).ok_or("the fmt chunk is cut")?;
            let rate = u32_at(head, body + 4).ok_or("the fmt chunk is cut")?;
            let bits = u16_at(head, body + 14).ok_or("the fmt chunk is cut")?;
            if !(format == 1 || format == 0xFFFE) || bits != 16 || channels == 0 || rate == 0 {
                return Err(format!(
                    "not 16-bit PCM (format {format}, {bits} bits, {channels} channels, {rate} Hz)"
                ));
            }
            fmt = Some((channels, rate));
        } else if id == b"data" {
            let (channels, sample_rate) = fmt.ok_or("the data chunk comes before fmt")?;
            let data_start = body as u64;
            let frame = 2 * u64::from(channels);
            // A header written before the length was known may say more than is there.
            let available = size.saturating_sub(data_start);
            let data_len = u64::from(len).min(available) / frame * frame;
            return Ok(WavLayout {
                channels,
                sample_rate,
                data_start,
                data_len,
            });
        }
        // Chunks are padded to an even length.
        at = body
            .checked_add(len as usize + (len as usize & 1))
            .ok_or("a chunk length overflows")?;
    }
}

/// Peaks (largest absolute sample, 0 to 1) of `buckets` equal spans of
/// `frames` frames per channel, fed interleaved 16-bit samples in pieces.
/// Span `b` holds the frames `n` with `n * buckets / frames == b`.
pub struct Peaks {
    channels: usize,
    frames: u64,
    buckets: u64,
    /// The frame the next sample belongs to, and its channel.
    frame: u64,
    channel: usize,
    /// The span being filled, and the first frame after it.
    bucket: u64,
    bucket_end: u64,
    current: Vec<u16>,
    out: Vec<Vec<f64>>,
    carry: Option<u8>,
}

impl Peaks {
    /// Peaks of `frames` frames of `channels` channels, at most [`MAX_PEAKS`] per channel.
    pub fn new(channels: u16, frames: u64) -> Peaks {
        let channels = usize::from(channels.max(1));
        let buckets = frames.clamp(1, MAX_PEAKS);
        let mut p = Peaks {
            channels,
            frames,
            buckets,
            frame: 0,
            channel: 0,
            bucket: 0,
            bucket_end: 0,
            current: vec![0; channels],
            out: vec![Vec::with_capacity(buckets as usize); channels],
            carry: None,
        };
        p.bucket_end = p.end_of(0);
        p
    }

    /// The first frame after span `b`: ceil((b + 1) * frames / buckets).
    fn end_of(&self, b: u64) -> u64 {
        let n = u128::from(b + 1) * u128::from(self.frames);
        n.div_ceil(u128::from(self.buckets)) as u64
    }

    fn sample(&mut self, s: i16) {
        let slot = &mut self.current[self.channel];
        *slot = (*slot).max(s.unsigned_abs());
        self.channel += 1;
        if self.channel < self.channels {
            return;
        }
        self.channel = 0;
        self.frame += 1;
        if self.frame >= self.bucket_end {
            for (c, peak) in self.current.iter_mut().enumerate() {
                self.out[c].push((f64::from(*peak) / 32768.0 * 10_000.0).round() / 10_000.0);
                *peak = 0;
            }
            self.bucket += 1;
            self.bucket_end = self.end_of(self.bucket);
        }
    }

    /// Feeds the next bytes of the data chunk (any length); bytes past the
    /// last frame are ignored.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        if let Some(low) = self.carry.take() {
            let Some((&high, rest)) = bytes.split_first() else {
                self.carry = Some(low);
                return;
            };
            if self.frame < self.frames {
                self.sample(i16::from_le_bytes([low, high]));
            }
            bytes = rest;
        }
        let mut pairs = bytes.chunks_exact(2);
        for pair in &mut pairs {
            if self.frame >= self.frames {
                return;
            }
            self.sample(i16::from_le_bytes([pair[0], pair[1]]));
        }
        if let [last] = pairs.remainder() {
            self.carry = Some(*last);
        }
    }

    /// The peaks, one list per channel.
    pub fn finish(self) -> Vec<Vec<f64>> {
        self.out
    }
}

/// Why a waveform is not drawn.
enum Refusal {
    /// The stored audio is not what the record says it is (409).
    Evidence(String),
    /// Anything else.
    Api(ApiError),
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Refusal::Api(e)
    }
}

/// What every evidence refusal ends with.
const DIFFERS: &str = "the audio differs from the record; run callproof records verify";

/// Refuses a channel count above [`MAX_CHANNELS`] or other than the one the record states.
fn check_channels(wav: &WavLayout, stated: Option<u16>, key: &ObjectKey) -> Result<(), String> {
    let wrong = match stated {
        Some(n) => n != wav.channels,
        None => wav.channels > MAX_CHANNELS,
    };
    if wav.channels > MAX_CHANNELS || wrong {
        let says = stated.map_or(format!("at most {MAX_CHANNELS}"), |n| n.to_string());
        return Err(format!(
            "the archival audio {key} says it has {} channels and the record says {says}: {DIFFERS}",
            wav.channels
        ));
    }
    Ok(())
}

/// Feeds `peaks` the part of `piece`, found at byte `at` of the WAV, that
/// lies in its data chunk.
fn feed_data(peaks: &mut Peaks, wav: &WavLayout, piece: &[u8], at: u64) {
    let (start, end) = (wav.data_start, wav.data_start + wav.data_len);
    let lo = at.max(start);
    let hi = (at + piece.len() as u64).min(end);
    if lo < hi {
        peaks.feed(&piece[(lo - at) as usize..(hi - at) as usize]);
    }
}

/// The layout, frame count and peaks of the archival WAV `object` under
/// `key`, read in one stream that is hashed as it goes: nothing is answered
/// unless its size, channels and SHA-256 are the record's.
async fn peaks_of(
    store: &dyn ObjectStore,
    key: &ObjectKey,
    object: &AudioObject,
) -> Result<(WavLayout, u64, Vec<Vec<f64>>), Refusal> {
    let size = store
        .head(key)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .ok_or(ApiError::NotFound)?
        .size;
    if size != object.byte_size {
        return Err(Refusal::Evidence(format!(
            "the archival audio {key} is {size} bytes and the record says {}: {DIFFERS}",
            object.byte_size
        )));
    }
    let mut stream = store
        .read_range(key, 0..size)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .ok_or(ApiError::NotFound)?;
    let header_len = size.min(HEADER_READ);
    let mut hasher = Sha256::new();
    let mut head = BytesMut::new();
    let mut drawing: Option<(WavLayout, u64, Peaks)> = None;
    let mut at = 0u64;
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|e| ApiError::Internal(e.into()))?;
        // A few thousand samples at a time, so one answer never holds a worker long.
        while chunk.has_remaining() {
            let piece = chunk.split_to(chunk.len().min(64 * 1024));
            hasher.update(&piece);
            match &mut drawing {
                Some((wav, _, peaks)) => feed_data(peaks, wav, &piece, at),
                None => {
                    head.extend_from_slice(&piece);
                    if head.len() as u64 >= header_len {
                        let wav = parse_wav_header(&head, size).map_err(|why| {
                            Refusal::Evidence(format!(
                                "the archival audio {key} cannot be read as a 16-bit PCM WAV ({why}): {DIFFERS}"
                            ))
                        })?;
                        check_channels(&wav, object.channels, key).map_err(Refusal::Evidence)?;
                        let frames = wav.data_len / (2 * u64::from(wav.channels));
                        let mut peaks = Peaks::new(wav.channels, frames);
                        feed_data(&mut peaks, &wav, &head, 0);
                        drawing = Some((wav, frames, peaks));
                    }
                }
            }
            at += piece.len() as u64;
            tokio::task::yield_now().await;
        }
    }
    let digest = hex::encode(hasher.finalize());
    if at != size || !digest.eq_ignore_ascii_case(&object.sha256) {
        return Err(Refusal::Evidence(format!(
            "the archival audio {key} has SHA-256 {digest} ({at} bytes) and the record says {}: {DIFFERS}",
            object.sha256
        )));
    }
    let (wav, frames, peaks) = drawing.ok_or_else(|| {
        Refusal::Evidence(format!("the archival audio {key} is empty: {DIFFERS}"))
    })?;
    Ok((wav, frames, peaks.finish()))
}

/// [`CONCURRENT`] waveforms are being drawn: 503 with `Retry-After`.
#[derive(Debug)]
struct Busy;

impl IntoResponse for Busy {
    fn into_response(self) -> Response {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, RETRY_AFTER_SECS.to_string())],
            Json(json!({"error": format!(
                "callproof is drawing {CONCURRENT} waveforms, as many as it draws at once: try again in {RETRY_AFTER_SECS} seconds"
            )})),
        )
            .into_response()
    }
}

/// A permit to draw one waveform, unless [`CONCURRENT`] are being drawn.
fn start(waveforms: &Semaphore) -> Result<SemaphorePermit<'_>, Busy> {
    waveforms.try_acquire().map_err(|_| Busy)
}

/// `GET /v1/records/{id}/waveform` (compliance; audited as
/// `records.waveform`, no reason needed): `{"record_id", "version",
/// "sample_rate", "duration_secs", "channels": [[peak, ...], ...]}`, one list
/// of at most 2000 peaks (0 to 1) per channel of the archival WAV of the
/// newest version, or of `?version=N`. 409 when the stored WAV is not the
/// one the record names (size, channels, SHA-256); 503 with `Retry-After`
/// when [`CONCURRENT`] waveforms are being drawn.
pub async fn waveform(
    State(s): State<AppState>,
    Key { caller, .. }: Key<Compliance>,
    client: ClientAddr,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<WaveformQuery>,
) -> Result<Response, ApiError> {
    let id: ConfirmationId = id.parse().map_err(|_| ApiError::NotFound)?;
    let _permit = match start(&s.waveforms) {
        Ok(p) => p,
        Err(busy) => return Ok(busy.into_response()),
    };
    let asked = q.version.map(|v| v.to_string());
    let mut access =
        Access::new("records.waveform", "GET /v1/records/{id}/waveform").record(id.as_str());
    if let Some(v) = &asked {
        access = access.filter("version", v);
    }
    audited(&s, &caller, access, &headers, client).await?;
    let record = super::records::load(&s, id.as_str(), q.version).await?;
    let object = record
        .recording
        .as_ref()
        .and_then(|rec| rec.audio.iter().find(|a| a.role == AudioRole::Archival))
        .ok_or(ApiError::NotFound)?;
    let key =
        ObjectKey::new(object.key.clone()).map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))?;
    let computed =
        tokio::time::timeout(COMPUTE_LIMIT, peaks_of(s.store.as_ref(), &key, object)).await;
    let (wav, frames, channels) = match computed {
        Ok(Ok(done)) => done,
        Ok(Err(Refusal::Api(e))) => return Err(e),
        Ok(Err(Refusal::Evidence(why))) => {
            tracing::error!(record = %id, version = record.version, problem = %why, "a waveform was not drawn: the stored audio is not the record's");
            return Ok((StatusCode::CONFLICT, Json(json!({ "error": why }))).into_response());
        }
        Err(_) => {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "the waveform of {key} of record {id} took longer than {} s",
                COMPUTE_LIMIT.as_secs()
            )))
        }
    };
    tracing::info!(role = %caller.role, key = %caller.key_name, record = %id, version = record.version, frames, "record waveform read");
    Ok(Json(json!({
        "record_id": id,
        "version": record.version,
        "sample_rate": wav.sample_rate,
        "duration_secs": frames as f64 / f64::from(wav.sample_rate),
        "channels": channels,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(channels: u16, rate: u32, samples: &[i16]) -> Vec<u8> {
        let mut cursor = std::io::Cursor::new(Vec::new());
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::new(&mut cursor, spec).expect("writer");
        for s in samples {
            w.write_sample(*s).expect("sample");
        }
        w.finalize().expect("finish");
        cursor.into_inner()
    }

    #[test]
    fn the_header_of_an_archival_wav_is_found() {
        let bytes = wav(2, 8000, &[1, 2, 3, 4, 5, 6]);
        let layout = parse_wav_header(&bytes, bytes.len() as u64).expect("parses");
        assert_eq!(layout.channels, 2);
        assert_eq!(layout.sample_rate, 8000);
        assert_eq!(layout.data_len, 12);
        assert_eq!(layout.data_start as usize + 12, bytes.len());
        assert!(parse_wav_header(b"RIFF....WAVEjunk", 16).is_err());
        assert!(parse_wav_header(b"not a wav at all", 16).is_err());
    }

    #[test]
    fn peaks_are_per_channel_at_most_2000_and_do_not_depend_on_chunking() {
        // Left a ramp up, right silent but for one loud sample.
        let frames = 10_000u64;
        let mut samples = Vec::new();
        for n in 0..frames {
            samples.push((n * 3) as i16);
            samples.push(if n == 5000 { i16::MIN } else { 0 });
        }
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let whole = {
            let mut p = Peaks::new(2, frames);
            p.feed(&bytes);
            p.finish()
        };
        assert_eq!(whole.len(), 2);
        assert_eq!(whole[0].len(), 2000);
        assert_eq!(whole[1].len(), 2000);
        assert!(whole[1].iter().all(|p| (0.0..=1.0).contains(p)));
        assert_eq!(whole[1].iter().filter(|p| **p == 1.0).count(), 1);
        assert!(whole[0].windows(2).all(|w| w[0] <= w[1]), "a ramp rises");
        // Odd piece sizes split samples between pieces.
        let mut p = Peaks::new(2, frames);
        for piece in bytes.chunks(7) {
            p.feed(piece);
        }
        assert_eq!(p.finish(), whole);
        // Every count of frames gives min(frames, 2000) peaks.
        for n in [1u64, 1999, 2000, 2001, 3999, 4001, 123_457] {
            let mut p = Peaks::new(1, n);
            p.feed(&vec![1u8; n as usize * 2 + 3]);
            assert_eq!(p.finish()[0].len() as u64, n.min(2000), "{n} frames");
        }
        // Fewer frames than peaks: one peak per frame.
        let mut short = Peaks::new(1, 3);
        short.feed(&[0, 0x40, 0, 0xc0, 0, 0]);
        assert_eq!(short.finish(), vec![vec![0.5, 0.5, 0.0]]);
    }

    #[test]
    fn more_than_two_channels_or_others_than_the_record_states_are_refused() {
        let key = ObjectKey::new("audio/x/archival.wav").expect("key");
        let layout = |channels| WavLayout {
            channels,
            sample_rate: 8000,
            data_start: 44,
            data_len: 0,
        };
        assert!(check_channels(&layout(2), Some(2), &key).is_ok());
        assert!(check_channels(&layout(1), None, &key).is_ok());
        for (channels, stated) in [(65535, None), (3, Some(3)), (1, Some(2)), (2, Some(1))] {
            let why = check_channels(&layout(channels), stated, &key).expect_err("refused");
            assert!(why.contains("callproof records verify"), "{why}");
        }
    }

    #[test]
    fn at_most_two_waveforms_are_drawn_at_once_and_the_third_is_told_when_to_retry() {
        let waveforms = Semaphore::new(CONCURRENT);
        let first = start(&waveforms).expect("first");
        let _second = start(&waveforms).expect("second");
        let busy = start(&waveforms).expect_err("third").into_response();
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(busy.headers()[header::RETRY_AFTER], "5");
        drop(first);
        assert!(
            start(&waveforms).is_ok(),
            "a permit is returned when a waveform is done"
        );
    }
}
