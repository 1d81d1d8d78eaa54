//! Interleaved multi-channel resampling (stereo): one [`Resampler`] per channel, over one
//! shared design. Each channel's output is exactly what the mono resampler gives for that
//! channel alone, so everything said of mono (alignment, length, streaming equal to one-shot)
//! holds per channel.

use super::{check_room, conv_f32, emit_f32, Design, Quality, Resampler};
use crate::error::{Error, Result};

/// A streaming resampler for `channels` interleaved channels.
#[derive(Debug, Clone)]
pub struct MultiResampler {
    chans: Vec<Resampler>,
    /// Interleaved input as f32, one channel's input, one channel's output, interleaved
    /// output (each grows to the largest call).
    inter: Vec<f32>,
    one_in: Vec<f32>,
    one_out: Vec<f32>,
    inter_out: Vec<f32>,
}

impl MultiResampler {
    /// A stream of `channels` (1 to 8) interleaved channels.
    pub fn new(in_rate: u32, out_rate: u32, quality: Quality, channels: usize) -> Result<Self> {
        if !(1..=8).contains(&channels) {
            return Err(Error::InvalidArgument(format!(
                "channels must be 1 to 8, got {channels}"
            )));
        }
        let d = Design::shared(in_rate, out_rate, quality)?;
        Ok(Self {
            chans: (0..channels)
                .map(|_| Resampler::with_design(d.clone()))
                .collect(),
            inter: Vec::new(),
            one_in: Vec::new(),
            one_out: Vec::new(),
            inter_out: Vec::new(),
        })
    }

    /// Channels.
    pub fn channels(&self) -> usize {
        self.chans.len()
    }

    /// The filter design (shared by the channels).
    pub fn design(&self) -> &Design {
        self.chans[0].design()
    }

    fn frames(&self, n: usize) -> Result<usize> {
        let c = self.chans.len();
        if !n.is_multiple_of(c) {
            return Err(Error::InvalidArgument(format!(
                "{n} samples are not whole frames of {c} interleaved channels"
            )));
        }
        Ok(n / c)
    }

    /// Interleaved samples the next push of `n` interleaved samples yields (`n` must be whole
    /// frames).
    pub fn pending_outputs(&self, n: usize) -> Result<usize> {
        Ok(self.chans[0].pending_outputs(self.frames(n)?) * self.chans.len())
    }

    /// Interleaved samples `flush` yields.
    pub fn flush_outputs(&self) -> usize {
        self.chans[0].flush_outputs() * self.chans.len()
    }

    /// Pushes interleaved samples (whole frames) and writes the interleaved output they
    /// complete to `out`, which must hold `pending_outputs(x.len())`; returns how many.
    pub fn process_with<T, U>(
        &mut self,
        x: &[T],
        conv: impl Fn(&[T], &mut [f32]),
        out: &mut [U],
        emit: impl Fn(&[f32], &mut [U]),
    ) -> Result<usize> {
        let frames = self.frames(x.len())?;
        let want = self.pending_outputs(x.len())?;
        check_room(out.len(), want, "push")?;
        let c = self.chans.len();
        self.inter.resize(x.len(), 0.0);
        conv(x, &mut self.inter);
        self.inter_out.resize(want, 0.0);
        let per = want / c;
        self.one_in.resize(frames, 0.0);
        self.one_out.resize(per, 0.0);
        for (ch, r) in self.chans.iter_mut().enumerate() {
            for (d, s) in self
                .one_in
                .iter_mut()
                .zip(self.inter.iter().skip(ch).step_by(c))
            {
                *d = *s;
            }
            r.process_with(&self.one_in, conv_f32, &mut self.one_out, emit_f32)?;
            scatter(&self.one_out, &mut self.inter_out, ch, c);
        }
        emit(&self.inter_out, &mut out[..want]);
        Ok(want)
    }

    /// Ends the stream (every channel) and writes the interleaved tail to `out`, which must
    /// hold `flush_outputs()`; returns how many.
    pub fn flush_with<U>(
        &mut self,
        out: &mut [U],
        emit: impl Fn(&[f32], &mut [U]),
    ) -> Result<usize> {
        let want = self.flush_outputs();
        check_room(out.len(), want, "flush")?;
        let c = self.chans.len();
        let per = want / c;
        self.inter_out.resize(want, 0.0);
        self.one_out.resize(per, 0.0);
        for (ch, r) in self.chans.iter_mut().enumerate() {
            r.flush_with(&mut self.one_out, emit_f32)?;
            scatter(&self.one_out, &mut self.inter_out, ch, c);
        }
        emit(&self.inter_out, &mut out[..want]);
        Ok(want)
    }

    /// Forgets the stream.
    pub fn reset(&mut self) {
        for r in &mut self.chans {
            r.reset();
        }
    }
}

/// Writes one channel's samples into its slots of an interleaved buffer.
fn scatter(one: &[f32], inter: &mut [f32], ch: usize, channels: usize) {
    for (d, s) in inter.iter_mut().skip(ch).step_by(channels).zip(one) {
        *d = *s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resample::{conv_i16, emit_i16};

    #[test]
    fn each_channel_equals_mono_and_chunking_does_not_matter() {
        let n = 4001;
        let l: Vec<i16> = (0..n)
            .map(|i| ((i * 7919) % 20000) as i16 - 10000)
            .collect();
        let r: Vec<i16> = (0..n)
            .map(|i| ((i * 104729) % 30000) as i16 - 15000)
            .collect();
        let inter: Vec<i16> = l.iter().zip(&r).flat_map(|(&a, &b)| [a, b]).collect();
        let mono = |x: &[i16]| {
            let mut m = Resampler::new(24000, 16000, Quality::High).unwrap();
            let mut o = vec![0i16; m.pending_outputs(x.len())];
            m.process_with(x, conv_i16, &mut o, emit_i16).unwrap();
            let mut t = vec![0i16; m.flush_outputs()];
            m.flush_with(&mut t, emit_i16).unwrap();
            o.extend(t);
            o
        };
        let (ml, mr) = (mono(&l), mono(&r));
        for chunk in [2usize, 38, 960, 8002] {
            let mut s = MultiResampler::new(24000, 16000, Quality::High, 2).unwrap();
            let mut got = Vec::new();
            for c in inter.chunks(chunk) {
                let mut o = vec![0i16; s.pending_outputs(c.len()).unwrap()];
                s.process_with(c, conv_i16, &mut o, emit_i16).unwrap();
                got.extend(o);
            }
            let mut t = vec![0i16; s.flush_outputs()];
            s.flush_with(&mut t, emit_i16).unwrap();
            got.extend(t);
            let gl: Vec<i16> = got.iter().step_by(2).copied().collect();
            let gr: Vec<i16> = got.iter().skip(1).step_by(2).copied().collect();
            assert_eq!((gl, gr), (ml.clone(), mr.clone()), "chunk {chunk}");
        }
    }

    #[test]
    fn partial_frames_and_bad_channel_counts_are_refused() {
        let mut s = MultiResampler::new(16000, 8000, Quality::High, 2).unwrap();
        let mut o = [0i16; 8];
        assert!(s
            .process_with(&[1i16, 2, 3], conv_i16, &mut o, emit_i16)
            .is_err());
        assert!(MultiResampler::new(16000, 8000, Quality::High, 0).is_err());
        assert!(MultiResampler::new(16000, 8000, Quality::High, 9).is_err());
    }
}
