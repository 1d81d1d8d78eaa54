//! A WebRTC-compatible voice activity detector.
//!
//! Six sub-band log energies of the signal at 8 kHz feed two-component Gaussian mixture
//! models of speech and noise per band; their likelihood ratios, against mode-dependent
//! thresholds, decide, and a hangover extends speech. The models adapt as the signal goes.
//!
//! The arithmetic reproduces the WebRTC VAD's fixed-point operations step for step (int16
//! truncation included), so that decisions agree with py-webrtcvad frame for frame at 8, 16
//! and 32 kHz. The model constants and the algorithm are WebRTC's (BSD-3-Clause, see
//! THIRD_PARTY_NOTICES); the code is ours.

use crate::error::{Error, Result};

const CHANNELS: usize = 6;
const GAUSSIANS: usize = 2;
const TABLE: usize = CHANNELS * GAUSSIANS;
const MIN_ENERGY: i16 = 10;

// Model constants (WebRTC, Q-formats as noted there).
const SPECTRUM_WEIGHT: [i16; CHANNELS] = [6, 8, 10, 12, 14, 16];
const NOISE_UPDATE: i32 = 655; // Q15
const SPEECH_UPDATE: i32 = 6554; // Q15
const BACK_ETA: i32 = 154; // Q8
const MINIMUM_DIFFERENCE: [i16; CHANNELS] = [544, 544, 576, 576, 576, 576];
const MAXIMUM_SPEECH: [i16; CHANNELS] = [11392, 11392, 11520, 11520, 11520, 11520];
const MINIMUM_MEAN: [i16; GAUSSIANS] = [640, 768];
const MAXIMUM_NOISE: [i16; CHANNELS] = [9216, 9088, 8960, 8832, 8704, 8576];
const NOISE_WEIGHTS: [i16; TABLE] = [34, 62, 72, 66, 53, 25, 94, 66, 56, 62, 75, 103];
const SPEECH_WEIGHTS: [i16; TABLE] = [48, 82, 45, 87, 50, 47, 80, 46, 83, 41, 78, 81];
const NOISE_MEANS: [i16; TABLE] = [
    6738, 4892, 7065, 6715, 6771, 3369, 7646, 3863, 7820, 7266, 5020, 4362,
];
const SPEECH_MEANS: [i16; TABLE] = [
    8306, 10085, 10078, 11823, 11843, 6309, 9473, 9571, 10879, 7581, 8180, 7483,
];
const NOISE_STDS: [i16; TABLE] = [378, 1064, 493, 582, 688, 593, 474, 697, 475, 688, 421, 455];
const SPEECH_STDS: [i16; TABLE] = [
    555, 505, 567, 524, 585, 1231, 509, 828, 492, 1540, 1079, 850,
];
const MAX_SPEECH_FRAMES: i16 = 6;
const MIN_STD: i16 = 384;

/// Per mode: hangover lengths and local/global thresholds, for 10, 20 and 30 ms frames.
struct ModeParams {
    over_hang_1: [i16; 3],
    over_hang_2: [i16; 3],
    local: [i16; 3],
    global: [i16; 3],
}

const MODES: [ModeParams; 4] = [
    ModeParams {
        over_hang_1: [8, 4, 3],
        over_hang_2: [14, 7, 5],
        local: [24, 21, 24],
        global: [57, 48, 57],
    },
    ModeParams {
        over_hang_1: [8, 4, 3],
        over_hang_2: [14, 7, 5],
        local: [37, 32, 37],
        global: [100, 80, 100],
    },
    ModeParams {
        over_hang_1: [6, 3, 2],
        over_hang_2: [9, 5, 3],
        local: [82, 78, 82],
        global: [285, 260, 285],
    },
    ModeParams {
        over_hang_1: [6, 3, 2],
        over_hang_2: [9, 5, 3],
        local: [94, 94, 94],
        global: [1100, 1050, 1100],
    },
];

// Filter bank constants.
const LOG_CONST: i32 = 24660; // 160*log10(2) in Q9
const LOG_ENERGY_INT_PART: i16 = 14336; // 14 in Q10
const HP_ZERO: [i32; 3] = [6631, -13262, 6631];
const HP_POLE: [i32; 3] = [16384, -7756, 5620];
const ALLPASS_Q15: [i32; 2] = [20972, 5571];
const OFFSET: [i16; CHANNELS] = [368, 368, 272, 176, 176, 176];
// Downsampler and minimum tracking.
const ALLPASS_Q13: [i32; 2] = [5243, 1392];
const SMOOTHING_DOWN: i32 = 6553; // 0.2 in Q15
const SMOOTHING_UP: i32 = 32439; // 0.99 in Q15
                                 // Gaussian probability.
const COMP_VAR: i32 = 22005;
const LOG2_EXP: i32 = 5909; // log2(e) in Q12

/// Truncation to 16 bits, as C does when it stores an int into an int16_t.
#[inline(always)]
fn s16(x: i32) -> i16 {
    x as i16
}

#[inline(always)]
fn norm_w32(a: i32) -> i32 {
    if a == 0 {
        0
    } else {
        (if a < 0 { !a } else { a }).leading_zeros() as i32 - 1
    }
}

#[inline(always)]
fn norm_u32(a: u32) -> i32 {
    if a == 0 {
        0
    } else {
        a.leading_zeros() as i32
    }
}

/// i32 / i16 truncating toward zero; division by zero gives i32::MAX.
///
/// Computed in f64, which is exact here and pipelines better than integer division: if
/// num/den is not an integer it lies at least 1/|den| >= 2^-15 from one, while the f64
/// quotient's error is at most |num/den| * 2^-53 <= 2^-22; if it is an integer, the correctly
/// rounded f64 quotient is that integer. (i32::MIN / -1 overflows in C; here it saturates,
/// and the exhaustive test below pins the rest.)
#[inline(always)]
fn div_w32_w16(num: i32, den: i16) -> i32 {
    if den != 0 {
        (num as f64 / den as f64) as i32
    } else {
        i32::MAX
    }
}

/// `1 / std` in Q10, as the Gaussian needs it.
#[inline(always)]
fn inv_std_of(std: i16) -> i16 {
    s16(div_w32_w16(131072 + (std as i32 >> 1), std))
}

