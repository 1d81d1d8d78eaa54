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
//! The convolutions and the LSTM's gate product run as one kernel over tiles of output
//! channels whose sums stay in registers (fused multiply-adds, 8 independent sums), for
//! AVX-512, AVX2+FMA or portable code, chosen once at run time; the weights are laid out for
//! the chosen unit when parsed. Input channels that a ReLU zeroed at every position are
//! skipped (their weights are not read: adding 0 changes nothing). Nothing is allocated per
//! window.

use crate::error::{Error, Result};
use crate::resample::{self, Quality, Resampler};
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use std::sync::{Arc, OnceLock};

/// The weights file (see `scripts/silero_weights.py` for its format).
static WEIGHTS: &[u8] = include_bytes!("silero_weights.bin");

/// LSTM units.
const HIDDEN: usize = 128;
/// STFT frames per window.
const FRAMES: usize = 4;
/// Probability at or above which a window starts speech, and under which speech ends
/// (Silero's `VADIterator` / `get_speech_timestamps` defaults: threshold, threshold - 0.15).
const START_THRESHOLD: f32 = 0.5;
const END_THRESHOLD: f32 = 0.35;

/// Whether tap `k` of a kernel-3, padding-1 convolution with stride `s` reads inside an
/// input of `l` positions for any of its `p` output positions.
const fn tap_used(k: usize, l: usize, p: usize, s: usize) -> bool {
    let mut i = 0;
    while i < p {
        let q = i * s + k;
        if q >= 1 && q <= l {
            return true;
        }
        i += 1;
    }
    false
}

/// The vector unit the matrix products are laid out for (chosen once, when the weights are
/// parsed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    /// 16 lanes.
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// 8 lanes, with FMA.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// Portable code over 8-lane arrays.
    Portable,
}

impl Isa {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }

    fn lanes(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => 16,
            _ => 8,
        }
    }
}

/// Vectors of output channels per tile, per layer (conv1-4, LSTM) and lane count, so that a
/// tile's sums (vectors times output positions) fill 8 registers: enough independent FMA
/// chains to cover the FMA latency without spilling (AVX2 has 16 registers).
const fn tile_vectors(layer: usize, lanes: usize) -> usize {
    match (layer, lanes) {
        (0, _) => 2,      // 4 positions
        (1, _) => 4,      // 2 positions
        (2 | 3, 16) => 4, // 1 position, 64 channels (conv3: only 64 outputs)
        (2 | 3, _) => 8,
        _ => 8, // LSTM, 1 position
    }
}

/// A layer whose output is `relu(b + sum over taps of W_k x)` (or without the ReLU): a 1-D
/// convolution with kernel 3 and padding 1 over a fixed input length `L`, giving `P`
/// positions at stride `S`; a matrix-vector product is the case `L = P = 1` (one tap).
/// Weights are tiled for the kernel: per tile of `tile` output channels, per input channel,
/// per tap that reads inside the input (the others only ever meet padding and are not
/// kept), `tile` weights.
#[derive(Debug)]
struct Layer {
    c_in: usize,
    c_out: usize,
    taps: usize,
    tile: usize,
    w: Vec<f32>,
    b: Vec<f32>,
}

impl Layer {
    /// From PyTorch's `[c_out][c_in][kernel]` weights (`kernel` 3 for a convolution over
    /// `(l, p, s)`, 1 for a matrix).
    fn new(
        w: &[f32],
        b: Vec<f32>,
        (c_out, c_in, kernel): (usize, usize, usize),
        (l, p, s): (usize, usize, usize),
        tile: usize,
    ) -> Self {
        assert_eq!(c_out % tile, 0);
        let used: Vec<usize> = if kernel == 1 {
            vec![0]
        } else {
            (0..3).filter(|&k| tap_used(k, l, p, s)).collect()
        };
        let taps = used.len();
        let mut t = vec![0.0; c_out * c_in * taps];
        for o in 0..c_out {
            for c in 0..c_in {
                for (ti, &k) in used.iter().enumerate() {
                    t[(((o / tile) * c_in + c) * taps + ti) * tile + o % tile] =
                        w[(o * c_in + c) * kernel + k];
                }
            }
        }
        Self {
            c_in,
            c_out,
            taps,
            tile,
            w: t,
            b,
        }
    }
}

