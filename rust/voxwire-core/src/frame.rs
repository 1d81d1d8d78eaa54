//! Fixed-size framing of a PCM16 stream that arrives in chunks of any size.

use crate::error::{Error, Result};

/// Cuts a PCM16 stream into frames of exactly `frame_samples` samples.
///
/// Input may come as samples or as little-endian bytes, in chunks of any size, including an
/// odd number of bytes (the half sample waits for the next chunk). The frames reproduce the
/// input exactly, whatever the chunking. State is one partial frame (allocated once, at
/// construction) and at most one pending byte: no allocation per push.
#[derive(Debug, Clone)]
pub struct Framer {
    frame: usize,
    partial: Vec<i16>,
    odd: Option<u8>,
}

impl Framer {
    /// A framer for frames of `frame_samples` samples (1 to
    /// [`crate::limits::MAX_FRAME_SAMPLES`]).
    pub fn new(frame_samples: usize) -> Result<Self> {
        let max = crate::limits::MAX_FRAME_SAMPLES;
        if frame_samples == 0 || frame_samples > max {
            return Err(Error::InvalidArgument(format!(
                "frame_samples must be between 1 and {max}, got {frame_samples}"
            )));
        }
        Ok(Self {
            frame: frame_samples,
            partial: Vec::with_capacity(frame_samples),
            odd: None,
        })
    }

    /// Samples per frame.
    pub fn frame_samples(&self) -> usize {
        self.frame
    }

    /// Whole samples waiting for the next frame.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }

    /// Whether half a sample (one byte) waits for the next byte chunk.
    pub fn has_pending_byte(&self) -> bool {
        self.odd.is_some()
    }

    /// How many complete frames a push of `n_bytes` bytes yields.
    pub fn frames_for_bytes(&self, n_bytes: usize) -> usize {
        let bytes = n_bytes + usize::from(self.odd.is_some());
        (self.partial.len() + bytes / 2) / self.frame
    }

    /// How many complete frames a push of `n_samples` samples yields.
    pub fn frames_for_samples(&self, n_samples: usize) -> usize {
        (self.partial.len() + n_samples) / self.frame
    }

    /// Pushes samples; writes the complete frames to `out` (row after row) and returns how
    /// many frames it wrote. `out` must hold `frames_for_samples(x.len()) * frame_samples`.
    pub fn push_samples(&mut self, x: &[i16], out: &mut [i16]) -> Result<usize> {
        if self.odd.is_some() && !x.is_empty() {
            return Err(Error::InvalidArgument(
                "one byte of a half sample is pending from a bytes push: push bytes to \
                 complete it, or reset()"
                    .into(),
            ));
        }
        self.check_out(self.frames_for_samples(x.len()), out)?;
        Ok(self.push_inner(x.len(), out, |start, dst| {
            dst.copy_from_slice(&x[start..start + dst.len()]);
        }))
    }

    /// Pushes little-endian PCM16 bytes of any length; like [`Framer::push_samples`].
    pub fn push_bytes(&mut self, x: &[u8], out: &mut [i16]) -> Result<usize> {
        self.check_out(self.frames_for_bytes(x.len()), out)?;
        let mut bytes = x;
        let mut frames = 0;
        if let (Some(lo), Some((&hi, rest))) = (self.odd, bytes.split_first()) {
            let s = [i16::from_le_bytes([lo, hi])];
            self.odd = None;
            frames = self.push_inner(1, out, |_, dst| dst.copy_from_slice(&s));
            bytes = rest;
        }
        let whole = bytes.len() / 2;
        frames += self.push_inner(whole, &mut out[frames * self.frame..], |start, dst| {
            crate::pcm::le_bytes_to_i16(&bytes[2 * start..2 * (start + dst.len())], dst);
        });
        if bytes.len() % 2 == 1 {
            self.odd = Some(bytes[bytes.len() - 1]);
        }
        Ok(frames)
    }

    /// Writes what is pending to `out` and empties the framer; returns the samples written:
    /// `frame_samples` if `pad` (the tail zero-padded) and something was pending, else the
    /// pending count. A pending half sample is an error, and then nothing changes.
    pub fn flush(&mut self, pad: bool, out: &mut [i16]) -> Result<usize> {
        if self.odd.is_some() {
            return Err(Error::OddLength {
                len: 2 * self.partial.len() + 1,
            });
        }
        let n = self.partial.len();
        let total = if pad && n > 0 { self.frame } else { n };
        if out.len() < total {
            return Err(Error::InvalidArgument(format!(
                "output holds {} samples, flush needs {total}",
                out.len()
            )));
        }
        out[..n].copy_from_slice(&self.partial);
        out[n..total].fill(0);
        self.partial.clear();
        Ok(total)
    }