/// Probability of `x[g]` (Q4) under N(`means[g]` (Q7), std (Q7)), in Q20 (times a constant),
/// times `weights[g]`, for every Gaussian `g`, and the scaled difference `delta[g]` the model
/// update uses; `inv[g]` is `inv_std_of(std)`.
///
/// WebRTC's per-Gaussian arithmetic (the test `probabilities_equal_reference` holds it to a
/// direct port), written without branches so that the compiler vectorises it: int16
/// truncations as shift pairs, the exponent's condition as a select, and its shift as a
/// variable shift (the count is 0-31 wherever the result is kept).
#[inline(always)]
fn probabilities(
    x: &[i16; TABLE],
    means: &[i16; TABLE],
    inv: &[i16; TABLE],
    weights: &[i16; TABLE],
    delta: &mut [i16; TABLE],
    out: &mut [i32; TABLE],
) {
    // Padded to 16 lanes (two 8 x i32 vectors); the last 4 lanes' results are dropped.
    const L: usize = 16;
    let pad = |a: &[i16; TABLE]| -> [i32; L] {
        let mut p = [0i32; L];
        for (d, &v) in p.iter_mut().zip(a) {
            *d = v as i32;
        }
        p
    };
    let (xs, ms, is, ws) = (pad(x), pad(means), pad(inv), pad(weights));
    let mut ds = [0i32; L];
    let mut os = [0i32; L];
    // s16(v) as i32, as shifts (which vectorise where a narrowing and widening may not).
    let sx = |v: i32| (v << 16) >> 16;
    for g in 0..L {
        let inv_std = is[g];
        let t = inv_std >> 2; // Q10 -> Q8
        let inv_std2 = sx((t * t) >> 2);
        let tmp16 = sx(sx(xs[g] << 3) - ms[g]); // Q7
        let d = sx((inv_std2 * tmp16) >> 10);
        ds[g] = d;
        let tmp32 = (d * tmp16) >> 9;
        // Computed in every lane, kept where tmp32 < COMP_VAR (where C computes it; the
        // product wraps as C's does in practice).
        let t16 = sx(-sx(LOG2_EXP.wrapping_mul(tmp32) >> 12));
        let e = 0x0400 | (t16 & 0x03FF);
        let sh = sx((sx(t16 ^ 0xFFFF) >> 10) + 1);
        let e = sx(e.wrapping_shr(sh as u32));
        let e = if tmp32 < COMP_VAR { e } else { 0 };
        os[g] = ws[g].wrapping_mul(inv_std.wrapping_mul(e));
    }
    for g in 0..TABLE {
        delta[g] = ds[g] as i16;
        out[g] = os[g];
    }
}

#[cfg(target_arch = "x86_64")]
fn fast_cpu() -> bool {
    use std::arch::is_x86_feature_detected as has;
    has!("avx2") && has!("bmi1") && has!("bmi2") && has!("lzcnt") && has!("popcnt")
}

/// One WebRTC-compatible VAD instance.
#[derive(Debug, Clone)]
pub struct WebRtcVad {
    mode: usize,
    noise_means: [i16; TABLE],
    speech_means: [i16; TABLE],
    noise_stds: [i16; TABLE],
    speech_stds: [i16; TABLE],
    frame_counter: i32,
    over_hang: i16,
    num_of_speech: i16,
    index_vector: [i16; 16 * CHANNELS],
    low_value_vector: [i16; 16 * CHANNELS],
    mean_value: [i16; CHANNELS],
    upper_state: [i16; 5],
    lower_state: [i16; 5],
    hp_filter_state: [i16; 4],
    /// Two half-band downsamplers (16 -> 8 kHz at [0..2], 32 -> 16 kHz at [2..4]).
    down_state: [i32; 4],
    /// `inv_std_of` of each model's std, with the std it was computed for (a division per
    /// Gaussian per frame saved while the stds hold still, as they mostly do).
    inv_cache: [[(i16, i16); TABLE]; 2],
    /// Whether the CPU has AVX2, BMI1/2 and LZCNT (then a build of the detector for them runs).
    #[cfg(target_arch = "x86_64")]
    fast: bool,
    /// 48 -> 8 kHz, made on the first 48 kHz frame (WebRTC's own 48 kHz path looks at only
    /// the first 10 ms of a frame; this one resamples all of it).
    down48: Option<Box<crate::resample::Resampler>>,
}

impl Default for WebRtcVad {
    fn default() -> Self {
        Self::new(0).expect("mode 0 is valid")
    }
}

impl WebRtcVad {
    /// A detector in `mode` 0 (least aggressive) to 3 (most aggressive about non-speech).
    pub fn new(mode: i64) -> Result<Self> {
        let mut v = WebRtcVad {
            mode: 0,
            noise_means: NOISE_MEANS,
            speech_means: SPEECH_MEANS,
            noise_stds: NOISE_STDS,
            speech_stds: SPEECH_STDS,
            frame_counter: 0,
            over_hang: 0,
            num_of_speech: 0,
            index_vector: [0; 16 * CHANNELS],
            low_value_vector: [10000; 16 * CHANNELS],
            mean_value: [1600; CHANNELS],
            upper_state: [0; 5],
            lower_state: [0; 5],
            hp_filter_state: [0; 4],
            down_state: [0; 4],
            inv_cache: [[(0, 0); TABLE]; 2],
            #[cfg(target_arch = "x86_64")]
            fast: fast_cpu(),
            down48: None,
        };
        v.set_mode(mode)?;
        Ok(v)
    }

    /// `inv_std_of` the noise (`speech == false`) or speech model's std of Gaussian `g`.
    #[inline(always)]
    fn inv_std(&mut self, speech: bool, g: usize) -> i16 {
        let std = if speech {
            self.speech_stds[g]
        } else {
            self.noise_stds[g]
        };
        let slot = &mut self.inv_cache[speech as usize][g];
        if slot.0 != std || slot.1 == 0 {
            *slot = (std, inv_std_of(std));
        }
        slot.1
    }

    /// Changes the aggressiveness mode (0-3); the models keep what they learned.
    pub fn set_mode(&mut self, mode: i64) -> Result<()> {
        if !(0..=3).contains(&mode) {
            return Err(Error::InvalidArgument(format!(
                "VAD mode must be 0, 1, 2 or 3, got {mode}"
            )));
        }
        self.mode = mode as usize;
        Ok(())
    }

    /// The current mode.
    pub fn mode(&self) -> usize {
        self.mode
    }

    /// Whether `rate` and a frame of `len` samples is a combination the detector takes:
    /// 8000, 16000, 32000 or 48000 Hz and 10, 20 or 30 ms.
    pub fn valid_rate_and_frame_length(rate: i64, len: usize) -> bool {
        matches!(rate, 8000 | 16000 | 32000 | 48000)
            && [10, 20, 30].iter().any(|ms| len as i64 == rate / 1000 * ms)
    }

