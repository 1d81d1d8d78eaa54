//! Streaming rational polyphase resampling between the common voice rates.
//!
//! Design: for `in_rate -> out_rate` with `g = gcd`, upsample by `L = out/g`, low-pass at the
//! virtual rate `in_rate * L`, and keep every `M = in/g`-th sample. The low-pass is a
//! Kaiser-windowed sinc of odd length, split into `L` phases of `K` taps (zero-padded to a
//! multiple of 8 for SIMD). Output `m` is the filter centred on virtual time `m * M`, so
//! the output is aligned with the input (no leading filter delay) and streaming is simply
//! waiting until the input that output needs has arrived; `delay` says how long that is.
//! The arithmetic is f32 with a fixed summation order, so any chunking of the same input
//! gives bit-identical output, and `flush` completes the stream to `round(n * out / in)`
//! samples.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The rates voxwire supports (every pair among them).
pub const RATES: [u32; 8] = [8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000];

/// A filter preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quality {
    /// At most 2 ms of delay; passband to 0.80 of the lower Nyquist frequency, stopband from
    /// Nyquist, as much attenuation as that length allows (capped at 100 dB).
    LowLatency,
    /// The default: passband to 0.875 of the lower Nyquist frequency, stopband from Nyquist,
    /// 100 dB stopband attenuation (designed; the int16 floor is 96 dB).
    High,
    /// For analysis (voice activity detection), not for listening: flat to 0.5 of the lower
    /// Nyquist frequency, 80 dB stopband from 1.5 of it, so the lower half of the output band
    /// is clean while its upper half may hold aliases or images. About a tenth of the taps
    /// of "hq".
    Analysis,
}

impl Quality {
    /// Parses a preset name: `"lowlat"` / `"low_latency"` or `"hq"` / `"high"`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "lowlat" | "low_latency" => Ok(Quality::LowLatency),
            "hq" | "high" => Ok(Quality::High),
            "vad" | "analysis" => Ok(Quality::Analysis),
            _ => Err(Error::InvalidArgument(format!(
                "unknown quality {name:?}: use \"hq\", \"lowlat\" or \"vad\""
            ))),
        }
    }
}

/// The designed filter and its schedule; shared by every stream of the same configuration.
#[derive(Debug, Clone)]
pub struct Design {
    pub in_rate: u32,
    pub out_rate: u32,
    /// Upsampling factor.
    pub l: usize,
    /// Downsampling factor.
    pub m: usize,
    /// Taps per phase (a multiple of 8).
    pub k: usize,
    /// Prototype length (odd).
    pub n: usize,
    /// Centre of the prototype in virtual samples, `(n - 1) / 2`.
    pub centre: usize,
    /// Phase-major coefficients, each phase reversed so a dot product runs forward in time:
    /// `coefs()[p * k + j]` multiplies input `i_end - (k - 1) + j`. Stored 32-byte aligned
    /// (`k` is a multiple of 8), so no SIMD load of them straddles a cache line.
    coef_store: Vec<Lane>,
    pub passband: f64,
    pub attenuation_db: f64,
    /// For each phase `p`: the next output's phase and how far its window moves, so that
    /// stepping from output to output needs no division.
    step: Vec<(u32, u32)>,
}

/// Eight coefficients, 32-byte aligned.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(32))]
struct Lane([f32; 8]);

