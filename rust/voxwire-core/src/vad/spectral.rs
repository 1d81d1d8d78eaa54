//! A statistical model-based VAD (Sohn, Kim and Sung, "A statistical model-based voice
//! activity detector", IEEE Signal Processing Letters 6(1), 1999), with the noise spectrum
//! tracked by minimum statistics (after R. Martin, 2001).
//!
//! Per frame: the power spectrum over 100-4000 Hz from a Hann-windowed FFT of the last
//! ~30 ms (folded to half length for frames of up to 10 ms); per bin, the a posteriori SNR against the noise estimate and a decision-directed
//! a priori SNR; the mean log likelihood ratio of speech against noise, smoothed, decides
//! (with a short hangover). The noise estimate is the bias-corrected minimum of the smoothed
//! power over the last 1.5 s, which needs no speech decision (so it cannot lock up when
//! speech starts at once) and follows noise that changes within seconds. The band limits
//! ignore hum below 100 Hz. All time constants are in seconds, so any frame length behaves
//! alike.
//!
//! At 16 kHz the same transform also gives the 4-8 kHz band's power and its noise before the
//! speech (for the turn detector's end of turn: fricatives); it does not enter the decisions.

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;

const LOW_HZ: f32 = 100.0;
const HIGH_HZ: f32 = 4000.0;
/// Threshold on the smoothed mean log likelihood ratio.
const ETA: f32 = 0.3;
/// Decision-directed a priori SNR weight, per 10 ms.
const A_DD_10MS: f32 = 0.98;
/// Smoothing of the power for minimum statistics, per 10 ms.
const ALPHA_S_10MS: f32 = 0.8;
/// Smoothing of the log likelihood ratio, per 10 ms.
const ALPHA_LLR_10MS: f32 = 0.5;
/// Minimum statistics: sub-windows of 0.25 s, 6 of them (1.5 s), bias 2.
const SUB_S: f32 = 0.25;
const N_SUB: usize = 6;
/// Frames appended to the history before its window is moved back to the front.
const HIST_FRAMES: usize = 16;
const BIAS: f32 = 2.0;
const HANGOVER_S: f32 = 0.12;
const FLOOR: f32 = 1e-3;
/// Slope of the logistic that maps the smoothed log likelihood ratio to a probability:
/// noise (ratio about 0) maps to about 0.08, the threshold to 0.5, speech to nearly 1.
const PROB_SLOPE: f32 = 8.0;
/// No input is assumed quieter than white noise at this level (a real microphone chain's
/// floor is higher): against digital silence, the faintest tail would otherwise count as
/// speech by its SNR.
const NOISE_FLOOR_DBFS: f32 = -70.0;
/// Bound on the per-frame log likelihood ratio before smoothing.
const LLR_CAP: f32 = 1.0;
/// A frame's high-band power counts as standing above the noise heard before the speech
/// when it is at least this many times that noise's mean.
const HIGH_BAND_RATIO: f32 = 2.0;
/// Minimum statistics bias for the high band's power (a sum over tens of bins, so much
/// less spread than one bin's): mean noise over the minimum of its smoothed value.
const HIGH_BAND_BIAS: f32 = 1.3;