    /// Classifies one frame at 8, 16, 32 or 48 kHz: true for speech (the decision includes
    /// the hangover, as WebRTC's does).
    pub fn process(&mut self, rate: i64, frame: &[i16]) -> Result<bool> {
        if !Self::valid_rate_and_frame_length(rate, frame.len()) {
            return Err(Error::InvalidArgument(format!(
                "a frame of {} samples at {rate} Hz: the rate must be 8000, 16000, 32000 \
                 or 48000 Hz and the frame 10, 20 or 30 ms",
                frame.len()
            )));
        }
        if rate == 48000 {
            let mut nb = [0i16; 240];
            let n = frame.len() / 6;
            self.resample_48k(frame, &mut nb[..n])?;
            return Ok(self.process_8k(&nb[..n]));
        }
        let factor = (rate / 8000) as usize;
        #[cfg(target_arch = "x86_64")]
        if self.fast {
            // SAFETY: the CPU has the features (checked when the detector was made).
            return Ok(unsafe { self.classify_fast(frame, factor) });
        }
        Ok(self.classify(frame, factor))
    }

    /// `classify` compiled for AVX2, BMI and LZCNT (the same integer operations).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,bmi1,bmi2,lzcnt,popcnt")]
    unsafe fn classify_fast(&mut self, frame: &[i16], factor: usize) -> bool {
        self.classify(frame, factor)
    }

    #[inline(always)]
    fn classify(&mut self, frame: &[i16], factor: usize) -> bool {
        let mut features = [0i16; CHANNELS];
        let n = frame.len() / factor;
        // The frame length as a constant: every loop of the filter tree and the energies
        // then has a fixed trip count.
        let total = match n {
            80 => self.features::<80>(frame, factor, &mut features),
            160 => self.features::<160>(frame, factor, &mut features),
            _ => self.features::<240>(frame, factor, &mut features),
        };
        self.gmm(&features, total, n) > 0
    }

    /// Classifies one 10, 20 or 30 ms frame at 8 kHz (80, 160 or 240 samples).
    pub fn process_8k(&mut self, frame: &[i16]) -> bool {
        let mut features = [0i16; CHANNELS];
        let total = match frame.len() {
            80 => self.features::<80>(frame, 1, &mut features),
            160 => self.features::<160>(frame, 1, &mut features),
            _ => self.features::<240>(frame, 1, &mut features),
        };
        self.gmm(&features, total, frame.len()) > 0
    }

    /// 48 kHz to 8 kHz with a low-latency (2 ms) filter. Primed with 10 ms of silence, the
    /// stream is in its steady state, where every 480 input samples yield exactly 80.
    fn resample_48k(&mut self, frame: &[i16], out: &mut [i16]) -> Result<()> {
        use crate::resample::{conv_i16, emit_i16, Quality, Resampler};
        if self.down48.is_none() {
            let mut r = Resampler::new(48000, 8000, Quality::LowLatency)?;
            let mut sink = vec![0i16; r.pending_outputs(480)];
            r.process_with(&[0i16; 480], conv_i16, &mut sink, emit_i16)?;
            self.down48 = Some(Box::new(r));
        }
        let r = self.down48.as_mut().expect("made above");
        debug_assert_eq!(r.pending_outputs(frame.len()), out.len());
        r.process_with(frame, conv_i16, out, emit_i16)?;
        Ok(())
    }

    /// The six log band energies of a frame at `8000 * factor` Hz (factor 1, 2 or 4), and
    /// the total energy the GMM gates on.
    ///
    /// The frame goes through the filter tree 2 ms (16 samples at 8 kHz) at a time: every
    /// filter is a recurrence whose state carries from block to block, so the outputs are
    /// those of filtering the whole frame stage by stage, but the CPU now overlaps the
    /// independent filters' dependency chains instead of running them one after another.
    #[inline(always)]
    fn features<const N: usize>(
        &mut self,
        x: &[i16],
        factor: usize,
        f: &mut [i16; CHANNELS],
    ) -> i16 {
        const B: usize = 16; // samples at 8 kHz per block
        let n = N; // samples at 8 kHz
        let x = &x[..n * factor];
        let (q, e, s) = (n / 4, n / 8, n / 16);
        let mut b5 = [0i16; 60];
        let mut b4 = [0i16; 60];
        let mut b3 = [0i16; 60];
        let mut b2 = [0i16; 30];
        let mut b1 = [0i16; 15];
        let mut b0 = [0i16; 15];
        let mut up: [i32; 5] = std::array::from_fn(|i| (self.upper_state[i] as i32) << 16);
        let mut lo: [i32; 5] = std::array::from_fn(|i| (self.lower_state[i] as i32) << 16);
        // The last (16 -> 8 kHz) downsampler's chain inputs for the whole frame, computed up
        // front in one vectorised pass (its input is all there: the frame, or at 32 kHz the
        // frame downsampled once, which runs whole here).
        let mut ds_in = [[0i32; 2]; 240];
        let ds_in = &mut ds_in[..n];
        let mut ds_r = [0i32; 2];
        match factor {
            1 => {}
            2 => downsample_prep(x, ds_in, &mut ds_r, &self.down_state[0..2]),
            _ => {
                let mut wb = [0i16; 480];
                let wb = &mut wb[..2 * n];
                let mut e = [[0i32; 2]; 480];
                let e = &mut e[..2 * n];
                let mut r = [0i32; 2];
                downsample_prep(x, e, &mut r, &self.down_state[2..4]);
                downsample_run(e, &mut r, wb);
                self.down_state[2..4].copy_from_slice(&downsample_state(r));
                downsample_prep(wb, ds_in, &mut ds_r, &self.down_state[0..2]);
            }
        }
        for blk in 0..n / B {
            let mut nb = [0i16; B];
            if factor == 1 {
                nb.copy_from_slice(&x[blk * B..(blk + 1) * B]);
            } else {
                downsample_run(&ds_in[blk * B..(blk + 1) * B], &mut ds_r, &mut nb);
            }
            // [0, 4000] -> [2000, 4000] and [0, 2000].
            let (mut hp8, mut lp8) = ([0i16; 8], [0i16; 8]);
            split_filter(&nb, &mut up[0], &mut lo[0], &mut hp8, &mut lp8);
            // [2000, 4000] -> [3000, 4000] (band 5) and [2000, 3000] (band 4).
            let o4 = blk * 4;
            split_filter(
                &hp8,
                &mut up[1],
                &mut lo[1],
                &mut b5[o4..o4 + 4],
                &mut b4[o4..o4 + 4],
            );
            // [0, 2000] -> [1000, 2000] (band 3) and [0, 1000].
            let mut lp4 = [0i16; 4];
            split_filter(&lp8, &mut up[2], &mut lo[2], &mut b3[o4..o4 + 4], &mut lp4);
            // [0, 1000] -> [500, 1000] (band 2) and [0, 500].
            let o2 = blk * 2;
            let mut lp2 = [0i16; 2];
            split_filter(&lp4, &mut up[3], &mut lo[3], &mut b2[o2..o2 + 2], &mut lp2);
            // [0, 500] -> [250, 500] (band 1) and [0, 250].
            let mut lp1 = [0i16; 1];
            split_filter(
                &lp2,
                &mut up[4],
                &mut lo[4],
                &mut b1[blk..blk + 1],
                &mut lp1,
            );
            // [0, 250], high-passed at 80 Hz (band 0).
            high_pass(&lp1, &mut self.hp_filter_state, &mut b0[blk..blk + 1]);
        }
        if factor > 1 {
            self.down_state[0..2].copy_from_slice(&downsample_state(ds_r));
        }
        for i in 0..5 {
            self.upper_state[i] = s16(up[i] >> 16);
            self.lower_state[i] = s16(lo[i] >> 16);
        }
        // Energies in WebRTC's order: the running total depends on it.
        let mut total: i16 = 0;
        log_of_energy(&b5[..q], OFFSET[5], &mut total, &mut f[5]);
        log_of_energy(&b4[..q], OFFSET[4], &mut total, &mut f[4]);
        log_of_energy(&b3[..q], OFFSET[3], &mut total, &mut f[3]);
        log_of_energy(&b2[..e], OFFSET[2], &mut total, &mut f[2]);
        log_of_energy(&b1[..s], OFFSET[1], &mut total, &mut f[1]);
        log_of_energy(&b0[..s], OFFSET[0], &mut total, &mut f[0]);
        total
    }

