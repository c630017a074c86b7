//! Call recordings to archival WAV: decodes the provider's WAV (PCM, mu-law, A-law) or MP3 and
//! streams it out as 16-bit PCM WAV, with the facts and SHA-256 of both files.

mod archival;
mod resample;
mod source;

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use symphonia::core::audio::{AudioBuffer, AudioBufferRef, Signal};

use archival::ArchivalWriter;
use resample::StreamResampler;
use source::{Block, Source};

/// The lowest sample rate an archival copy may be asked for.
pub const MIN_SAMPLE_RATE: u32 = 4_000;
/// The highest sample rate an archival copy may be asked for.
pub const MAX_SAMPLE_RATE: u32 = 192_000;

/// Facts about one audio file, as stored in the record.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AudioFacts {
    /// Container: `"wav"` or `"mp3"`.
    pub format: String,
    /// What the audio really is, in ffmpeg's names: `"pcm_s16le"`, `"pcm_mulaw"`,
    /// `"pcm_alaw"`, `"mp3"`, ...
    pub codec: String,
    /// Frames per second.
    pub sample_rate: u32,
    /// Channels (a dual-channel recording keeps both).
    pub channels: u16,
    /// Decoded frames (per channel).
    pub frames: u64,
    /// `frames / sample_rate`.
    pub duration_secs: f64,
    /// The file's length in bytes.
    pub byte_size: u64,
    /// Lowercase hex SHA-256 of the file's bytes.
    pub sha256: String,
}

/// How to make the archival copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TranscodeOptions {
    /// `None` keeps the source's rate; `Some(rate)` resamples to `rate` Hz (between
    /// [`MIN_SAMPLE_RATE`] and [`MAX_SAMPLE_RATE`]).
    pub sample_rate: Option<u32>,
}

/// What [`transcode_file`] read and wrote.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TranscodeReport {
    /// The downloaded recording, as decoded.
    pub source: AudioFacts,
    /// The archival 16-bit PCM WAV.
    pub archival: AudioFacts,
    /// Frames the source's header promised, when it says (a WAV's data chunk length, an MP3's
    /// LAME/Lavf tag); equal to `source.frames` on success.
    pub frames_promised: Option<u64>,
}

/// Why a recording could not be read or archived.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// Not WAV or MP3, or a codec callproof cannot decode; the message says what was found.
    #[error("unsupported recording: {0}")]
    Unsupported(String),
    /// The file claims to be WAV or MP3 but its data is corrupt.
    #[error("corrupt recording: {0}")]
    Decode(String),
    /// The header promised more frames than the file holds: the download was cut short.
    #[error(
        "truncated recording: the header promises {promised} frames but the file holds only \
         {decoded}; download the recording again"
    )]
    Truncated {
        /// Frames the header promised.
        promised: u64,
        /// Frames actually decoded.
        decoded: u64,
    },
    /// Reading the input or writing the output failed.
    #[error("audio file I/O failed: {0}")]
    Io(#[from] io::Error),
}

/// Decodes `input` (WAV with PCM, mu-law or A-law, or MP3) and writes `output` as 16-bit PCM
/// WAV with the source's channels (never mixed down) at the source's or the requested rate.
///
/// - The source is recognised from its first bytes, never its name, and decoded packet by
///   packet; each block is converted into bytes that are hashed and written in blocks of
///   256 KiB, so memory stays bounded (well under a megabyte) whatever the length.
/// - Truncation: symphonia reads a WAV whose data chunk is cut short without complaint, so the
///   frames decoded are compared with the frames the header promises (for MP3, the frame count
///   in the LAME/Lavf tag) and a shortfall is [`AudioError::Truncated`].
/// - MP3 is decoded gaplessly: the encoder delay and padding named in the LAME/Lavf tag are
///   cut, so the archival copy is as long as the audio that was encoded.
/// - 16-bit PCM is copied byte for byte from the data chunk; mu-law and A-law are expanded
///   exactly, through a table made by symphonia's own decoder; MP3 and other float sources are
///   rounded to 16 bits without dither. With resampling, every source goes through the decoder.
/// - Resampling (only when asked) uses rubato's FFT resampler; its delay is cut from the start
///   and its tail flushed, so sounds stay at the same time and the output has
///   `round(frames * new_rate / old_rate)` frames.
/// - The output is written to a hidden file beside `output`, synced, and renamed into place
///   only once complete (replacing any file there); on any error nothing is left at `output`
///   or beside it.
/// - Both files are hashed: the input from the same open handle that is then decoded, the
///   output as it is written, header included. The header is written first with the sizes the
///   source's header promises; when the output turns out to differ (or the source promised
///   nothing), the header is rewritten and the output hashed again from disk, so the hash is
///   always that of the file's bytes.
pub fn transcode_file(
    input: &Path,
    output: &Path,
    opts: &TranscodeOptions,
) -> Result<TranscodeReport, AudioError> {
    if let Some(rate) = opts.sample_rate {
        check_rate(rate)?;
    }
    refuse_same_file(input, output)?;
    let mut file = open(input)?;
    let (sha256, byte_size) = hash_reader(&mut file)?;
    file.seek(SeekFrom::Start(0))?;
    let mut source = Source::open(file, opts.sample_rate.is_none())?;
    let out_rate = opts.sample_rate.unwrap_or(source.sample_rate);

    let partial = partial_path(output)?;
    let (frames_in, written, (out_sha256, out_size)) =
        write_archival(&mut source, &partial, out_rate)
            .and_then(|frames| {
                fs::rename(&partial, output).map_err(|e| {
                    with_path(
                        e,
                        &format!("moving the archival WAV into place at {}", output.display()),
                    )
                })?;
                Ok(frames)
            })
            .inspect_err(|_| {
                let _ = fs::remove_file(&partial);
            })?;

    Ok(TranscodeReport {
        source: facts(&source, frames_in, (sha256, byte_size)),
        archival: AudioFacts {
            format: "wav".into(),
            codec: "pcm_s16le".into(),
            sample_rate: out_rate,
            channels: source.channels,
            frames: written,
            duration_secs: written as f64 / f64::from(out_rate),
            byte_size: out_size,
            sha256: out_sha256,
        },
        frames_promised: source.promised,
    })
}

