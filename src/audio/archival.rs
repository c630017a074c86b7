//! The archival 16-bit PCM WAV being written: hound's header, then the samples in blocks of
//! bytes, each block hashed as it is written so the file's SHA-256 needs no second read.

use std::fs::File;
use std::io::{self, Cursor, Seek, SeekFrom, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::resample::to_i16;
use super::{hash_reader, with_path, AudioError};

/// Bytes gathered before one write (and one hash update): few system calls, bounded memory.
const BLOCK_BYTES: usize = 256 * 1024;

/// A 16-bit PCM WAV being written, and the SHA-256 of every byte written to it.
///
/// The header is hound's for the spec (PCMWAVEFORMAT up to two channels, WAVEFORMATEXTENSIBLE
/// above), written first with the sizes the source promises when it promises any. The hash is
/// taken over exactly the bytes written, in order; when the frames written turn out to differ
/// from the sizes in the header, the header is rewritten and the whole file hashed again from
/// disk, so the hash returned is always that of the file as it stands.
pub(super) struct ArchivalWriter {
    file: File,
    /// The header as written: `RIFF` size at 4, data length in its last four bytes.
    header: Vec<u8>,
    /// Data bytes the header on disk declares.
    declared: u64,
    hasher: Sha256,
    /// Samples converted but not yet written.
    pending: Vec<u8>,
    channels: usize,
    data_bytes: u64,
}

impl ArchivalWriter {
    /// The largest data chunk a WAV can describe, less room for the header.
    const MAX_DATA_BYTES: u64 = u32::MAX as u64 - 1024;

    /// Creates `path` and writes the header, declaring `expected_frames` when given.
    pub(super) fn create(
        path: &Path,
        sample_rate: u32,
        channels: u16,
        expected_frames: Option<u64>,
    ) -> Result<Self, AudioError> {
        let mut header = wav_header(sample_rate, channels)?;
        let declared = expected_frames
            .and_then(|frames| frames.checked_mul(2 * u64::from(channels)))
            .filter(|bytes| *bytes <= Self::MAX_DATA_BYTES)
            .unwrap_or(0);
        set_sizes(&mut header, declared);
        // Readable too: a header rewritten at the end is followed by hashing the file again.
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| with_path(e, &format!("creating {}", path.display())))?;
        file.write_all(&header)
            .map_err(|e| with_path(e, "writing the archival WAV"))?;
        let mut hasher = Sha256::new();
        hasher.update(&header);
        Ok(ArchivalWriter {
            file,
            header,
            declared,
            hasher,
            pending: Vec::with_capacity(BLOCK_BYTES + 64 * 1024),
            channels: usize::from(channels),
            data_bytes: 0,
        })
    }

    /// Appends interleaved little-endian 16-bit samples as they are (whole frames).
    pub(super) fn write_s16le(&mut self, bytes: &[u8]) -> Result<(), AudioError> {
        self.reserve(bytes.len())?;
        self.pending.extend_from_slice(bytes);
        self.after_append()
    }

    /// Appends interleaved 8-bit codes, each expanded through `table` (G.711 mu-law or A-law).
    pub(super) fn write_expanded(
        &mut self,
        codes: &[u8],
        table: &[i16; 256],
    ) -> Result<(), AudioError> {
        let out = self.extend_by(codes.len() * 2)?;
        for (bytes, code) in out.chunks_exact_mut(2).zip(codes) {
            bytes.copy_from_slice(&table[usize::from(*code)].to_le_bytes());
        }
        self.after_append()
    }

    /// Appends interleaved samples (whole frames).
    pub(super) fn write_i16(&mut self, samples: &[i16]) -> Result<(), AudioError> {
        let out = self.extend_by(samples.len() * 2)?;
        for (bytes, sample) in out.chunks_exact_mut(2).zip(samples) {
            bytes.copy_from_slice(&sample.to_le_bytes());
        }
        self.after_append()
    }

    /// Appends `frames` frames given as one slice per channel, interleaving them.
    pub(super) fn write_planar_i16(
        &mut self,
        planes: &[&[i16]],
        frames: usize,
    ) -> Result<(), AudioError> {
        self.write_planar(planes, frames, |s| s)
    }

    /// Appends `frames` frames of float samples given as one slice per channel, rounded to
    /// 16 bits without dither.
    pub(super) fn write_planar_f32(
        &mut self,
        planes: &[&[f32]],
        frames: usize,
    ) -> Result<(), AudioError> {
        self.write_planar(planes, frames, to_i16)
    }

    /// Interleaves and converts into the pending bytes, with a loop per channel layout simple
    /// enough for the compiler to vectorise.
    fn write_planar<T: Copy>(
        &mut self,
        planes: &[&[T]],
        frames: usize,
        convert: impl Fn(T) -> i16,
    ) -> Result<(), AudioError> {
        if planes.len() != self.channels || planes.iter().any(|p| p.len() < frames) {
            return Err(AudioError::Decode(
                "a decoded block does not hold the channels and frames it claims".into(),
            ));
        }
        let width = 2 * self.channels;
        let out = self.extend_by(frames * width)?;
        match planes {
            [mono] => {
                for (bytes, sample) in out.chunks_exact_mut(2).zip(&mono[..frames]) {
                    bytes.copy_from_slice(&convert(*sample).to_le_bytes());
                }
            }
            [left, right] => {
                for ((bytes, l), r) in out
                    .chunks_exact_mut(4)
                    .zip(&left[..frames])
                    .zip(&right[..frames])
                {
                    bytes[..2].copy_from_slice(&convert(*l).to_le_bytes());
                    bytes[2..].copy_from_slice(&convert(*r).to_le_bytes());
                }
            }
            _ => {
                for (frame, bytes) in out.chunks_exact_mut(width).enumerate() {
                    for (sample, plane) in bytes.chunks_exact_mut(2).zip(planes) {
                        sample.copy_from_slice(&convert(plane[frame]).to_le_bytes());
                    }
                }
            }
        }
        self.after_append()
    }

    /// Grows the pending bytes by `bytes` (zeroed, to be overwritten) and returns the new part,
    /// refusing data past what a WAV header can describe.
    fn extend_by(&mut self, bytes: usize) -> Result<&mut [u8], AudioError> {
        self.reserve(bytes)?;
        let start = self.pending.len();
        self.pending.resize(start + bytes, 0);
        Ok(&mut self.pending[start..])
    }

    /// Frames written so far.
    pub(super) fn frames(&self) -> u64 {
        (self.data_bytes + self.pending.len() as u64) / 2 / self.channels as u64
    }

    /// Writes what is pending, puts the final sizes in the header if they differ from the ones
    /// written, and flushes. Returns the file's SHA-256 (lowercase hex) and length.
    pub(super) fn finish(mut self) -> Result<(String, u64), AudioError> {
        self.write_pending()?;
        let size = self.header.len() as u64 + self.data_bytes;
        if self.declared == self.data_bytes {
            self.file
                .flush()
                .map_err(|e| with_path(e, "writing the archival WAV"))?;
            return Ok((hex::encode(self.hasher.finalize()), size));
        }
        // The source did not say how long it was, or said wrong: the header changes, and the
        // hash must be of the file as it now stands.
        set_sizes(&mut self.header, self.data_bytes);
        let rewrite = |file: &mut File, header: &[u8]| -> io::Result<(String, u64)> {
            file.seek(SeekFrom::Start(0))?;
            file.write_all(header)?;
            file.flush()?;
            file.seek(SeekFrom::Start(0))?;
            hash_reader(file)
        };
        let (sha256, on_disk) = rewrite(&mut self.file, &self.header)
            .map_err(|e| with_path(e, "finishing the archival WAV"))?;
        if on_disk != size {
            return Err(AudioError::Io(io::Error::other(format!(
                "the archival WAV holds {on_disk} bytes where {size} were written"
            ))));
        }
        Ok((sha256, size))
    }

    /// Refuses a block that would take the data past what a WAV header can describe.
    fn reserve(&mut self, bytes: usize) -> Result<(), AudioError> {
        let total = self.data_bytes + self.pending.len() as u64 + bytes as u64;
        if total > Self::MAX_DATA_BYTES {
            return Err(AudioError::Unsupported(format!(
                "the archival WAV would pass the 4 GiB a WAV header can describe after {} \
                 frames; ask for a lower sample rate",
                (self.data_bytes + self.pending.len() as u64) / 2 / self.channels as u64
            )));
        }
        Ok(())
    }

    fn after_append(&mut self) -> Result<(), AudioError> {
        if self.pending.len() >= BLOCK_BYTES {
            self.write_pending()?;
        }
        Ok(())
    }

    /// Hashes and writes the pending bytes.
    fn write_pending(&mut self) -> Result<(), AudioError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.hasher.update(&self.pending);
        self.file
            .write_all(&self.pending)
            .map_err(|e| with_path(e, "writing the archival WAV"))?;
        self.data_bytes += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }
}

