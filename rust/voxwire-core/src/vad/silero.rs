//! The Silero VAD network, run natively (no ONNX runtime).
//!
//! The model is the one the `silero-vad` package ships as `silero_vad.onnx` (MIT licence,
//! Silero Team; see THIRD_PARTY_NOTICES), with a 16 kHz and an 8 kHz branch of the same
//! shape. Per window of 512 samples at 16 kHz (256 at 8 kHz), preceded by the last 64 (32)
//! samples of the previous window as context:
//!
//! 1. reflect-pad 64 (32) samples on the right, and take the magnitude of a short-time
//!    Fourier transform: 4 frames of 256 (128) samples, hop 128 (64), periodic Hann window,
//!    129 (65) bins. The model computes it as a convolution with a windowed DFT basis; here
//!    an FFT computes the same sums (two real frames per complex transform);
//! 2. four 1-D convolutions (kernel 3, padding 1, strides 1, 2, 2, 1) with ReLU:
//!    129 (65) -> 128 -> 64 -> 64 -> 128 channels, 4 -> 4 -> 2 -> 1 -> 1 positions;
//! 3. one LSTM cell of 128 units, whose state carries across windows;
//! 4. ReLU, a 128 -> 1 projection and a sigmoid: the speech probability.
//!
//! The weights (`silero_weights.bin`, extracted from the ONNX graph by
//! `scripts/silero_weights.py`) are compiled in, parsed once and shared by every detector.
//! The matrix products run over output tiles of 16 channels, accumulated in registers with
//! fused multiply-adds; with AVX2 or AVX-512 the same code is compiled for those units and
//! chosen at run time. Nothing is allocated per window.

use crate::error::{Error, Result};
use crate::resample::{self, Quality, Resampler};
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use std::sync::{Arc, OnceLock};

/// The weights file (see `scripts/silero_weights.py` for its format).
static WEIGHTS: &[u8] = include_bytes!("silero_weights.bin");

/// Output channels per tile of the matrix products.
const TILE: usize = 16;
/// LSTM units.
const HIDDEN: usize = 128;
/// STFT frames per window.
const FRAMES: usize = 4;
/// Probability at or above which a window starts speech, and under which speech ends
/// (Silero's `VADIterator` / `get_speech_timestamps` defaults: threshold, threshold - 0.15).
const START_THRESHOLD: f32 = 0.5;
const END_THRESHOLD: f32 = 0.35;

/// A 1-D convolution (kernel 3, padding 1) with its weights tiled for the kernel:
/// `w[((tile * c_in + c) * 3 + k) * TILE + j]` is output channel `tile * TILE + j`'s weight
/// for input channel `c` at tap `k`.
#[derive(Debug)]
struct Conv {
    c_in: usize,
    c_out: usize,
    w: Vec<f32>,
    b: Vec<f32>,
}

impl Conv {
    fn new(w: &[f32], b: &[f32], c_out: usize, c_in: usize) -> Self {
        debug_assert_eq!(c_out % TILE, 0);
        let mut t = vec![0.0; c_out * c_in * 3];
        for o in 0..c_out {
            for c in 0..c_in {
                for k in 0..3 {
                    t[(((o / TILE) * c_in + c) * 3 + k) * TILE + o % TILE] = w[(o * c_in + c) * 3 + k];
                }
            }
        }
        Self {
            c_in,
            c_out,
            w: t,
            b: b.to_vec(),
        }
    }