/// SHA-256 (lowercase hex) and byte size of a file, streamed.
pub fn hash_file(path: &Path) -> io::Result<(String, u64)> {
    hash_reader(&mut open(path)?)
}

/// Reads the facts of an existing WAV or MP3 without writing anything: decodes it to count
/// frames, so a truncated file is [`AudioError::Truncated`] here too.
pub fn probe_file(path: &Path) -> Result<AudioFacts, AudioError> {
    let mut file = open(path)?;
    let hashed = hash_reader(&mut file)?;
    file.seek(SeekFrom::Start(0))?;
    let mut source = Source::open(file, true)?;
    while source.next_block()?.is_some() {}
    let frames = source.finish()?;
    Ok(facts(&source, frames, hashed))
}

/// The facts of a decoded source.
fn facts(source: &Source, frames: u64, (sha256, byte_size): (String, u64)) -> AudioFacts {
    let sample_rate = source.sample_rate;
    AudioFacts {
        format: source.container.name().into(),
        codec: source.codec.clone(),
        sample_rate,
        channels: source.channels,
        frames,
        duration_secs: frames as f64 / f64::from(sample_rate),
        byte_size,
        sha256,
    }
}

/// Decodes all of `source` into a 16-bit WAV at `path`, synced to disk. Returns the frames
/// decoded, the frames written, and the SHA-256 and length of the file written. Fails with
/// `Truncated` when the source is shorter than its header promised.
fn write_archival(
    source: &mut Source,
    path: &Path,
    out_rate: u32,
) -> Result<(u64, u64, (String, u64)), AudioError> {
    let channels = source.channels;
    let in_rate = u64::from(source.sample_rate);
    // The frames the output will have if the source keeps its promise, for the header.
    let expected = source
        .promised
        .map(|frames| (frames * u64::from(out_rate) + in_rate / 2) / in_rate);
    let mut writer = ArchivalWriter::create(path, out_rate, channels, expected)?;
    let mut resampler = if out_rate == source.sample_rate {
        None
    } else {
        Some(StreamResampler::new(
            source.sample_rate,
            out_rate,
            channels,
        )?)
    };
    let mut f32_cache = None;

    while let Some(block) = source.next_block()? {
        match (block, resampler.as_mut()) {
            (Block::S16Le(bytes), None) => writer.write_s16le(bytes)?,
            (Block::Expanded(codes, table), None) => writer.write_expanded(codes, table)?,
            (Block::Decoded(block), None) => {
                let frames = block.frames();
                if let AudioBufferRef::S16(buf) = &block {
                    let planes: Vec<&[i16]> =
                        (0..usize::from(channels)).map(|c| buf.chan(c)).collect();
                    writer.write_planar_i16(&planes, frames)?;
                } else {
                    let planes = f32_planes(&block, &mut f32_cache);
                    writer.write_planar_f32(&planes, frames)?;
                }
            }
            (Block::Decoded(block), Some(resampler)) => {
                let frames = block.frames();
                let planes = f32_planes(&block, &mut f32_cache);
                resampler.push(&planes, frames, &mut |samples| writer.write_i16(samples))?;
            }
            (Block::S16Le(_) | Block::Expanded(..), Some(_)) => {
                return Err(AudioError::Decode(
                    "undecoded samples reached the resampler".into(),
                ))
            }
        }
    }
    // Refuse a short source before spending time on the rest.
    let frames_in = source.finish()?;
    if let Some(resampler) = resampler.as_mut() {
        resampler.finish(&mut |samples| writer.write_i16(samples))?;
    }
    let written = writer.frames();
    let hashed = writer.finish()?;

    // Read the header back: what is on disk must say what was written.
    let on_disk = hound::WavReader::open(path).map_err(|e| hound_error(e, "re-reading"))?;
    let spec = on_disk.spec();
    if u64::from(on_disk.duration()) != written
        || spec.channels != channels
        || spec.sample_rate != out_rate
        || spec.bits_per_sample != 16
    {
        return Err(AudioError::Io(io::Error::other(format!(
            "the archival WAV's header says {} frames, {} channel(s) at {} Hz, but {written} \
             frames, {channels} channel(s) at {out_rate} Hz were written",
            on_disk.duration(),
            spec.channels,
            spec.sample_rate
        ))));
    }
    drop(on_disk);
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    if size != hashed.1 {
        return Err(AudioError::Io(io::Error::other(format!(
            "the archival WAV holds {size} bytes where {} were written",
            hashed.1
        ))));
    }
    file.sync_all()?;
    Ok((frames_in, written, hashed))
}

