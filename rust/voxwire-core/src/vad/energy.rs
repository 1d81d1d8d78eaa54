//! An energy detector with an adaptive noise floor: the baseline engine.
//!
//! Frame level in dBFS against a noise floor that follows the quietest frames down at once
//! and rises only slowly (so speech does not lift it, but a noise that grows louder is
//! learned within seconds). The probability is a logistic function of the level above the
//! floor; decisions add a short hangover so word endings are kept.

/// Levels below this are silence whatever the floor (dBFS).
const ABSOLUTE_FLOOR_DB: f32 = -65.0;
/// Margin above the noise floor at which the probability is 0.5 (dB).
const MARGIN_DB: f32 = 8.0;
/// Width of the logistic around the margin (dB).
const SLOPE_DB: f32 = 2.0;
/// How fast the floor rises toward a louder level, in dB per second.
const RISE_DB_PER_S: f32 = 3.0;
/// How much of a lower level the floor takes at once (per frame).
const FALL: f32 = 0.5;
/// Decisions stay on this long after the probability drops (s).
const HANGOVER_S: f32 = 0.15;

/// Adaptive-floor energy VAD for frames of any length.
#[derive(Debug, Clone)]
pub struct EnergyVad {
    frame_s: f32,
    floor_db: Option<f32>,
    hangover: super::Hangover,
}

impl EnergyVad {
    /// A detector for frames of `frame_samples` at `rate` Hz.
    pub fn new(rate: u32, frame_samples: usize) -> Self {
        let frame_s = frame_samples as f32 / rate as f32;
        Self {
            frame_s,
            floor_db: None,
            hangover: super::Hangover::new((HANGOVER_S / frame_s).round() as u32),
        }
    }

    /// Level of a frame in dBFS (mean square against full scale).
    pub fn level_db(frame: &[i16]) -> f32 {
        if frame.is_empty() {
            return -120.0;
        }
        let ms = sum_squares(frame) as f64 / frame.len() as f64;
        (10.0 * (ms / (32768.0 * 32768.0) + 1e-12).log10()) as f32
    }

    /// Speech probability of the next frame, in [0, 1]; updates the noise floor.
    pub fn probability(&mut self, frame: &[i16]) -> f32 {
        let e = Self::level_db(frame);
        let floor = match self.floor_db {
            None => e,
            Some(f) if e < f => f + FALL * (e - f),
            Some(f) => f + (RISE_DB_PER_S * self.frame_s).min(e - f),
        };
        self.floor_db = Some(floor);
        if e < ABSOLUTE_FLOOR_DB {
            return 0.0;
        }
        1.0 / (1.0 + (-(e - floor - MARGIN_DB) / SLOPE_DB).exp())
    }

    /// Speech decision for the next frame (probability >= 0.5, plus the hangover).
    pub fn is_speech(&mut self, frame: &[i16]) -> bool {
        let p = self.probability(frame);
        self.hangover.apply(p >= 0.5)
    }

    /// Forgets the noise floor and the hangover.
    pub fn reset(&mut self) {
        self.floor_db = None;
        self.hangover.reset();
    }
}

/// Exact sum of squares (2^30 per sample leaves room for 2^34 samples), in one pass that
/// vectorises (8 samples a step with AVX2, where the CPU has it).
pub fn sum_squares(x: &[i16]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512bw") {
        // SAFETY: AVX-512F and BW are present (BW implies F).
        return unsafe { sum_squares_avx512(x) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present.
        return unsafe { sum_squares_avx2(x) };
    }
    sum_squares_body(x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sum_squares_avx2(x: &[i16]) -> u64 {
    sum_squares_body(x)
}

/// 32 samples a step: `vpmaddwd` sums the squares of each pair into 32 bits (at most 2^31,
/// exact as unsigned), whose halves are added into 64-bit lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn sum_squares_avx512(x: &[i16]) -> u64 {
    use std::arch::x86_64::*;
    let mut acc = _mm512_setzero_si512();
    let low = _mm512_set1_epi64(0xFFFF_FFFF);
    let mut i = 0;
    while i + 32 <= x.len() {
        let v = _mm512_loadu_si512(x.as_ptr().add(i).cast());
        let p = _mm512_madd_epi16(v, v);
        acc = _mm512_add_epi64(acc, _mm512_and_si512(p, low));
        acc = _mm512_add_epi64(acc, _mm512_srli_epi64::<32>(p));
        i += 32;
    }
    _mm512_reduce_add_epi64(acc) as u64 + sum_squares_body(&x[i..])
}

#[inline(always)]
fn sum_squares_body(x: &[i16]) -> u64 {
    x.iter()
        .map(|&s| u64::from((i32::from(s) * i32::from(s)) as u32))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speech_over_noise_and_silence() {
        let mut v = EnergyVad::new(16000, 160);
        let noise: Vec<i16> = (0..160).map(|i| ((i * 7919 % 200) as i16) - 100).collect();
        for _ in 0..50 {
            v.is_speech(&noise);
        }
        assert!(!v.is_speech(&noise));
        let loud: Vec<i16> = (0..160)
            .map(|i| ((i as f32 * 0.2).sin() * 8000.0) as i16)
            .collect();
        assert!(v.is_speech(&loud));
        assert!(v.probability(&loud) > 0.9);
        assert_eq!(v.probability(&[0; 160]), 0.0);
    }

    #[test]
    fn sum_of_squares_is_exact() {
        let x: Vec<i16> = (0..1000)
            .map(|i| (i * 7919 % 65536 - 32768) as i16)
            .collect();
        let want: u64 = x
            .iter()
            .map(|&s| (i64::from(s) * i64::from(s)) as u64)
            .sum();
        for n in [0, 1, 31, 32, 33, 480, 1000] {
            assert_eq!(sum_squares(&x[..n]), sum_squares_body(&x[..n]), "n={n}");
        }
        assert_eq!(sum_squares(&x), want);
        assert_eq!(sum_squares(&[-32768; 77]), 77 << 30);
        assert_eq!(sum_squares(&[-32768; 640]), 640 << 30);
    }
}