    /// Drops everything pending, including a pending byte.
    pub fn reset(&mut self) {
        self.partial.clear();
        self.odd = None;
    }

    fn check_out(&self, frames: usize, out: &[i16]) -> Result<()> {
        if out.len() < frames * self.frame {
            return Err(Error::InvalidArgument(format!(
                "output holds {} samples, the push yields {}",
                out.len(),
                frames * self.frame
            )));
        }
        Ok(())
    }

    /// Core of both pushes: `copy(start, dst)` fills `dst` with source samples from `start`.
    fn push_inner(&mut self, n: usize, out: &mut [i16], copy: impl Fn(usize, &mut [i16])) -> usize {
        let f = self.frame;
        let mut pos = 0;
        let mut frames = 0;
        if !self.partial.is_empty() {
            let have = self.partial.len();
            let take = (f - have).min(n);
            self.partial.resize(have + take, 0);
            copy(0, &mut self.partial[have..]);
            pos = take;
            if self.partial.len() == f {
                out[..f].copy_from_slice(&self.partial);
                self.partial.clear();
                frames = 1;
            }
        }
        while n - pos >= f {
            copy(pos, &mut out[frames * f..(frames + 1) * f]);
            pos += f;
            frames += 1;
        }
        if pos < n {
            self.partial.resize(n - pos, 0);
            copy(pos, &mut self.partial);
        }
        frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of(x: &[i16]) -> Vec<u8> {
        x.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    /// Pushes `data` in chunks of the given sizes (cycled) and returns all frames plus tail.
    fn run_bytes(frame: usize, data: &[u8], sizes: &[usize]) -> Vec<i16> {
        let mut fr = Framer::new(frame).unwrap();
        let mut all = Vec::new();
        let mut pos = 0;
        let mut k = 0;
        while pos < data.len() {
            let n = sizes[k % sizes.len()].min(data.len() - pos);
            k += 1;
            let mut out = vec![0i16; fr.frames_for_bytes(n) * frame];
            let got = fr.push_bytes(&data[pos..pos + n], &mut out).unwrap();
            assert_eq!(got * frame, out.len());
            all.extend_from_slice(&out);
            pos += n;
        }
        let mut tail = vec![0i16; frame];
        let n = fr.flush(false, &mut tail).unwrap();
        all.extend_from_slice(&tail[..n]);
        all
    }

    #[test]
    fn any_chunking_reproduces_the_input() {
        let x: Vec<i16> = (0..1000).map(|i| (i * 37 - 15000) as i16).collect();
        let b = bytes_of(&x);
        for sizes in [&[1usize][..], &[3], &[7, 1, 2], &[320], &[641, 5], &[2000]] {
            assert_eq!(run_bytes(160, &b, sizes), x, "sizes {sizes:?}");
        }
    }

    #[test]
    fn samples_and_flush_padding() {
        let mut fr = Framer::new(4).unwrap();
        let mut out = vec![0i16; 8];
        assert_eq!(fr.push_samples(&[1, 2, 3, 4, 5, 6], &mut out).unwrap(), 1);
        assert_eq!(&out[..4], &[1, 2, 3, 4]);
        assert_eq!(fr.pending(), 2);
        let mut tail = [9i16; 4];
        assert_eq!(fr.flush(true, &mut tail).unwrap(), 4);
        assert_eq!(tail, [5, 6, 0, 0]);
        assert_eq!(fr.flush(true, &mut tail).unwrap(), 0);
    }

    #[test]
    fn half_sample_rules() {
        let mut fr = Framer::new(2).unwrap();
        let mut out = vec![0i16; 2];
        assert_eq!(fr.push_bytes(&[1, 0, 2], &mut out).unwrap(), 0);
        assert!(fr.has_pending_byte());
        assert!(fr.push_samples(&[1], &mut out).is_err());
        assert_eq!(fr.push_samples(&[], &mut out), Ok(0));
        assert_eq!(fr.flush(false, &mut out), Err(Error::OddLength { len: 3 }));
        assert_eq!(fr.push_bytes(&[0], &mut out).unwrap(), 1);
        assert_eq!(out, [1, 2]);
        assert!(Framer::new(0).is_err());
        let mut small = [0i16; 1];
        assert!(fr.push_samples(&[1, 2], &mut small).is_err());
    }
}
