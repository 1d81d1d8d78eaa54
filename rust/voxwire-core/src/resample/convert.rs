//! Sample conversions in and out of the kernels' f32 (per-ISA variants beside the scalar
//! definitions, with the same results), and the finiteness check of float input.

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