/// A vector unit's operations, for the kernel.
trait Lanes {
    type V: Copy;
    const N: usize;
    /// # Safety
    /// The unit must be present; `p` must be valid for `N` reads.
    unsafe fn load(p: *const f32) -> Self::V;
    /// # Safety
    /// As `load`, for writes.
    unsafe fn store(p: *mut f32, v: Self::V);
    /// # Safety
    /// The unit must be present.
    unsafe fn splat(x: f32) -> Self::V;
    /// `a * b + c`.
    /// # Safety
    /// The unit must be present.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// # Safety
    /// The unit must be present.
    unsafe fn relu(a: Self::V) -> Self::V;
}

#[cfg(target_arch = "x86_64")]
struct Avx512;
#[cfg(target_arch = "x86_64")]
impl Lanes for Avx512 {
    type V = std::arch::x86_64::__m512;
    const N: usize = 16;
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self::V {
        std::arch::x86_64::_mm512_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        std::arch::x86_64::_mm512_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self::V {
        std::arch::x86_64::_mm512_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        std::arch::x86_64::_mm512_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn relu(a: Self::V) -> Self::V {
        std::arch::x86_64::_mm512_max_ps(a, std::arch::x86_64::_mm512_setzero_ps())
    }
}

#[cfg(target_arch = "x86_64")]
struct Avx2;
#[cfg(target_arch = "x86_64")]
impl Lanes for Avx2 {
    type V = std::arch::x86_64::__m256;
    const N: usize = 8;
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self::V {
        std::arch::x86_64::_mm256_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        std::arch::x86_64::_mm256_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self::V {
        std::arch::x86_64::_mm256_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        std::arch::x86_64::_mm256_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn relu(a: Self::V) -> Self::V {
        std::arch::x86_64::_mm256_max_ps(a, std::arch::x86_64::_mm256_setzero_ps())
    }
}

/// 8-lane arrays in plain Rust (any target).
struct Portable;
impl Lanes for Portable {
    type V = [f32; 8];
    const N: usize = 8;
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self::V {
        std::ptr::read_unaligned(p.cast())
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        std::ptr::write_unaligned(p.cast(), v)
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self::V {
        [x; 8]
    }
    #[inline(always)]
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i].mul_add(b[i], c[i]))
    }
    #[inline(always)]
    unsafe fn relu(a: Self::V) -> Self::V {
        a.map(|v| v.max(0.0))
    }
}

/// Runs `layer` on `x` (`L` positions of `c_in`, position-major) into `y` (`P` positions of
/// `c_out`), `NV` vectors of output channels per tile.
///
/// # Safety
/// The unit `S` must be present. (Sizes are checked.)
#[inline(always)]
unsafe fn run_layer<
    S: Lanes,
    const L: usize,
    const P: usize,
    const ST: usize,
    const NV: usize,
    const RELU: bool,
>(
    layer: &Layer,
    x: &[f32],
    y: &mut [f32],
    active: &mut Vec<u32>,
) {
    let (c_in, c_out, taps) = (layer.c_in, layer.c_out, layer.taps);
    let t = NV * S::N;
    assert!(layer.tile == t && x.len() >= L * c_in && y.len() >= P * c_out);
    assert!(layer.w.len() == c_out * c_in * taps && layer.b.len() == c_out);
    // The input channels that are not zero at every position (after a ReLU, many are):
    // the others add exactly nothing, so their weights are not read.
    active.clear();
    for c in 0..c_in {
        if (0..L).any(|q| x[q * c_in + c] != 0.0) {
            active.push(c as u32);
        }
    }
    let (xp, yp) = (x.as_ptr(), y.as_mut_ptr());
    for tile in 0..c_out / t {
        let wt = layer.w.as_ptr().add(tile * c_in * taps * t);
        let bp = layer.b.as_ptr().add(tile * t);
        let mut acc = [[S::splat(0.0); NV]; P];
        for a in acc.iter_mut() {
            for (i, v) in a.iter_mut().enumerate() {
                *v = S::load(bp.add(i * S::N));
            }
        }
        for (ai, &c) in active.iter().enumerate() {
            let c = c as usize;
            let mut wp = wt.add(c * taps * t);
            // The weights of an input channel a few ahead: the active channels skip rows,
            // which the hardware prefetchers do not foresee.
            #[cfg(target_arch = "x86_64")]
            if let Some(&ahead) = active.get(ai + PREFETCH_AHEAD) {
                let pa = wt.add(ahead as usize * taps * t).cast::<i8>();
                for line in 0..(taps * t).div_ceil(16) {
                    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                        pa.add(line * 64),
                    );
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = ai; // only the x86 prefetch above uses the position
            for k in 0..3 {
                let used = if L == 1 && P == 1 {
                    k == 1
                } else {
                    tap_used(k, L, P, ST)
                };
                if !used {
                    continue;
                }
                let w: [S::V; NV] = std::array::from_fn(|i| S::load(wp.add(i * S::N)));
                wp = wp.add(t);
                for (p, a) in acc.iter_mut().enumerate() {
                    // Input position p * ST + k - 1, when inside the input.
                    let q = p * ST + k;
                    if q == 0 || q > L {
                        continue;
                    }
                    let v = S::splat(*xp.add((q - 1) * c_in + c));
                    for i in 0..NV {
                        a[i] = S::fma(w[i], v, a[i]);
                    }
                }
            }
        }
        for (p, a) in acc.iter().enumerate() {
            for (i, &v) in a.iter().enumerate() {
                let v = if RELU { S::relu(v) } else { v };
                S::store(yp.add(p * c_out + tile * t + i * S::N), v);
            }
        }
    }
}

/// How many active input channels ahead `run_layer` prefetches weights.
#[cfg(target_arch = "x86_64")]
const PREFETCH_AHEAD: usize = 3;

/// Per convolution: input positions, output positions, stride.
const CONV_SHAPES: [(usize, usize, usize); 4] = [(4, 4, 1), (4, 2, 2), (2, 1, 2), (1, 1, 1)];

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
    /// The vector unit the layers are tiled for.
    isa: Isa,
    /// conv1 to conv4, then the LSTM's gates as one product: `[W_ih W_hh] [x; h]` with bias
    /// `b_ih + b_hh`, gate rows in PyTorch's order (input, forget, cell, output).
    layers: [Layer; 5],
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
    fn new(t: &Tensors, rate: u32, isa: Isa) -> Result<Self> {
        let (window, n_fft) = if rate == 16000 {
            (512, 256)
        } else {
            (256, 128)
        };
        let p = if rate == 16000 { "16k" } else { "8k" };
        let bins = n_fft / 2 + 1;
        let lanes = isa.lanes();
        let conv = |i: usize, c_out: usize, c_in: usize| -> Result<Layer> {
            Ok(Layer::new(
                t.get(&format!("{p}.conv{i}.weight"), &[c_out, c_in, 3])?,
                t.get(&format!("{p}.conv{i}.bias"), &[c_out])?.to_vec(),
                (c_out, c_in, 3),
                CONV_SHAPES[i - 1],
                tile_vectors(i - 1, lanes) * lanes,
            ))
        };
        let w_ih = t.get(&format!("{p}.lstm.weight_ih"), &[4 * HIDDEN, HIDDEN])?;
        let w_hh = t.get(&format!("{p}.lstm.weight_hh"), &[4 * HIDDEN, HIDDEN])?;
        let b_ih = t.get(&format!("{p}.lstm.bias_ih"), &[4 * HIDDEN])?;
        let b_hh = t.get(&format!("{p}.lstm.bias_hh"), &[4 * HIDDEN])?;
        let w: Vec<f32> = w_ih
            .chunks_exact(HIDDEN)
            .zip(w_hh.chunks_exact(HIDDEN))
            .flat_map(|(a, b)| a.iter().chain(b).copied())
            .collect();
        let lstm = Layer::new(
            &w,
            b_ih.iter().zip(b_hh).map(|(a, b)| a + b).collect(),
            (4 * HIDDEN, 2 * HIDDEN, 1),
            (1, 1, 1),
            tile_vectors(4, lanes) * lanes,
        );
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
            isa,
            layers: [
                conv(1, 128, bins)?,
                conv(2, 64, 128)?,
                conv(3, 64, 64)?,
                conv(4, 128, 64)?,
                lstm,
            ],
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
        let isa = Isa::detect();
        Ok((
            Branch::new(&t, 16000, isa).map_err(|e| e.to_string())?,
            Branch::new(&t, 8000, isa).map_err(|e| e.to_string())?,
        ))
    })
    .as_ref()
    .map_err(|e| Error::InvalidArgument(e.clone()))
}

/// e^x for |x| < 87 (clamped beyond), within 2 ulp: 2^n times a degree-6 polynomial in
/// the remainder, in plain arithmetic (no calls, no float-to-int conversion) so that loops
/// over it vectorise.
#[inline(always)]
fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 87.0);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    // ln 2 in two parts (Cody-Waite), so the remainder is exact.
    let r = n.mul_add(-0.693_145_75, x);
    let r = n.mul_add(-1.428_606_8e-6, r);
    let p = 1.987_569_1e-4f32
        .mul_add(r, 1.398_199_9e-3)
        .mul_add(r, 8.333_452e-3)
        .mul_add(r, 4.166_579_6e-2)
        .mul_add(r, 0.166_666_66)
        .mul_add(r, 0.5);
    let e = p.mul_add(r * r, r) + 1.0;
    // 2^n: n (an integer in [-126, 126]) lands in the low mantissa bits of 1.5 * 2^23 + n.
    let k = (n + 12_582_912.0).to_bits().wrapping_sub(0x4B40_0000);
    e * f32::from_bits(k.wrapping_add(127) << 23)
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[inline(always)]
fn tanh(x: f32) -> f32 {
    // 1 - 2 / (e^2x + 1): absolute error within a few 1e-8 near 0, as good as needed here.
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

/// The LSTM cell's update from its gates' pre-activations (rows: input, forget, cell,
/// output), in place on `c` and `h`; leaves `relu(h) * out_w` in the first `HIDDEN` of
/// `gates` (the output projection's terms). Over whole slices, so that it vectorises.
#[inline(always)]
fn lstm_cell(gates: &mut [f32], c: &mut [f32], h: &mut [f32], out_w: &[f32]) {
    let (gi, rest) = gates[..4 * HIDDEN].split_at_mut(HIDDEN);
    let (gf, rest) = rest.split_at_mut(HIDDEN);
    let (gg, go) = rest.split_at_mut(HIDDEN);
    let (c, h, out_w) = (&mut c[..HIDDEN], &mut h[..HIDDEN], &out_w[..HIDDEN]);
    for u in 0..HIDDEN {
        let cu = sigmoid(gf[u]) * c[u] + sigmoid(gi[u]) * tanh(gg[u]);
        let hu = sigmoid(go[u]) * tanh(cu);
        c[u] = cu;
        h[u] = hu;
        gi[u] = hu.max(0.0) * out_w[u];
    }
}

/// The sum of `v` in index order (so the result does not depend on the vector width).
#[inline(always)]
fn sum_in_order(v: &[f32]) -> f32 {
    v.iter().sum()
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
    /// A layer's non-zero input channels.
    active: Vec<u32>,
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
        Ok(Self::with_branch(branch))
    }

    fn with_branch(branch: &'static Branch) -> Self {
        let zero = Complex::new(0.0, 0.0);
        Self {
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
            active: Vec::with_capacity(2 * HIDDEN),
        }
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

    /// Forgets what the network remembers (its recurrent state and the context before the
    /// next window), as the reference's `reset_states` does, but keeps the samples of the
    /// window under way: the windows stay where they were on the timeline.
    pub fn reset_state(&mut self) {
        self.x[..self.branch.context].fill(0.0);
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
        match self.branch.isa {
            // SAFETY: the unit was detected when the layers were laid out for it.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { self.forward_avx512() },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { self.forward_avx2() },
            // SAFETY: portable code.
            Isa::Portable => unsafe { self.forward_body::<Portable>() },
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn forward_avx2(&mut self) -> f32 {
        self.forward_body::<Avx2>()
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn forward_avx512(&mut self) -> f32 {
        self.forward_body::<Avx512>()
    }

    /// # Safety
    /// The unit `S` must be present and the layers tiled for it.
    #[inline(always)]
    unsafe fn forward_body<S: Lanes>(&mut self) -> f32 {
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
        b.fft
            .process_with_scratch(&mut self.spec, &mut self.scratch);
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
        let [l1, l2, l3, l4, lstm] = &b.layers;
        if S::N == 16 {
            run_layer::<S, 4, 4, 1, { tile_vectors(0, 16) }, true>(
                l1,
                &self.a0,
                &mut self.a1,
                &mut self.active,
            );
            run_layer::<S, 4, 2, 2, { tile_vectors(1, 16) }, true>(
                l2,
                &self.a1,
                &mut self.a2,
                &mut self.active,
            );
            run_layer::<S, 2, 1, 2, { tile_vectors(2, 16) }, true>(
                l3,
                &self.a2,
                &mut self.a3,
                &mut self.active,
            );
            run_layer::<S, 1, 1, 1, { tile_vectors(3, 16) }, true>(
                l4,
                &self.a3,
                &mut self.xh,
                &mut self.active,
            );
        } else {
            run_layer::<S, 4, 4, 1, { tile_vectors(0, 8) }, true>(
                l1,
                &self.a0,
                &mut self.a1,
                &mut self.active,
            );
            run_layer::<S, 4, 2, 2, { tile_vectors(1, 8) }, true>(
                l2,
                &self.a1,
                &mut self.a2,
                &mut self.active,
            );
            run_layer::<S, 2, 1, 2, { tile_vectors(2, 8) }, true>(
                l3,
                &self.a2,
                &mut self.a3,
                &mut self.active,
            );
            run_layer::<S, 1, 1, 1, { tile_vectors(3, 8) }, true>(
                l4,
                &self.a3,
                &mut self.xh,
                &mut self.active,
            );
        }
        // The LSTM's input: [conv4's output; h].
        self.xh[HIDDEN..].copy_from_slice(&self.h);
        if S::N == 16 {
            run_layer::<S, 1, 1, 1, { tile_vectors(4, 16) }, false>(
                lstm,
                &self.xh,
                &mut self.gates,
                &mut self.active,
            );
        } else {
            run_layer::<S, 1, 1, 1, { tile_vectors(4, 8) }, false>(
                lstm,
                &self.xh,
                &mut self.gates,
                &mut self.active,
            );
        }
        lstm_cell(&mut self.gates, &mut self.c, &mut self.h, &b.out_w);
        sigmoid(b.out_b + sum_in_order(&self.gates[..HIDDEN]))
    }
}

/// The Silero detector behind [`super::Vad`]: frames of any length at any supported rate.
/// At 8 and 16 kHz the samples go to the network as they are; at other rates they are
/// resampled to 16 kHz first ("hq" preset: the network uses the whole band to 8 kHz, which
/// the low-latency preset rolls off from 6.4 kHz; under 3 ms of delay).
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
                Some(Resampler::new(rate, 16000, Quality::High)?),
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
                    .process_with(
                        frame,
                        resample::conv_i16,
                        &mut self.staged[..want],
                        |y, o| {
                            for (d, &v) in o.iter_mut().zip(y) {
                                *d = v * (1.0 / 32768.0);
                            }
                        },
                    )
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

    /// Forgets the network's recurrent state and context (see
    /// [`SileroModel::reset_state`]); the resampler, the window under way and the last
    /// probability stay.
    pub fn reset_state(&mut self) {
        self.model.reset_state();
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
    const GOLDEN_16K: [f32; 62] = [
        0.053525, 0.040296, 0.041006, 0.023493, 0.015482, 0.011274, 0.008070, 0.009049, 0.007648,
        0.008950, 0.007888, 0.007569, 0.382049, 0.858367, 0.870856, 0.831019, 0.730710, 0.702189,
        0.703527, 0.599118, 0.476389, 0.398545, 0.357150, 0.328014, 0.405502, 0.441968, 0.157249,
        0.075024, 0.021672, 0.010137, 0.006566, 0.005126, 0.004313, 0.003978, 0.003662, 0.003205,
        0.003208, 0.163108, 0.208895, 0.141290, 0.089553, 0.058258, 0.018668, 0.013568, 0.008053,
        0.004697, 0.005114, 0.004434, 0.002638, 0.004991, 0.010146, 0.001991, 0.008037, 0.007294,
        0.007199, 0.006668, 0.004200, 0.002682, 0.001816, 0.001399, 0.001627, 0.001480,
    ];
    const GOLDEN_8K: [f32; 62] = [
        0.029880, 0.049860, 0.018694, 0.012753, 0.011989, 0.008593, 0.012825, 0.008927, 0.005917,
        0.006079, 0.006809, 0.010987, 0.275115, 0.883349, 0.953757, 0.964949, 0.955707, 0.922193,
        0.896159, 0.869543, 0.856526, 0.755114, 0.707891, 0.687071, 0.724653, 0.555310, 0.166615,
        0.106788, 0.083900, 0.024671, 0.014894, 0.007881, 0.008784, 0.007985, 0.009587, 0.009897,
        0.020733, 0.330247, 0.533552, 0.438083, 0.412915, 0.365608, 0.255666, 0.179900, 0.154893,
        0.095611, 0.046477, 0.023670, 0.017752, 0.061445, 0.013167, 0.009793, 0.030280, 0.023757,
        0.032819, 0.018539, 0.011137, 0.011973, 0.006976, 0.010931, 0.008226, 0.011816,
    ];

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
    fn every_vector_unit_here_matches_the_reference() {
        let t = Tensors::parse(WEIGHTS).unwrap();
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))] // x86 adds its units
        let mut units = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                units.push(Isa::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                units.push(Isa::Avx512);
            }
        }
        for isa in units {
            for (rate, golden) in [(16000, &GOLDEN_16K[..]), (8000, &GOLDEN_8K[..])] {
                let b: &'static Branch = Box::leak(Box::new(Branch::new(&t, rate, isa).unwrap()));
                let mut m = SileroModel::with_branch(b);
                let mut got = Vec::new();
                m.push_i16(&golden_signal(rate, 2.0), |p| got.push(p));
                let worst = got
                    .iter()
                    .zip(golden)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                assert!(worst < 1e-4, "{isa:?} at {rate} Hz: max difference {worst}");
            }
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

    /// Clearing the state mid-window keeps the window's samples where they are: what
    /// follows is what a fresh model gives on the audio from that window's start, and
    /// differs from what the uncleared model gives.
    #[test]
    fn reset_state_keeps_the_window_under_way() {
        let x = golden_signal(16000, 2.0);
        let (cut, win) = (7000, 512);
        let mut m = SileroModel::new(16000).unwrap();
        let mut kept = Vec::new();
        m.push_i16(&x[..cut], |p| kept.push(p));
        let mut unreset = m.clone();
        m.reset_state();
        let mut after = Vec::new();
        m.push_i16(&x[cut..], |p| after.push(p));
        let mut fresh = SileroModel::new(16000).unwrap();
        let mut want = Vec::new();
        fresh.push_i16(&x[cut / win * win..], |p| want.push(p));
        assert_eq!(after, want);
        let mut went_on = Vec::new();
        unreset.push_i16(&x[cut..], |p| went_on.push(p));
        assert_eq!(went_on.len(), after.len());
        assert_ne!(went_on, after);
    }

    #[test]
    fn other_rates_go_through_the_resampler() {
        // The 16 kHz signal upsampled to 48 kHz, detected at 48 kHz (resampled back to
        // 16 kHz inside): frame by frame (10 ms) close to the 16 kHz detector on the original;
        // the resamplers' few ms of delay shift the windows, so not equal.
        let x16 = golden_signal(16000, 2.0);
        let f: Vec<f32> = x16.iter().map(|&v| f32::from(v)).collect();
        let x48: Vec<i16> = crate::resample::resample_f32(&f, 16000, 48000, Quality::High)
            .unwrap()
            .iter()
            .map(|&v| v.round().clamp(-32768.0, 32767.0) as i16)
            .collect();
        let mut v48 = SileroVad::new(48000, 480).unwrap();
        let mut v16 = SileroVad::new(16000, 160).unwrap();
        let p48: Vec<f32> = x48.chunks_exact(480).map(|f| v48.probability(f)).collect();
        let p16: Vec<f32> = x16.chunks_exact(160).map(|f| v16.probability(f)).collect();
        assert_eq!(p48.len(), p16.len());
        let diffs: Vec<f32> = p48.iter().zip(&p16).map(|(a, b)| (a - b).abs()).collect();
        let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
        let agree = p48
            .iter()
            .zip(&p16)
            .filter(|(a, b)| (**a >= 0.5) == (**b >= 0.5))
            .count();
        // Near a tone's start or end a few ms of shift moves a window's probability most (this
        // signal's windows there sit near 0.5).
        assert!(mean < 0.05, "mean difference {mean}");
        assert!(
            agree * 100 >= 95 * p16.len(),
            "{agree} of {} decisions agree",
            p16.len()
        );
        // The tone (0.4-0.8 s) is speech, the noise before it is not.
        assert!(p48[60] > 0.6 && p48[30] < 0.1, "{} {}", p48[60], p48[30]);
        for rate in crate::resample::RATES {
            assert!(SileroVad::new(rate, rate as usize / 100).is_ok());
        }
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
