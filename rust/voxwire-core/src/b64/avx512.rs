//! AVX-512 VBMI base64 decoding after Wojciech Muła and Daniel Lemire, "Base64 encoding and
//! decoding at almost the speed of a memory copy" (Software: Practice and Experience 50(2),
//! 2020): 64 characters become 48 bytes per step, with one two-table byte permutation to
//! translate (and flag invalid characters), two multiply-adds to merge the sextets, and one
//! byte permutation to pack.

use std::arch::x86_64::*;

/// The sextet of ASCII character `c` (0..128), or 0x80 where `c` is not in the standard
/// alphabet (padding included: it may only end the text, which this kernel never sees).
const fn table() -> [u8; 128] {
    let mut t = [0x80u8; 128];
    let mut i = 0;
    while i < 26 {
        t[b'A' as usize + i] = i as u8;
        t[b'a' as usize + i] = 26 + i as u8;
        i += 1;
    }
    let mut d = 0;
    while d < 10 {
        t[b'0' as usize + d] = 52 + d as u8;
        d += 1;
    }
    t[b'+' as usize] = 62;
    t[b'/' as usize] = 63;
    t
}

static TABLE: [u8; 128] = table();

/// Output byte `o` of a 64-character block is byte `2 - o % 3` of 32-bit lane `o / 3` after
/// the merge; bytes 48..64 are not stored.
const fn pack_index() -> [u8; 64] {
    let mut p = [0u8; 64];
    let mut o = 0;
    while o < 48 {
        p[o] = ((o / 3) * 4 + 2 - o % 3) as u8;
        o += 1;
    }
    p
}

static PACK: [u8; 64] = pack_index();

/// Decodes whole 64-character blocks of `src` (its length a multiple of 64, no padding in
/// it) into `out`, which must hold `src.len() / 4 * 3` bytes. Returns false if any character
/// is outside the alphabet (then `out` holds garbage).
///
/// # Safety
/// The CPU must support AVX-512 F, BW and VBMI.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
pub unsafe fn decode_blocks(src: &[u8], out: &mut [u8]) -> bool {
    assert!(src.len().is_multiple_of(64) && out.len() >= src.len() / 4 * 3);
    let lo = _mm512_loadu_si512(TABLE.as_ptr().cast());
    let hi = _mm512_loadu_si512(TABLE.as_ptr().add(64).cast());
    let pack = _mm512_loadu_si512(PACK.as_ptr().cast());
    let merge_ab = _mm512_set1_epi32(0x0140_0140);
    let merge_abcd = _mm512_set1_epi32(0x0001_1000);
    let mut bad = _mm512_setzero_si512();
    let (sp, op) = (src.as_ptr(), out.as_mut_ptr());
    for b in 0..src.len() / 64 {
        // SAFETY: block b is within `src`, its 48 bytes within `out` (asserted).
        let v = _mm512_loadu_si512(sp.add(64 * b).cast());
        let t = _mm512_permutex2var_epi8(lo, v, hi);
        bad = _mm512_or_si512(bad, _mm512_or_si512(t, v));
        let ab = _mm512_maddubs_epi16(t, merge_ab);
        let abcd = _mm512_madd_epi16(ab, merge_abcd);
        let packed = _mm512_permutexvar_epi8(pack, abcd);
        _mm512_mask_storeu_epi8(op.add(48 * b).cast(), 0xFFFF_FFFF_FFFF, packed);
    }
    _mm512_movepi8_mask(bad) == 0
}

/// The standard alphabet, indexed by sextet.
static ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Encodes whole 48-byte blocks of `src` (as many as there are) into `out`; returns the
/// bytes consumed (`consumed / 3 * 4` characters written). Per block: one byte permutation
/// puts each 3-byte group (a, b, c) into a 32-bit lane as [b, a, c, b], one multishift
/// picks the four sextets out of it as bytes, one more permutation translates them.
///
/// # Safety
/// The CPU must support AVX-512 F, BW and VBMI; `out` must hold `src.len() / 3 * 4` bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
pub unsafe fn encode_blocks(src: &[u8], out: &mut [std::mem::MaybeUninit<u8>]) -> usize {
    let blocks = src.len() / 48;
    assert!(out.len() >= blocks * 64);
    let spread = _mm512_setr_epi32(
        0x0102_0001,
        0x0405_0304,
        0x0708_0607,
        0x0a0b_090a,
        0x0d0e_0c0d,
        0x1011_0f10,
        0x1314_1213,
        0x1617_1516,
        0x191a_1819,
        0x1c1d_1b1c,
        0x1f20_1e1f,
        0x2223_2122,
        0x2526_2425,
        0x2829_2728,
        0x2b2c_2a2b,
        0x2e2f_2d2e,
    );
    // Bit offsets of the sextets in [b, a, c, b]: s0 = a >> 2 at 10, s1 at 4, s2 at 22,
    // s3 at 16 (and 32 more for the lane's second group).
    let shifts = _mm512_set1_epi64(0x3036_242a_1016_040a);
    let alphabet = _mm512_loadu_si512(ALPHABET.as_ptr().cast());
    let (sp, op) = (src.as_ptr(), out.as_mut_ptr());
    for b in 0..blocks {
        // SAFETY: the 48 bytes read are within `src` (masked load), the 64 written within
        // `out` (asserted).
        let v = _mm512_maskz_loadu_epi8(0xFFFF_FFFF_FFFF, sp.add(48 * b).cast());
        let groups = _mm512_permutexvar_epi8(spread, v);
        let sextets = _mm512_multishift_epi64_epi8(shifts, groups);
        let chars = _mm512_permutexvar_epi8(sextets, alphabet);
        _mm512_storeu_si512(op.add(64 * b).cast(), chars);
    }
    blocks * 48
}
