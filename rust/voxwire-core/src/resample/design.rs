//! The filter design: a Kaiser-windowed sinc prototype for a rate pair and preset, its
//! phases, and the schedule a stream follows (the row layout or the tile kernel's banks).

use super::rows::MAX_LM;
use super::{supported_pair, Quality, MAX_FACTOR, MAX_RATE, MIN_RATE, RATES};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

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
    pub(super) proto: Vec<f32>,
    /// Coefficient banks, one per phase `p` and alignment `s` (index `p * 8 + s`), each
    /// `kc` chunks of 8 (see `bank`).
    pub(super) banks: Vec<Lane>,
    /// Chunks per bank.
    pub(super) kc: usize,
    /// For each bank: how many chunks it needs (the rest of its `kc` are zeros).
    pub(super) bank_nch: Vec<u32>,
    /// Outputs `j` and `j + period` use the same bank, their windows `period_in` inputs
    /// (a multiple of 8) apart.
    pub(super) period: usize,
    pub(super) period_in: usize,
    /// Zeros before input 0 in a stream's history (a multiple of 8, at least `k - 1`).
    pub(super) lead: usize,
    /// For each phase `p`: the next output's phase and how far its window moves, so that
    /// stepping from output to output needs no division.
    pub(super) step: Vec<(u32, u32)>,
    /// The row layout, for pairs with `l` and `m` at most 6 (see `rows`); the
    /// others use the tile kernel over `banks`.
    pub(super) rows: Option<RowDesign>,
}

/// The row kernel's view of a design: output `c + l * R` (column `c`, row `R`) is the sum
/// over `i < u` of `w[c * u + i]` times input `a0 + i + R * m - lead`.
#[derive(Debug, Clone)]
pub(super) struct RowDesign {
    /// Window positions (the union of the columns' taps).
    pub(super) u: usize,
    /// Zeros before input 0 in a stream's history (a multiple of `m`).
    pub(super) lead: usize,
    /// Position 0 of row 0 in the history, `a0 = q0 * m + res0`.
    pub(super) q0: u64,
    pub(super) res0: usize,
    /// Coefficients, `u` per column (zero outside the column's own taps).
    pub(super) w: Vec<f32>,
}

/// Eight f32, 32-byte aligned.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(32))]
pub(super) struct Lane(pub(super) [f32; 8]);

pub(super) const ZERO_LANE: Lane = Lane([0.0; 8]);

pub(super) fn floats(v: &[Lane]) -> &[f32] {
    // SAFETY: `Lane` is eight f32 with no padding.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const f32, v.len() * 8) }
}

pub(super) fn floats_mut(v: &mut [Lane]) -> &mut [f32] {
    // SAFETY: `Lane` is eight f32 with no padding.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut f32, v.len() * 8) }
}

pub(super) fn gcd(a: u64, b: u64) -> u64 {
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
    pub(super) fn locate(&self, j: u64) -> (usize, u64) {
        let t = j * self.m as u64 + self.centre as u64;
        ((t % self.l as u64) as usize, t / self.l as u64)
    }

    /// History index of the (unaligned) window start of the output whose newest input is
    /// `e`, in a history that starts at absolute input `base - lead`.
    #[inline]
    pub(super) fn window_start(&self, e: u64, base: u64) -> usize {
        (e + self.lead as u64 + 1 - self.k as u64 - base) as usize
    }

    /// How many outputs are computable once `n_in` inputs have arrived.
    pub(super) fn outputs_ready(&self, n_in: u64) -> u64 {
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