/// A decoded block as one `f32` slice per channel, converting through `cache` unless the
/// decoder already produced `f32`.
fn f32_planes<'a>(
    block: &'a AudioBufferRef<'_>,
    cache: &'a mut Option<AudioBuffer<f32>>,
) -> Vec<&'a [f32]> {
    let channels = block.spec().channels.count();
    if let AudioBufferRef::F32(buf) = block {
        return (0..channels).map(|c| buf.chan(c)).collect();
    }
    // symphonia's conversion needs a destination of exactly the source's capacity and spec.
    if cache
        .as_ref()
        .is_some_and(|c| c.capacity() != block.capacity() || c.spec() != block.spec())
    {
        *cache = None;
    }
    let buf = cache.get_or_insert_with(|| AudioBuffer::new(block.capacity() as u64, *block.spec()));
    block.convert(buf);
    let buf: &'a AudioBuffer<f32> = buf;
    (0..channels).map(|c| buf.chan(c)).collect()
}

/// SHA-256 and length of everything `reader` yields.
fn hash_reader(reader: &mut impl Read) -> io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), total))
}

/// Opens a file for reading, naming it in the error.
fn open(path: &Path) -> io::Result<File> {
    File::open(path).map_err(|e| with_path(e, &format!("opening {}", path.display())))
}

/// An I/O error that says what was being done to which file.
fn with_path(error: io::Error, doing: &str) -> io::Error {
    io::Error::new(error.kind(), format!("{doing}: {error}"))
}

/// Where the output is written before it is complete: a hidden file beside it, unique to this
/// call so concurrent transcodes never share one.
fn partial_path(output: &Path) -> Result<PathBuf, AudioError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = output.file_name().ok_or_else(|| {
        AudioError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("the output path {} names no file", output.display()),
        ))
    })?;
    let unique = NEXT.fetch_add(1, Ordering::Relaxed);
    Ok(output.with_file_name(format!(
        ".{}.partial-{}-{unique}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// Refuses to write the archival copy over the recording it is made from.
fn refuse_same_file(input: &Path, output: &Path) -> Result<(), AudioError> {
    if let (Ok(a), Ok(b)) = (fs::canonicalize(input), fs::canonicalize(output)) {
        if a == b {
            return Err(AudioError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the output {} is the input recording; choose another path",
                    output.display()
                ),
            )));
        }
    }
    Ok(())
}

/// Refuses sample rates an archival copy should not have.
fn check_rate(rate: u32) -> Result<(), AudioError> {
    if (MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate) {
        Ok(())
    } else {
        Err(AudioError::Unsupported(format!(
            "a sample rate of {rate} Hz was asked for; choose one from {MIN_SAMPLE_RATE} to \
             {MAX_SAMPLE_RATE} Hz, or none to keep the recording's rate"
        )))
    }
}

/// Maps a WAV-writing error met while `doing` something to the archival file.
fn hound_error(error: hound::Error, doing: &str) -> AudioError {
    match error {
        hound::Error::IoError(e) => {
            AudioError::Io(with_path(e, &format!("{doing} the archival WAV")))
        }
        other => AudioError::Io(io::Error::other(format!(
            "{doing} the archival WAV: {other}"
        ))),
    }
}

#[cfg(test)]
mod tests;

/// The container a file's first bytes announce: `wav`, `mp3`, or `None`.
pub fn sniff_format(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"RIFF") && head.get(8..12) == Some(b"WAVE") {
        Some("wav")
    } else if head.starts_with(b"ID3")
        || (head.len() > 1 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0)
    {
        Some("mp3")
    } else {
        None
    }
}
