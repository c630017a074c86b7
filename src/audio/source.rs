//! Opening a recording: recognising WAV or MP3 from its first bytes, then decoding it packet
//! by packet with symphonia while counting frames against what the header promised.

use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};

use symphonia::core::audio::{AudioBufferRef, Signal};
use symphonia::core::codecs::{
    CodecParameters, CodecType, Decoder, DecoderOptions, CODEC_TYPE_NULL, CODEC_TYPE_PCM_ALAW,
    CODEC_TYPE_PCM_MULAW, CODEC_TYPE_PCM_S16LE,
};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader, Packet};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions, ReadBytes};
use symphonia::default::formats::{MpaReader, WavReader};

use super::AudioError;

/// The containers callproof reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Container {
    Wav,
    Mp3,
}

impl Container {
    /// The name stored in [`super::AudioFacts::format`].
    pub(super) fn name(self) -> &'static str {
        match self {
            Container::Wav => "wav",
            Container::Mp3 => "mp3",
        }
    }
}

/// What the first bytes of a file said about it.
struct Sniffed {
    container: Container,
    /// Bytes to skip before the container starts (an ID3v2 tag in front of MP3 frames).
    skip: u64,
    /// For WAV: the layout found by walking the RIFF chunks.
    wav: Option<WavLayout>,
}

/// The parts of a WAV header that symphonia does not expose.
#[derive(Debug, Clone, Copy)]
struct WavLayout {
    /// The `fmt ` chunk's format tag (the sub-format's for WAVE_FORMAT_EXTENSIBLE).
    format_tag: Option<u16>,
    /// The `fmt ` chunk's block alignment: bytes per frame, for PCM.
    block_align: Option<u16>,
    /// Byte offset of the first audio byte.
    data_offset: u64,
    /// The data chunk's declared length in bytes.
    data_len: u32,
}

/// One block of a recording's audio, in the form it is cheapest to get.
pub(super) enum Block<'a> {
    /// Interleaved little-endian 16-bit samples, whole frames, as stored in the WAV: what the
    /// decoder would produce, without decoding.
    S16Le(&'a [u8]),
    /// Interleaved 8-bit G.711 codes (mu-law or A-law), whole frames, and the 16-bit sample the
    /// decoder gives each code.
    Expanded(&'a [u8], &'a [i16; 256]),
    /// What the decoder produced.
    Decoded(AudioBufferRef<'a>),
}

/// How a WAV's samples are taken from its packets without the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Raw {
    /// 16-bit little-endian PCM: copied.
    S16Le,
    /// G.711: expanded through `Source::table`.
    Expanded,
}

/// A recording opened for decoding.
pub(super) struct Source {
    reader: Box<dyn FormatReader>,
    decoder: Box<dyn Decoder>,
    track_id: u32,
    /// Whether packets are used as they are (or through `table`) instead of decoded.
    raw: Option<Raw>,
    /// For [`Raw::Expanded`]: the decoder's sample for each code.
    table: Box<[i16; 256]>,
    /// The packet a raw block borrows from.
    packet: Option<Packet>,
    /// WAV or MP3.
    pub(super) container: Container,
    /// What the audio really is, in ffmpeg's codec names ("pcm_s16le", "pcm_mulaw", "mp3", ...).
    pub(super) codec: String,
    /// Frames per second.
    pub(super) sample_rate: u32,
    /// Channels, as stored (never mixed down).
    pub(super) channels: u16,
    /// Frames the header promises, where the header is trustworthy enough to say.
    pub(super) promised: Option<u64>,
    frames: u64,
}

