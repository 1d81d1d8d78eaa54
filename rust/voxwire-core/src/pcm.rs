//! PCM16 conversions: int16 <-> float32, stereo downmix, gain. All saturate, none wrap.

use crate::error::{Error, Result};

/// Scale between int16 and float32: `f = i / 32768`, so int16 -> float32 -> int16 is exact.
pub const SCALE: f32 = 32768.0;

/// Rounds to the nearest integer, ties to even, for |x| < 2^22, without a libm call, so the
/// loop vectorises on baseline SSE2. NaN stays NaN (and `as i16` then gives 0).
#[inline(always)]
fn round_half_even(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    (x + MAGIC) - MAGIC
}

/// Clamps to the int16 range, rounds, and converts. NaN becomes 0.
///
/// Written so that loops over it vectorise: Rust's saturating `as` cast from float does
/// not (it made float32 -> int16 slower than numpy), so NaN is mapped to 0 by a compare and
/// the in-range value is converted unchecked.
#[inline(always)]
#[allow(clippy::manual_clamp)] // max/min on purpose: clamp would keep NaN
fn to_i16(y: f32) -> i16 {
    let v = if y.is_nan() {
        0.0
    } else {
        y.max(-32768.0).min(32767.0)
    };
    let r = round_half_even(v);
    // SAFETY: `r` is finite and an integer in [-32768, 32767].
    unsafe { r.to_int_unchecked::<i32>() as i16 }
}

/// Converts int16 samples to float32 in [-1, 1): `out[i] = x[i] / 32768`.
///
/// # Panics
/// Never: extra elements of the longer slice are left alone.
pub fn i16_to_f32(x: &[i16], out: &mut [f32]) {
    for (o, &s) in out.iter_mut().zip(x) {
        *o = f32::from(s) / SCALE;
    }
}

/// Converts float32 samples to int16: `round(x * 32768)` saturated to [-32768, 32767],
/// ties to even. NaN becomes 0, +inf 32767, -inf -32768.
pub fn f32_to_i16(x: &[f32], out: &mut [i16]) {
    for (o, &s) in out.iter_mut().zip(x) {
        *o = to_i16(s * SCALE);
    }
}

/// Downmixes interleaved stereo `[l0, r0, l1, r1, ...]` to mono: `(l + r) / 2`, truncated
/// toward zero. `x` must hold an even number of samples and `out` at least half as many.
pub fn downmix_stereo(x: &[i16], out: &mut [i16]) -> Result<()> {
    if !x.len().is_multiple_of(2) {
        return Err(Error::InvalidArgument(format!(
            "interleaved stereo needs an even number of samples, got {}",
            x.len()
        )));
    }
    for (o, pair) in out.iter_mut().zip(x.chunks_exact(2)) {
        *o = ((i32::from(pair[0]) + i32::from(pair[1])) / 2) as i16;
    }
    Ok(())
}

/// The linear factor of a gain in dB, checked to be finite.
pub fn db_to_factor(db: f64) -> Result<f32> {
    if !db.is_finite() {
        return Err(Error::InvalidArgument(format!(
            "gain must be a finite number of dB, got {db}"
        )));
    }
    Ok(10f64.powf(db / 20.0) as f32)
}

/// Applies a linear gain factor with saturation and round-half-even.
pub fn apply_gain(x: &[i16], factor: f32, out: &mut [i16]) {
    for (o, &s) in out.iter_mut().zip(x) {
        *o = to_i16(f32::from(s) * factor);
    }
}

/// Reads little-endian PCM16 bytes into samples. `bytes.len()` must be `2 * out.len()`.
pub fn le_bytes_to_i16(bytes: &[u8], out: &mut [i16]) {
    for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = i16::from_le_bytes([b[0], b[1]]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_roundtrip_is_exact_for_every_sample() {
        let all: Vec<i16> = (i16::MIN..=i16::MAX).collect();
        let mut f = vec![0f32; all.len()];
        let mut back = vec![0i16; all.len()];
        i16_to_f32(&all, &mut f);
        f32_to_i16(&f, &mut back);
        assert_eq!(all, back);
    }

    #[test]
    fn float_to_i16_saturates_and_maps_nan_to_zero() {
        let x = [
            2.0,
            -2.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            0.5 / 32768.0,
            1.5 / 32768.0,
        ];
        let mut out = [0i16; 7];
        f32_to_i16(&x, &mut out);
        assert_eq!(out, [32767, -32768, 32767, -32768, 0, 0, 2]);
    }

    #[test]
    fn downmix_truncates_toward_zero_and_rejects_odd() {
        let mut out = [0i16; 3];
        downmix_stereo(&[1, 2, -1, -2, i16::MAX, i16::MAX], &mut out).unwrap();
        assert_eq!(out, [1, -1, i16::MAX]);
        assert!(downmix_stereo(&[1, 2, 3], &mut out).is_err());
    }

    #[test]
    fn gain_saturates() {
        let f = db_to_factor(6.0).unwrap();
        let mut out = [0i16; 3];
        apply_gain(&[20000, -20000, 100], f, &mut out);
        assert_eq!(out[..2], [32767, -32768]);
        assert_eq!(out[2], 200);
        assert!(db_to_factor(f64::NAN).is_err());
    }
}
