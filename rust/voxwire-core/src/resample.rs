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
//!
//! Two kernels. Pairs with `l` and `m` at most 6 (every pair among 8, 16, 24, 32 and 48 kHz
//! and among 11.025, 22.05 and 44.1 kHz) keep their history as `m` residue arrays and run
//! the row kernel (`resample_rows`): 16 outputs of a phase per vector, one FMA per tap, at
//! the CPU's FMA rate. The others (44.1k <-> 16k and the like, up to 441 phases) run the
//! tile kernel below over coefficient banks per phase and alignment.

use crate::error::{Error, Result};
use crate::resample_rows::{self, GROUP, MAX_LM};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The common voice rates: every pair among them is supported (and measured).
pub const RATES: [u32; 8] = [8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000];

/// Other rates (12 kHz, 96 kHz, 37.8 kHz...) are supported between these bounds, in Hz...
pub const MIN_RATE: u32 = 1000;
pub const MAX_RATE: u32 = 384_000;
/// ...when the pair's ratio reduces to `l / m` with both at most this: it bounds the
/// filter's phases (memory) and the taps per output.
pub const MAX_FACTOR: u64 = 1024;

/// Whether `in_rate -> out_rate` is a pair the resampler designs a filter for.
pub fn supported_pair(in_rate: u32, out_rate: u32) -> bool {
    if RATES.contains(&in_rate) && RATES.contains(&out_rate) {
        return true;
    }
    if ![in_rate, out_rate]
        .iter()
        .all(|r| (MIN_RATE..=MAX_RATE).contains(r))
    {
        return false;
    }
    let g = gcd(in_rate as u64, out_rate as u64);
    out_rate as u64 / g <= MAX_FACTOR && in_rate as u64 / g <= MAX_FACTOR
}

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
    /// Taps per output: the longest phase of the prototype, `ceil(n / l)`.
    pub k: usize,
    /// Prototype length (odd).
    pub n: usize,
    /// Centre of the prototype in virtual samples, `(n - 1) / 2`.
    pub centre: usize,
    /// The promised passband edge, as a fraction of the lower Nyquist frequency.
    pub passband: f64,
    /// The designed stopband attenuation in dB.
    pub attenuation_db: f64,
    /// The prototype filter (`n` taps at the virtual rate).
    proto: Vec<f32>,
    /// Coefficient banks, one per phase `p` and alignment `s` (index `p * 8 + s`), each
    /// `kc` chunks of 8 (see `bank`).
    banks: Vec<Lane>,
    /// Chunks per bank.
    kc: usize,
    /// For each bank: how many chunks it needs (the rest of its `kc` are zeros).
    bank_nch: Vec<u32>,
    /// Outputs `j` and `j + period` use the same bank, their windows `period_in` inputs
    /// (a multiple of 8) apart.
    period: usize,
    period_in: usize,
    /// Zeros before input 0 in a stream's history (a multiple of 8, at least `k - 1`).
    lead: usize,
    /// For each phase `p`: the next output's phase and how far its window moves, so that
    /// stepping from output to output needs no division.
    step: Vec<(u32, u32)>,
    /// The row layout, for pairs with `l` and `m` at most 6 (see `resample_rows`); the
    /// others use the tile kernel over `banks`.
    rows: Option<RowDesign>,
}

/// The row kernel's view of a design: output `c + l * R` (column `c`, row `R`) is the sum
/// over `i < u` of `w[c * u + i]` times input `a0 + i + R * m - lead`.
#[derive(Debug, Clone)]
struct RowDesign {
    /// Window positions (the union of the columns' taps).
    u: usize,
    /// Zeros before input 0 in a stream's history (a multiple of `m`).
    lead: usize,
    /// Position 0 of row 0 in the history, `a0 = q0 * m + res0`.
    q0: u64,
    res0: usize,
    /// Coefficients, `u` per column (zero outside the column's own taps).
    w: Vec<f32>,
}

/// Eight f32, 32-byte aligned.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(32))]
struct Lane([f32; 8]);

const ZERO_LANE: Lane = Lane([0.0; 8]);

fn floats(v: &[Lane]) -> &[f32] {
    // SAFETY: `Lane` is eight f32 with no padding.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const f32, v.len() * 8) }
}