impl Source {
    /// Recognises the file from its first bytes and prepares symphonia to decode it. `file` may
    /// be positioned anywhere; it is read from its start. With `raw`, the blocks of a 16-bit
    /// PCM, mu-law or A-law WAV come as [`Block::S16Le`] or [`Block::Expanded`], exactly the
    /// samples the decoder would give; otherwise every block is [`Block::Decoded`].
    pub(super) fn open(mut file: File, raw: bool) -> Result<Self, AudioError> {
        let file_len = file.metadata()?.len();
        let sniffed = sniff(&mut file, file_len)?;
        file.seek(SeekFrom::Start(0))?;

        let mut stream =
            MediaSourceStream::new(Box::new(file), MediaSourceStreamOptions::default());
        if sniffed.skip > 0 {
            stream.ignore_bytes(sniffed.skip).map_err(|e| {
                from_symphonia(SymphoniaError::IoError(e), "reading past the ID3 tag")
            })?;
        }
        let options = FormatOptions {
            enable_gapless: true,
            ..FormatOptions::default()
        };
        let reader: Box<dyn FormatReader> = match sniffed.container {
            Container::Wav => Box::new(
                WavReader::try_new(stream, &options)
                    .map_err(|e| wav_error(e, sniffed.wav.as_ref()))?,
            ),
            Container::Mp3 => Box::new(
                MpaReader::try_new(stream, &options)
                    .map_err(|e| from_symphonia(e, "reading the first MP3 frame"))?,
            ),
        };

        let track = reader
            .default_track()
            .ok_or_else(|| AudioError::Decode("the file holds no audio track".into()))?;
        let params = track.codec_params.clone();
        let track_id = track.id;
        let codec = codec_name(params.codec, sniffed.wav.as_ref());
        if params.codec == CODEC_TYPE_NULL {
            return Err(AudioError::Unsupported(format!(
                "a {} file whose codec ({codec}) callproof cannot decode",
                sniffed.container.name().to_uppercase()
            )));
        }
        let sample_rate = params
            .sample_rate
            .filter(|rate| *rate > 0)
            .ok_or_else(|| AudioError::Decode("the header gives no sample rate".into()))?;
        let channels = params
            .channels
            .map(|c| c.count())
            .filter(|count| *count > 0)
            .ok_or_else(|| AudioError::Decode("the header gives no channel count".into()))?;
        let channels = u16::try_from(channels).map_err(|_| {
            AudioError::Unsupported(format!("{channels} channels is more than a WAV can hold"))
        })?;

        let decoder = symphonia::default::get_codecs()
            .make(&params, &DecoderOptions::default())
            .map_err(|e| match e {
                SymphoniaError::Unsupported(_) => AudioError::Unsupported(format!(
                    "a {} file coded as {codec}, which callproof cannot decode \
                     (it reads 16-bit PCM, mu-law and A-law WAV, and MP3)",
                    sniffed.container.name().to_uppercase()
                )),
                other => from_symphonia(other, "preparing the decoder"),
            })?;

        let promised = match (sniffed.container, sniffed.wav) {
            (Container::Wav, Some(layout)) if layout.data_len == u32::MAX => {
                // A recorder that streamed the file never wrote the real length: there is no
                // promise to check against.
                None
            }
            (Container::Wav, Some(layout)) => {
                if layout.data_len == 0 && file_len > layout.data_offset {
                    return Err(AudioError::Decode(format!(
                        "the WAV header declares an empty data chunk but {} bytes follow it \
                         (a recorder that never finished writing its header?)",
                        file_len - layout.data_offset
                    )));
                }
                params.n_frames
            }
            (Container::Wav, None) => params.n_frames,
            // Only a LAME/Lavf tag (which carries the encoder delay) gives an exact length; any
            // other MP3 length is an estimate from the bitrate.
            (Container::Mp3, _) if params.delay.is_some() => params.n_frames,
            (Container::Mp3, _) => None,
        };

        let mut decoder = decoder;
        let raw = match (raw, sniffed.wav) {
            (true, Some(layout)) => raw_form(&params, layout, channels),
            _ => None,
        };
        let mut table = Box::new([0i16; 256]);
        let raw = match raw {
            Some(Raw::Expanded) if !expansion_table(decoder.as_mut(), channels, &mut table) => None,
            other => other,
        };

        Ok(Source {
            reader,
            decoder,
            track_id,
            raw,
            table,
            packet: None,
            container: sniffed.container,
            codec,
            sample_rate,
            channels,
            promised,
            frames: 0,
        })
    }

    /// The next non-empty packet of the audio track, for both the decoder and the raw
    /// path. `None` at the end of the stream.
    fn next_packet(&mut self) -> Result<Option<Packet>, AudioError> {
        loop {
            let packet = match self.reader.next_packet() {
                Ok(packet) => packet,
                // symphonia ends every stream, whole or cut short, with an end-of-file error.
                Err(SymphoniaError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => {
                    return Ok(None)
                }
                Err(e) => return Err(from_symphonia(e, "reading a packet")),
            };
            if packet.track_id() != self.track_id {
                continue;
            }
            if packet.buf().is_empty() {
                return Ok(None);
            }
            return Ok(Some(packet));
        }
    }

    /// Decodes the next packet that holds audio. `None` at the end of the stream.
    pub(super) fn next_block(&mut self) -> Result<Option<Block<'_>>, AudioError> {
        if let Some(raw) = self.raw {
            return self.next_raw(raw);
        }
        loop {
            let Some(packet) = self.next_packet()? else {
                return Ok(None);
            };
            let (frames, rate, channels) = {
                let block = self
                    .decoder
                    .decode(&packet)
                    .map_err(|e| from_symphonia(e, "decoding"))?;
                (
                    block.frames(),
                    block.spec().rate,
                    block.spec().channels.count(),
                )
            };
            if rate != self.sample_rate || channels != usize::from(self.channels) {
                return Err(AudioError::Decode(format!(
                    "the stream changes from {} Hz, {} channel(s) to {rate} Hz, {channels} \
                     channel(s) after {} frames",
                    self.sample_rate, self.channels, self.frames
                )));
            }
            if frames == 0 {
                // An MP3 frame wholly inside the encoder delay.
                continue;
            }
            self.frames += frames as u64;
            return Ok(Some(Block::Decoded(self.decoder.last_decoded())));
        }
    }