fn lanes_mut(v: &mut [Lane]) -> &mut [f32] {
    // SAFETY: `Lane` is eight f32 with no padding.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut f32, v.len() * 8) }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Modified Bessel function of the first kind, order 0 (power series; converges fast for the
/// arguments a Kaiser window needs).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let q = x * x / 4.0;
    for k in 1..200 {
        term *= q / (k as f64 * k as f64);
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

/// Kaiser's beta for a stopband attenuation in dB.
fn kaiser_beta(a: f64) -> f64 {
    if a > 50.0 {
        0.1102 * (a - 8.7)
    } else if a >= 21.0 {
        0.5842 * (a - 21.0).powf(0.4) + 0.07886 * (a - 21.0)
    } else {
        0.0
    }
}

impl Design {
    /// Designs the filter for a rate pair and preset.
    pub fn new(in_rate: u32, out_rate: u32, quality: Quality) -> Result<Self> {
        for r in [in_rate, out_rate] {
            if !RATES.contains(&r) {
                return Err(Error::InvalidArgument(format!(
                    "unsupported sample rate {r} Hz: supported are {RATES:?}"
                )));
            }
        }
        let g = gcd(in_rate as u64, out_rate as u64);
        let l = (out_rate as u64 / g) as usize;
        let m = (in_rate as u64 / g) as usize;
        let fs_v = in_rate as f64 * l as f64;
        let nyq = in_rate.min(out_rate) as f64 / 2.0;
        // Stopband edge, as a fraction of the lower Nyquist frequency.
        let stop = if quality == Quality::Analysis {
            1.5
        } else {
            1.0
        };
        let (passband, atten, n) = match quality {
            Quality::High | Quality::Analysis => {
                let (pb, a) = if quality == Quality::High {
                    (0.875, 100.0)
                } else {
                    (0.5, 80.0)
                };
                let df = nyq * (stop - pb) / fs_v;
                let n = ((a - 7.95) / (14.36 * df)).ceil() as usize + 1;
                (pb, a, n)
            }
            Quality::LowLatency => {
                let pb = 0.80;
                // (n - 1) / 2 virtual samples of delay <= 2 ms.
                let n_max = 2 * (0.002 * fs_v).floor() as usize + 1;
                let df = nyq * (1.0 - pb) / fs_v;
                let a = (7.95 + 14.36 * df * (n_max - 1) as f64).min(100.0);
                let n = (((a - 7.95) / (14.36 * df)).ceil() as usize + 1).min(n_max);
                (pb, a, n)
            }
        };
        let n = n | 1; // odd: the centre is a whole virtual sample
        let k = n.div_ceil(l).div_ceil(8) * 8;
        let centre = (n - 1) / 2;
        let fc = nyq * (stop + passband) / 2.0 / fs_v; // cutoff, cycles per virtual sample
        let beta = kaiser_beta(atten);
        let i0b = bessel_i0(beta);
        let mut proto = vec![0f64; k * l];
        for (i, h) in proto.iter_mut().take(n).enumerate() {
            let t = i as f64 - centre as f64;
            let x = 2.0 * fc * t;
            let sinc = if t == 0.0 {
                1.0
            } else {
                (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
            };
            let r = t / centre as f64;
            let w = bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / i0b;
            *h = l as f64 * 2.0 * fc * sinc * w;
        }
        // Phase p holds proto[p + j*l]; stored reversed (oldest input first).
        let mut coef_store = vec![Lane([0.0; 8]); k * l / 8];
        {
            let coefs = lanes_mut(&mut coef_store);
            for p in 0..l {
                for j in 0..k {
                    coefs[p * k + (k - 1 - j)] = proto[p + j * l] as f32;
                }
            }
        }
        let step = (0..l)
            .map(|p| (((p + m) % l) as u32, ((p + m) / l) as u32))
            .collect();
        Ok(Design {
            in_rate,
            out_rate,
            l,
            m,
            k,
            n,
            centre,
            coef_store,
            passband,
            attenuation_db: atten,
            step,
        })
    }

    /// The coefficients, phase after phase (see `coef_store`).
    pub fn coefs(&self) -> &[f32] {
        // SAFETY: `Lane` is eight f32 with no padding.
        unsafe {
            std::slice::from_raw_parts(
                self.coef_store.as_ptr() as *const f32,
                self.coef_store.len() * 8,
            )
        }
    }

    /// The design for a rate pair and preset, computed once per process and shared.
    pub fn shared(in_rate: u32, out_rate: u32, quality: Quality) -> Result<Arc<Design>> {
        type Cache = Mutex<HashMap<(u32, u32, Quality), Arc<Design>>>;
        static CACHE: OnceLock<Cache> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        let key = (in_rate, out_rate, quality);
        if let Some(d) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(d.clone());
        }
        let d = Arc::new(Design::new(in_rate, out_rate, quality)?);
        cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, d.clone());
        Ok(d)
    }

    /// Latency of a stream, in output samples: how far the newest output trails the input.
    pub fn delay(&self) -> f64 {
        self.centre as f64 / self.m as f64
    }

    /// Phase and newest input index of output `j` (virtual time `j * m + centre`).
    #[inline]
    fn locate(&self, j: u64) -> (usize, u64) {
        let t = j * self.m as u64 + self.centre as u64;
        ((t % self.l as u64) as usize, t / self.l as u64)
    }

    /// How many outputs are computable once `n_in` inputs have arrived.
    fn outputs_ready(&self, n_in: u64) -> u64 {
        // Output j needs input index floor((j*m + centre)/l) <= n_in - 1.
        let top = (self.l as u64 * n_in).checked_sub(1 + self.centre as u64);
        top.map_or(0, |t| t / self.m as u64 + 1)
    }

    /// `round(n * out / in)`, ties to even like Python's `round`.
    pub fn total_outputs(&self, n_in: u64) -> u64 {
        let num = n_in as u128 * self.l as u128;
        let den = self.m as u128;
        let (q, r) = (num / den, num % den);
        let twice = 2 * r;
        (if twice > den || (twice == den && q % 2 == 1) {
            q + 1
        } else {
            q
        }) as u64
    }
}

/// Input samples handled per step of a large `process` call.
const SLICE: usize = 16 * 1024;

/// One stream's state: the input history and the output counter.
#[derive(Debug, Clone)]
pub struct Resampler {
    d: Arc<Design>,
    /// Input samples from absolute index `base` on; kept from what the next output needs.
    hist: Vec<f32>,
    base: u64,
    /// Inputs received (zeros of a flush not counted).
    n_in: u64,
    /// Outputs produced.
    n_out: u64,
    /// f32 outputs of the current call before conversion (grows to the largest call).
    scratch: Vec<f32>,
}

impl Resampler {
    /// A stream for a rate pair and preset.
    pub fn new(in_rate: u32, out_rate: u32, quality: Quality) -> Result<Self> {
        Ok(Self::with_design(Design::shared(
            in_rate, out_rate, quality,
        )?))
    }

    /// A stream over a shared design.
    pub fn with_design(d: Arc<Design>) -> Self {
        let k = d.k;
        // The history starts with the k - 1 zeros before input 0.
        let mut r = Resampler {
            d,
            hist: Vec::with_capacity(k + SLICE + 4096),
            base: 0,
            n_in: 0,
            n_out: 0,
            scratch: Vec::new(),
        };
        r.reset();
        r.hist.reserve(k);
        r
    }

    /// The filter design.
    pub fn design(&self) -> &Design {
        &self.d
    }

    /// Forgets the stream: the next input is input 0 of a new stream.
    pub fn reset(&mut self) {
        self.hist.clear();
        self.hist.resize(self.d.k - 1, 0.0);
        // hist[h] holds input h - (k - 1) + base: the k - 1 zeros are inputs -(k-1)..-1.
        self.base = 0;
        self.n_in = 0;
        self.n_out = 0;
    }

    /// Outputs the next push of `n` samples yields.
    pub fn pending_outputs(&self, n: usize) -> usize {
        (self.d.outputs_ready(self.n_in + n as u64) - self.n_out) as usize
    }

    /// Outputs `flush` yields.
    pub fn flush_outputs(&self) -> usize {
        (self.d.total_outputs(self.n_in).saturating_sub(self.n_out)) as usize
    }

    /// Pushes samples and writes the outputs they complete to `out`; returns how many.
    /// `conv` converts input samples to f32 (slice to slice), `emit` converts f32 outputs
    /// to the output type (slice to slice). `out` must hold `pending_outputs(x.len())`.
    pub fn process_with<T, U>(
        &mut self,
        x: &[T],
        conv: impl Fn(&[T], &mut [f32]),
        out: &mut [U],
        emit: impl Fn(&[f32], &mut [U]),
    ) -> Result<usize> {
        let want = self.pending_outputs(x.len());
        if out.len() < want {
            return Err(Error::InvalidArgument(format!(
                "output holds {} samples, the push yields {want}",
                out.len()
            )));
        }
        // Large inputs go through in slices, so the history stays in cache (the output is
        // the same however the input is sliced).
        let mut done = 0;
        for part in x.chunks(SLICE) {
            let n = self.pending_outputs(part.len());
            let at = self.hist.len();
            self.hist.resize(at + part.len(), 0.0);
            conv(part, &mut self.hist[at..]);
            self.n_in += part.len() as u64;
            self.run(n);
            emit(&self.scratch[..n], &mut out[done..done + n]);
            done += n;
        }
        Ok(want)
    }

    /// Ends the stream: pads with silence, writes the last outputs (so the total is
    /// `round(n * out_rate / in_rate)`) and resets. `out` must hold `flush_outputs()`.
    pub fn flush_with<U>(
        &mut self,
        out: &mut [U],
        emit: impl Fn(&[f32], &mut [U]),
    ) -> Result<usize> {
        let want = self.flush_outputs();
        if out.len() < want {
            return Err(Error::InvalidArgument(format!(
                "output holds {} samples, the flush yields {want}",
                out.len()
            )));
        }
        if want > 0 {
            let last = self.n_out + want as u64 - 1;
            let (_, i_end) = self.d.locate(last);
            // The history must reach input i_end (history index i_end + k - 1 - base).
            let need_len = (i_end + self.d.k as u64 - self.base) as usize;
            if need_len > self.hist.len() {
                self.hist.resize(need_len, 0.0);
            }
            self.run(want);
            emit(&self.scratch[..want], &mut out[..want]);
        }
        self.reset();
        Ok(want)
    }

    /// Computes the next `count` outputs into `scratch[..count]`.
    fn run(&mut self, count: usize) {
        if self.scratch.len() < count {
            self.scratch.resize(count, 0.0);
        }
        let out = &mut self.scratch;
        let d = &*self.d;
        let (l, m, k) = (d.l, d.m, d.k);
        let kernels = kernels();
        let (mut p, mut e) = d.locate(self.n_out);
        let mut done = 0;
        // Super-blocks of 8 * L outputs: outputs j, j + L, ..., j + 7L share a phase and
        // their windows lie exactly M inputs apart, so one kernel call computes them with
        // one coefficient load per 8 multiply-adds. With AVX2, the whole loop runs in one
        // function with the kernel inlined and the outputs stored straight from registers
        // (the same arithmetic, so the same outputs).
        #[cfg(target_arch = "x86_64")]
        if kernels.avx2 && count >= 8 * l {
            let blocks = count / (8 * l);
            // The last phase's window offset within a super-block (the pattern repeats).
            let (mut q, mut off_last) = (p, 0usize);
            for _ in 1..l {
                let (np, adv) = d.step[q];
                q = np as usize;
                off_last += adv as usize;
            }
            let end = (e - self.base) as usize + (blocks - 1) * 8 * m + off_last + 7 * m + k;
            assert!(end <= self.hist.len() && d.coefs().len() == l * k);
            // SAFETY: AVX2 and FMA are present; every window of the blocks lies within the
            // history (asserted: the last block's last window ends by its end).
            unsafe {
                super_blocks_avx2(
                    self.hist.as_ptr().add((e - self.base) as usize),
                    d,
                    p,
                    blocks,
                    out.as_mut_ptr(),
                )
            };
            done = blocks * 8 * l;
            e += (blocks * 8 * m) as u64;
        }
        while count - done >= 8 * l {
            let (mut pr, mut er) = (p, e);
            for r in 0..l {
                let start = (er - self.base) as usize;
                let v = (kernels.strided)(&self.hist, start, m, d.coefs(), pr * k, k);
                for (i, &y) in v.iter().enumerate() {
                    out[done + r + i * l] = y;
                }
                let (np, adv) = d.step[pr];
                pr = np as usize;
                er += adv as u64;
            }
            done += 8 * l;
            // Output j + 8L: phase unchanged, window 8M further on.
            e += 8 * m as u64;
        }
        // The rest, up to 8 outputs per call with their own phases; a short block repeats
        // its last output in the unused slots. Each output's arithmetic is the same as in
        // the strided kernel, so the chunking of the input cannot change any output.
        while done < count {
            let nb = (count - done).min(8);
            let mut starts = [0usize; 8];
            let mut phases = [0usize; 8];
            for i in 0..8 {
                starts[i] = (e - self.base) as usize;
                phases[i] = p * k;
                if i + 1 < nb {
                    let (np, adv) = d.step[p];
                    p = np as usize;
                    e += adv as u64;
                }
            }
            let v = (kernels.gather)(&self.hist, &starts, d.coefs(), &phases, k);
            out[done..done + nb].copy_from_slice(&v[..nb]);
            done += nb;
            let (np, adv) = d.step[p];
            p = np as usize;
            e += adv as u64;
        }
        self.n_out += count as u64;
        // Drop history no future output needs (before the next output's window).
        let keep_from = ((e - self.base) as usize).min(self.hist.len());
        if keep_from > 0 {
            self.hist.drain(..keep_from);
            self.base += keep_from as u64;
        }
    }
}

/// The two kernels, chosen once per call for the CPU.
struct Kernels {
    gather: KernelFn,
    strided: StridedFn,
    /// Whether they are the AVX2 ones.
    avx2: bool,
}

/// `blocks` super-blocks of `8 * l` outputs from phase `p0`, the first window starting at
/// `x`; outputs to `out`. Output `j + i * l` (i < 8) of a super-block is
/// `strided_avx2_impl` of phase `p(j)` at its window, exactly.
///
/// # Safety
/// AVX2 and FMA must be present, and every window read must lie within the history.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn super_blocks_avx2(x: *const f32, d: &Design, p0: usize, blocks: usize, out: *mut f32) {
    use std::arch::x86_64::*;
    let (l, m, k) = (d.l, d.m, d.k);
    let c = d.coefs().as_ptr();
    for b in 0..blocks {
        let xb = x.add(b * 8 * m);
        let ob = out.add(b * 8 * l);
        let (mut p, mut off) = (p0, 0usize);
        if l == 2 {
            // Two phases: interleave their 8 outputs into 16 consecutive ones.
            let v0 = strided_vec(xb, m, c.add(p * k), k);
            let (np, adv) = d.step[p];
            let v1 = strided_vec(xb.add(adv as usize), m, c.add(np as usize * k), k);
            let lo = _mm256_unpacklo_ps(v0, v1); // y0 y1 y2 y3 | y8 y9 y10 y11
            let hi = _mm256_unpackhi_ps(v0, v1); // y4 y5 y6 y7 | y12 y13 y14 y15
            _mm256_storeu_ps(ob, _mm256_permute2f128_ps::<0x20>(lo, hi));
            _mm256_storeu_ps(ob.add(8), _mm256_permute2f128_ps::<0x31>(lo, hi));
            continue;
        }
        for r in 0..l {
            let v = strided_vec(xb.add(off), m, c.add(p * k), k);
            if l == 1 {
                _mm256_storeu_ps(ob, v);
            } else {
                let mut t = [0f32; 8];
                _mm256_storeu_ps(t.as_mut_ptr(), v);
                for (i, &y) in t.iter().enumerate() {
                    *ob.add(r + i * l) = y;
                }
            }
            let (np, adv) = d.step[p];
            p = np as usize;
            off += adv as usize;
        }
    }
}