    /// `y[p * c_out + o] = relu(b[o] + sum_{c,k} w[o][c][k] x[(p * S + k - 1) * c_in + c])`
    /// for the `P` output positions of an input of `L` positions (outside it: zero).
    #[inline(always)]
    fn run<const L: usize, const P: usize, const S: usize>(&self, x: &[f32], y: &mut [f32]) {
        let (c_in, c_out) = (self.c_in, self.c_out);
        let x = &x[..L * c_in];
        let y = &mut y[..P * c_out];
        for (tile, (wt, bt)) in self
            .w
            .chunks_exact(c_in * 3 * TILE)
            .zip(self.b.chunks_exact(TILE))
            .enumerate()
        {
            let mut acc = [[0.0f32; TILE]; P];
            for a in acc.iter_mut() {
                a.copy_from_slice(bt);
            }
            for (c, wc) in wt.chunks_exact(3 * TILE).enumerate() {
                for k in 0..3 {
                    let w: &[f32; TILE] = wc[k * TILE..(k + 1) * TILE].try_into().unwrap();
                    for (p, a) in acc.iter_mut().enumerate() {
                        // Input position p * S + k - 1, when inside the input.
                        let q = p * S + k;
                        if q == 0 || q > L {
                            continue;
                        }
                        let v = x[(q - 1) * c_in + c];
                        for j in 0..TILE {
                            a[j] = w[j].mul_add(v, a[j]);
                        }
                    }
                }
            }
            for (p, a) in acc.iter().enumerate() {
                let out = &mut y[p * c_out + tile * TILE..][..TILE];
                for j in 0..TILE {
                    out[j] = a[j].max(0.0);
                }
            }
        }
    }
}

/// One branch of the model (16 or 8 kHz).
struct Branch {
    /// Samples per window, context samples before it, FFT length and hop.
    window: usize,
    context: usize,
    n_fft: usize,
    hop: usize,
    /// Periodic Hann window of `n_fft` points.
    hann: Vec<f32>,
    fft: Arc<dyn Fft<f32>>,
    conv: [Conv; 4],
    /// The LSTM's input and hidden weights side by side, tiled:
    /// `lstm_w[(tile * 2H + i) * TILE + j]` is gate row `tile * TILE + j`'s weight for input
    /// `i` of `[x; h]`. Gate rows are PyTorch's: input, forget, cell, output.
    lstm_w: Vec<f32>,
    /// `bias_ih + bias_hh`.
    lstm_b: Vec<f32>,
    out_w: Vec<f32>,
    out_b: f32,
}

impl std::fmt::Debug for Branch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Branch")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

/// The parsed weights file: name -> (shape, data).
struct Tensors(Vec<(String, Vec<usize>, Vec<f32>)>);

impl Tensors {
    fn parse(b: &[u8]) -> Result<Self> {
        let bad = |what: &str| Error::InvalidArgument(format!("silero weights: {what}"));
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<&[u8]> {
            let s = b.get(at..at + n).ok_or_else(|| bad("truncated"))?;
            at += n;
            Ok(s)
        };
        if take(8)? != b"VXSILERO" {
            return Err(bad("bad magic"));
        }
        let u32_of = |s: &[u8]| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize;
        if u32_of(take(4)?) != 1 {
            return Err(bad("unknown format version"));
        }
        let count = u32_of(take(4)?);
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let n = take(1)?[0] as usize;
            let name = String::from_utf8(take(n)?.to_vec()).map_err(|_| bad("bad name"))?;
            let rank = take(1)?[0] as usize;
            let shape: Vec<usize> = (0..rank)
                .map(|_| take(4).map(u32_of))
                .collect::<Result<_>>()?;
            let len: usize = shape.iter().product();
            let data = take(len * 4)?
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            out.push((name, shape, data));
        }
        Ok(Self(out))
    }

    fn get(&self, name: &str, shape: &[usize]) -> Result<&[f32]> {
        let (_, s, d) = self
            .0
            .iter()
            .find(|(n, _, _)| n == name)
            .ok_or_else(|| Error::InvalidArgument(format!("silero weights: no {name}")))?;
        if s != shape {
            return Err(Error::InvalidArgument(format!(
                "silero weights: {name} has shape {s:?}, expected {shape:?}"
            )));
        }
        Ok(d)
    }
}

