//! Silence over the paused spans of a simulated recording, as the provider's
//! `PauseBehavior=silence` leaves them: same length, every later offset true.

use bytes::Bytes;

use super::provider_api::PausedSpan;

/// `wav` with every sample inside `spans` set to zero. Without spans the
/// bytes are returned as they are; only WAV recordings can be silenced.
pub fn silence(wav: Bytes, spans: &[PausedSpan]) -> Result<Bytes, String> {
    if spans.is_empty() {
        return Ok(wav);
    }
    let mut reader = hound::WavReader::new(std::io::Cursor::new(&wav[..]))
        .map_err(|e| format!("only a WAV recording can have paused spans: {e}"))?;
    let spec = reader.spec();
    let rate = f64::from(spec.sample_rate);
    let channels = usize::from(spec.channels.max(1));
    let frame_of = |d: std::time::Duration| (d.as_secs_f64() * rate).round() as usize;
    let silent = |i: usize| {
        let frame = i / channels;
        spans
            .iter()
            .any(|s| frame >= frame_of(s.from) && frame < frame_of(s.to))
    };
    let mut out = std::io::Cursor::new(Vec::with_capacity(wav.len()));
    {
        let mut writer = hound::WavWriter::new(&mut out, spec).map_err(|e| e.to_string())?;
        match spec.sample_format {
            hound::SampleFormat::Int => {
                for (i, s) in reader.samples::<i32>().enumerate() {
                    let s = s.map_err(|e| e.to_string())?;
                    writer
                        .write_sample(if silent(i) { 0 } else { s })
                        .map_err(|e| e.to_string())?;
                }
            }
            hound::SampleFormat::Float => {
                for (i, s) in reader.samples::<f32>().enumerate() {
                    let s = s.map_err(|e| e.to_string())?;
                    writer
                        .write_sample(if silent(i) { 0.0 } else { s })
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        writer.finalize().map_err(|e| e.to_string())?;
    }
    Ok(Bytes::from(out.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn paused_spans_are_silent_and_the_length_is_kept() {
        let wav = super::super::sample_recording(3);
        let spans = [PausedSpan {
            from: Duration::from_millis(1000),
            to: Duration::from_millis(1500),
        }];
        let out = silence(wav.clone(), &spans).unwrap();
        let samples = |b: &Bytes| {
            hound::WavReader::new(std::io::Cursor::new(&b[..]))
                .unwrap()
                .samples::<i16>()
                .map(|s| s.unwrap())
                .collect::<Vec<_>>()
        };
        let (before, after) = (samples(&wav), samples(&out));
        assert_eq!(before.len(), after.len());
        assert!(after[8000..12000].iter().all(|s| *s == 0));
        assert!(before[8000..12000].iter().any(|s| *s != 0));
        assert_eq!(before[..8000], after[..8000]);
        assert_eq!(before[12000..], after[12000..]);
        assert!(silence(Bytes::from_static(b"ID3 not a wav"), &spans).is_err());
        assert_eq!(silence(wav.clone(), &[]).unwrap(), wav);
    }
}