/// `strided_avx2_impl`, its result left in a register.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn strided_vec(
    x: *const f32,
    stride: usize,
    w: *const f32,
    k: usize,
) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let mut a = [_mm256_setzero_ps(); 8];
    let mut t = 0;
    while t < k {
        let c = _mm256_loadu_ps(w.add(t));
        let xt = x.add(t);
        for (i, ai) in a.iter_mut().enumerate() {
            *ai = _mm256_fmadd_ps(_mm256_loadu_ps(xt.add(i * stride)), c, *ai);
        }
        t += 8;
    }
    reduce8_vec(&a)
}

/// 8 outputs at window starts `start + i * stride` sharing the coefficients at `phase`.
type StridedFn = fn(&[f32], usize, usize, &[f32], usize, usize) -> [f32; 8];

fn kernels() -> Kernels {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        return Kernels {
            gather: kernel_avx2,
            strided: strided_avx2,
            avx2: true,
        };
    }
    Kernels {
        gather: kernel_scalar,
        strided: strided_scalar,
        avx2: false,
    }
}

fn strided_scalar(
    hist: &[f32],
    start: usize,
    stride: usize,
    coefs: &[f32],
    phase: usize,
    k: usize,
) -> [f32; 8] {
    let starts = std::array::from_fn(|i| start + i * stride);
    kernel_scalar(hist, &starts, coefs, &[phase; 8], k)
}