    /// The next packet's whole frames as they are stored. Like the decoder, bytes after the
    /// last whole frame of a packet are dropped.
    fn next_raw(&mut self, raw: Raw) -> Result<Option<Block<'_>>, AudioError> {
        let frame_bytes = usize::from(self.channels)
            * match raw {
                Raw::S16Le => 2,
                Raw::Expanded => 1,
            };
        let frames = loop {
            let Some(packet) = self.next_packet()? else {
                return Ok(None);
            };
            let frames = packet.buf().len() / frame_bytes;
            if frames > 0 {
                self.packet = Some(packet);
                break frames;
            }
        };
        self.frames += frames as u64;
        let bytes = self
            .packet
            .as_ref()
            .map_or(&[][..], |p| &p.buf()[..frames * frame_bytes]);
        Ok(Some(match raw {
            Raw::S16Le => Block::S16Le(bytes),
            Raw::Expanded => Block::Expanded(bytes, &self.table),
        }))
    }

    /// After the last block: the frames decoded, or `Truncated` when the header promised more.
    pub(super) fn finish(&self) -> Result<u64, AudioError> {
        match self.promised {
            Some(promised) if self.frames < promised => Err(AudioError::Truncated {
                promised,
                decoded: self.frames,
            }),
            _ => Ok(self.frames),
        }
    }
}

/// Whether a WAV's packets can be used without the decoder: 16-bit PCM (copied) or G.711
/// (expanded), with frames of exactly one sample per channel.
fn raw_form(params: &CodecParameters, layout: WavLayout, channels: u16) -> Option<Raw> {
    // The decoder's own rule for the width of a coded sample.
    let coded_width = params
        .bits_per_coded_sample
        .unwrap_or_else(|| params.bits_per_sample.unwrap_or(0));
    let (raw, sample_bytes) = match params.codec {
        CODEC_TYPE_PCM_S16LE if coded_width == 16 => (Raw::S16Le, 2),
        CODEC_TYPE_PCM_MULAW | CODEC_TYPE_PCM_ALAW => (Raw::Expanded, 1),
        _ => return None,
    };
    (layout.block_align == Some(channels.checked_mul(sample_bytes)?)).then_some(raw)
}

/// Fills `table` with the sample `decoder` (a G.711 decoder for `channels` channels) gives each
/// of the 256 codes. `false` when the decoder does not give 256 frames back.
fn expansion_table(decoder: &mut dyn Decoder, channels: u16, table: &mut [i16; 256]) -> bool {
    // Frame k holds code k in every channel.
    let codes: Vec<u8> = (0..=255u8)
        .flat_map(|code| std::iter::repeat_n(code, usize::from(channels)))
        .collect();
    let packet = Packet::new_from_boxed_slice(0, 0, 256, codes.into_boxed_slice());
    let ok = match decoder.decode(&packet) {
        Ok(AudioBufferRef::S16(buf)) if buf.frames() == 256 => {
            table.copy_from_slice(&buf.chan(0)[..256]);
            true
        }
        _ => false,
    };
    decoder.reset();
    ok
}