/// Spectral (statistical model) VAD for frames of a fixed length.
#[derive(Clone)]
pub struct SpectralVad {
    hop: usize,
    win: usize,
    k0: usize,
    /// The real transform of `nfft` points as a complex one of `nfft / 2`: the windowed
    /// (folded) frame's even and odd samples are its real and imaginary parts.
    fft: Arc<dyn Fft<f32>>,
    window: Vec<f32>,
    /// The last `win` input samples (at `at`, with room for HIST_FRAMES frames after them),
    /// and how many of them are real input so far.
    hist: Vec<f32>,
    /// Where the window starts in `hist`: the last `win` samples are `hist[at..at + win]`
    /// (new frames are appended after them; the window moves to the front when full).
    at: usize,
    filled: usize,
    /// The transform's buffer (`nfft / 2` complex points) and scratch.
    buf: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    /// Per band bin k: the twiddle `e^(-2 pi i k / nfft)` (cos, sin), and the spectrum's
    /// bins k and nfft/2 - k of the half-length transform (gathered for a vectorised pass).
    tw_c: Vec<f32>,
    tw_s: Vec<f32>,
    za: Vec<Complex<f32>>,
    zb: Vec<Complex<f32>>,
    /// Per band bin: smoothed power, running minimum of this sub-window, minima of the
    /// previous sub-windows (a ring of N_SUB), and the last clean-speech power estimate.
    psm: Vec<f32>,
    cur_min: Vec<f32>,
    /// Minima of the last N_SUB sub-windows, `nb` each, as a ring (`n_mins` filled, the
    /// next written at `next_min`).
    mins: Vec<f32>,
    n_mins: usize,
    next_min: usize,
    /// Per band bin, the least of the ring's minima (+inf while the ring is empty).
    ring_min: Vec<f32>,
    /// This frame's band power (padding stays FLOOR), and 1/0 weights of real/padding bins.
    power: Vec<f32>,
    weight: Vec<f32>,
    term: Vec<f32>,
    n_real: usize,
    prev_a2: Vec<f32>,
    /// Per band bin, the noise estimate as it was when speech last began after at least a
    /// hangover's length of non-speech (`quiet_run` frames so far): the noise heard before
    /// the current speech, which minimum statistics would overestimate once speech has
    /// lasted its 1.5 s window.
    quiet_noise: Vec<f32>,
    /// Scratch for [`Self::speech_fraction`]: per band bin, the power above `quiet_noise`.
    excess: Vec<f32>,
    quiet_run: u32,
    /// The high band, from the main band's top to the Nyquist rate, where fricatives (s, sh,
    /// f, th) put most of their energy: 4-8 kHz at 16 kHz, the one rate where it is the
    /// main band's mirror image (bins nfft / 2 - k), which makes it cheap (none at other
    /// rates). It does not enter the decisions (see [`Self::high_band_energy`]). Whether
    /// there is one; the twiddles (cos, sin) of the bins under the main band (1 <= k < k0);
    /// per frame, per main band bin, its mirror bin's power (0 for padding); the band's
    /// power; that power smoothed, its minimum in this sub-window and in the last N_SUB (a
    /// ring, advanced with the main band's), and its noise estimate as it was when the
    /// current speech began (as `quiet_noise`).
    has_hi: bool,
    below_tw: Vec<(f32, f32)>,
    hi_term: Vec<f32>,
    hi_power: f32,
    hi_psm: f32,
    hi_cur_min: f32,
    hi_mins: [f32; N_SUB],
    hi_ring_min: f32,
    hi_quiet_noise: f32,
    hi_floor: f32,
    /// Frame energy (sum of squares over a frame) per unit of band power.
    energy_per_power: f32,
    hold_frames: u32,
    a_dd: f32,
    alpha_s: f32,
    alpha_llr: f32,
    sub_frames: usize,
    settle_frames: usize,
    /// Least noise power a bin is assumed to have (NOISE_FLOOR_DBFS white noise).
    noise_floor: f32,
    hangover: super::Hangover,
    frame_no: usize,
    llr_s: f32,
}

impl std::fmt::Debug for SpectralVad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpectralVad")
            .field("hop", &self.hop)
            .field("win", &self.win)
            .finish_non_exhaustive()
    }
}

