//! Streaming sample-rate conversion with rubato's FFT resampler: fixed chunks in and out,
//! the resampler's delay cut from the start and the tail flushed so no audio moves or is lost.

use rubato::{FftFixedInOut, Resampler};

use super::AudioError;

/// Input frames per resampler chunk (rubato rounds it to suit the ratio).
const CHUNK_FRAMES: usize = 1024;

/// Converts planar `f32` audio from one rate to another, a chunk at a time, handing out
/// interleaved 16-bit frames. Output frame `n` lines up with input time `n / out_rate`, and the
/// total output is `round(frames_in * out_rate / in_rate)` frames.
pub(super) struct StreamResampler {
    inner: FftFixedInOut<f32>,
    in_rate: u64,
    out_rate: u64,
    /// One buffer per channel, filled up to `filled` frames towards a whole chunk.
    pending: Vec<Vec<f32>>,
    filled: usize,
    output: Vec<Vec<f32>>,
    interleaved: Vec<i16>,
    /// Output frames still to drop: the resampler's delay.
    skip: usize,
    frames_in: u64,
    frames_out: u64,
}

impl StreamResampler {
    /// A resampler for `channels` channels from `in_rate` to `out_rate` Hz.
    pub(super) fn new(in_rate: u32, out_rate: u32, channels: u16) -> Result<Self, AudioError> {
        let channels = usize::from(channels);
        let inner =
            FftFixedInOut::<f32>::new(in_rate as usize, out_rate as usize, CHUNK_FRAMES, channels)
                .map_err(|e| {
                    AudioError::Unsupported(format!(
                        "cannot resample from {in_rate} Hz to {out_rate} Hz: {e}"
                    ))
                })?;
        let chunk_in = inner.input_frames_max();
        let output = inner.output_buffer_allocate(true);
        let skip = inner.output_delay();
        Ok(StreamResampler {
            inner,
            in_rate: u64::from(in_rate),
            out_rate: u64::from(out_rate),
            pending: vec![vec![0.0; chunk_in]; channels],
            filled: 0,
            output,
            interleaved: Vec::new(),
            skip,
            frames_in: 0,
            frames_out: 0,
        })
    }

    /// Feeds `frames` frames, one slice per channel, and hands every completed output block to
    /// `emit` as interleaved samples.
    pub(super) fn push(
        &mut self,
        planes: &[&[f32]],
        frames: usize,
        emit: &mut dyn FnMut(&[i16]) -> Result<(), AudioError>,
    ) -> Result<(), AudioError> {
        let chunk_in = self.pending.first().map_or(0, Vec::len);
        let mut start = 0;
        while start < frames {
            let take = (chunk_in - self.filled).min(frames - start);
            for (pending, plane) in self.pending.iter_mut().zip(planes) {
                pending[self.filled..self.filled + take]
                    .copy_from_slice(&plane[start..start + take]);
            }
            self.filled += take;
            start += take;
            self.frames_in += take as u64;
            if self.filled == chunk_in {
                self.process(u64::MAX, emit)?;
            }
        }
        Ok(())
    }

    /// Flushes the tail: pads with silence until every output frame owed for the input has been
    /// handed to `emit`. Returns the output frames in total.
    pub(super) fn finish(
        &mut self,
        emit: &mut dyn FnMut(&[i16]) -> Result<(), AudioError>,
    ) -> Result<u64, AudioError> {
        let owed = (self.frames_in * self.out_rate + self.in_rate / 2) / self.in_rate;
        while self.frames_out < owed {
            for pending in &mut self.pending {
                pending[self.filled..].fill(0.0);
            }
            self.process(owed, emit)?;
        }
        Ok(self.frames_out)
    }

    /// Resamples the pending chunk and emits its output, after the delay and up to `limit`
    /// output frames in all.
    fn process(
        &mut self,
        limit: u64,
        emit: &mut dyn FnMut(&[i16]) -> Result<(), AudioError>,
    ) -> Result<(), AudioError> {
        let (_, produced) = self
            .inner
            .process_into_buffer(&self.pending, &mut self.output, None)
            .map_err(|e| AudioError::Decode(format!("the resampler failed: {e}")))?;
        self.filled = 0;
        let dropped = self.skip.min(produced);
        self.skip -= dropped;
        let room = usize::try_from(limit - self.frames_out).unwrap_or(usize::MAX);
        let count = (produced - dropped).min(room);
        if count == 0 {
            return Ok(());
        }
        self.interleaved.clear();
        for frame in dropped..dropped + count {
            for channel in &self.output {
                self.interleaved.push(to_i16(channel[frame]));
            }
        }
        self.frames_out += count as u64;
        emit(&self.interleaved)
    }
}

/// A float sample in [-1, 1) as 16-bit PCM: rounded half away from zero and clipped (NaN is
/// 0). The same values as `(sample * 32768.0).round()` clamped to the 16-bit range, but without
/// a call to `round` or a branch per sample, so that loops over it vectorise.
#[inline]
pub(super) fn to_i16(sample: f32) -> i16 {
    let scaled = sample * 32768.0;
    // Rounding commutes with clamping to whole bounds. NaN stays NaN through `clamp`, and
    // truncates to 0 below with a NaN fraction that rounds neither way.
    let clamped = scaled.clamp(-32768.0, 32767.0);
    // |clamped| <= 32768: the truncation is exact, and so is the fraction left over.
    let whole = clamped as i32;
    let fraction = clamped - whole as f32;
    let up = i32::from(fraction >= 0.5);
    let down = i32::from(fraction <= -0.5);
    // Within -32768..=32767 by the clamp, so neither the sums nor the cast wrap.
    whole.wrapping_add(up).wrapping_sub(down) as i16
}