/// Reads the first bytes and decides what the file is.
fn sniff(file: &mut File, file_len: u64) -> Result<Sniffed, AudioError> {
    let head = read_at(file, 0, 16)?;
    if head.is_empty() {
        return Err(AudioError::Unsupported(
            "not a WAV or MP3 file: the file is empty (0 bytes); download the recording again"
                .into(),
        ));
    }
    if head.len() >= 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"WAVE" {
        let layout = walk_wav(file, file_len)?;
        return Ok(Sniffed {
            container: Container::Wav,
            skip: 0,
            wav: Some(layout),
        });
    }
    if head.starts_with(b"ID3") {
        let skip = id3_len(&head)?;
        let after = read_at(file, skip, 4)?;
        if is_mp3_frame(&after) {
            return Ok(Sniffed {
                container: Container::Mp3,
                skip,
                wav: None,
            });
        }
        return Err(AudioError::Unsupported(format!(
            "an ID3 tag followed by {}, not MP3 audio",
            describe_bytes(&after)
        )));
    }
    if is_mp3_frame(&head) {
        return Ok(Sniffed {
            container: Container::Mp3,
            skip: 0,
            wav: None,
        });
    }
    Err(AudioError::Unsupported(not_wav_or_mp3(&head)))
}

/// The message for a file that is neither WAV nor MP3, naming what it looks like.
fn not_wav_or_mp3(head: &[u8]) -> String {
    let first_visible = head.iter().find(|b| !b.is_ascii_whitespace());
    let looks_like = if head.starts_with(b"RIFF") && head.len() >= 12 {
        format!(
            "a RIFF file of form {:?}, not WAVE",
            String::from_utf8_lossy(&head[8..12])
        )
    } else if head.starts_with(b"RF64") || head.starts_with(b"BW64") {
        "a 64-bit WAV (RF64), which callproof does not read".into()
    } else if head.starts_with(b"RIFX") {
        "a big-endian WAV (RIFX), which callproof does not read".into()
    } else if head.starts_with(b"OggS") {
        "an Ogg file (Opus or Vorbis?)".into()
    } else if head.starts_with(b"fLaC") {
        "a FLAC file".into()
    } else if head.starts_with(b"#!AMR") {
        "an AMR file".into()
    } else if head.starts_with(b"FORM") {
        "an AIFF/IFF file".into()
    } else if head.len() >= 8 && &head[4..8] == b"ftyp" {
        "an MP4/M4A file".into()
    } else if head.len() >= 2 && head[0] == 0xff && head[1] & 0xe0 == 0xe0 {
        "MPEG audio that is not layer III (MP1/MP2 or ADTS AAC)".into()
    } else if first_visible == Some(&b'<') {
        "text that looks like HTML or XML (an error page instead of the recording?)".into()
    } else if first_visible == Some(&b'{') {
        "text that looks like JSON (an API error instead of the recording?)".into()
    } else {
        String::new()
    };
    let bytes = describe_bytes(head);
    if looks_like.is_empty() {
        format!("not a WAV or MP3 file ({bytes})")
    } else {
        format!("not a WAV or MP3 file: {looks_like} ({bytes})")
    }
}

/// "starts with bytes 3c 68 74 6d" for up to the first four bytes.
fn describe_bytes(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "nothing".into();
    }
    let hex: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("starts with bytes {}", hex.join(" "))
}

/// Whether `b` starts with a plausible MPEG-1/2/2.5 layer III frame header.
fn is_mp3_frame(b: &[u8]) -> bool {
    if b.len() < 3 || b[0] != 0xff || b[1] & 0xe0 != 0xe0 {
        return false;
    }
    let version = (b[1] >> 3) & 0b11;
    let layer = (b[1] >> 1) & 0b11;
    let bitrate = b[2] >> 4;
    let rate = (b[2] >> 2) & 0b11;
    version != 0b01 && layer == 0b01 && bitrate != 0b1111 && rate != 0b11
}

/// The length of the ID3v2 tag (header, body and footer) at the start of `head`.
fn id3_len(head: &[u8]) -> Result<u64, AudioError> {
    if head.len() < 10 {
        return Err(AudioError::Decode(
            "the file ends inside its ID3 tag header".into(),
        ));
    }
    let size = &head[6..10];
    if size.iter().any(|b| b & 0x80 != 0) {
        return Err(AudioError::Decode(format!(
            "the ID3 tag's size field is malformed ({})",
            describe_bytes(size)
        )));
    }
    let body = size.iter().fold(0u64, |acc, b| (acc << 7) | u64::from(*b));
    let footer = if head[5] & 0x10 != 0 { 10 } else { 0 };
    Ok(10 + body + footer)
}