impl SpectralVad {
    /// A detector for frames of `hop` samples at `rate` Hz.
    pub fn new(rate: u32, hop: usize) -> Self {
        let win = ((0.03 * rate as f32) as usize)
            .next_power_of_two()
            .max(hop.next_power_of_two());
        // For frames of up to 10 ms the windowed frame is folded in two (x[n] + x[n + win/2])
        // before the transform: the folded signal's DFT is the full window's at every other
        // bin, so the bins keep the window's time span (what smooths the decisions) at half
        // the cost. Half the bins make the per-frame statistic noisier; at 10 ms hops the
        // smoothing across frames absorbs that (the same false alarms on white and pink
        // noise, the same vad-dev F1 and turn timing), at 20 ms hops false alarms on noise
        // doubled (2-4% to 5-9%), so longer frames keep the full transform.
        let fold = hop as u64 * 1000 <= 10 * rate as u64;
        let nfft = if fold { win / 2 } else { win };
        let k0 = ((LOW_HZ * nfft as f32 / rate as f32).ceil() as usize).max(1);
        let k1 = ((HIGH_HZ.min(rate as f32 / 2.0) * nfft as f32 / rate as f32).floor() as usize)
            .clamp(k0 + 1, nfft / 2);
        let half = nfft / 2;
        let fft = FftPlanner::<f32>::new().plan_fft_forward(half);
        let window = (0..win)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / win as f32).cos())
            .collect();
        let frame_s = hop as f32 / rate as f32;
        let per10 = |a: f32| a.powf(frame_s / 0.01);
        // Per-bin state is padded to whole lanes of 8; `weight` is 1 for real bins, 0 for
        // the padding.
        let nb = (k1 - k0).div_ceil(8) * 8;
        // e^(-2 pi i k / nfft) as (cos, sin), and the same for band bin j (bin k0 + j).
        let twiddle_of = |k: usize| {
            let a = 2.0 * std::f64::consts::PI * k as f64 / nfft as f64;
            (a.cos() as f32, a.sin() as f32)
        };
        let twiddle = |j: usize| twiddle_of(k0 + j);
        let zero = Complex::new(0.0, 0.0);
        let hangover_frames = (HANGOVER_S / frame_s).round() as u32;
        let hold_frames = hangover_frames.max(1);
        // The high band, bins k1 to half - 1, when the main band's top is a quarter of the
        // rate (k1 = half / 2).
        let has_hi = 2 * k1 == half;
        let nh = if has_hi { half - k1 } else { 0 };
        // White noise of RMS r gives each bin sum(w^2) * r^2 = 0.375 * win * r^2.
        let noise_floor =
            0.375 * win as f32 * (32768.0 * 10f32.powf(NOISE_FLOOR_DBFS / 20.0)).powi(2);
        SpectralVad {
            hop,
            win,
            k0,
            scratch: vec![zero; fft.get_inplace_scratch_len()],
            fft,
            window,
            hist: vec![0.0; win + HIST_FRAMES * hop.min(win)],
            at: 0,
            filled: 0,
            buf: vec![zero; half],
            tw_c: (0..nb).map(|j| twiddle(j).0).collect(),
            tw_s: (0..nb).map(|j| twiddle(j).1).collect(),
            za: vec![zero; nb],
            zb: vec![zero; nb],
            psm: vec![0.0; nb],
            cur_min: vec![0.0; nb],
            mins: vec![0.0; N_SUB * nb],
            n_mins: 0,
            next_min: 0,
            ring_min: vec![f32::INFINITY; nb],
            power: vec![FLOOR; nb],
            term: vec![0.0; nb],
            weight: (0..nb).map(|j| f32::from(u8::from(j < k1 - k0))).collect(),
            n_real: k1 - k0,
            prev_a2: vec![0.0; nb],
            // Until a pause has been heard, the floor: every bin's power then counts as speech.
            quiet_noise: vec![noise_floor; nb],
            excess: vec![0.0; nb],
            quiet_run: 0,
            has_hi,
            below_tw: (1..k0).map(twiddle_of).collect(),
            hi_term: vec![0.0; nb],
            hi_power: 0.0,
            hi_psm: 0.0,
            hi_cur_min: 0.0,
            hi_mins: [0.0; N_SUB],
            hi_ring_min: f32::INFINITY,
            hi_quiet_noise: noise_floor * nh as f32,
            hi_floor: noise_floor * nh as f32,
            // White noise of RMS r: a frame's energy is hop r^2; its power over all nfft / 2
            // bins (0 to the Nyquist rate), 0.375 win r^2 each.
            energy_per_power: hop as f32 / (0.375 * win as f32 * half as f32),
            hold_frames,
            a_dd: per10(A_DD_10MS),
            alpha_s: per10(ALPHA_S_10MS),
            alpha_llr: per10(ALPHA_LLR_10MS),
            sub_frames: ((SUB_S / frame_s).round() as usize).max(1),
            settle_frames: (3.0 / (1.0 - per10(ALPHA_S_10MS))).ceil() as usize,
            noise_floor,
            hangover: super::Hangover::new(hangover_frames),
            frame_no: 0,
            llr_s: 0.0,
        }
    }

    /// The smoothed log likelihood ratio after the next frame (updates the state). With
    /// AVX2 the per-bin passes run 8 bins wide instead of 4 (the same operations bin by bin,
    /// so the same results).
    fn llr(&mut self, frame: &[i16]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F is present.
            return unsafe { self.llr_avx512(frame) };
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is present.
            return unsafe { self.llr_avx2(frame) };
        }
        self.llr_body(frame)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn llr_avx2(&mut self, frame: &[i16]) -> f32 {
        self.llr_body(frame)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn llr_avx512(&mut self, frame: &[i16]) -> f32 {
        self.llr_body(frame)
    }

    #[inline(always)]
    fn llr_body(&mut self, frame: &[i16]) -> f32 {
        let (hop, win) = (self.hop, self.win);
        let step = hop.min(win);
        if self.at + win + step > self.hist.len() {
            self.hist.copy_within(self.at + step..self.at + win, 0);
            self.at = 0;
        } else {
            self.at += step;
        }
        let end = self.at + win;
        for (h, &v) in self.hist[end - step..end]
            .iter_mut()
            .zip(&frame[frame.len() - step..])
        {
            *h = v as f32;
        }
        let hist = &self.hist[self.at..end];
        // Until the window holds `win` real samples its power is too low: it would drag the
        // noise minimum down for 1.5 s. No statistics (and no speech) until then.
        if self.filled < win {
            self.filled += hop;
            if self.filled < win {
                return 0.0;
            }
        }
        // The windowed frame, folded or not, as `nfft` reals: even samples are the real
        // parts of the half-length complex transform's input, odd ones the imaginary parts.
        let half = self.buf.len();
        let buf = floats_of(&mut self.buf);
        if buf.len() < win {
            let (h0, h1) = hist.split_at(win / 2);
            let (w0, w1) = self.window.split_at(win / 2);
            for ((((b, &a), &c), &wa), &wc) in buf.iter_mut().zip(h0).zip(h1).zip(w0).zip(w1) {
                *b = a * wa + c * wc;
            }
        } else {
            for ((b, &h), &w) in buf.iter_mut().zip(hist).zip(&self.window) {
                *b = h * w;
            }
        }
        self.fft
            .process_with_scratch(&mut self.buf, &mut self.scratch);
        let nb = self.psm.len();
        let first = self.frame_no == 0;
        // Until the smoothed power has settled (three time constants), it is one periodogram
        // or little more, and a bin can sit near zero by chance: a minimum taken then would
        // be the noise estimate for 1.5 s. So the minimum only starts after that.
        let settling = self.frame_no < self.settle_frames;
        // Bin k of the real transform from bins k and half - k of the complex one Z:
        // X[k] = E + W^k O with E = (Z[k] + conj(Z[half-k])) / 2, O = (Z[k] - conj(Z[half-k]))
        // / 2i, W = e^(-2 pi i / nfft). Gathered first, then one pass that vectorises.
        // Band bins are 1 <= k < half (k1 < nfft / 2), so half - k is in range too.
        let (k0, n) = (self.k0, self.n_real);
        // Whole lanes where the transform has the bins (at 16 kHz), then the padding zeroed
        // again: fixed-length loops without scalar tails.
        let w = if k0 + nb <= half { nb } else { n };
        self.za[..w].copy_from_slice(&self.buf[k0..k0 + w]);
        for (z, &b) in self.zb[..w]
            .iter_mut()
            .zip(self.buf[half + 1 - k0 - w..half + 1 - k0].iter().rev())
        {
            *z = b;
        }
        let zero = Complex::new(0.0, 0.0);
        self.za[n..].fill(zero);
        self.zb[n..].fill(zero);
        // The same pass gives each bin's mirror, for the high band: X[half - k] =
        // conj(E - W^k O). It runs over the padding too (whole vectors, no scalar tail):
        // za and zb are zero there, so the padding's power stays FLOOR and its hi_term 0.
        for (((((pw, h), a), b), &c), &sn) in self
            .power
            .iter_mut()
            .zip(self.hi_term.iter_mut())
            .zip(&self.za)
            .zip(&self.zb)
            .zip(&self.tw_c)
            .zip(&self.tw_s)
        {
            let (er, ei) = (0.5 * (a.re + b.re), 0.5 * (a.im - b.im));
            let (dr, di) = (a.re - b.re, a.im + b.im);
            let (or, oi) = (0.5 * di, -0.5 * dr);
            let xr = er + c * or + sn * oi;
            let xi = ei + c * oi - sn * or;
            *pw = xr * xr + xi * xi + FLOOR;
            let yr = er - c * or - sn * oi;
            let yi = ei - c * oi + sn * or;
            *h = yr * yr + yi * yi;
        }
        if self.has_hi {
            // Bins half - k of the main band's k (k0 <= k < k1), bin k1 (its own mirror:
            // |X[k1]|^2 = |Z[k1]|^2) and bins half - k of the k under the main band.
            let z = self.buf[k0 + n];
            let mut hi = sum_lanes_in_order(&self.hi_term) + (z.re * z.re + z.im * z.im);
            for (k, &(c, sn)) in (1..).zip(&self.below_tw) {
                let (a, b) = (self.buf[k], self.buf[half - k]);
                let (er, ei) = (0.5 * (a.re + b.re), 0.5 * (a.im - b.im));
                let (dr, di) = (a.re - b.re, a.im + b.im);
                let (or, oi) = (0.5 * di, -0.5 * dr);
                let yr = er - c * or - sn * oi;
                let yi = ei - c * oi + sn * or;
                hi += yr * yr + yi * yi;
            }
            self.hi_power = hi;
        }
        if first {
            self.psm.copy_from_slice(&self.power);
            self.cur_min.copy_from_slice(&self.power);
            self.hi_psm = self.hi_power;
        }
        self.hi_psm = self.alpha_s * self.hi_psm + (1.0 - self.alpha_s) * self.hi_power;
        self.hi_cur_min = if settling {
            self.hi_psm
        } else {
            self.hi_cur_min.min(self.hi_psm)
        };
        let (alpha_s, a_dd, floor) = (self.alpha_s, self.a_dd, self.noise_floor);
        // Simple passes over the band (each vectorises), then 8 partial sums.
        let (psm, cur_min, ring_min) = (&mut self.psm, &mut self.cur_min, &self.ring_min);
        for (s, &p) in psm.iter_mut().zip(&self.power) {
            *s = alpha_s * *s + (1.0 - alpha_s) * p;
        }
        if settling {
            cur_min.copy_from_slice(psm);
        } else {
            for (c, &s) in cur_min.iter_mut().zip(psm.iter()) {
                *c = fmin(*c, s);
            }
        }
        // term[j]: bin j's log likelihood ratio, weighted (0 for padding).
        let term = &mut self.term;
        for (((((t, &p), &c), &r), prev), &w) in term
            .iter_mut()
            .zip(&self.power)
            .zip(cur_min.iter())
            .zip(ring_min)
            .zip(self.prev_a2.iter_mut())
            .zip(&self.weight)
        {
            let noise = fmax(BIAS * fmin(c, r), floor);
            let inv = 1.0 / noise;
            let gamma = fmin(p * inv, 1e4);
            let xi = fmax(
                a_dd * *prev * inv + (1.0 - a_dd) * fmax(gamma - 1.0, 0.0),
                1e-3,
            );
            let g = xi / (1.0 + xi);
            *t = w * (gamma * g - ln_approx(1.0 + xi));
            *prev = g * g * p;
        }
        let sum = sum_lanes(term);
        // Capped before smoothing: during speech the ratio reaches tens, and smoothing such a
        // value would hold the decision for 60-70 ms after speech ends.
        let llr = (sum / self.n_real as f32).clamp(-LLR_CAP, LLR_CAP);
        self.llr_s = self.alpha_llr * self.llr_s + (1.0 - self.alpha_llr) * llr;
        if self.llr_s <= ETA {
            self.quiet_run = self.quiet_run.saturating_add(1);
        } else {
            if self.quiet_run >= self.hold_frames {
                // Speech begins after a pause: keep the noise estimate heard in it (one pass
                // per onset; the same estimate as the likelihood ratio uses).
                for ((q, &c), &r) in self
                    .quiet_noise
                    .iter_mut()
                    .zip(&self.cur_min)
                    .zip(&self.ring_min)
                {
                    *q = fmax(BIAS * fmin(c, r), floor);
                }
                self.hi_quiet_noise =
                    (HIGH_BAND_BIAS * self.hi_cur_min.min(self.hi_ring_min)).max(self.hi_floor);
            }
            self.quiet_run = 0;
        }
        self.frame_no += 1;
        if self.frame_no.is_multiple_of(self.sub_frames) {
            let at = self.next_min * nb;
            self.mins[at..at + nb].copy_from_slice(&self.cur_min);
            self.hi_mins[self.next_min] = self.hi_cur_min;
            self.next_min = (self.next_min + 1) % N_SUB;
            self.n_mins = (self.n_mins + 1).min(N_SUB);
            self.cur_min.copy_from_slice(&self.psm);
            self.ring_min.fill(f32::INFINITY);
            self.hi_cur_min = self.hi_psm;
            self.hi_ring_min = self.hi_mins[..self.n_mins]
                .iter()
                .fold(f32::INFINITY, |a, &m| a.min(m));
            for k in 0..self.n_mins {
                for (r, &m) in self
                    .ring_min
                    .iter_mut()
                    .zip(&self.mins[k * nb..(k + 1) * nb])
                {
                    *r = fmin(*r, m);
                }
            }
        }
        self.llr_s
    }

    /// The share, in [0, 1], of the last frame's power over the band that stands above the
    /// noise heard before the current speech (per bin, the power less that noise, floored at
    /// 0, summed, over the band's power). About 1 for speech well above the noise; for a
    /// frame of stationary noise alone, about 0.37 for random noise (the mean excess of an
    /// exponential power over its mean) and near 0 for steady tones such as mains hum, whose
    /// power in a bin hardly varies. 1 before the first frame has been analysed.
    /// Computed on demand (about 20 ns at 16 kHz), not with every frame.
    pub fn speech_fraction(&mut self) -> f32 {
        if self.frame_no == 0 {
            return 1.0;
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is present.
            return unsafe { self.speech_fraction_avx2() };
        }
        self.speech_fraction_body()
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn speech_fraction_avx2(&mut self) -> f32 {
        self.speech_fraction_body()
    }

    #[inline(always)]
    fn speech_fraction_body(&mut self) -> f32 {
        // Padding bins add nothing above the noise (their power, FLOOR, is far under the
        // noise floor that bounds `quiet_noise`) and FLOOR each to the band's power.
        for ((x, &p), &q) in self
            .excess
            .iter_mut()
            .zip(&self.power)
            .zip(&self.quiet_noise)
        {
            *x = fmax(p - q, 0.0);
        }
        (sum_lanes(&self.excess) / sum_lanes(&self.power)).clamp(0.0, 1.0)
    }

    /// The last frame's energy in the high band (4-8 kHz, at 16 kHz: where fricatives put
    /// most of theirs) above the noise heard there before the current speech (its mean:
    /// the bias-corrected minimum of the band's smoothed power, kept when the speech began,
    /// as for `speech_fraction`), as a sum of squares over the frame like
    /// [`super::energy::sum_squares`]; 0 unless the band's power is at least HIGH_BAND_RATIO
    /// times that noise, and always 0 at rates other than 16 kHz (no band). Until a pause
    /// has been heard the noise is taken to be the -70 dBFS floor. Not used by the VAD's own
    /// decisions; costs about 25 ns per frame (computed with every frame, for the noise
    /// estimate).
    pub fn high_band_energy(&self) -> f32 {
        if self.hi_power < HIGH_BAND_RATIO * self.hi_quiet_noise {
            return 0.0;
        }
        (self.hi_power - self.hi_quiet_noise) * self.energy_per_power
    }

    /// Speech probability of the next frame: a logistic function of the smoothed log
    /// likelihood ratio, 0.5 at the decision threshold.
    pub fn probability(&mut self, frame: &[i16]) -> f32 {
        let l = self.llr(frame);
        1.0 / (1.0 + (-PROB_SLOPE * (l - ETA)).exp())
    }

    /// Speech decision for the next frame (with the hangover).
    pub fn is_speech(&mut self, frame: &[i16]) -> bool {
        let raw = self.llr(frame) > ETA;
        self.hangover.apply(raw)
    }
}

/// Sum of `v` (a whole number of lanes of 8) as 8 partial sums, so that it vectorises.
#[inline(always)]
fn sum_lanes(v: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    for v8 in v.chunks_exact(8) {
        let v8: &[f32; 8] = v8.try_into().expect("lane of 8");
        for l in 0..8 {
            acc[l] += v8[l];
        }
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
}

/// The sum of `v` (a whole number of lanes of 8), as 8 partial sums added in order at the
/// end: with [`sum_lanes`]'s tree instead, LLVM vectorises the loop poorly (it shuffles
/// lanes to match the tree).
#[inline(always)]
fn sum_lanes_in_order(v: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    for v8 in v.as_chunks::<8>().0 {
        for l in 0..8 {
            acc[l] += v8[l];
        }
    }
    acc.iter().fold(0.0, |s, &a| s + a)
}

/// The lesser of `a` and `b`, as the CPU's min instruction computes it (`b` if either is
/// NaN): no NaN handling around it, unlike `f32::min`. The values it meets are never NaN,
/// so the results are the same as `f32::min`'s, for fewer instructions per lane.
#[inline(always)]
fn fmin(a: f32, b: f32) -> f32 {
    if a < b {
        a
    } else {
        b
    }
}

/// The greater of `a` and `b`, as [`fmin`].
#[inline(always)]
fn fmax(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
    }
}

/// The complex numbers as interleaved (re, im) floats.
fn floats_of(v: &mut [Complex<f32>]) -> &mut [f32] {
    // SAFETY: Complex<f32> is repr(C) {re, im}: two f32 with no padding.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<f32>(), 2 * v.len()) }
}

/// Natural logarithm of `y >= 1` (finite), within 2e-5 absolute: the exponent, plus
/// `2 atanh(t)` of the mantissa `m` in [1, 2) with `t = (m - 1) / (m + 1)` <= 1/3 as an odd
/// series to t^7. Unlike `f32::ln` it inlines and vectorises.
#[inline(always)]
fn ln_approx(y: f32) -> f32 {
    let bits = y.to_bits();
    let e = ((bits >> 23) as i32 - 127) as f32;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let s = t * (2.0 + t2 * (2.0 / 3.0 + t2 * (2.0 / 5.0 + t2 * (2.0 / 7.0))));
    e * std::f32::consts::LN_2 + s
}

#[cfg(test)]
mod tests {
    #[test]
    fn ln_approx_is_close() {
        let mut y = 1.0f32;
        while y < 2e4 {
            let err = (super::ln_approx(y) - y.ln()).abs();
            assert!(err < 2e-5, "{y}: {err}");
            y *= 1.0007;
        }
    }

    use super::*;

    fn noise(n: usize, seed: u64, amp: i64) -> Vec<i16> {
        let mut r = seed;
        (0..n)
            .map(|_| {
                r = r
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (((r >> 33) as i64 % (2 * amp + 1)) - amp) as i16
            })
            .collect()
    }

    /// A fresh detector on noise alone says "no speech" from the first frame on (a minimum
    /// taken before the smoothing settles used to make it say "speech" for 1.5 s).
    #[test]
    fn noise_from_the_start_is_not_speech() {
        for (rate, hop) in [(16000u32, 160usize), (8000, 80), (48000, 960)] {
            let mut v = SpectralVad::new(rate, hop);
            let x = noise(rate as usize * 3, 7, 300);
            for (i, f) in x.chunks_exact(hop).enumerate() {
                assert!(!v.is_speech(f), "rate {rate}: frame {i}");
            }
        }
    }

    /// Over a steady hum (60 Hz and 6 harmonics, louder than the voice's faint parts), the
    /// share of a frame's band power above the noise heard before the speech is near 0 for
    /// hum alone and near 1 for a voice well above it; before any audio it is 1.
    #[test]
    fn speech_fraction_sees_through_stationary_hum() {
        let mut v = SpectralVad::new(16000, 160);
        assert_eq!(v.speech_fraction(), 1.0);
        let tone = |i: usize, f0: f32, n: usize, amp: f32| -> f32 {
            let t = i as f32 / 16000.0;
            (1..=n)
                .map(|k| (2.0 * std::f32::consts::PI * f0 * k as f32 * t).sin() / k as f32)
                .sum::<f32>()
                * amp
        };
        // Hum alone for 2 s, then voice over it for 0.5 s, hum for 1 s, voice for 0.5 s.
        let on = |i: usize| (32000..40000).contains(&i) || (56000..64000).contains(&i);
        let x: Vec<i16> = (0..16000 * 4)
            .map(|i| {
                let voice = if on(i) {
                    tone(i, 150.0, 8, 3000.0)
                } else {
                    0.0
                };
                (tone(i, 60.0, 7, 800.0) + voice) as i16
            })
            .collect();
        let mut fr = Vec::new();
        for f in x.chunks_exact(160) {
            v.probability(f);
            fr.push(v.speech_fraction());
        }
        let hum_only = fr[265..350].iter().cloned().fold(0.0f32, f32::max);
        let voiced = fr[205..250]
            .iter()
            .chain(&fr[355..400])
            .cloned()
            .fold(1.0f32, f32::min);
        assert!(hum_only < 0.05, "hum alone: {hum_only}");
        assert!(voiced > 0.8, "voice over hum: {voiced}");
    }

    /// The high band's energy over the noise heard before the speech: 0 for noise alone
    /// after a voiced sound (260 frames), and for a hiss at 4.5-7.5 kHz 10 dB over the
    /// noise there, near its energy less the noise's, in every frame; no band at 8 kHz.
    #[test]
    fn high_band_energy_finds_a_hiss_over_noise() {
        let mut v = SpectralVad::new(16000, 160);
        let mut x = noise(16000 * 7, 3, 300);
        for (i, s) in x[32000..36800].iter_mut().enumerate() {
            let t = i as f32 / 16000.0;
            *s += ((2.0 * std::f32::consts::PI * 150.0 * t).sin() * 3000.0) as i16;
        }
        // Hiss of RMS 400 from 5 s: uniform noise of RMS 173 puts half its power at 4-8 kHz.
        let phases = noise(31, 5, 30000);
        for (i, s) in x[80000..].iter_mut().enumerate() {
            let t = i as f32 / 16000.0;
            let h: f32 = phases
                .iter()
                .enumerate()
                .map(|(j, &p)| {
                    let f = 4500.0 + 100.0 * j as f32;
                    (2.0 * std::f32::consts::PI * f * t + f32::from(p) * 1e-4).sin()
                })
                .sum();
            *s += (h * 400.0 * (2.0f32 / 31.0).sqrt()) as i16;
        }
        let mut hb = Vec::new();
        for f in x.chunks_exact(160) {
            v.probability(f);
            hb.push(v.high_band_energy());
        }
        // Before any speech began after a pause, the noise is taken to be the floor.
        assert!(hb[50..190].iter().all(|&e| e > 0.0), "before any speech");
        assert!(hb[240..500].iter().all(|&e| e == 0.0), "noise alone");
        let want = 160.0 * 400.0f32.powi(2);
        for &e in &hb[505..] {
            assert!(e > 0.5 * want && e < 1.5 * want, "{e} vs {want}");
        }
        let mut v = SpectralVad::new(8000, 80);
        for f in x.chunks_exact(80).take(700) {
            v.probability(f);
            assert_eq!(v.high_band_energy(), 0.0);
        }
    }

    #[test]
    fn harmonic_sound_over_noise_is_speech() {
        let mut v = SpectralVad::new(16000, 160);
        let n = noise(16000 * 2, 3, 200);
        for f in n.chunks_exact(160) {
            v.is_speech(f);
        }
        let voiced: Vec<i16> = (0..3200)
            .map(|i| {
                let t = i as f32 / 16000.0;
                let s: f32 = (1..8)
                    .map(|k| (2.0 * std::f32::consts::PI * 150.0 * k as f32 * t).sin() / k as f32)
                    .sum();
                (s * 3000.0) as i16 + n[i]
            })
            .collect();
        let hits = voiced.chunks_exact(160).filter(|f| v.is_speech(f)).count();
        assert!(hits >= 18, "{hits} of 20 frames");
        assert!(v.probability(&voiced[..160]) > 0.9);
    }
}