    #[inline(always)]
    fn weighted_average(
        data: &mut [i16; TABLE],
        channel: usize,
        offset: i16,
        w: &[i16; TABLE],
    ) -> i32 {
        let mut acc = 0i32;
        for k in 0..GAUSSIANS {
            let g = channel + k * CHANNELS;
            data[g] = s16(data[g] as i32 + offset as i32);
            acc += data[g] as i32 * w[g] as i32;
        }
        acc
    }

    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    fn find_minimum(&mut self, value: i16, channel: usize) -> i16 {
        let off = channel << 4;
        let age: &mut [i16; 16] = (&mut self.index_vector[off..off + 16]).try_into().unwrap();
        let small: &mut [i16; 16] = (&mut self.low_value_vector[off..off + 16])
            .try_into()
            .unwrap();
        // Whether a value expires, without an early exit (a vector compare).
        if !age.iter().fold(false, |any, &a| any | (a == 100)) {
            // The usual case, vectorised: no value expires, every age grows by one.
            age.iter_mut().for_each(|a| *a += 1);
        } else {
            for i in 0..16 {
                if age[i] != 100 {
                    age[i] += 1;
                } else {
                    for j in i..15 {
                        small[j] = small[j + 1];
                        age[j] = age[j + 1];
                    }
                    age[15] = 101;
                    small[15] = 10000;
                }
            }
        }
        // The first of the 16 sorted smallest values that `value` is below (the C code finds
        // it by binary search; the result is the same): as `small` is sorted, the count of
        // those not above it, which is a vector compare and sum, without data-dependent
        // branches. `value` goes in there, the values from there on move up one. (`small`
        // stays sorted: an insertion keeps the order, and an expiry appends 10000, which is
        // at least every entry, since a value only gets in below an entry already there and
        // the entries start at 10000.)
        let pos = small.iter().map(|&v| (v <= value) as usize).sum::<usize>();
        if pos < 16 {
            let (s0, a0) = (*small, *age);
            for i in 0..16usize {
                let prev = i.saturating_sub(1);
                let (s, a) = if i < pos {
                    (s0[i], a0[i])
                } else if i == pos {
                    (value, 1)
                } else {
                    (s0[prev], a0[prev])
                };
                small[i] = s;
                age[i] = a;
            }
        }
        let median = if self.frame_counter > 2 {
            small[2]
        } else if self.frame_counter > 0 {
            small[0]
        } else {
            1600
        };
        let mean = self.mean_value[channel] as i32;
        let alpha = if self.frame_counter > 0 {
            if (median as i32) < mean {
                SMOOTHING_DOWN
            } else {
                SMOOTHING_UP
            }
        } else {
            0
        };
        let mut t = (alpha + 1) * mean;
        t += (i16::MAX as i32 - alpha) * median as i32;
        t += 16384;
        self.mean_value[channel] = s16(t >> 15);
        self.mean_value[channel]
    }