#[cfg(target_arch = "x86_64")]
fn strided_avx2(
    hist: &[f32],
    start: usize,
    stride: usize,
    coefs: &[f32],
    phase: usize,
    k: usize,
) -> [f32; 8] {
    assert!(start + 7 * stride + k <= hist.len() && phase + k <= coefs.len());
    // SAFETY: AVX2 and FMA are present (checked by kernels), windows in bounds (asserted).
    unsafe {
        strided_avx2_impl(
            hist.as_ptr().add(start),
            stride,
            coefs.as_ptr().add(phase),
            k,
        )
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn strided_avx2_impl(x: *const f32, stride: usize, w: *const f32, k: usize) -> [f32; 8] {
    use std::arch::x86_64::*;
    let mut a = [_mm256_setzero_ps(); 8];
    let mut t = 0;
    while t < k {
        let c = _mm256_loadu_ps(w.add(t));
        let xt = x.add(t);
        for (i, ai) in a.iter_mut().enumerate() {
            *ai = _mm256_fmadd_ps(_mm256_loadu_ps(xt.add(i * stride)), c, *ai);
        }
        t += 8;
    }
    reduce8(&a)
}

/// `[sum(a[0]), ..., sum(a[7])]`, each as `((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn reduce8(a: &[std::arch::x86_64::__m256; 8]) -> [f32; 8] {
    let mut out = [0f32; 8];
    std::arch::x86_64::_mm256_storeu_ps(out.as_mut_ptr(), reduce8_vec(a));
    out
}

/// `reduce8`, in a register.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn reduce8_vec(a: &[std::arch::x86_64::__m256; 8]) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    // hadd(a, b) = [a0+a1, a2+a3, b0+b1, b2+b3 | a4+a5, a6+a7, b4+b5, b6+b7]
    let s01 = _mm256_hadd_ps(a[0], a[1]);
    let s23 = _mm256_hadd_ps(a[2], a[3]);
    let s45 = _mm256_hadd_ps(a[4], a[5]);
    let s67 = _mm256_hadd_ps(a[6], a[7]);
    let s0123 = _mm256_hadd_ps(s01, s23);
    let s4567 = _mm256_hadd_ps(s45, s67);
    let lo = _mm256_permute2f128_ps::<0x20>(s0123, s4567);
    let hi = _mm256_permute2f128_ps::<0x31>(s0123, s4567);
    _mm256_add_ps(lo, hi)
}