impl Branch {
    fn new(t: &Tensors, rate: u32) -> Result<Self> {
        let (window, n_fft) = if rate == 16000 { (512, 256) } else { (256, 128) };
        let p = if rate == 16000 { "16k" } else { "8k" };
        let bins = n_fft / 2 + 1;
        let conv = |i: usize, c_out: usize, c_in: usize| -> Result<Conv> {
            Ok(Conv::new(
                t.get(&format!("{p}.conv{i}.weight"), &[c_out, c_in, 3])?,
                t.get(&format!("{p}.conv{i}.bias"), &[c_out])?,
                c_out,
                c_in,
            ))
        };
        let w_ih = t.get(&format!("{p}.lstm.weight_ih"), &[4 * HIDDEN, HIDDEN])?;
        let w_hh = t.get(&format!("{p}.lstm.weight_hh"), &[4 * HIDDEN, HIDDEN])?;
        let b_ih = t.get(&format!("{p}.lstm.bias_ih"), &[4 * HIDDEN])?;
        let b_hh = t.get(&format!("{p}.lstm.bias_hh"), &[4 * HIDDEN])?;
        let mut lstm_w = vec![0.0; 4 * HIDDEN * 2 * HIDDEN];
        for r in 0..4 * HIDDEN {
            for i in 0..2 * HIDDEN {
                let v = if i < HIDDEN {
                    w_ih[r * HIDDEN + i]
                } else {
                    w_hh[r * HIDDEN + i - HIDDEN]
                };
                lstm_w[((r / TILE) * 2 * HIDDEN + i) * TILE + r % TILE] = v;
            }
        }
        let hann = (0..n_fft)
            .map(|n| {
                (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / n_fft as f64).cos()) as f32
            })
            .collect();
        Ok(Self {
            window,
            context: window / 8,
            n_fft,
            hop: n_fft / 2,
            hann,
            fft: FftPlanner::<f32>::new().plan_fft_forward(n_fft),
            conv: [
                conv(1, 128, bins)?,
                conv(2, 64, 128)?,
                conv(3, 64, 64)?,
                conv(4, 128, 64)?,
            ],
            lstm_w,
            lstm_b: b_ih.iter().zip(b_hh).map(|(a, b)| a + b).collect(),
            out_w: t.get(&format!("{p}.out.weight"), &[1, HIDDEN, 1])?.to_vec(),
            out_b: t.get(&format!("{p}.out.bias"), &[1])?[0],
        })
    }

    fn bins(&self) -> usize {
        self.n_fft / 2 + 1
    }
}

/// The two branches, parsed on first use.
fn branches() -> Result<&'static (Branch, Branch)> {
    static B: OnceLock<std::result::Result<(Branch, Branch), String>> = OnceLock::new();
    B.get_or_init(|| {
        let t = Tensors::parse(WEIGHTS).map_err(|e| e.to_string())?;
        Ok((
            Branch::new(&t, 16000).map_err(|e| e.to_string())?,
            Branch::new(&t, 8000).map_err(|e| e.to_string())?,
        ))
    })
    .as_ref()
    .map_err(|e| Error::InvalidArgument(e.clone()))
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The network's state and working memory for one stream at 8 or 16 kHz.
#[derive(Debug, Clone)]
pub struct SileroModel {
    branch: &'static Branch,
    /// Context and window samples (scaled to [-1, 1)), then the reflect padding.
    x: Vec<f32>,
    /// Samples of the current window received so far.
    fill: usize,
    /// LSTM hidden and cell state.
    h: Vec<f32>,
    c: Vec<f32>,
    /// FFT buffer (two frames per transform) and scratch.
    spec: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    /// Layer activations, position-major: `a0` magnitudes (4 x bins), `a1` 4 x 128,
    /// `a2` 2 x 64, `a3` 64, and `xh` = [conv4 output; h] (the LSTM's input), `gates`.
    a0: Vec<f32>,
    a1: Vec<f32>,
    a2: Vec<f32>,
    a3: Vec<f32>,
    xh: Vec<f32>,
    gates: Vec<f32>,
}

