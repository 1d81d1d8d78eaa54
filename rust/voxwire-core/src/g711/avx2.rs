//! AVX2 G.711 decoding: 16 codes per step, computed (not looked up) with the same arithmetic
//! as the scalar tables; `1 << segment` comes from a byte shuffle, so no gather is needed.

use std::arch::x86_64::*;

/// Decodes the longest multiple-of-16 prefix; returns how many codes it decoded.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn ulaw_decode(x: &[u8], out: &mut [i16]) -> usize {
    let n = x.len().min(out.len()) / 16 * 16;
    // 1 << seg for seg in 0..8; the high byte of each 16-bit lane indexes with bit 7 set -> 0.
    let pow = _mm256_setr_epi8(
        1, 2, 4, 8, 16, 32, 64, -128, 0, 0, 0, 0, 0, 0, 0, 0, //
        1, 2, 4, 8, 16, 32, 64, -128, 0, 0, 0, 0, 0, 0, 0, 0,
    );
    let ff = _mm256_set1_epi16(0xFF);
    let hi_zero = _mm256_set1_epi16(0x8000u16 as i16);
    let bias = _mm256_set1_epi16(0x84);
    let mut i = 0;
    while i < n {
        let c = _mm256_cvtepu8_epi16(_mm_loadu_si128(x.as_ptr().add(i) as *const __m128i));
        let u = _mm256_xor_si256(c, ff);
        let mant = _mm256_and_si256(u, _mm256_set1_epi16(0x0F));
        let seg = _mm256_and_si256(_mm256_srli_epi16::<4>(u), _mm256_set1_epi16(7));
        let p = _mm256_shuffle_epi8(pow, _mm256_or_si256(seg, hi_zero));
        let t = _mm256_mullo_epi16(_mm256_add_epi16(_mm256_slli_epi16::<3>(mant), bias), p);
        let r = _mm256_sub_epi16(t, bias);
        // Negative when the (inverted) sign bit is set: r -> -r as (r ^ m) - m.
        let m = _mm256_cmpeq_epi16(
            _mm256_and_si256(u, _mm256_set1_epi16(0x80)),
            _mm256_set1_epi16(0x80),
        );
        let v = _mm256_sub_epi16(_mm256_xor_si256(r, m), m);
        _mm256_storeu_si256(out.as_mut_ptr().add(i) as *mut __m256i, v);
        i += 16;
    }
    n
}

/// Decodes the longest multiple-of-16 prefix of A-law codes; returns how many it decoded.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn alaw_decode(x: &[u8], out: &mut [i16]) -> usize {
    let n = x.len().min(out.len()) / 16 * 16;
    // 1 << max(seg - 1, 0).
    let pow = _mm256_setr_epi8(
        1, 1, 2, 4, 8, 16, 32, 64, 0, 0, 0, 0, 0, 0, 0, 0, //
        1, 1, 2, 4, 8, 16, 32, 64, 0, 0, 0, 0, 0, 0, 0, 0,
    );
    let hi_zero = _mm256_set1_epi16(0x8000u16 as i16);
    let zero = _mm256_setzero_si256();
    let mut i = 0;
    while i < n {
        let c = _mm256_cvtepu8_epi16(_mm_loadu_si128(x.as_ptr().add(i) as *const __m128i));
        let a = _mm256_xor_si256(c, _mm256_set1_epi16(0x55));
        let mant = _mm256_slli_epi16::<4>(_mm256_and_si256(a, _mm256_set1_epi16(0x0F)));
        let seg = _mm256_and_si256(_mm256_srli_epi16::<4>(a), _mm256_set1_epi16(7));
        // + 8 in segment 0, + 0x108 in the others.
        let seg_nz = _mm256_cmpgt_epi16(seg, zero);
        let add = _mm256_add_epi16(
            _mm256_set1_epi16(8),
            _mm256_and_si256(seg_nz, _mm256_set1_epi16(0x100)),
        );
        let p = _mm256_shuffle_epi8(pow, _mm256_or_si256(seg, hi_zero));
        let t = _mm256_mullo_epi16(_mm256_add_epi16(mant, add), p);
        // Positive when the sign bit is set, negative otherwise.
        let m = _mm256_cmpeq_epi16(_mm256_and_si256(a, _mm256_set1_epi16(0x80)), zero);
        let v = _mm256_sub_epi16(_mm256_xor_si256(t, m), m);
        _mm256_storeu_si256(out.as_mut_ptr().add(i) as *mut __m256i, v);
        i += 16;
    }
    n
}