/// Computes 8 outputs: output `i` is the dot product of `hist[starts[i]..][..k]` with
/// `coefs[phases[i]..][..k]`, accumulated in 8 lanes over chunks of 8 taps in order, then
/// reduced as `((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))`.
type KernelFn = fn(&[f32], &[usize; 8], &[f32], &[usize; 8], usize) -> [f32; 8];

fn kernel_scalar(
    hist: &[f32],
    starts: &[usize; 8],
    coefs: &[f32],
    phases: &[usize; 8],
    k: usize,
) -> [f32; 8] {
    let mut out = [0f32; 8];
    for i in 0..8 {
        let x = &hist[starts[i]..starts[i] + k];
        let c = &coefs[phases[i]..phases[i] + k];
        let mut acc = [0f32; 8];
        for (cx, cc) in x.chunks_exact(8).zip(c.chunks_exact(8)) {
            for j in 0..8 {
                acc[j] += cx[j] * cc[j];
            }
        }
        out[i] = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    }
    out
}

#[cfg(target_arch = "x86_64")]
fn kernel_avx2(
    hist: &[f32],
    starts: &[usize; 8],
    coefs: &[f32],
    phases: &[usize; 8],
    k: usize,
) -> [f32; 8] {
    for i in 0..8 {
        assert!(starts[i] + k <= hist.len() && phases[i] + k <= coefs.len());
    }
    // SAFETY: AVX2 and FMA are present (checked by kernels), and every window is in
    // bounds (asserted above).
    unsafe { kernel_avx2_impl(hist, starts, coefs, phases, k) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_avx2_impl(
    hist: &[f32],
    starts: &[usize; 8],
    coefs: &[f32],
    phases: &[usize; 8],
    k: usize,
) -> [f32; 8] {
    use std::arch::x86_64::*;
    let h = hist.as_ptr();
    let c = coefs.as_ptr();
    let x: [*const f32; 8] = std::array::from_fn(|i| h.add(starts[i]));
    let w: [*const f32; 8] = std::array::from_fn(|i| c.add(phases[i]));
    let mut a = [_mm256_setzero_ps(); 8];
    let mut t = 0;
    while t < k {
        for i in 0..8 {
            a[i] = _mm256_fmadd_ps(
                _mm256_loadu_ps(x[i].add(t)),
                _mm256_loadu_ps(w[i].add(t)),
                a[i],
            );
        }
        t += 8;
    }
    reduce8(&a)
}

/// Rounds and saturates filter outputs to int16 (ties to even; NaN cannot occur: inputs are
/// checked finite). One pass, which vectorises.
pub fn emit_i16(y: &[f32], out: &mut [i16]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present.
        return unsafe { emit_i16_avx2(y, out) };
    }
    emit_i16_body(y, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn emit_i16_avx2(y: &[f32], out: &mut [i16]) {
    emit_i16_body(y, out)
}

#[inline(always)]
#[allow(clippy::manual_clamp)] // max/min on purpose: clamp keeps NaN, max/min does not
fn emit_i16_body(y: &[f32], out: &mut [i16]) {
    const MAGIC: f32 = 12_582_912.0;
    let n = out.len().min(y.len());
    let (y, out) = (&y[..n], &mut out[..n]);
    for i in 0..n {
        // max/min rather than clamp: a NaN (impossible here, inputs are checked finite)
        // becomes a bound instead of staying NaN.
        let v = y[i].max(-32768.0).min(32767.0);
        let r = (v + MAGIC) - MAGIC;
        // SAFETY: `r` is finite and within [-32768, 32767], so the truncating conversion
        // is exact and in range (written this way so that it vectorises).
        out[i] = unsafe { r.to_int_unchecked::<i32>() } as i16;
    }
}

/// Copies f32 outputs.
pub fn emit_f32(y: &[f32], out: &mut [f32]) {
    out.copy_from_slice(&y[..out.len()]);
}

/// int16 samples to f32 at the same scale (no division by 32768).
pub fn conv_i16(x: &[i16], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present.
        return unsafe { conv_i16_avx2(x, out) };
    }
    conv_i16_body(x, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn conv_i16_avx2(x: &[i16], out: &mut [f32]) {
    conv_i16_body(x, out)
}

#[inline(always)]
fn conv_i16_body(x: &[i16], out: &mut [f32]) {
    let n = out.len().min(x.len());
    let (x, out) = (&x[..n], &mut out[..n]);
    for i in 0..n {
        out[i] = f32::from(x[i]);
    }
}

/// f32 samples as they are.
pub fn conv_f32(x: &[f32], out: &mut [f32]) {
    out.copy_from_slice(x);
}

/// The index of the first non-finite value, if any.
pub fn first_non_finite(x: &[f32]) -> Option<usize> {
    // A branch-free pass first (it vectorises); the position only on the error path.
    if x.iter().fold(true, |ok, v| ok & v.is_finite()) {
        return None;
    }
    x.iter().position(|v| !v.is_finite())
}

/// One-shot resampling of f32 samples, aligned with the input, `round(n*out/in)` long.
pub fn resample_f32(x: &[f32], in_rate: u32, out_rate: u32, quality: Quality) -> Result<Vec<f32>> {
    let mut r = Resampler::new(in_rate, out_rate, quality)?;
    let mut out = vec![0f32; r.pending_outputs(x.len())];
    r.process_with(x, conv_f32, &mut out, emit_f32)?;
    let mut tail = vec![0f32; r.flush_outputs()];
    r.flush_with(&mut tail, emit_f32)?;
    out.extend_from_slice(&tail);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize, rate: u32, f: f64, amp: f64) -> Vec<f32> {
        (0..n)
            .map(|i| (amp * (2.0 * std::f64::consts::PI * f * i as f64 / rate as f64).sin()) as f32)
            .collect()
    }

    /// RMS of the middle half of `y`.
    fn mid_rms(y: &[f32]) -> f64 {
        let m = &y[y.len() / 4..3 * y.len() / 4];
        (m.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / m.len() as f64).sqrt()
    }

    #[test]
    fn analysis_preset_keeps_the_lower_half_band_clean() {
        let d = Design::new(48000, 16000, Quality::Analysis).unwrap();
        let hq = Design::new(48000, 16000, Quality::High).unwrap();
        assert!(d.k * 6 <= hq.k, "{} taps against {}", d.k, hq.k);
        // 3 kHz passes at unit gain; 13 kHz would alias onto 3 kHz and is >= 75 dB down.
        let pass = resample_f32(
            &tone(48000, 48000, 3000.0, 1.0),
            48000,
            16000,
            Quality::Analysis,
        )
        .unwrap();
        assert!((mid_rms(&pass) * 2f64.sqrt() - 1.0).abs() < 1e-3);
        let alias = resample_f32(
            &tone(48000, 48000, 13000.0, 1.0),
            48000,
            16000,
            Quality::Analysis,
        )
        .unwrap();
        assert!(
            mid_rms(&alias) < 10f64.powf(-75.0 / 20.0),
            "{}",
            mid_rms(&alias)
        );
    }

    #[test]
    fn lengths_are_rounded_like_python() {
        for &a in &RATES {
            for &b in &RATES {
                let d = Design::new(a, b, Quality::High).unwrap();
                for n in [0u64, 1, 2, 3, 7, 160, 441, 1000] {
                    let exact = n as f64 * b as f64 / a as f64;
                    let mut want = exact.round();
                    if (exact - exact.floor() - 0.5).abs() < 1e-12 {
                        want = 2.0 * (exact / 2.0).round(); // ties to even
                    }
                    assert_eq!(d.total_outputs(n), want as u64, "{a}->{b} n={n}");
                }
            }
        }
    }

    #[test]
    fn streaming_equals_one_shot_for_any_chunking() {
        let x = tone(5000, 24000, 1234.5, 0.5);
        for (a, b) in [
            (24000, 16000),
            (16000, 24000),
            (44100, 16000),
            (8000, 48000),
        ] {
            for q in [Quality::High, Quality::LowLatency, Quality::Analysis] {
                let once = resample_f32(&x, a, b, q).unwrap();
                assert_eq!(
                    once.len() as u64,
                    Design::new(a, b, q).unwrap().total_outputs(5000)
                );
                for chunk in [1usize, 7, 160, 481, 5000] {
                    let mut r = Resampler::new(a, b, q).unwrap();
                    let mut got = Vec::new();
                    for c in x.chunks(chunk) {
                        let mut o = vec![0f32; r.pending_outputs(c.len())];
                        r.process_with(c, conv_f32, &mut o, emit_f32).unwrap();
                        got.extend(o);
                    }
                    let mut t = vec![0f32; r.flush_outputs()];
                    r.flush_with(&mut t, emit_f32).unwrap();
                    got.extend(t);
                    assert_eq!(got, once, "{a}->{b} {q:?} chunk {chunk}");
                }
            }
        }
    }

    #[test]
    fn dc_gain_is_one_and_output_is_aligned() {
        for (a, b) in [
            (24000, 16000),
            (16000, 24000),
            (8000, 16000),
            (44100, 16000),
        ] {
            let x = vec![0.25f32; 20000];
            let y = resample_f32(&x, a, b, Quality::High).unwrap();
            let mid = y.len() / 2;
            assert!((y[mid] - 0.25).abs() < 1e-4, "{a}->{b}: {}", y[mid]);
        }
        // Alignment: a tone resampled keeps its phase (compare against the exact tone).
        let x = tone(24000, 24000, 440.0, 0.5);
        let y = resample_f32(&x, 24000, 16000, Quality::High).unwrap();
        let want = tone(16000, 16000, 440.0, 0.5);
        let err = (2000..14000)
            .map(|i| (y[i] - want[i]).abs())
            .fold(0f32, f32::max);
        assert!(err < 1e-3, "max error {err}");
    }

    #[test]
    fn bad_arguments() {
        assert!(Design::new(12345, 16000, Quality::High).is_err());
        assert!(Quality::parse("best").is_err());
        assert_eq!(first_non_finite(&[0.0, 1.0, f32::NAN]), Some(2));
        assert_eq!(first_non_finite(&[0.0, f32::INFINITY]), Some(1));
        assert_eq!(first_non_finite(&[0.0, 1.0]), None);
    }

    #[test]
    fn simd_and_scalar_kernels_agree() {
        let h: Vec<f32> = (0..400).map(|i| (i as f32 * 0.37).sin()).collect();
        let c: Vec<f32> = (0..240).map(|i| (i as f32 * 0.11).cos()).collect();
        let starts = [0, 3, 5, 100, 17, 200, 33, 1];
        let phases = [0, 80, 160, 0, 80, 160, 0, 80];
        let s = kernel_scalar(&h, &starts, &c, &phases, 80);
        let v = (kernels().gather)(&h, &starts, &c, &phases, 80);
        let st = (kernels().strided)(&h, 7, 3, &c, 160, 80);
        let ss = strided_scalar(&h, 7, 3, &c, 160, 80);
        for i in 0..8 {
            assert!((st[i] - ss[i]).abs() < 1e-4);
        }
        for i in 0..8 {
            assert!((s[i] - v[i]).abs() < 1e-4, "{i}: {} {}", s[i], v[i]);
        }
    }
}