impl SileroModel {
    /// A model for `rate`, 8000 or 16000 Hz.
    pub fn new(rate: u32) -> Result<Self> {
        let b = branches()?;
        let branch = match rate {
            16000 => &b.0,
            8000 => &b.1,
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "the Silero network runs at 8000 or 16000 Hz, not {rate}"
                )))
            }
        };
        let zero = Complex::new(0.0, 0.0);
        Ok(Self {
            branch,
            x: vec![0.0; branch.context + branch.window + branch.context],
            fill: 0,
            h: vec![0.0; HIDDEN],
            c: vec![0.0; HIDDEN],
            spec: vec![zero; 2 * branch.n_fft],
            scratch: vec![zero; branch.fft.get_inplace_scratch_len()],
            a0: vec![0.0; FRAMES * branch.bins()],
            a1: vec![0.0; FRAMES * 128],
            a2: vec![0.0; 2 * 64],
            a3: vec![0.0; 64],
            xh: vec![0.0; 2 * HIDDEN],
            gates: vec![0.0; 4 * HIDDEN],
        })
    }

    /// Samples per window (512 at 16 kHz, 256 at 8 kHz).
    pub fn window(&self) -> usize {
        self.branch.window
    }

    /// Context samples before each window (64 at 16 kHz, 32 at 8 kHz).
    pub fn context(&self) -> usize {
        self.branch.context
    }

    /// Forgets the stream: zero state and context, no partial window.
    pub fn reset(&mut self) {
        self.x.fill(0.0);
        self.fill = 0;
        self.h.fill(0.0);
        self.c.fill(0.0);
    }

    /// Pushes samples (already scaled to [-1, 1)) of any count; calls `each` with the
    /// probability of every window they complete, in order.
    pub fn push(&mut self, mut s: &[f32], mut each: impl FnMut(f32)) {
        let (ctx, win) = (self.branch.context, self.branch.window);
        while !s.is_empty() {
            let take = (win - self.fill).min(s.len());
            self.x[ctx + self.fill..ctx + self.fill + take].copy_from_slice(&s[..take]);
            self.fill += take;
            s = &s[take..];
            if self.fill == win {
                each(self.forward());
                // The window's last samples are the next window's context.
                self.x.copy_within(win..win + ctx, 0);
                self.fill = 0;
            }
        }
    }

    /// Pushes int16 samples of any count; see [`Self::push`].
    pub fn push_i16(&mut self, mut s: &[i16], mut each: impl FnMut(f32)) {
        let (ctx, win) = (self.branch.context, self.branch.window);
        while !s.is_empty() {
            let take = (win - self.fill).min(s.len());
            for (d, &v) in self.x[ctx + self.fill..ctx + self.fill + take]
                .iter_mut()
                .zip(&s[..take])
            {
                *d = f32::from(v) * (1.0 / 32768.0);
            }
            self.fill += take;
            s = &s[take..];
            if self.fill == win {
                each(self.forward());
                self.x.copy_within(win..win + ctx, 0);
                self.fill = 0;
            }
        }
    }

    /// Runs the network on the full window in `x`; returns its speech probability.
    fn forward(&mut self) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F (and with it FMA) is present.
            return unsafe { self.forward_avx512() };
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: AVX2 and FMA are present.
            return unsafe { self.forward_avx2() };
        }
        self.forward_body()
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn forward_avx2(&mut self) -> f32 {
        self.forward_body()
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn forward_avx512(&mut self) -> f32 {
        self.forward_body()
    }

    #[inline(always)]
    fn forward_body(&mut self) -> f32 {
        let b = self.branch;
        let n = b.n_fft;
        let bins = b.bins();
        // Reflect padding on the right: x[len + j] = x[len - 2 - j].
        let len = b.context + b.window;
        for j in 0..b.context {
            self.x[len + j] = self.x[len - 2 - j];
        }
        // Frames 2f and 2f + 1 as the real and imaginary parts of one complex transform.
        for f in 0..FRAMES / 2 {
            let (re, im) = (
                &self.x[2 * f * b.hop..][..n],
                &self.x[(2 * f + 1) * b.hop..][..n],
            );
            for (((z, &a), &c), &w) in self.spec[f * n..(f + 1) * n]
                .iter_mut()
                .zip(re)
                .zip(im)
                .zip(&b.hann)
            {
                *z = Complex::new(a * w, c * w);
            }
        }
        b.fft.process_with_scratch(&mut self.spec, &mut self.scratch);
        // With Z the transform of a + i c: A[k] = (Z[k] + conj Z[n-k]) / 2 and
        // C[k] = (Z[k] - conj Z[n-k]) / 2i, so |A[k]| = |Z[k] + conj Z[n-k]| / 2 and
        // |C[k]| = |Z[k] - conj Z[n-k]| / 2.
        for f in 0..FRAMES / 2 {
            let z = &self.spec[f * n..(f + 1) * n];
            let (ma, mc) = self.a0[2 * f * bins..(2 * f + 2) * bins].split_at_mut(bins);
            for k in 0..bins {
                let p = z[k];
                let q = z[(n - k) % n];
                let (sr, si) = (p.re + q.re, p.im - q.im);
                let (dr, di) = (p.re - q.re, p.im + q.im);
                ma[k] = 0.5 * (sr * sr + si * si).sqrt();
                mc[k] = 0.5 * (dr * dr + di * di).sqrt();
            }
        }
        b.conv[0].run::<4, 4, 1>(&self.a0, &mut self.a1);
        b.conv[1].run::<4, 2, 2>(&self.a1, &mut self.a2);
        b.conv[2].run::<2, 1, 2>(&self.a2, &mut self.a3);
        let (xin, hin) = self.xh.split_at_mut(HIDDEN);
        b.conv[3].run::<1, 1, 1>(&self.a3, xin);
        hin.copy_from_slice(&self.h);
        // Gates = W [x; h] + b.
        for (tile, (wt, g)) in b
            .lstm_w
            .chunks_exact(2 * HIDDEN * TILE)
            .zip(self.gates.chunks_exact_mut(TILE))
            .enumerate()
        {
            let mut acc: [f32; TILE] = b.lstm_b[tile * TILE..(tile + 1) * TILE]
                .try_into()
                .unwrap();
            for (w, &v) in wt.chunks_exact(TILE).zip(self.xh.iter()) {
                for j in 0..TILE {
                    acc[j] = w[j].mul_add(v, acc[j]);
                }
            }
            g.copy_from_slice(&acc);
        }
        let (gi, rest) = self.gates.split_at(HIDDEN);
        let (gf, rest) = rest.split_at(HIDDEN);
        let (gg, go) = rest.split_at(HIDDEN);
        let mut logit = b.out_b;
        for u in 0..HIDDEN {
            let c = sigmoid(gf[u]) * self.c[u] + sigmoid(gi[u]) * gg[u].tanh();
            let h = sigmoid(go[u]) * c.tanh();
            self.c[u] = c;
            self.h[u] = h;
            logit += b.out_w[u] * h.max(0.0);
        }
        sigmoid(logit)
    }
}