fn floats_mut(v: &mut [Lane]) -> &mut [f32] {
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
        if !supported_pair(in_rate, out_rate) {
            let r = if RATES.contains(&in_rate) {
                out_rate
            } else {
                in_rate
            };
            return Err(Error::InvalidArgument(format!(
                "unsupported sample rate {r} Hz: supported are {RATES:?}, and any rate \
                 from {MIN_RATE} to {MAX_RATE} Hz whose ratio to the other reduces to at \
                 most {MAX_FACTOR}/{MAX_FACTOR} ({in_rate} -> {out_rate} does not)"
            )));
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
        // (promised passband edge, Kaiser passband edge, attenuation, length)
        let (passband, edge, atten, n) = match quality {
            Quality::High | Quality::Analysis => {
                // "hq": the Kaiser transition starts at 0.86 so that the response is within
                // 0.03 dB to the promised 0.875 (-0.1 dB at 0.882), and 98 dB is designed
                // for a 96 dB floor: 271 virtual taps at 24k <-> 16k instead of the 309
                // that 0.875 and 100 dB would take.
                let (pb, edge, a) = if quality == Quality::High {
                    (0.875, 0.86, 98.0)
                } else {
                    (0.5, 0.5, 80.0)
                };
                let df = nyq * (stop - edge) / fs_v;
                let n = ((a - 7.95) / (14.36 * df)).ceil() as usize + 1;
                (pb, edge, a, n)
            }
            Quality::LowLatency => {
                let pb = 0.80;
                // (n - 1) / 2 virtual samples of delay <= 2 ms.
                let n_max = 2 * (0.002 * fs_v).floor() as usize + 1;
                let df = nyq * (1.0 - pb) / fs_v;
                let a = (7.95 + 14.36 * df * (n_max - 1) as f64).min(100.0);
                let n = (((a - 7.95) / (14.36 * df)).ceil() as usize + 1).min(n_max);
                (pb, pb, a, n)
            }
        };
        let n = n | 1; // odd: the centre is a whole virtual sample
        let k = n.div_ceil(l);
        let centre = (n - 1) / 2;
        let fc = nyq * (stop + edge) / 2.0 / fs_v; // cutoff, cycles per virtual sample
        let beta = kaiser_beta(atten);
        let i0b = bessel_i0(beta);
        let proto: Vec<f64> = (0..n)
            .map(|i| {
                let t = i as f64 - centre as f64;
                let x = 2.0 * fc * t;
                let sinc = if t == 0.0 {
                    1.0
                } else {
                    (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
                };
                let r = t / centre as f64;
                let w = bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / i0b;
                l as f64 * 2.0 * fc * sinc * w
            })
            .collect();
        // An output of phase p whose newest input is e multiplies input e - j by
        // proto[p + j*l], j < k. Its window starts at input e - (k - 1); in the history that
        // start lies s = 0..8 floats past an aligned position, and the bank for (p, s) holds
        // the coefficients for the inputs from that aligned position on, so every load is
        // aligned: position i of the bank is input e - (k - 1) - s + i, that is j = k - 1 +
        // s - i.
        let rows = (l <= MAX_LM && m <= MAX_LM).then(|| {
            // Column c: phase p, newest input e (row 0) and taps.
            let cols: Vec<(usize, i64, usize)> = (0..l)
                .map(|c| {
                    let t = c * m + centre;
                    (t % l, (t / l) as i64, (n - t % l).div_ceil(l))
                })
                .collect();
            let vlo = cols
                .iter()
                .map(|&(_, e, k)| e + 1 - k as i64)
                .min()
                .unwrap_or(0);
            let vhi = cols.iter().map(|&(_, e, _)| e).max().unwrap_or(0);
            let u = (vhi - vlo + 1) as usize;
            let mut w = vec![0f32; l * u];
            for (c, &(p, e, k)) in cols.iter().enumerate() {
                for j in 0..k {
                    w[c * u + (e - j as i64 - vlo) as usize] = proto[p + j * l] as f32;
                }
            }
            let lead = ((-vlo).max(0) as usize).next_multiple_of(m);
            let a0 = (vlo + lead as i64) as usize;
            RowDesign {
                u,
                lead,
                q0: (a0 / m) as u64,
                res0: a0 % m,
                w,
            }
        });
        // Only the tile kernel reads the banks; a design with a row layout has none.
        let kc = (k + 7).div_ceil(8);
        let nbanks = if rows.is_some() { 0 } else { l };
        let mut banks = vec![ZERO_LANE; nbanks * 8 * kc];
        let mut bank_nch = Vec::with_capacity(nbanks * 8);
        {
            let all = floats_mut(&mut banks);
            for p in 0..nbanks {
                let taps = (n - p).div_ceil(l); // j < taps has p + j*l < n
                for s in 0..8 {
                    let b = (p * 8 + s) * kc * 8;
                    for i in 0..k + s {
                        let j = k - 1 + s - i;
                        if j < taps {
                            all[b + i] = proto[p + j * l] as f32;
                        }
                    }
                    bank_nch.push((k + s).div_ceil(8) as u32);
                }
            }
        }
        let q = 8 / gcd(m as u64, 8) as usize;
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
            passband,
            attenuation_db: atten,
            proto: proto.iter().map(|&v| v as f32).collect(),
            banks,
            kc,
            bank_nch,
            period: q * l,
            period_in: q * m,
            lead: k.next_multiple_of(8),
            step,
            rows,
        })
    }

    /// The coefficients of output phase `p` (0..l), oldest input first: `k` taps that
    /// multiply inputs `e - (k - 1) ..= e` for an output whose newest input is `e`.
    pub fn phase_coefs(&self, p: usize) -> Vec<f32> {
        // Position i multiplies input e - j with j = k - 1 - i: proto[p + j * l] where that
        // is a tap of the prototype.
        (0..self.k)
            .map(|i| {
                let t = p + (self.k - 1 - i) * self.l;
                self.proto.get(t).copied().unwrap_or(0.0)
            })
            .collect()
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

    /// History index of the (unaligned) window start of the output whose newest input is
    /// `e`, in a history that starts at absolute input `base - lead`.
    #[inline]
    fn window_start(&self, e: u64, base: u64) -> usize {
        (e + self.lead as u64 + 1 - self.k as u64 - base) as usize
    }

    /// How many outputs are computable once `n_in` inputs have arrived.
    fn outputs_ready(&self, n_in: u64) -> u64 {
        // Output j needs input index floor((j*m + centre)/l) <= n_in - 1.
        let top = (self.l as u64 * n_in).checked_sub(1 + self.centre as u64);
        let ready = top.map_or(0, |t| t / self.m as u64 + 1);
        // The row kernel computes whole rows (one output of each of the l phases): a call
        // that ended inside a row would compute that row again in the next call, and a
        // stream of 20 ms chunks would then cover 161 rows a call instead of 160, one
        // 16-row group more (11 instead of 10 at 16k -> 24k). So outputs are released in
        // whole rows, at most l - 1 outputs later; flush still yields every output.
        if self.rows.is_some() {
            ready / self.l as u64 * self.l as u64
        } else {
            ready
        }
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

/// Input samples converted at a time before they are dealt to the residue arrays.
const STAGE: usize = 1024;

/// The error for an output slice of `len` samples that cannot take the `want` a `what`
/// ("push" or "flush") yields.
pub fn check_room(len: usize, want: usize, what: &str) -> Result<()> {
    if len < want {
        return Err(Error::InvalidArgument(format!(
            "output holds {len} samples, the {what} yields {want}"
        )));
    }
    Ok(())
}

/// One stream's state: the input history and the output counter.
#[derive(Debug, Clone)]
pub struct Resampler {
    d: Arc<Design>,
    /// The input history, 32-byte aligned: float `h` holds input `h + base - lead`, for
    /// `h < len`; the first `lead` inputs of a stream are the zeros before input 0. At least
    /// two lanes past `len` are allocated (kernels read up to 15 floats past the newest
    /// input, with zero coefficients) and hold finite values.
    hist: Vec<Lane>,
    len: usize,
    /// A multiple of 8, so that alignment in `hist` is alignment in absolute input index.
    base: u64,
    /// Inputs received (zeros of a flush not counted).
    n_in: u64,
    /// Outputs produced.
    n_out: u64,
    /// f32 outputs of the current call before conversion (grows to the largest call).
    scratch: Vec<f32>,
    /// The current call's columns (aligned window start, bank, chunks) and groups (grow to
    /// the design's period).
    cols: Vec<(usize, usize, usize)>,
    plan: Vec<Group>,
    /// What `plan` was built for: the first output's place in the period, and the columns.
    plan_key: Option<(usize, usize)>,
    /// The history in the row layout, for designs that have one (`hist` is then unused).
    rows: Option<RowState>,
}

/// Two address ranges (start, bytes) a long call touches after the kernel: the next slice's
/// input and this slice's output. Addresses only (the memory is never read through them),
/// so a stream stays `Send`.
#[derive(Debug, Clone, Copy, Default)]
struct Ahead {
    input: (usize, usize),
    output: (usize, usize),
}

impl Ahead {
    /// Cache lines in both ranges.
    fn lines(&self) -> (usize, usize) {
        (self.input.1.div_ceil(64), self.output.1.div_ceil(64))
    }

    /// Asks the cache for lines `from..to` of the input (to read) and of the output (to
    /// write). Between kernel calls the hardware prefetchers lose a stream, and a slice's
    /// input would otherwise come from memory at the pace of demand misses.
    fn warm(&self, input: (usize, usize), output: (usize, usize)) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_ET0, _MM_HINT_T0};
            for i in input.0..input.1 {
                // SAFETY: a prefetch is a hint: it never faults, whatever the address.
                unsafe { _mm_prefetch::<_MM_HINT_T0>((self.input.0 + i * 64) as *const i8) };
            }
            for i in output.0..output.1 {
                // SAFETY: as above.
                unsafe { _mm_prefetch::<_MM_HINT_ET0>((self.output.0 + i * 64) as *const i8) };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (input, output);
    }
}

/// The memory ahead, warmed a share at a time before each of `calls` kernel calls.
struct Warming {
    ahead: Ahead,
    lines: (usize, usize),
    per: (usize, usize),
    k: usize,
}

impl Warming {
    fn new(ahead: Ahead, calls: usize) -> Self {
        let lines = ahead.lines();
        let calls = calls.max(1);
        Warming {
            ahead,
            lines,
            per: (lines.0.div_ceil(calls), lines.1.div_ceil(calls)),
            k: 0,
        }
    }

    /// Warms the next share.
    fn step(&mut self) {
        let (k, (li, lo), (pi, po)) = (self.k, self.lines, self.per);
        self.ahead.warm(
            ((k * pi).min(li), ((k + 1) * pi).min(li)),
            ((k * po).min(lo), ((k + 1) * po).min(lo)),
        );
        self.k += 1;
    }
}

/// A row-layout stream's history: `m` residue arrays of `ts` floats, `t[r * ts + i]` holding
/// history input `A = (tq0 + i) * m + r` (input `A - lead`; the first `lead` are the zeros
/// before input 0). Floats past the newest input hold finite values (zeros or old inputs).
#[derive(Debug, Clone, Default)]
struct RowState {
    t: Vec<f32>,
    ts: usize,
    tq0: u64,
    /// History inputs so far (`A < len_a`).
    len_a: u64,
    /// A call's inputs as f32, and the kernel's column-major outputs (grow to the largest
    /// call).
    stage: Vec<f32>,
    s: Vec<f32>,
}

impl RowState {
    /// Makes every residue array at least `need` floats long.
    fn room(&mut self, m: usize, need: usize) {
        if need <= self.ts {
            return;
        }
        let ts = need.max(2 * self.ts).max(256);
        let mut t = vec![0f32; m * ts];
        for r in 0..m {
            t[r * ts..][..self.ts].copy_from_slice(&self.t[r * self.ts..][..self.ts]);
        }
        self.t = t;
        self.ts = ts;
    }

    /// Appends `x` (as f32) to the history.
    fn append(&mut self, m: usize, x: &[f32]) {
        if x.is_empty() {
            return;
        }
        let need = ((self.len_a + x.len() as u64 - 1) / m as u64 - self.tq0 + 1) as usize;
        self.room(m, need);
        resample_rows::scatter(x, self.len_a, m, &mut self.t, self.ts, self.tq0);
        self.len_a += x.len() as u64;
    }

    /// Drops the history before residue index `keep` (absolute).
    fn drop_before(&mut self, m: usize, keep: u64) {
        // Never past the history received (the next input's index must not fall below tq0;
        // with windows of at least m positions it cannot, this keeps it so regardless).
        let keep = keep.min(self.len_a / m as u64);
        if keep <= self.tq0 {
            return;
        }
        let shift = (keep - self.tq0) as usize;
        let used = (self.len_a.div_ceil(m as u64).saturating_sub(self.tq0) as usize).min(self.ts);
        if shift < used {
            for r in 0..m {
                self.t[r * self.ts..][..used].copy_within(shift..used, 0);
            }
        }
        self.tq0 = keep;
    }
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
        let lanes = if d.rows.is_some() {
            0
        } else {
            (d.lead + d.k + 4096).div_ceil(8) + 2
        };
        let mut r = Resampler {
            d,
            hist: Vec::with_capacity(lanes),
            len: 0,
            base: 0,
            n_in: 0,
            n_out: 0,
            scratch: Vec::new(),
            cols: Vec::new(),
            plan: Vec::new(),
            plan_key: None,
            rows: None,
        };
        if r.d.rows.is_some() {
            r.hist = Vec::new();
            r.rows = Some(RowState::default());
        }
        r.reset();
        r
    }

    /// The filter design.
    pub fn design(&self) -> &Design {
        &self.d
    }

    /// Forgets the stream: the next input is input 0 of a new stream.
    pub fn reset(&mut self) {
        self.n_in = 0;
        self.n_out = 0;
        if let (Some(rs), Some(rd)) = (self.rows.as_mut(), self.d.rows.as_ref()) {
            let m = self.d.m;
            let per = rd.lead / m;
            rs.room(m, per + 1);
            for r in 0..m {
                rs.t[r * rs.ts..][..per].fill(0.0);
            }
            rs.tq0 = 0;
            rs.len_a = rd.lead as u64;
            return;
        }
        let lead = self.d.lead;
        self.grow(lead);
        floats_mut(&mut self.hist)[..lead].fill(0.0);
        self.len = lead;
        self.base = 0;
        self.n_in = 0;
        self.n_out = 0;
    }

    /// Makes room for `len` floats of history plus the lane kernels may read past them.
    fn grow(&mut self, len: usize) {
        let lanes = len.div_ceil(8) + 2;
        if self.hist.len() < lanes {
            self.hist.resize(lanes, ZERO_LANE);
        }
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
        check_room(out.len(), want, "push")?;
        // Large inputs go through in slices, so the history stays in cache (the output is
        // the same however the input is sliced).
        let mut done = 0;
        for (i, part) in x.chunks(SLICE).enumerate() {
            let n = self.pending_outputs(part.len());
            // Memory this slice touches after the kernel, warmed while it runs (a call of
            // one slice warms nothing).
            let mut ahead = Ahead::default();
            if x.len() > SLICE {
                let next = &x[((i + 1) * SLICE).min(x.len())..];
                let next = &next[..next.len().min(SLICE)];
                ahead = Ahead {
                    input: (next.as_ptr() as usize, std::mem::size_of_val(next)),
                    output: (
                        out[done..].as_ptr() as usize,
                        std::mem::size_of_val(&out[done..done + n]),
                    ),
                };
            }
            if let Some(rs) = self.rows.as_mut() {
                // Converted a cache-resident piece at a time, then dealt to the residues.
                let mut stage = std::mem::take(&mut rs.stage);
                for piece in part.chunks(STAGE) {
                    if stage.len() < piece.len() {
                        stage.resize(piece.len(), 0.0);
                    }
                    conv(piece, &mut stage[..piece.len()]);
                    rs.append(self.d.m, &stage[..piece.len()]);
                }
                rs.stage = stage;
            } else {
                let at = self.len;
                self.grow(at + part.len());
                conv(part, &mut floats_mut(&mut self.hist)[at..at + part.len()]);
                self.len += part.len();
            }
            self.n_in += part.len() as u64;
            let off = self.run(n, ahead);
            emit(&self.scratch[off..off + n], &mut out[done..done + n]);
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
        check_room(out.len(), want, "flush")?;
        if want > 0 {
            let last = self.n_out + want as u64 - 1;
            let (_, i_end) = self.d.locate(last);
            // The history must reach input i_end, with zeros after the real inputs.
            if let (Some(rs), Some(rd)) = (self.rows.as_mut(), self.d.rows.as_ref()) {
                let need = i_end + 1 + rd.lead as u64;
                if need > rs.len_a {
                    let zeros = (need - rs.len_a) as usize;
                    let mut stage = std::mem::take(&mut rs.stage);
                    if stage.len() < zeros {
                        stage.resize(zeros, 0.0);
                    }
                    stage[..zeros].fill(0.0);
                    rs.append(self.d.m, &stage[..zeros]);
                    rs.stage = stage;
                }
            } else {
                let need_len = (i_end + 1 + self.d.lead as u64 - self.base) as usize;
                if need_len > self.len {
                    self.grow(need_len);
                    floats_mut(&mut self.hist)[self.len..need_len].fill(0.0);
                    self.len = need_len;
                }
            }
            let off = self.run(want, Ahead::default());
            emit(&self.scratch[off..off + want], &mut out[..want]);
        }
        self.reset();
        Ok(want)
    }

    /// Restarts the stream at output `first` of a signal, as if the inputs before the one
    /// this returns had been pushed: push the signal from that input on. None when output
    /// `first`'s window reaches before input 0 (start from the beginning instead).
    fn seek(&mut self, first: u64) -> Option<usize> {
        if let Some(rd) = self.d.rows.as_ref() {
            // Row `first / l` onward needs the history from residue index q0 + that row.
            let keep = rd.q0 + first / self.d.l as u64;
            let start = (keep * self.d.m as u64).checked_sub(rd.lead as u64)?;
            self.reset();
            let rs = self.rows.as_mut()?;
            rs.tq0 = keep;
            rs.len_a = keep * self.d.m as u64;
            self.n_in = start;
            self.n_out = first;
            return Some(start as usize);
        }
        let (_, e) = self.d.locate(first);
        let start = (e + 1).checked_sub(self.d.k as u64)? & !7;
        self.reset();
        // The history starts at input `start` (so `base - lead = start`) and is empty.
        self.base = start + self.d.lead as u64;
        self.len = 0;
        self.n_in = start;
        self.n_out = first;
        self.plan_key = None;
        Some(start as usize)
    }

    /// Computes the next `count` outputs into `scratch[off..off + count]`, warming `ahead`
    /// meanwhile; returns `off`.
    fn run(&mut self, count: usize, ahead: Ahead) -> usize {
        if count == 0 {
            return 0;
        }
        if self.rows.is_some() {
            return self.run_rows(count, ahead);
        }
        self.run_tiles(count, ahead);
        0
    }

    /// `run` in the row layout.
    fn run_rows(&mut self, count: usize, ahead: Ahead) -> usize {
        let d = &*self.d;
        let (Some(rd), Some(rs)) = (d.rows.as_ref(), self.rows.as_mut()) else {
            return 0;
        };
        let (l, m) = (d.l as u64, d.m);
        let first = self.n_out / l;
        let nrows = ((self.n_out + count as u64 - 1) / l - first + 1) as usize;
        let groups = nrows.div_ceil(GROUP);
        let ss = groups * GROUP;
        // The kernel reads residue indices up to q0 + (res0 + u - 1) / m + first + ss - 1.
        let top = rd.q0 + ((rd.res0 + rd.u - 1) / m) as u64 + first + ss as u64 - rs.tq0;
        rs.room(m, top as usize);
        // One column is already in output order: the kernel writes it to `scratch`.
        let dst = if d.l == 1 {
            &mut self.scratch
        } else {
            &mut rs.s
        };
        if dst.len() < d.l * ss {
            dst.resize(d.l * ss, 0.0);
        }
        let at = (rd.q0 + first - rs.tq0) as usize;
        // In calls of one kernel block each, with a share of the memory ahead warmed before
        // each (spread thin, so the prefetches never queue up): the same outputs, since an
        // output's arithmetic does not depend on the call that computes it.
        let (lin, lout) = ahead.lines();
        let chunk = if lin + lout > 0 {
            resample_rows::block_groups(d.l)
        } else {
            groups
        };
        let calls = groups.div_ceil(chunk);
        let mut warming = Warming::new(ahead, calls);
        for k in 0..calls {
            let g0 = k * chunk;
            warming.step();
            // SAFETY: the kernel's reads stay below `top <= ts` in each residue array from
            // `at` (computed above), its writes within `s[..l * ss]` (rows g0 * 16 on of
            // groups g0..g0 + n < groups); `l <= 6`; the kernel matches the CPU (`kernel`).
            unsafe {
                (resample_rows::kernel())(
                    rs.t.as_ptr().add(at + g0 * GROUP),
                    rs.ts,
                    m,
                    rd.res0,
                    rd.u,
                    rd.w.as_ptr(),
                    d.l,
                    chunk.min(groups - g0),
                    dst.as_mut_ptr().add(g0 * GROUP),
                    ss,
                )
            };
        }
        if d.l > 1 {
            if self.scratch.len() < nrows * d.l {
                self.scratch.resize(nrows * d.l, 0.0);
            }
            resample_rows::gather(&rs.s, ss, d.l, nrows, &mut self.scratch);
        }
        let off = (self.n_out - first * l) as usize;
        self.n_out += count as u64;
        rs.drop_before(m, rd.q0 + self.n_out / l);
        off
    }

    /// `run` with the tile kernel, into `scratch[..count]`.
    fn run_tiles(&mut self, count: usize, ahead: Ahead) {
        if self.scratch.len() < count {
            self.scratch.resize(count, 0.0);
        }
        let d = &*self.d;
        let tile = kernels();
        // Column c holds outputs c, c + period, c + 2 * period, ... (rows): one bank, windows
        // period_in (a multiple of 8) apart. Neighbouring columns whose windows start in the
        // same aligned chunk form a group; a kernel call computes a tile of up to 4 rows of
        // a group of up to 3 columns, loading each input chunk once for the group and each
        // coefficient chunk once for the rows, all loads aligned. Each output's arithmetic
        // is the same whichever call computes it (see `TileFn`), so the chunking of the
        // input cannot change any output.
        // The plan depends only on the first output's place in the period (and on how many
        // columns there are), so a stream of equal chunks builds it once.
        let ncols = d.period.min(count);
        let (p, e) = d.locate(self.n_out);
        let origin = d.window_start(e, self.base) & !7;
        let key = ((self.n_out % d.period as u64) as usize, ncols);
        if self.plan_key != Some(key) {
            self.plan_key = Some(key);
            plan_columns(
                d,
                self.base,
                &mut self.cols,
                &mut self.plan,
                ncols,
                p,
                e,
                origin,
            );
        }
        let x = floats(&self.hist);
        let banks = floats(&d.banks);
        let out = &mut self.scratch[..count];
        // Rows every column has; columns c < extra have one more. Blocks of rows, each
        // across all groups, keep the inputs in use in cache.
        let (full, extra) = (count / d.period, count % d.period);
        let (pi, po) = (d.period_in, d.period);
        let mut warming = Warming::new(ahead, full.div_ceil(ROW_BLOCK));
        let mut r0 = 0;
        while r0 < full {
            let nr = (full - r0).min(ROW_BLOCK);
            warming.step();
            for g in &self.plan {
                let (a0, o) = (origin + g.a0 + r0 * pi, &mut out[g.c0 + r0 * po..]);
                tile(x, a0, pi, banks, &g.w, g.ncols, g.nch, nr, o, po);
            }
            r0 += nr;
        }
        for g in &self.plan {
            let ne = extra.saturating_sub(g.c0).min(g.ncols);
            if ne > 0 {
                let (a0, o) = (origin + g.a0 + full * pi, &mut out[g.c0 + full * po..]);
                tile(x, a0, pi, banks, &g.w, ne, g.nch, 1, o, po);
            }
        }
        self.n_out += count as u64;
        // Drop history no future output needs (before the next output's aligned window).
        let (_, e) = d.locate(self.n_out);
        let keep_from = d.window_start(e, self.base).min(self.len) & !7;
        if keep_from > 0 {
            let lanes = self.len.div_ceil(8);
            self.hist.copy_within(keep_from / 8..lanes, 0);
            self.len -= keep_from;
            self.base += keep_from as u64;
        }
    }
}

/// Builds the groups of `ncols` columns from the first output's phase `p` and newest
/// input `e`, window starts relative to `origin`.
#[allow(clippy::too_many_arguments)]
fn plan_columns(
    d: &Design,
    base: u64,
    cols: &mut Vec<(usize, usize, usize)>,
    plan: &mut Vec<Group>,
    ncols: usize,
    mut p: usize,
    mut e: u64,
    origin: usize,
) {
    cols.clear();
    for _ in 0..ncols {
        let h = d.window_start(e, base);
        let b = p * 8 + (h & 7);
        cols.push(((h & !7) - origin, b * d.kc * 8, d.bank_nch[b] as usize));
        let (np, adv) = d.step[p];
        p = np as usize;
        e += adv as u64;
    }
    // Split each run of columns that share an aligned start into groups of at most
    // MAX_COLS, as even as possible.
    plan.clear();
    let mut start = 0;
    while start < ncols {
        let mut end = start + 1;
        while end < ncols && cols[end].0 == cols[start].0 {
            end += 1;
        }
        let n = end - start;
        let parts = n.div_ceil(MAX_COLS);
        let mut g0 = start;
        for i in 0..parts {
            let g1 = start + n * (i + 1) / parts;
            let mut g = Group {
                c0: g0,
                ncols: g1 - g0,
                a0: cols[g0].0,
                w: [0; MAX_COLS],
                nch: 0,
            };
            for (q, c) in cols[g0..g1].iter().enumerate() {
                g.w[q] = c.1;
                g.nch = g.nch.max(c.2);
            }
            plan.push(g);
            g0 = g1;
        }
        start = end;
    }
}

/// Rows per kernel call at most (a block of rows across all groups at a time).
const ROW_BLOCK: usize = 64;

/// Most rows and columns of a kernel tile (4 x 3 accumulators, 3 coefficient vectors and
/// an input vector fill the 16 AVX2 registers).
const MAX_ROWS: usize = 4;
const MAX_COLS: usize = 3;

/// Neighbouring columns whose windows start in the same aligned chunk.
#[derive(Debug, Clone, Copy)]
struct Group {
    /// First column and how many.
    c0: usize,
    ncols: usize,
    /// Aligned window start of the group's first row, relative to the first column's.
    a0: usize,
    /// Each column's bank (offset into the bank floats).
    w: [usize; MAX_COLS],
    /// Chunks: the most any of its banks needs (the others have zeros there).
    nch: usize,
}

/// Computes `rows` (any) x `ncols` (1..=3) outputs, in tiles of up to 4 rows: output (r, c) is the dot
/// product of `x[a0 + r * stride..][..nch * 8]` with `banks[w[c]..][..nch * 8]`, accumulated
/// in 8 lanes over chunks of 8 in order, then reduced as `((l0 + l1) + (l2 + l3)) + ((l4 +
/// l5) + (l6 + l7))`, and written to `out[r * ostride + c]`. `a0`, `stride` and the `w` are
/// multiples of 8, `x` and `banks` 32-byte aligned. Chunks of zero coefficients past an
/// output's own add exact zeros (an accumulator that starts at +0 is never -0, and the
/// inputs are finite), so they do not change it.
type TileFn =
    fn(&[f32], usize, usize, &[f32], &[usize; MAX_COLS], usize, usize, usize, &mut [f32], usize);

fn kernels() -> TileFn {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        return tile_avx2;
    }
    tile_scalar
}