/// Walks the RIFF chunks up to the data chunk, bounded by the file's length.
fn walk_wav(file: &mut File, file_len: u64) -> Result<WavLayout, AudioError> {
    const MAX_CHUNKS: usize = 1024;
    let mut pos = 12u64;
    let mut format_tag = None;
    let mut block_align = None;
    for _ in 0..MAX_CHUNKS {
        let header = read_at(file, pos, 8)?;
        if header.len() < 8 {
            return Err(AudioError::Decode(format!(
                "the WAV file ends after {file_len} bytes without a data chunk"
            )));
        }
        let id = &header[0..4];
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if id == b"data" {
            return Ok(WavLayout {
                format_tag,
                block_align,
                data_offset: pos + 8,
                data_len: len,
            });
        }
        if id == b"fmt " {
            let fmt = read_at(file, pos + 8, 26)?;
            if fmt.len() >= 2 {
                let tag = u16::from_le_bytes([fmt[0], fmt[1]]);
                format_tag = Some(if tag == 0xfffe && fmt.len() >= 26 {
                    u16::from_le_bytes([fmt[24], fmt[25]])
                } else {
                    tag
                });
            }
            if fmt.len() >= 14 {
                block_align = Some(u16::from_le_bytes([fmt[12], fmt[13]]));
            }
        }
        pos += 8 + u64::from(len) + u64::from(len & 1);
    }
    Err(AudioError::Decode(format!(
        "no data chunk among the first {MAX_CHUNKS} chunks of the WAV file"
    )))
}

/// Up to `len` bytes at `offset` (fewer at the end of the file).
fn read_at(file: &mut File, offset: u64, len: usize) -> Result<Vec<u8>, AudioError> {
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(len);
    file.take(len as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// The name of a WAV format tag, for messages.
fn wav_tag_name(tag: u16) -> String {
    let name = match tag {
        0x0001 => "pcm",
        0x0002 => "adpcm_ms",
        0x0003 => "pcm_f32le",
        0x0006 => "pcm_alaw",
        0x0007 => "pcm_mulaw",
        0x0011 => "adpcm_ima_wav",
        0x0022 => "truespeech",
        0x0031 => "gsm_ms (GSM 6.10)",
        0x0040 => "g721 ADPCM",
        0x0050 => "mp2",
        0x0055 => "mp3 inside WAV",
        0x0064 => "adpcm_g726",
        0x0065 => "g723 ADPCM",
        0x0161 => "wmav2",
        0x1610 => "aac",
        _ => "",
    };
    if name.is_empty() {
        format!("WAV format tag {tag:#06x}")
    } else {
        format!("{name} (WAV format tag {tag:#06x})")
    }
}

/// ffmpeg's name for a symphonia codec, or the WAV format tag when symphonia has none.
fn codec_name(codec: CodecType, wav: Option<&WavLayout>) -> String {
    if let Some(descriptor) = symphonia::default::get_codecs().get_codec(codec) {
        return descriptor.short_name.to_string();
    }
    match wav.and_then(|layout| layout.format_tag) {
        Some(tag) => wav_tag_name(tag),
        None if codec == CODEC_TYPE_NULL => "an unknown codec".into(),
        None => format!("symphonia codec {codec}"),
    }
}

/// Turns symphonia's failure to read a WAV header into one that names the codec.
fn wav_error(error: SymphoniaError, layout: Option<&WavLayout>) -> AudioError {
    match (error, layout.and_then(|l| l.format_tag)) {
        (SymphoniaError::Unsupported(what), Some(tag)) => AudioError::Unsupported(format!(
            "a WAV file coded as {}, which callproof cannot decode \
             (it reads 16-bit PCM, mu-law and A-law WAV, and MP3; symphonia: {what})",
            wav_tag_name(tag)
        )),
        (error, _) => from_symphonia(error, "reading the WAV header"),
    }
}

/// Maps a symphonia error met while `doing` something.
fn from_symphonia(error: SymphoniaError, doing: &str) -> AudioError {
    match error {
        SymphoniaError::IoError(e) if e.kind() == ErrorKind::UnexpectedEof => {
            AudioError::Decode(format!("the file ends early while {doing}"))
        }
        SymphoniaError::IoError(e) => AudioError::Io(e),
        SymphoniaError::DecodeError(what) => {
            AudioError::Decode(format!("corrupt data while {doing}: {what}"))
        }
        SymphoniaError::Unsupported(what) => {
            AudioError::Unsupported(format!("symphonia cannot read this while {doing}: {what}"))
        }
        SymphoniaError::LimitError(what) => {
            AudioError::Decode(format!("a limit was exceeded while {doing}: {what}"))
        }
        SymphoniaError::ResetRequired => AudioError::Decode(format!(
            "the stream changes its parameters mid-file while {doing}"
        )),
        SymphoniaError::SeekError(kind) => {
            AudioError::Decode(format!("seek failed while {doing}: {kind:?}"))
        }
    }
}