    // Index loops on purpose: `g = channel + k * CHANNELS` addresses several tables at once,
    // as in the model's layout.
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    fn gmm(&mut self, features: &[i16; CHANNELS], total_power: i16, frame_len: usize) -> i32 {
        let m = &MODES[self.mode];
        let idx = match frame_len {
            80 => 0,
            160 => 1,
            _ => 2,
        };
        let (oh1, oh2, local, global) = (
            m.over_hang_1[idx],
            m.over_hang_2[idx],
            m.local[idx],
            m.global[idx],
        );
        let mut vadflag: i32 = 0;
        if total_power > MIN_ENERGY {
            let mut delta_n = [0i16; TABLE];
            let mut delta_s = [0i16; TABLE];
            let mut ngprvec = [0i16; TABLE];
            let mut sgprvec = [0i16; TABLE];
            let mut sum_llr: i32 = 0;
            // All 24 Gaussians (12 per model) first, as loops over the tables without
            // branches, which the compiler vectorises; the per-channel sums follow.
            let (mut inv_n, mut inv_s) = ([0i16; TABLE], [0i16; TABLE]);
            for g in 0..TABLE {
                inv_n[g] = self.inv_std(false, g);
                inv_s[g] = self.inv_std(true, g);
            }
            let mut feat = [0i16; TABLE];
            feat[..CHANNELS].copy_from_slice(features);
            feat[CHANNELS..].copy_from_slice(features);
            let (mut wn, mut ws) = ([0i32; TABLE], [0i32; TABLE]);
            probabilities(
                &feat,
                &self.noise_means,
                &inv_n,
                &NOISE_WEIGHTS,
                &mut delta_n,
                &mut wn,
            );
            probabilities(
                &feat,
                &self.speech_means,
                &inv_s,
                &SPEECH_WEIGHTS,
                &mut delta_s,
                &mut ws,
            );
            for ch in 0..CHANNELS {
                let np = [wn[ch], wn[ch + CHANNELS]];
                let sp = [ws[ch], ws[ch + CHANNELS]];
                let h0_test = np[0].wrapping_add(np[1]);
                let h1_test = sp[0].wrapping_add(sp[1]);
                let shifts_h0 = if h0_test == 0 { 31 } else { norm_w32(h0_test) };
                let shifts_h1 = if h1_test == 0 { 31 } else { norm_w32(h1_test) };
                let llr = s16(shifts_h0 - shifts_h1);
                sum_llr += llr as i32 * SPECTRUM_WEIGHT[ch] as i32;
                if (llr as i32 * 4) > local as i32 {
                    vadflag = 1;
                }
                let h0 = s16(h0_test >> 12);
                if h0 > 0 {
                    let t = (((np[0] as u32) & 0xFFFF_F000) << 2) as i32;
                    ngprvec[ch] = s16(div_w32_w16(t, h0));
                    ngprvec[ch + CHANNELS] = s16(16384 - ngprvec[ch] as i32);
                } else {
                    ngprvec[ch] = 16384;
                }
                let h1 = s16(h1_test >> 12);
                if h1 > 0 {
                    let t = (((sp[0] as u32) & 0xFFFF_F000) << 2) as i32;
                    sgprvec[ch] = s16(div_w32_w16(t, h1));
                    sgprvec[ch + CHANNELS] = s16(16384 - sgprvec[ch] as i32);
                }
            }
            if sum_llr >= global as i32 {
                vadflag |= 1;
            }
            let mut maxspe: i16 = 12800;
            for ch in 0..CHANNELS {
                let feature_min = self.find_minimum(features[ch], ch);
                let ngm = Self::weighted_average(&mut self.noise_means, ch, 0, &NOISE_WEIGHTS);
                let tmp1_s16 = s16(ngm >> 6); // Q8
                for k in 0..GAUSSIANS {
                    let g = ch + k * CHANNELS;
                    let nmk = self.noise_means[g];
                    let smk = self.speech_means[g];
                    let mut nsk = self.noise_stds[g];
                    let mut ssk = self.speech_stds[g];
                    let mut nmk2 = nmk;
                    if vadflag == 0 {
                        let delt = s16((ngprvec[g] as i32 * delta_n[g] as i32) >> 11);
                        nmk2 = s16(nmk as i32 + s16((delt as i32 * NOISE_UPDATE) >> 22) as i32);
                    }
                    let ndelt = s16(((feature_min as i32) << 4) - tmp1_s16 as i32);
                    let mut nmk3 = s16(nmk2 as i32 + s16((ndelt as i32 * BACK_ETA) >> 9) as i32);
                    let lo = s16(((k as i32) + 5) << 7);
                    if nmk3 < lo {
                        nmk3 = lo;
                    }
                    let hi = s16((72 + k as i32 - ch as i32) << 7);
                    if nmk3 > hi {
                        nmk3 = hi;
                    }
                    self.noise_means[g] = nmk3;
                    if vadflag != 0 {
                        let delt = s16((sgprvec[g] as i32 * delta_s[g] as i32) >> 11);
                        let t = s16((delt as i32 * SPEECH_UPDATE) >> 21);
                        let mut smk2 = s16(smk as i32 + ((t as i32 + 1) >> 1));
                        let maxmu = s16(maxspe as i32 + 640);
                        if smk2 < MINIMUM_MEAN[k] {
                            smk2 = MINIMUM_MEAN[k];
                        }
                        if smk2 > maxmu {
                            smk2 = maxmu;
                        }
                        self.speech_means[g] = smk2;
                        let t = s16((smk as i32 + 4) >> 3);
                        let t = s16(features[ch] as i32 - t as i32);
                        let t1 = (delta_s[g] as i32 * t as i32) >> 3;
                        let t2 = t1 - 4096;
                        let t = sgprvec[g] >> 2;
                        let t1 = t as i32 * t2;
                        let t2 = t1 >> 4; // Q20
                        let den = s16(ssk as i32 * 10);
                        let mut t = if t2 > 0 {
                            s16(div_w32_w16(t2, den))
                        } else {
                            s16(-(s16(div_w32_w16(-t2, den)) as i32))
                        };
                        t = s16(t as i32 + 128);
                        ssk = s16(ssk as i32 + (t >> 8) as i32);
                        if ssk < MIN_STD {
                            ssk = MIN_STD;
                        }
                        self.speech_stds[g] = ssk;
                    } else {
                        let t = s16(features[ch] as i32 - (nmk >> 3) as i32);
                        let mut t1 = (delta_n[g] as i32 * t as i32) >> 3;
                        t1 -= 4096;
                        let t = s16((ngprvec[g] as i32 + 2) >> 2);
                        let t2 = (t as i32).wrapping_mul(t1);
                        let t1 = t2 >> 14;
                        let mut t = if t1 > 0 {
                            s16(div_w32_w16(t1, nsk))
                        } else {
                            s16(-(s16(div_w32_w16(-t1, nsk)) as i32))
                        };
                        t = s16(t as i32 + 32);
                        nsk = s16(nsk as i32 + (t >> 6) as i32);
                        if nsk < MIN_STD {
                            nsk = MIN_STD;
                        }
                        self.noise_stds[g] = nsk;
                    }
                }
                let mut ngm = Self::weighted_average(&mut self.noise_means, ch, 0, &NOISE_WEIGHTS);
                let mut sgm =
                    Self::weighted_average(&mut self.speech_means, ch, 0, &SPEECH_WEIGHTS);
                let diff = s16(s16(sgm >> 9) as i32 - s16(ngm >> 9) as i32);
                if diff < MINIMUM_DIFFERENCE[ch] {
                    let t = s16(MINIMUM_DIFFERENCE[ch] as i32 - diff as i32);
                    let t1 = s16((13 * t as i32) >> 2);
                    let t2 = s16((3 * t as i32) >> 2);
                    sgm = Self::weighted_average(&mut self.speech_means, ch, t1, &SPEECH_WEIGHTS);
                    ngm = Self::weighted_average(
                        &mut self.noise_means,
                        ch,
                        s16(-(t2 as i32)),
                        &NOISE_WEIGHTS,
                    );
                }
                maxspe = MAXIMUM_SPEECH[ch];
                let t2 = s16(sgm >> 7);
                if t2 > maxspe {
                    let d = s16(t2 as i32 - maxspe as i32);
                    for k in 0..GAUSSIANS {
                        let g = ch + k * CHANNELS;
                        self.speech_means[g] = s16(self.speech_means[g] as i32 - d as i32);
                    }
                }
                let t2 = s16(ngm >> 7);
                if t2 > MAXIMUM_NOISE[ch] {
                    let d = s16(t2 as i32 - MAXIMUM_NOISE[ch] as i32);
                    for k in 0..GAUSSIANS {
                        let g = ch + k * CHANNELS;
                        self.noise_means[g] = s16(self.noise_means[g] as i32 - d as i32);
                    }
                }
            }
            self.frame_counter = self.frame_counter.wrapping_add(1);
        }
        if vadflag == 0 {
            if self.over_hang > 0 {
                vadflag = 2 + self.over_hang as i32;
                self.over_hang -= 1;
            }
            self.num_of_speech = 0;
        } else {
            self.num_of_speech += 1;
            if self.num_of_speech > MAX_SPEECH_FRAMES {
                self.num_of_speech = MAX_SPEECH_FRAMES;
                self.over_hang = oh2;
            } else {
                self.over_hang = oh1;
            }
        }
        vadflag
    }
}