/// The Silero detector behind [`super::Vad`]: frames of any length at any supported rate.
/// At 8 and 16 kHz the samples go to the network as they are; at other rates they are
/// resampled to 16 kHz first (low-latency preset, 2 ms).
///
/// A frame's probability is the highest of the windows it completes, or, if it completes
/// none, the last window's (0 before the first). Decisions use Silero's hysteresis: speech
/// starts at probability 0.5 and lasts while it stays at or above 0.35.
#[derive(Debug, Clone)]
pub struct SileroVad {
    model: SileroModel,
    resampler: Option<Resampler>,
    /// Resampled samples of one frame.
    staged: Vec<f32>,
    last: f32,
    speaking: bool,
}

impl SileroVad {
    /// A detector for frames of `frame` samples at `rate` Hz.
    pub fn new(rate: u32, frame: usize) -> Result<Self> {
        let (model, resampler) = match rate {
            8000 | 16000 => (SileroModel::new(rate)?, None),
            _ => (
                SileroModel::new(16000)?,
                Some(Resampler::new(rate, 16000, Quality::LowLatency)?),
            ),
        };
        let staged = match &resampler {
            Some(r) => vec![0.0; r.pending_outputs(frame) + 16000 / rate as usize + 2],
            None => Vec::new(),
        };
        Ok(Self {
            model,
            resampler,
            staged,
            last: 0.0,
            speaking: false,
        })
    }

