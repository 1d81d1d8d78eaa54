//! AVX2 base64 encoding after Wojciech Muła and Daniel Lemire, "Faster Base64 Encoding and
//! Decoding Using AVX2 Instructions" (ACM TWEB 12(3), 2018): 24 input bytes become 32
//! characters per step, with one shuffle, two multiplies and a 16-entry translation table.
//!
//! One detail matters more than the algorithm: LLVM rewrites `_mm256_mulhi_epu16` by a
//! constant into zero-extension to 32 bits, variable shifts and a repack, which makes the
//! whole loop 2.2x slower (measured on Zen 3; base64-simd suffers the same). The multiply-high
//! is therefore one instruction of inline assembly, which the optimiser cannot rewrite.

use std::arch::asm;
use std::arch::x86_64::*;
use std::mem::MaybeUninit;

/// Encodes as many whole 24-byte blocks of `src` as it can read safely (each block reads 32
/// bytes starting 4 before it, so the last block needs 4 bytes after it). Returns the bytes
/// consumed; it wrote `consumed / 3 * 4` characters to the start of `out`.
///
/// # Safety
/// The CPU must support AVX2, and `out` must hold at least `src.len() / 3 * 4` bytes.
#[target_feature(enable = "avx2")]
pub unsafe fn encode(src: &[u8], out: &mut [MaybeUninit<u8>]) -> usize {
    if src.len() < 28 {
        return 0;
    }
    // Per 3-byte group (a, b, c) -> 32-bit word with bytes [b, a, c, b]. The first block is
    // loaded as two 16-byte halves at 0 and 12; later blocks with one load at -4, so the
    // low lane's groups start 4 bytes in.
    let shuf_first = _mm256_setr_epi8(
        1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10, //
        1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10,
    );
    let shuf = _mm256_setr_epi8(
        5, 4, 6, 5, 8, 7, 9, 8, 11, 10, 12, 11, 14, 13, 15, 14, //
        1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10,
    );
    let k = Consts::new();
    let p = src.as_ptr();
    let d = out.as_mut_ptr() as *mut u8;

    let lo = _mm_loadu_si128(p as *const __m128i);
    let hi = _mm_loadu_si128(p.add(12) as *const __m128i);
    let first = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(lo), hi);
    _mm256_storeu_si256(d as *mut __m256i, k.block(first, shuf_first));
    let mut i = 24;
    let mut o = 32;
    while i + 4 * 24 + 4 <= src.len() {
        let a = _mm256_loadu_si256(p.add(i - 4) as *const __m256i);
        let b = _mm256_loadu_si256(p.add(i + 20) as *const __m256i);
        let c = _mm256_loadu_si256(p.add(i + 44) as *const __m256i);
        let e = _mm256_loadu_si256(p.add(i + 68) as *const __m256i);
        _mm256_storeu_si256(d.add(o) as *mut __m256i, k.block(a, shuf));
        _mm256_storeu_si256(d.add(o + 32) as *mut __m256i, k.block(b, shuf));
        _mm256_storeu_si256(d.add(o + 64) as *mut __m256i, k.block(c, shuf));
        _mm256_storeu_si256(d.add(o + 96) as *mut __m256i, k.block(e, shuf));
        i += 96;
        o += 128;
    }
    while i + 28 <= src.len() {
        let a = _mm256_loadu_si256(p.add(i - 4) as *const __m256i);
        _mm256_storeu_si256(d.add(o) as *mut __m256i, k.block(a, shuf));
        i += 24;
        o += 32;
    }
    i
}

struct Consts {
    mask_hi: __m256i,
    mul_hi: __m256i,
    mask_lo: __m256i,
    mul_lo: __m256i,
    lut: __m256i,
    c51: __m256i,
    c25: __m256i,
}

impl Consts {
    #[target_feature(enable = "avx2")]
    fn new() -> Self {
        Consts {
            mask_hi: _mm256_set1_epi32(0x0FC0_FC00),
            mul_hi: _mm256_set1_epi32(0x0400_0040),
            mask_lo: _mm256_set1_epi32(0x003F_03F0),
            // Opaque, or LLVM turns this multiply into two shifts and a blend.
            mul_lo: std::hint::black_box(_mm256_set1_epi32(0x0100_0010)),
            // Sextet -> ASCII offset, by the index computed in `block`.
            lut: _mm256_setr_epi8(
                65, 71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 0, 0, //
                65, 71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 0, 0,
            ),
            c51: _mm256_set1_epi8(51),
            c25: _mm256_set1_epi8(25),
        }
    }

    /// 24 bytes (placed by `shuf`) -> 32 base64 characters.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn block(&self, v: __m256i, shuf: __m256i) -> __m256i {
        let w = _mm256_shuffle_epi8(v, shuf);
        // s0 = a >> 2 to byte 0 and s2 = (b & 15) << 2 | c >> 6 to byte 2 ...
        let t0 = _mm256_and_si256(w, self.mask_hi);
        let t1: __m256i;
        // SAFETY: a register-only AVX2 instruction; the function requires AVX2.
        unsafe {
            asm!(
                "vpmulhuw {o}, {a}, {b}",
                o = lateout(ymm_reg) t1,
                a = in(ymm_reg) t0,
                b = in(ymm_reg) self.mul_hi,
                options(pure, nomem, nostack, preserves_flags)
            );
        }
        // ... s1 = (a & 3) << 4 | b >> 4 to byte 1 and s3 = c & 63 to byte 3.
        let t3 = _mm256_mullo_epi16(_mm256_and_si256(w, self.mask_lo), self.mul_lo);
        let s = _mm256_or_si256(t1, t3);
        // Index 0 for 0..=25, 1 for 26..=51, 2..=11 for the digits, 12 '+', 13 '/'.
        let idx = _mm256_sub_epi8(
            _mm256_subs_epu8(s, self.c51),
            _mm256_cmpgt_epi8(s, self.c25),
        );
        _mm256_add_epi8(s, _mm256_shuffle_epi8(self.lut, idx))
    }
}
