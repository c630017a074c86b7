//! `GET /v1/records/{id}/waveform` (compliance): the peaks of a record's
//! archival WAV per channel, computed as it streams from the store.
//!
//! The resolution is the server's ([`MAX_PEAKS`] per channel at most, whatever
//! the request says), so a waveform can never stand in for the audio, whose
//! replay needs a reason. Memory holds one store chunk and the peaks, not the
//! recording.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use bytes::{Buf, Bytes, BytesMut};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};

use super::audit::{audited, Access};
use super::client::ClientAddr;
use super::extract::{Compliance, Key};
use super::{ApiError, AppState};
use crate::domain::ConfirmationId;
use crate::record::AudioRole;
use crate::store::{ObjectKey, ObjectStore};

/// Peaks per channel at most.
pub const MAX_PEAKS: u64 = 2000;

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

/// Reads bytes `start..end` of `key` whole (small reads only).
async fn read_small(
    store: &dyn ObjectStore,
    key: &ObjectKey,
    start: u64,
    end: u64,
) -> Result<Bytes, ApiError> {
    let mut stream = store
        .read_range(key, start..end)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .ok_or(ApiError::NotFound)?;
    let mut out = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.map_err(|e| ApiError::Internal(e.into()))?);
    }
    Ok(out.freeze())
}

/// The layout, frame count and peaks of the WAV under `key`, read in
/// ranged reads: its first bytes, then its samples as they stream.
async fn peaks_of(
    store: &dyn ObjectStore,
    key: &ObjectKey,
) -> Result<(WavLayout, u64, Vec<Vec<f64>>), ApiError> {
    let size = store
        .head(key)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .ok_or(ApiError::NotFound)?
        .size;
    let head = read_small(store, key, 0, size.min(HEADER_READ)).await?;
    let wav = parse_wav_header(&head, size).map_err(|why| {
        ApiError::Internal(anyhow::anyhow!(
            "the archival audio {key} cannot be read as a WAV: {why}"
        ))
    })?;
    let frames = wav.data_len / (2 * u64::from(wav.channels));
    let mut peaks = Peaks::new(wav.channels, frames);
    let mut stream = store
        .read_range(key, wav.data_start..wav.data_start + wav.data_len)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .ok_or(ApiError::NotFound)?;
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|e| ApiError::Internal(e.into()))?;
        // A few thousand samples at a time, so one answer never holds a worker long.
        while chunk.has_remaining() {
            let piece = chunk.split_to(chunk.len().min(64 * 1024));
            peaks.feed(&piece);
            tokio::task::yield_now().await;
        }
    }
    Ok((wav, frames, peaks.finish()))
}

/// `GET /v1/records/{id}/waveform` (compliance; audited as
/// `records.waveform`, no reason needed): `{"record_id", "version",
/// "sample_rate", "duration_secs", "channels": [[peak, ...], ...]}`, one list
/// of at most 2000 peaks (0 to 1) per channel of the archival WAV of the
/// newest version, or of `?version=N`.
pub async fn waveform(
    State(s): State<AppState>,
    Key { caller, .. }: Key<Compliance>,
    client: ClientAddr,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<WaveformQuery>,
) -> Result<Json<Value>, ApiError> {
    let id: ConfirmationId = id.parse().map_err(|_| ApiError::NotFound)?;
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
    let computed = tokio::time::timeout(COMPUTE_LIMIT, peaks_of(s.store.as_ref(), &key)).await;
    let (wav, frames, channels) = match computed {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => return Err(e),
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
    })))
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
}