    /// The speech probability after `frame` (see the type's notes).
    pub fn probability(&mut self, frame: &[i16]) -> f32 {
        let mut best: Option<f32> = None;
        let mut note = |p: f32| best = Some(best.map_or(p, |b: f32| b.max(p)));
        match &mut self.resampler {
            None => self.model.push_i16(frame, &mut note),
            Some(r) => {
                let want = r.pending_outputs(frame.len());
                if self.staged.len() < want {
                    self.staged.resize(want, 0.0);
                }
                let n = r
                    .process_with(frame, resample::conv_i16, &mut self.staged[..want], |y, o| {
                        for (d, &v) in o.iter_mut().zip(y) {
                            *d = v * (1.0 / 32768.0);
                        }
                    })
                    .unwrap_or(0);
                self.model.push(&self.staged[..n], &mut note);
            }
        }
        if let Some(p) = best {
            self.last = p;
        }
        self.last
    }

    /// The speech decision after `frame`, with Silero's hysteresis.
    pub fn is_speech(&mut self, frame: &[i16]) -> bool {
        let p = self.probability(frame);
        self.speaking = if self.speaking {
            p >= END_THRESHOLD
        } else {
            p >= START_THRESHOLD
        };
        self.speaking
    }

    /// Forgets the stream.
    pub fn reset(&mut self) {
        self.model.reset();
        if let Some(r) = &mut self.resampler {
            r.reset();
        }
        self.last = 0.0;
        self.speaking = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `golden_signal` of scripts/silero_weights.py.
    fn golden_signal(rate: u32, seconds: f64) -> Vec<i16> {
        let n = (rate as f64 * seconds) as usize;
        let mut r: u64 = 12345;
        (0..n)
            .map(|i| {
                r = r
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let noise = ((r >> 33) % 601) as f64 - 300.0;
                let t = i as f64 / rate as f64;
                let seg = (t / 0.4) as i64;
                let f0 = 120.0 + 40.0 * (seg / 2) as f64;
                let tone = if seg % 2 == 1 {
                    (1..13)
                        .map(|k| (2.0 * std::f64::consts::PI * f0 * k as f64 * t).sin() / k as f64)
                        .sum::<f64>()
                        * 3000.0
                } else {
                    0.0
                };
                (noise + tone).round() as i16
            })
            .collect()
    }

    /// The reference (the package's ONNX model on onnxruntime) on `golden_signal(_, 2.0)`,
    /// printed by `golden` in scripts/silero_weights.py.
    const GOLDEN_16K: [f32; 62] = [0.053525, 0.040296, 0.041006, 0.023493, 0.015482, 0.011274, 0.008070, 0.009049, 0.007648, 0.008950, 0.007888, 0.007569, 0.382049, 0.858367, 0.870856, 0.831019, 0.730710, 0.702189, 0.703527, 0.599118, 0.476389, 0.398545, 0.357150, 0.328014, 0.405502, 0.441968, 0.157249, 0.075024, 0.021672, 0.010137, 0.006566, 0.005126, 0.004313, 0.003978, 0.003662, 0.003205, 0.003208, 0.163108, 0.208895, 0.141290, 0.089553, 0.058258, 0.018668, 0.013568, 0.008053, 0.004697, 0.005114, 0.004434, 0.002638, 0.004991, 0.010146, 0.001991, 0.008037, 0.007294, 0.007199, 0.006668, 0.004200, 0.002682, 0.001816, 0.001399, 0.001627, 0.001480];
    const GOLDEN_8K: [f32; 62] = [0.029880, 0.049860, 0.018694, 0.012753, 0.011989, 0.008593, 0.012825, 0.008927, 0.005917, 0.006079, 0.006809, 0.010987, 0.275115, 0.883349, 0.953757, 0.964949, 0.955707, 0.922193, 0.896159, 0.869543, 0.856526, 0.755114, 0.707891, 0.687071, 0.724653, 0.555310, 0.166615, 0.106788, 0.083900, 0.024671, 0.014894, 0.007881, 0.008784, 0.007985, 0.009587, 0.009897, 0.020733, 0.330247, 0.533552, 0.438083, 0.412915, 0.365608, 0.255666, 0.179900, 0.154893, 0.095611, 0.046477, 0.023670, 0.017752, 0.061445, 0.013167, 0.009793, 0.030280, 0.023757, 0.032819, 0.018539, 0.011137, 0.011973, 0.006976, 0.010931, 0.008226, 0.011816];

    fn run(rate: u32, chunk: usize) -> Vec<f32> {
        let x = golden_signal(rate, 2.0);
        let mut m = SileroModel::new(rate).unwrap();
        let mut out = Vec::new();
        for c in x.chunks(chunk) {
            m.push_i16(c, |p| out.push(p));
        }
        out
    }

    #[test]
    fn matches_the_reference_at_both_rates() {
        for (rate, golden) in [(16000, &GOLDEN_16K[..]), (8000, &GOLDEN_8K[..])] {
            let got = run(rate, 1000);
            assert_eq!(got.len(), golden.len());
            let worst = got
                .iter()
                .zip(golden)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst < 1e-4, "{rate} Hz: max difference {worst}");
        }
    }