/// hound's header for a 16-bit PCM WAV of this rate and channel count, declaring no data.
fn wav_header(sample_rate: u32, channels: u16) -> Result<Vec<u8>, AudioError> {
    let spec = hound::WavSpec {
        channels,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut header = Cursor::new(Vec::new());
    let writer = hound::WavWriter::new(&mut header, spec).map_err(|e| {
        AudioError::Unsupported(format!(
            "cannot write a 16-bit WAV of {channels} channel(s) at {sample_rate} Hz: {e}"
        ))
    })?;
    writer.finalize().map_err(|e| {
        AudioError::Unsupported(format!(
            "cannot write a 16-bit WAV of {channels} channel(s) at {sample_rate} Hz: {e}"
        ))
    })?;
    let header = header.into_inner();
    if header.len() < 44 || &header[header.len() - 8..header.len() - 4] != b"data" {
        return Err(AudioError::Io(io::Error::other(
            "hound wrote a WAV header callproof does not recognise",
        )));
    }
    Ok(header)
}

/// Puts the sizes for `data_bytes` of samples into `header` (which ends with the data chunk's
/// id and length). `data_bytes` is at most [`ArchivalWriter::MAX_DATA_BYTES`].
fn set_sizes(header: &mut [u8], data_bytes: u64) {
    let len = header.len();
    let riff = (len as u64 - 8 + data_bytes).min(u64::from(u32::MAX)) as u32;
    let data = data_bytes.min(u64::from(u32::MAX)) as u32;
    header[4..8].copy_from_slice(&riff.to_le_bytes());
    header[len - 4..].copy_from_slice(&data.to_le_bytes());
}