/// Half-band downsampling by 2 with two first-order all-pass sections, one on the even and
/// one on the odd samples; the output is the sum of the two. The state per section is WebRTC's
/// 32-bit `s`.
///
/// WebRTC's recurrence per section (coefficient `c`, input `a_n`) is
/// `t_n = s16((s_n >> 1) + ((c * a_n) >> 14))`, `s_{n+1} = a_n - ((c * t_n) >> 12)`.
/// Here it runs as a single carried value `r`, with `t_n = r_{n-1} >> 13` (truncated where
/// used) and `r_n = E_n - c * s16(t_n)`, where `E_n = 4096 a_n + 4095 + 8192 k_{n+1}` and
/// `k_n = (c * a_n) >> 14` do not depend on the recurrence and are computed beforehand, for
/// the whole frame, by `downsample_prep`. Why it is the same (all shifts floor):
/// - `s_{n+1} >> 1 == (4096 a_n + 4095 - c t_n) >> 13`: `a - floor(p / 4096) ==
///   floor((4096 a + 4095 - p) / 4096)`, and nested floor divisions by powers of two
///   combine; adding the integer `k_{n+1}` after the floor division is adding `8192 k_{n+1}`
///   before it. So `r_n >> 13 == (s_{n+1} >> 1) + k_{n+1}`, which truncated is `t_{n+1}`.
/// - The first step: `r_{-1} = 4096 s_0 + 8192 k_0` gives `r_{-1} >> 13 == (s_0 >> 1) + k_0`.
/// - The last: its `E` leaves out the (unknown) next `k`, so `r >> 12 == a - ((c t) >> 12)`,
///   the state `s` (the first identity with `4096` in place of `8192`).
/// - Magnitudes: `|4096 a| <= 2^27`, `|8192 k| < 2^27`, `|c t| < 2^28`, `|s| < 2^17`: every
///   term fits in 32 bits.
///
/// The chain per step is a shift, a multiply and an add (5 cycles; it was 6 with the add of
/// `k` inside), and the truncation `s16(t)` costs nothing where the compiler multiplies the
/// two sections' values with one `pmaddwd` (it reads only the low 16 bits of each lane).
/// Outputs need no truncation of `t` first: `s16(s16(t1) + s16(t2)) == s16(t1 + t2)`.
#[inline(always)]
fn downsample_prep(x: &[i16], e: &mut [[i32; 2]], r: &mut [i32; 2], state: &[i32]) {
    let c = ALLPASS_Q13;
    let k = |l: usize, v: i16| ((c[l] * v as i32) >> 14) << 13;
    let n = e.len();
    let x = &x[..2 * n];
    for l in 0..2 {
        r[l] = (state[l] << 12) + k(l, x[l]);
    }
    for (ei, (cur, nxt)) in e
        .iter_mut()
        .zip(x.chunks_exact(2).zip(x[2..].chunks_exact(2)))
    {
        for l in 0..2 {
            ei[l] = ((cur[l] as i32) << 12) + 4095 + k(l, nxt[l]);
        }
    }
    for l in 0..2 {
        e[n - 1][l] = ((x[2 * n - 2 + l] as i32) << 12) + 4095;
    }
}

/// Runs the downsampler's recurrence over prepared inputs `e` (see `downsample_prep`): one
/// output per entry, `r` carried.
#[inline(always)]
fn downsample_run(e: &[[i32; 2]], r: &mut [i32; 2], out: &mut [i16]) {
    const B: usize = 16;
    let c = [-ALLPASS_Q13[0], -ALLPASS_Q13[1]];
    let mut rr = *r;
    for (eb, ob) in e.chunks(B).zip(out.chunks_mut(B)) {
        // The chain alone first (its values kept), the outputs after, in a separate pass.
        let mut t = [[0i32; 2]; B];
        for (ti, ei) in t.iter_mut().zip(eb) {
            let v = [rr[0] >> 13, rr[1] >> 13];
            *ti = v;
            rr = [
                ei[0] + c[0] * s16(v[0]) as i32,
                ei[1] + c[1] * s16(v[1]) as i32,
            ];
        }
        for (o, ti) in ob.iter_mut().zip(&t) {
            *o = s16(ti[0] + ti[1]);
        }
    }
    *r = rr;
}

/// The downsampler's state `s` after the frame, from the carried `r` (see `downsample_prep`).
#[inline(always)]
fn downsample_state(r: [i32; 2]) -> [i32; 2] {
    [r[0] >> 12, r[1] >> 12]
}

/// Splits `x` into high and low half-bands at half the rate: two first-order all-pass
/// filters, on the even and on the odd samples, then their difference and sum. The two
/// all-pass recurrences are independent, so they run in one loop, where the CPU overlaps them
/// (each is a chain of dependent multiplies; run one after the other they take twice as long).
///
/// The states are the all-pass filters' 32-bit states, kept at full precision across calls
/// within a frame; WebRTC stores them as 16 bits (`state >> 16`) only between frames.
#[inline(always)]
fn split_filter(x: &[i16], upper: &mut i32, lower: &mut i32, hp: &mut [i16], lp: &mut [i16]) {
    let n = hp.len().min(lp.len()).min(x.len() / 2);
    let (c0, c1) = (ALLPASS_Q15[0], ALLPASS_Q15[1]);
    let mut su = *upper;
    let mut sl = *lower;
    for i in 0..n {
        let (a, b) = (x[2 * i] as i32, x[2 * i + 1] as i32);
        let hu = s16(su.wrapping_add(c0 * a) >> 16);
        let hl = s16(sl.wrapping_add(c1 * b) >> 16);
        su = (a << 14).wrapping_sub(c0 * hu as i32).wrapping_mul(2);
        sl = (b << 14).wrapping_sub(c1 * hl as i32).wrapping_mul(2);
        hp[i] = s16(hu as i32 - hl as i32);
        lp[i] = s16(hl as i32 + hu as i32);
    }
    *upper = su;
    *lower = sl;
}

/// Second-order high-pass (80 Hz at 500 Hz sampling).
#[inline(always)]
fn high_pass(x: &[i16], st: &mut [i16; 4], out: &mut [i16]) {
    for (o, &v) in out.iter_mut().zip(x) {
        let mut t = HP_ZERO[0] * v as i32;
        t += HP_ZERO[1] * st[0] as i32;
        t += HP_ZERO[2] * st[1] as i32;
        st[1] = st[0];
        st[0] = v;
        t -= HP_POLE[1] * st[2] as i32;
        t -= HP_POLE[2] * st[3] as i32;
        st[3] = st[2];
        st[2] = s16(t >> 14);
        *o = st[2];
    }
}