#[allow(clippy::too_many_arguments)]
fn tile_scalar(
    x: &[f32],
    a0: usize,
    stride: usize,
    banks: &[f32],
    w: &[usize; MAX_COLS],
    ncols: usize,
    nch: usize,
    rows: usize,
    out: &mut [f32],
    ostride: usize,
) {
    for r in 0..rows {
        let xs = &x[a0 + r * stride..][..nch * 8];
        for c in 0..ncols {
            let ws = &banks[w[c]..][..nch * 8];
            let mut acc = [0f32; 8];
            for (cx, cw) in xs.chunks_exact(8).zip(ws.chunks_exact(8)) {
                for j in 0..8 {
                    acc[j] += cx[j] * cw[j];
                }
            }
            out[r * ostride + c] =
                ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
fn tile_avx2(
    x: &[f32],
    a0: usize,
    stride: usize,
    banks: &[f32],
    w: &[usize; MAX_COLS],
    ncols: usize,
    nch: usize,
    rows: usize,
    out: &mut [f32],
    ostride: usize,
) {
    assert!(
        rows >= 1
            && (1..=MAX_COLS).contains(&ncols)
            && a0.is_multiple_of(8)
            && stride.is_multiple_of(8)
            && (x.as_ptr() as usize).is_multiple_of(32)
            && (banks.as_ptr() as usize).is_multiple_of(32)
            && a0 + (rows - 1) * stride + nch * 8 <= x.len()
            && w[..ncols]
                .iter()
                .all(|&o| o.is_multiple_of(8) && o + nch * 8 <= banks.len())
            && (rows - 1) * ostride + ncols <= out.len()
    );
    // SAFETY: in bounds (asserted).
    let xp = unsafe { x.as_ptr().add(a0) };
    let wp = w.map(|o| banks.as_ptr().wrapping_add(o));
    let op = out.as_mut_ptr();
    // SAFETY: AVX2 and FMA are present (checked by `kernels`); every load is aligned and
    // in bounds, every store in bounds (asserted above).
    unsafe {
        match ncols {
            1 => tile_rows_avx2::<1>(xp, stride, &wp, nch, rows, op, ostride),
            2 => tile_rows_avx2::<2>(xp, stride, &wp, nch, rows, op, ostride),
            _ => tile_rows_avx2::<3>(xp, stride, &wp, nch, rows, op, ostride),
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_rows_avx2<const C: usize>(
    x: *const f32,
    stride: usize,
    w: &[*const f32; MAX_COLS],
    nch: usize,
    rows: usize,
    out: *mut f32,
    ostride: usize,
) {
    let mut r = 0;
    while r + MAX_ROWS <= rows {
        tile_avx2_impl::<MAX_ROWS, C>(
            x.add(r * stride),
            stride,
            w,
            nch,
            out.add(r * ostride),
            ostride,
        );
        r += MAX_ROWS;
    }
    let (x, out) = (x.add(r * stride), out.add(r * ostride));
    match rows - r {
        1 => tile_avx2_impl::<1, C>(x, stride, w, nch, out, ostride),
        2 => tile_avx2_impl::<2, C>(x, stride, w, nch, out, ostride),
        3 => tile_avx2_impl::<3, C>(x, stride, w, nch, out, ostride),
        _ => {}
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile_avx2_impl<const R: usize, const C: usize>(
    x: *const f32,
    stride: usize,
    w: &[*const f32; MAX_COLS],
    nch: usize,
    out: *mut f32,
    ostride: usize,
) {
    use std::arch::x86_64::*;
    let xs: [*const f32; R] = std::array::from_fn(|r| x.add(r * stride));
    let mut a = [[_mm256_setzero_ps(); C]; R];
    for ch in 0..nch {
        let wv: [__m256; C] = std::array::from_fn(|c| _mm256_load_ps(w[c].add(ch * 8)));
        for r in 0..R {
            let xv = _mm256_load_ps(xs[r].add(ch * 8));
            for c in 0..C {
                a[r][c] = _mm256_fmadd_ps(xv, wv[c], a[r][c]);
            }
        }
    }
    // Reduce 8 accumulators at a time (output (r, c) is accumulator r * C + c).
    let mut acc = [_mm256_setzero_ps(); 16];
    for r in 0..R {
        for c in 0..C {
            acc[r * C + c] = a[r][c];
        }
    }
    let mut v = [0f32; 16];
    let (lo, hi) = acc.split_at(8);
    _mm256_storeu_ps(v.as_mut_ptr(), reduce8(lo.try_into().unwrap()));
    if R * C > 8 {
        _mm256_storeu_ps(v.as_mut_ptr().add(8), reduce8(hi.try_into().unwrap()));
    }
    for r in 0..R {
        for c in 0..C {
            *out.add(r * ostride + c) = v[r * C + c];
        }
    }
}

/// `[sum(a[0]), ..., sum(a[7])]`, each as `((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn reduce8(a: &[std::arch::x86_64::__m256; 8]) -> std::arch::x86_64::__m256 {
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

/// Rounds and saturates filter outputs to int16 (ties to even; NaN cannot occur: inputs are
/// checked finite). One pass, which vectorises (with AVX2 where the CPU has it; the results
/// are the same either way).
pub fn emit_i16(y: &[f32], out: &mut [i16]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F is present.
        return unsafe { emit_i16_avx512(y, out) };
    }
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

/// `emit_i16` 16 at a time: clamp, convert rounding to nearest (ties to even), narrow.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn emit_i16_avx512(y: &[f32], out: &mut [i16]) {
    use std::arch::x86_64::*;
    let n = out.len().min(y.len());
    let (lo, hi) = (_mm512_set1_ps(-32768.0), _mm512_set1_ps(32767.0));
    let mut i = 0;
    while i + 16 <= n {
        let v = _mm512_loadu_ps(y.as_ptr().add(i));
        let v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
        let r = _mm512_cvt_roundps_epi32::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
        _mm256_storeu_si256(
            out.as_mut_ptr().add(i).cast::<__m256i>(),
            _mm512_cvtsepi32_epi16(r),
        );
        i += 16;
    }
    emit_i16_body(&y[i..n], &mut out[i..n]);
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
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F is present.
        return unsafe { conv_i16_avx512(x, out) };
    }
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

/// `conv_i16` 16 at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn conv_i16_avx512(x: &[i16], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = out.len().min(x.len());
    let mut i = 0;
    while i + 16 <= n {
        let v = _mm256_loadu_si256(x.as_ptr().add(i).cast::<__m256i>());
        _mm512_storeu_ps(
            out.as_mut_ptr().add(i),
            _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(v)),
        );
        i += 16;
    }
    conv_i16_body(&x[i..n], &mut out[i..n]);
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
/// Input samples a part of a split one-shot call takes at least.
const MIN_PART: usize = 64 * 1024;

/// Resamples a whole signal (process, then flush) into `out`, which must hold
/// `d.total_outputs(x.len())`; returns how many. With `threads` > 1 and a long enough input
/// the signal is cut into up to `threads` parts run on scoped threads, each part's resampler
/// started mid-stream (`seek`): the output is bit-identical to one thread's, since every
/// output's arithmetic is the same whichever call computes it.
pub fn one_shot_with<T, U>(
    d: &Arc<Design>,
    x: &[T],
    conv: impl Fn(&[T], &mut [f32]) + Sync,
    out: &mut [U],
    emit: impl Fn(&[f32], &mut [U]) + Sync,
    threads: usize,
) -> Result<usize>
where
    T: Sync,
    U: Send,
{
    let total = d.total_outputs(x.len() as u64) as usize;
    check_room(out.len(), total, "one-shot call")?;
    let parts = threads.clamp(1, (x.len() / MIN_PART).max(1));
    // Part i takes inputs [cut[i], cut[i + 1]) and the outputs they complete; the last part
    // also flushes. Each part after the first seeks to its first output.
    let cuts: Vec<usize> = (0..=parts).map(|i| x.len() * i / parts).collect();
    let firsts: Vec<usize> = cuts[..parts]
        .iter()
        .map(|&c| d.outputs_ready(c as u64) as usize)
        .collect();
    let mut streams = Vec::with_capacity(parts);
    for (i, &f) in firsts.iter().enumerate() {
        let mut r = Resampler::with_design(d.clone());
        let from = if i == 0 { Some(0) } else { r.seek(f as u64) };
        match from {
            Some(from) => streams.push((r, from)),
            None => {
                // Too short to split this far: one stream does it all.
                let mut r = Resampler::with_design(d.clone());
                let head = r.process_with(x, &conv, out, &emit)?;
                return Ok(head + r.flush_with(&mut out[head..], &emit)?);
            }
        }
    }
    let mut rest = &mut out[..total];
    let mut slots = Vec::with_capacity(parts);
    for i in 0..parts {
        let end = if i + 1 < parts { firsts[i + 1] } else { total };
        let (head, tail) = rest.split_at_mut(end - firsts[i]);
        slots.push(head);
        rest = tail;
    }
    // Each part's stream, first input and output slot, taken by whichever thread runs it.
    let cells: Vec<_> = streams
        .into_iter()
        .zip(slots)
        .map(|((r, from), o)| Mutex::new(Some((r, from, o))))
        .collect();
    let job = |i: usize| -> Result<()> {
        let taken = cells[i].lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some((mut r, from, o)) = taken else {
            return Ok(()); // already run
        };
        let head = r.process_with(&x[from..cuts[i + 1]], &conv, o, &emit)?;
        if i + 1 == parts {
            r.flush_with(&mut o[head..], &emit)?;
        }
        Ok(())
    };
    std::thread::scope(|sc| {
        let job = &job;
        let mut result = Ok(());
        let mut handles = Vec::with_capacity(parts);
        for i in 1..parts {
            match std::thread::Builder::new().spawn_scoped(sc, move || job(i)) {
                Ok(h) => handles.push(h),
                // No thread to be had: this one does the part.
                Err(_) => result = result.and(job(i)),
            }
        }
        result = result.and(job(0));
        for h in handles {
            result = result.and(h.join().unwrap_or_else(|_| {
                Err(Error::InvalidArgument(
                    "a resampling thread failed".to_owned(),
                ))
            }));
        }
        result
    })?;
    Ok(total)
}

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
    fn split_one_shot_is_bit_identical_to_one_thread() {
        let mut seed = 7u32;
        let x: Vec<i16> = (0..3 * MIN_PART + 5)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (seed >> 16) as i16
            })
            .collect();
        for (a, b) in [(24000, 16000), (16000, 24000), (44100, 16000)] {
            for q in [Quality::High, Quality::LowLatency] {
                let d = Design::shared(a, b, q).unwrap();
                for n in [x.len(), 2 * MIN_PART - 1, 1000] {
                    let x = &x[..n];
                    let total = d.total_outputs(n as u64) as usize;
                    let mut one = vec![0i16; total];
                    let got = one_shot_with(&d, x, conv_i16, &mut one, emit_i16, 1).unwrap();
                    assert_eq!(got, total);
                    // One stream, chunked: the reference.
                    let mut r = Resampler::with_design(d.clone());
                    let mut streamed = vec![0i16; total];
                    let mut done = 0;
                    for c in x.chunks(4801) {
                        let k = r.pending_outputs(c.len());
                        r.process_with(c, conv_i16, &mut streamed[done..done + k], emit_i16)
                            .unwrap();
                        done += k;
                    }
                    r.flush_with(&mut streamed[done..], emit_i16).unwrap();
                    assert_eq!(one, streamed, "{a}->{b} {q:?} n={n}");
                    for threads in [2, 3] {
                        let mut par = vec![0i16; total];
                        one_shot_with(&d, x, conv_i16, &mut par, emit_i16, threads).unwrap();
                        assert_eq!(par, one, "{a}->{b} {q:?} n={n} threads={threads}");
                    }
                }
            }
        }
    }

    #[test]
    fn other_rates_stream_like_one_shot_and_keep_a_tone() {
        // Rates outside RATES (12 kHz, 96 kHz, 37.8 kHz, 192 kHz) through both kernels.
        for (a, b) in [
            (12000, 24000),
            (24000, 12000),
            (96000, 24000),
            (37800, 16000),
            (192000, 8000),
            (12000, 44100),
        ] {
            let x = tone(a as usize / 2, a, 440.0, 0.5);
            let once = resample_f32(&x, a, b, Quality::High).unwrap();
            let d = Design::new(a, b, Quality::High).unwrap();
            assert_eq!(
                once.len() as u64,
                d.total_outputs(x.len() as u64),
                "{a}->{b}"
            );
            let mut r = Resampler::new(a, b, Quality::High).unwrap();
            let mut got = Vec::new();
            for c in x.chunks(333) {
                let mut o = vec![0f32; r.pending_outputs(c.len())];
                r.process_with(c, conv_f32, &mut o, emit_f32).unwrap();
                got.extend(o);
            }
            let mut t = vec![0f32; r.flush_outputs()];
            r.flush_with(&mut t, emit_f32).unwrap();
            got.extend(t);
            assert_eq!(got, once, "{a}->{b}");
            // The middle of the output is the same 440 Hz tone at the new rate.
            let want = tone(once.len(), b, 440.0, 0.5);
            let (lo, hi) = (once.len() / 4, once.len() * 3 / 4);
            let err = once[lo..hi]
                .iter()
                .zip(&want[lo..hi])
                .map(|(p, q)| (p - q).abs())
                .fold(0f32, f32::max);
            assert!(err < 5e-3, "{a}->{b}: {err}");
        }
        for (a, b) in [
            (12345, 16000),
            (999, 8000),
            (16000, 400_000),
            (44056, 24000),
        ] {
            assert!(Design::new(a, b, Quality::High).is_err(), "{a}->{b}");
        }
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
    fn every_pair_streams_like_one_shot_and_matches_a_direct_convolution() {
        // Every supported pair (row and tile kernels, every column and residue count), a
        // chunking that lands anywhere in a row, against the filter applied the slow way.
        let x = tone(2000, 48000, 1234.5, 0.5);
        for &a in &RATES {
            for &b in &RATES {
                let d = Design::new(a, b, Quality::High).unwrap();
                let once = resample_f32(&x, a, b, Quality::High).unwrap();
                let mut r = Resampler::new(a, b, Quality::High).unwrap();
                let mut got = Vec::new();
                for c in x.chunks(37) {
                    let mut o = vec![0f32; r.pending_outputs(c.len())];
                    r.process_with(c, conv_f32, &mut o, emit_f32).unwrap();
                    got.extend(o);
                }
                let mut t = vec![0f32; r.flush_outputs()];
                r.flush_with(&mut t, emit_f32).unwrap();
                got.extend(t);
                assert_eq!(got, once, "{a}->{b}");
                let phases: Vec<Vec<f32>> = (0..d.l).map(|p| d.phase_coefs(p)).collect();
                for (j, &y) in once.iter().enumerate().step_by(7) {
                    let (p, e) = d.locate(j as u64);
                    let mut want = 0f64;
                    for (t, &c) in phases[p].iter().enumerate() {
                        let i = e as i64 - (d.k as i64 - 1) + t as i64;
                        if (0..x.len() as i64).contains(&i) {
                            want += c as f64 * x[i as usize] as f64;
                        }
                    }
                    assert!((y as f64 - want).abs() < 1e-5, "{a}->{b} {j}");
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
    fn conversions_agree_with_their_scalar_definitions() {
        let mut y: Vec<f32> = vec![
            0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 32766.5, 32767.5, -32767.5, -32768.5, 1e9, -1e9,
            0.49999997, -0.0, 3.0e4, -3.3e4,
        ];
        y.extend((0..100).map(|i| ((i as f32) * 0.77).sin() * 40000.0));
        for n in [0, 5, 16, 17, y.len()] {
            let mut a = vec![0i16; n];
            let mut b = vec![0i16; n];
            emit_i16(&y[..n], &mut a);
            emit_i16_body(&y[..n], &mut b);
            assert_eq!(a, b, "n={n}");
        }
        let x: Vec<i16> = (0..77).map(|i| (i * 997 % 65536 - 32768) as i16).collect();
        let mut a = vec![0f32; 77];
        let mut b = vec![0f32; 77];
        conv_i16(&x, &mut a);
        conv_i16_body(&x, &mut b);
        assert_eq!(a, b);
        assert_eq!(a[0], -32768.0);
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
        let h: Vec<Lane> = (0..60)
            .map(|i| Lane(std::array::from_fn(|j| ((i * 8 + j) as f32 * 0.37).sin())))
            .collect();
        let c: Vec<Lane> = (0..40)
            .map(|i| Lane(std::array::from_fn(|j| ((i * 8 + j) as f32 * 0.11).cos())))
            .collect();
        let (x, w) = (floats(&h), floats(&c));
        for rows in 1..=MAX_ROWS {
            for ncols in 1..=MAX_COLS {
                for nch in [1, 3, 12] {
                    let mut s = vec![0f32; 64];
                    let mut v = vec![0f32; 64];
                    let b = [0, 96, 200];
                    tile_scalar(x, 16, 24, w, &b, ncols, nch, rows, &mut s, 5);
                    (kernels())(x, 16, 24, w, &b, ncols, nch, rows, &mut v, 5);
                    for i in 0..64 {
                        assert!((s[i] - v[i]).abs() < 1e-4, "{rows} {ncols} {nch} {i}");
                    }
                    assert_eq!(s.iter().filter(|&&y| y != 0.0).count(), rows * ncols);
                }
            }
        }
    }

    #[test]
    fn outputs_match_a_direct_convolution() {
        // Every output against the filter applied the slow way (f64), for pairs whose
        // banks, columns and phases differ.
        let x = tone(3000, 48000, 1234.5, 0.5);
        for (a, b) in [
            (24000, 16000),
            (16000, 24000),
            (44100, 16000),
            (8000, 11025),
        ] {
            for q in [Quality::High, Quality::LowLatency, Quality::Analysis] {
                let d = Design::new(a, b, q).unwrap();
                let y = resample_f32(&x, a, b, q).unwrap();
                let phases: Vec<Vec<f32>> = (0..d.l).map(|p| d.phase_coefs(p)).collect();
                for (j, &got) in y.iter().enumerate() {
                    let (p, e) = d.locate(j as u64);
                    let mut want = 0f64;
                    for (t, &c) in phases[p].iter().enumerate() {
                        let i = e as i64 - (d.k as i64 - 1) + t as i64;
                        if (0..x.len() as i64).contains(&i) {
                            want += c as f64 * x[i as usize] as f64;
                        }
                    }
                    assert!((got as f64 - want).abs() < 1e-5, "{a}->{b} {q:?} {j}");
                }
            }
        }
    }
}