    #[test]
    fn any_chunking_gives_the_same_probabilities() {
        let whole = run(16000, 32000);
        for chunk in [1, 7, 160, 512, 513] {
            assert_eq!(run(16000, chunk), whole, "chunks of {chunk}");
        }
    }

    #[test]
    fn reset_starts_over() {
        let x = golden_signal(8000, 2.0);
        let mut m = SileroModel::new(8000).unwrap();
        let mut first = Vec::new();
        m.push_i16(&x[..3000], |p| first.push(p));
        m.reset();
        let mut again = Vec::new();
        m.push_i16(&x[..3000], |p| again.push(p));
        assert_eq!(first, again);
    }

    #[test]
    fn other_rates_go_through_the_resampler() {
        // 48 kHz resampled to 16 kHz: close to the 16 kHz reference, a window later at most
        // (the resampler's 2 ms delay shifts the windows).
        let x = golden_signal(48000, 2.0);
        let mut v = SileroVad::new(48000, 480).unwrap();
        let probs: Vec<f32> = x.chunks(480).map(|f| v.probability(f)).collect();
        // Frame 60 (0.6 s) is in the first tone; 30 (0.3 s) and 100 (1.0 s) in noise.
        let r = SileroModel::new(16000).unwrap();
        let at = |t: f64| GOLDEN_16K[(t * 16000.0) as usize / r.window() - 1];
        for (frame, t) in [(30, 0.3), (60, 0.6), (100, 1.0)] {
            assert!((probs[frame] - at(t)).abs() < 0.05, "{} {}", probs[frame], at(t));
        }
        assert!(probs[60] > 0.6, "{}", probs[60]);
        assert!(SileroVad::new(44100, 441).is_ok());
    }

    #[test]
    fn a_frame_reports_its_windows_highest_probability() {
        let x = golden_signal(16000, 2.0);
        let mut v = SileroVad::new(16000, 1024).unwrap();
        let p: Vec<f32> = x.chunks_exact(1024).map(|f| v.probability(f)).collect();
        for (i, &pi) in p.iter().enumerate() {
            assert!((pi - GOLDEN_16K[2 * i].max(GOLDEN_16K[2 * i + 1])).abs() < 1e-4);
        }
        // Shorter frames: the last window's probability, 0 before the first.
        let mut v = SileroVad::new(16000, 160).unwrap();
        assert_eq!(v.probability(&x[..160]), 0.0);
    }
}