/// Energy with the scaling that keeps the sum in 32 bits; returns (energy, right shifts).
#[inline(always)]
fn energy(x: &[i16]) -> (i32, i32) {
    let nbits = 32 - (x.len() as u32).leading_zeros() as i32;
    let mut smax: i16 = -1;
    for &v in x {
        let a = if v > 0 { v } else { s16(-(v as i32)) };
        if a > smax {
            smax = a;
        }
    }
    let scaling = if smax == 0 {
        0
    } else {
        let t = norm_w32((smax as i32).wrapping_mul(smax as i32));
        if t > nbits {
            0
        } else {
            nbits - t
        }
    };
    let mut en = 0i32;
    for &v in x {
        en = en.wrapping_add((v as i32 * v as i32) >> scaling);
    }
    (en, scaling)
}

#[inline(always)]
fn log_of_energy(x: &[i16], offset: i16, total: &mut i16, log_energy: &mut i16) {
    let (en, mut tot_rshifts) = energy(x);
    let mut e = en as u32;
    if e == 0 {
        *log_energy = offset;
        return;
    }
    let nr = 17 - norm_u32(e);
    let mut log2 = LOG_ENERGY_INT_PART;
    tot_rshifts += nr;
    if nr < 0 {
        e <<= -nr;
    } else {
        e >>= nr;
    }
    log2 = s16(log2 as i32 + ((e & 0x3FFF) >> 4) as i32);
    *log_energy = s16(((LOG_CONST * log2 as i32) >> 19) + ((tot_rshifts * LOG_CONST) >> 9));
    if *log_energy < 0 {
        *log_energy = 0;
    }
    *log_energy = s16(*log_energy as i32 + offset as i32);
    if *total <= MIN_ENERGY {
        if tot_rshifts >= 0 {
            *total = s16(*total as i32 + MIN_ENERGY as i32 + 1);
        } else {
            *total = s16(*total as i32 + (e >> -tot_rshifts) as i32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_lengths() {
        assert!(WebRtcVad::valid_rate_and_frame_length(16000, 320));
        assert!(WebRtcVad::valid_rate_and_frame_length(8000, 80));
        assert!(!WebRtcVad::valid_rate_and_frame_length(16000, 321));
        assert!(!WebRtcVad::valid_rate_and_frame_length(44100, 441));
        assert!(WebRtcVad::new(4).is_err());
        let mut v = WebRtcVad::new(3).unwrap();
        assert!(v.process(16000, &[0; 100]).is_err());
    }

    #[test]
    fn silence_is_not_speech_and_a_loud_tone_is() {
        let mut v = WebRtcVad::new(0).unwrap();
        for _ in 0..20 {
            assert!(!v.process(16000, &[0; 160]).unwrap());
        }
        let tone: Vec<i16> = (0..480)
            .map(|i| ((i as f32 * 0.3).sin() * 12000.0) as i16)
            .collect();
        let mut any = false;
        for _ in 0..20 {
            any |= v.process(16000, &tone).unwrap();
        }
        assert!(any);
    }
}

#[cfg(test)]
mod split_tests {
    use super::*;

    #[test]
    fn f64_division_is_exact_integer_division() {
        let dens: Vec<i16> = (1..=600)
            .chain([-1, -2, -7, -384, 1000, 3840, 16384, 32767, -32768])
            .collect();
        let mut nums: Vec<i32> = vec![
            0,
            1,
            -1,
            7,
            -7,
            i32::MAX,
            i32::MIN + 1,
            131_072,
            536_866_816,
        ];
        let mut r: u64 = 12345;
        for _ in 0..20_000 {
            r = r
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            nums.push((r >> 32) as i32);
            nums.push(((r >> 40) as i32) - (1 << 23));
        }
        for &d in &dens {
            for &n in &nums {
                assert_eq!(div_w32_w16(n, d), n.wrapping_div(d as i32), "{n} / {d}");
            }
        }
    }

    /// The reference: the running minimum's update as WebRTC's FindMinimum does it (ages, then
    /// the insertion found by a scan with an early exit).
    fn minimum_ref(age: &mut [i16], small: &mut [i16], value: i16) {
        for i in 0..16 {
            if age[i] != 100 {
                age[i] += 1;
            } else {
                for j in i..15 {
                    small[j] = small[j + 1];
                    age[j] = age[j + 1];
                }
                age[15] = 101;
                small[15] = 10000;
            }
        }
        if let Some(pos) = small.iter().position(|&v| value < v) {
            for i in (pos + 1..16).rev() {
                small[i] = small[i - 1];
                age[i] = age[i - 1];
            }
            small[pos] = value;
            age[pos] = 1;
        }
    }

    /// `find_minimum` against the reference over long runs of values (small ranges make ties
    /// and expiries common), every channel's state compared after every frame.
    #[test]
    fn running_minimum_equals_reference() {
        let mut r: u64 = 11;
        let mut next = || {
            r = r
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (r >> 33) as u32
        };
        for round in 0..40 {
            let mut v = WebRtcVad::new(0).unwrap();
            let (mut age, mut small) = (v.index_vector, v.low_value_vector);
            let range = [4, 50, 2000, 12000][round % 4];
            for frame in 0..3000 {
                for ch in 0..CHANNELS {
                    let value = 300 + (next() % range) as i16;
                    let off = ch * 16;
                    v.find_minimum(value, ch);
                    minimum_ref(&mut age[off..off + 16], &mut small[off..off + 16], value);
                }
                assert_eq!(v.index_vector, age, "round {round} frame {frame}");
                assert_eq!(v.low_value_vector, small, "round {round} frame {frame}");
                v.frame_counter += 1;
            }
        }
    }

    /// The reference: WebRTC's downsampler (WebRtcVad_Downsampling), step by step.
    /// Returns how many of its truncations changed a value.
    fn downsample_ref(x: &[i16], out: &mut [i16], state: &mut [i32]) -> usize {
        let (c0, c1) = (ALLPASS_Q13[0], ALLPASS_Q13[1]);
        let (mut s1, mut s2) = (state[0], state[1]);
        let mut wrapped = 0;
        for (o, pair) in out.iter_mut().zip(x.chunks_exact(2)) {
            let (a, b) = (pair[0] as i32, pair[1] as i32);
            let v = (s1 >> 1) + ((c0 * a) >> 14);
            wrapped += (v != s16(v) as i32) as usize;
            let t1 = s16(v);
            *o = t1;
            s1 = a - ((c0 * t1 as i32) >> 12);
            let t2 = s16((s2 >> 1) + ((c1 * b) >> 14));
            *o = s16(*o as i32 + t2 as i32);
            s2 = b - ((c1 * t2 as i32) >> 12);
        }
        state[0] = s1;
        state[1] = s2;
        wrapped
    }

    /// Frames of 80, 160 and 240 outputs in a row (the state carried), of random, full-scale
    /// square-wave and alternating-extreme inputs (which drive the sections' values past
    /// the int16 range, where the truncation matters).
    #[test]
    fn downsampler_equals_reference() {
        let mut r: u64 = 7;
        let mut next = || {
            r = r
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (r >> 33) as u32
        };
        let mut truncated = 0usize;
        for round in 0..3000 {
            let mut st_ref = [0i32; 2];
            let mut st = [0i32; 2];
            for frame in 0..6 {
                let n = [80, 160, 240][(round + frame) % 3];
                let kind = next() % 4;
                let x: Vec<i16> = (0..2 * n)
                    .map(|i| match kind {
                        0 => next() as i16,
                        1 => {
                            if (i / (1 + (round % 9))) % 2 == 0 {
                                i16::MAX
                            } else {
                                i16::MIN
                            }
                        }
                        2 => [i16::MIN, i16::MAX, i16::MAX, i16::MIN][(i + round) % 4],
                        _ => ((next() % 2000) as i16) - 1000,
                    })
                    .collect();
                let mut want = vec![0i16; n];
                truncated += downsample_ref(&x, &mut want, &mut st_ref);
                let (mut e, mut got) = (vec![[0i32; 2]; n], vec![0i16; n]);
                let mut rr = [0i32; 2];
                downsample_prep(&x, &mut e, &mut rr, &st);
                // In pieces, as the filter tree runs it.
                for (eb, ob) in e.chunks(16).zip(got.chunks_mut(16)) {
                    downsample_run(eb, &mut rr, ob);
                }
                st = downsample_state(rr);
                assert_eq!(got, want, "round {round} frame {frame}");
                assert_eq!(st, st_ref, "round {round} frame {frame}");
            }
        }
        assert!(truncated > 1000, "{truncated}");
    }

    /// The reference: the two all-pass filters one after the other, as WebRTC runs them.
    fn all_pass_ref(x: &[i16], coef: i32, state: &mut i16, out: &mut [i16]) {
        let mut s32 = (*state as i32) << 16;
        for (o, v) in out.iter_mut().zip(x.iter().step_by(2)) {
            let t16 = s16(s32.wrapping_add(coef * *v as i32) >> 16);
            *o = t16;
            s32 = ((*v as i32) << 14)
                .wrapping_sub(coef * t16 as i32)
                .wrapping_mul(2);
        }
        *state = s16(s32 >> 16);
    }

    #[test]
    fn fused_split_equals_reference() {
        let x: Vec<i16> = (0..240)
            .map(|i| (((i * 7919) % 60000) - 30000) as i16)
            .collect();
        let (mut u1, mut l1, mut u2, mut l2) = (3i32 << 16, -7i32 << 16, 3i16, -7i16);
        let (mut hp1, mut lp1) = ([0i16; 120], [0i16; 120]);
        let (mut hp2, mut lp2) = ([0i16; 120], [0i16; 120]);
        split_filter(&x, &mut u1, &mut l1, &mut hp1, &mut lp1);
        all_pass_ref(&x, ALLPASS_Q15[0], &mut u2, &mut hp2);
        all_pass_ref(&x[1..], ALLPASS_Q15[1], &mut l2, &mut lp2);
        for i in 0..120 {
            let t = hp2[i];
            hp2[i] = s16(hp2[i] as i32 - lp2[i] as i32);
            lp2[i] = s16(lp2[i] as i32 + t as i32);
        }
        assert_eq!((s16(u1 >> 16), s16(l1 >> 16)), (u2, l2));
        assert_eq!(hp1, hp2);
        assert_eq!(lp1, lp2);
    }

    /// The reference: WebRTC's Gaussian probability, one Gaussian at a time.
    fn gaussian_probability(input: i16, mean: i16, inv_std: i16, delta: &mut i16) -> i32 {
        let t = inv_std >> 2; // Q10 -> Q8
        let inv_std2 = s16((t as i32 * t as i32) >> 2);
        let mut tmp16 = s16((input as i32) << 3); // Q4 -> Q7
        tmp16 = s16(tmp16 as i32 - mean as i32);
        *delta = s16((inv_std2 as i32 * tmp16 as i32) >> 10);
        let tmp32 = (*delta as i32 * tmp16 as i32) >> 9;
        let mut exp_value: i16 = 0;
        if tmp32 < COMP_VAR {
            let mut t16 = s16(LOG2_EXP.wrapping_mul(tmp32) >> 12);
            t16 = s16(-(t16 as i32));
            exp_value = 0x0400 | (t16 & 0x03FF);
            t16 = s16(t16 as i32 ^ 0xFFFF);
            t16 >>= 10;
            t16 = s16(t16 as i32 + 1);
            exp_value = s16((exp_value as i32).wrapping_shr(t16 as u32));
        }
        (inv_std as i32).wrapping_mul(exp_value as i32)
    }

    #[test]
    fn probabilities_equal_reference() {
        let mut r: u64 = 99;
        let mut next = || {
            r = r
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (r >> 33) as u32
        };
        let edge = [i16::MIN, -1, 0, 1, 10, 384, 1000, 16383, i16::MAX];
        for round in 0..200_000u32 {
            let mut x = [0i16; TABLE];
            let mut means = [0i16; TABLE];
            let mut inv = [0i16; TABLE];
            for g in 0..TABLE {
                let pick = |v: u32, i: usize| {
                    if v.is_multiple_of(5) {
                        edge[(v as usize / 5 + i) % edge.len()]
                    } else {
                        v as i16
                    }
                };
                x[g] = if round.is_multiple_of(2) {
                    (next() % 4000) as i16
                } else {
                    pick(next(), g)
                };
                means[g] = if round.is_multiple_of(2) {
                    (next() % 12000) as i16
                } else {
                    pick(next(), g)
                };
                inv[g] = if round.is_multiple_of(2) {
                    inv_std_of(384 + (next() % 4000) as i16)
                } else {
                    pick(next(), g)
                };
            }
            let (mut d, mut out) = ([0i16; TABLE], [0i32; TABLE]);
            probabilities(&x, &means, &inv, &NOISE_WEIGHTS, &mut d, &mut out);
            for g in 0..TABLE {
                let mut dr = 0i16;
                let p = gaussian_probability(x[g], means[g], inv[g], &mut dr);
                assert_eq!(
                    (d[g], out[g]),
                    (dr, (NOISE_WEIGHTS[g] as i32).wrapping_mul(p)),
                    "{} {} {}",
                    x[g],
                    means[g],
                    inv[g]
                );
            }
        }
    }
}
