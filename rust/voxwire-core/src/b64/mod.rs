//! Strict standard-alphabet base64 with padding (RFC 4648 section 4), the encoding every seed
//! API uses for PCM16 audio.
//!
//! Encoding uses our own AVX-512 VBMI kernel where the CPU has it (`avx512`, 4.7x
//! base64-simd's for 960 bytes on Zen 4), else our AVX2 kernel (`avx2`, 2.2x base64-simd's
//! on Zen 3) and `base64-simd` for the tail and elsewhere. Decoding uses our AVX-512 VBMI
//! kernel for whole 64-character blocks where the CPU has it (about 3x base64-simd's), and
//! `base64-simd` (AVX2/SSSE3/NEON with runtime dispatch and a scalar fallback) for the last
//! quantum, where padding and unused bits are checked, and elsewhere. Neither reports a
//! position, so on the error path only a scalar scan finds the first offending offset and
//! says what is wrong there.

use crate::error::{Error, Result};
use base64_simd::{AsOut, STANDARD};
use std::mem::MaybeUninit;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

/// Length of the base64 text of `n` bytes.
pub const fn encoded_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// Length of the bytes `src` decodes to, checking its length and padding (and, if those are
/// wrong, reporting the first bad character before them, the likelier cause).
pub fn decoded_len(src: &[u8]) -> Result<usize> {
    len_from_padding(src).map_err(|_| diagnose(src))
}

fn len_from_padding(src: &[u8]) -> Result<usize> {
    let n = src.len();
    if !n.is_multiple_of(4) {
        return Err(Error::Base64 {
            offset: n,
            reason: "length is not a multiple of 4 (padding missing or data truncated)",
        });
    }
    let pad = src.iter().rev().take(2).take_while(|&&c| c == b'=').count();
    Ok(n / 4 * 3 - pad)
}

/// Decodes `src` into `out`, which must be exactly `decoded_len(src)` bytes long.
///
/// The last characters (the quantum where padding is, and up to 64 before it) are decoded
/// into a buffer with room for any padding, and every decoded length is checked against
/// `out`: so even if `src` changed during the call (memory another thread writes), the result
/// is an error or `out` filled, never a panic.
pub fn decode_into(src: &[u8], out: &mut [u8]) -> Result<()> {
    let expect = decoded_len(src)?;
    if out.len() != expect {
        return Err(Error::InvalidArgument(format!(
            "output holds {} bytes, the input decodes to {expect}",
            out.len()
        )));
    }
    if src.is_empty() {
        return Ok(());
    }
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if src.len() >= 68 && has_avx512_vbmi() {
        // Whole 64-character blocks, leaving at least the last quantum (where padding and
        // the unused bits are checked) to base64-simd.
        let bulk = (src.len() - 4) / 64 * 64;
        // SAFETY: the CPU has AVX-512 F/BW/VBMI; `out` holds `bulk / 4 * 3` bytes and more.
        if !unsafe { avx512::decode_blocks(&src[..bulk], out) } {
            return Err(diagnose(src));
        }
        done = bulk;
    }
    // `src` is a non-empty multiple of 4 characters (decoded_len checked it).
    let last = src.len() - 4;
    if last - done > 64 {
        // Whole quanta before the last one (the portable path, without AVX-512).
        let o = &mut out[done / 4 * 3..last / 4 * 3];
        let want = o.len();
        match STANDARD.decode(&src[done..last], o.as_out()) {
            Ok(d) if d.len() == want => {}
            _ => return Err(diagnose(src)),
        }
        done = last;
    }
    // The tail, at most 68 characters, into a buffer with room for whatever its padding
    // says (base64-simd reads the padding again and asserts that the output has room).
    let tail = &src[done..];
    let mut bytes = [MaybeUninit::<u8>::uninit(); 51];
    let o = &mut out[done / 4 * 3..];
    match STANDARD.decode(tail, bytes.as_mut_slice().as_out()) {
        Ok(d) if d.len() == o.len() => {
            o.copy_from_slice(d);
            Ok(())
        }
        _ => Err(diagnose(src)),
    }
}

/// Whether the CPU has what the AVX-512 decoder needs.
#[cfg(target_arch = "x86_64")]
fn has_avx512_vbmi() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vbmi")
}

/// Decodes `src` into a new vector (a convenience over [`decode_into`]).
pub fn decode(src: &[u8]) -> Result<Vec<u8>> {
    let mut out = vec![0u8; decoded_len(src)?];
    decode_into(src, &mut out)?;
    Ok(out)
}

/// Encodes `src` into `out`, which must be exactly `encoded_len(src.len())` bytes long.
pub fn encode_into(src: &[u8], out: &mut [u8]) -> Result<()> {
    // SAFETY: same layout; `encode_uninit` only ever writes initialised bytes.
    let out = unsafe { &mut *(out as *mut [u8] as *mut [MaybeUninit<u8>]) };
    encode_uninit(src, out)
}

/// Encodes `src` into uninitialised memory (for example a fresh Python `bytes` object), which
/// must be exactly `encoded_len(src.len())` bytes long; all of it is written.
pub fn encode_uninit(src: &[u8], out: &mut [MaybeUninit<u8>]) -> Result<()> {
    if out.len() != encoded_len(src.len()) {
        return Err(Error::InvalidArgument(format!(
            "output holds {} bytes, the encoding needs {}",
            out.len(),
            encoded_len(src.len())
        )));
    }
    #[cfg(target_arch = "x86_64")]
    let done = encode_blocks_x86(src, out);
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    // The tail (and everything, without AVX2): base64-simd.
    let _ = STANDARD.encode(&src[done..], out[done / 3 * 4..].as_out());
    Ok(())
}

/// Encodes the bulk of `src` with our AVX-512 VBMI or AVX2 kernel where the CPU has one;
/// returns the bytes consumed (`out` then holds their characters), 0 where neither runs.
/// `out` must hold the whole encoding.
#[cfg(target_arch = "x86_64")]
fn encode_blocks_x86(src: &[u8], out: &mut [MaybeUninit<u8>]) -> usize {
    if has_avx512_vbmi() {
        // SAFETY: the CPU has AVX-512 F/BW/VBMI; `out` holds the whole encoding.
        return unsafe { avx512::encode_blocks(src, out) };
    } else if std::arch::is_x86_feature_detected!("avx2") {
        // 32-byte stores that straddle cache lines cost a third of the throughput (Zen 3:
        // 8.3 against 11 GB/s), and a Python bytes payload is often 16 bytes off: encode a
        // head of up to 21 bytes (28 characters) on the portable path until `out` is aligned.
        let misalign = out.as_ptr() as usize % 32;
        let head = if misalign.is_multiple_of(4) {
            (32 - misalign) % 32 / 4 * 3
        } else {
            0
        };
        if head <= src.len() {
            let _ = STANDARD.encode(&src[..head], out[..head / 3 * 4].as_out());
            // SAFETY: AVX2 is present and `out` holds the whole encoding.
            return head + unsafe { avx2::encode(&src[head..], &mut out[head / 3 * 4..]) };
        }
    }
    0
}

fn sextet(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Finds the first problem in `src` (called only after the fast decoder refused it).
pub fn diagnose(src: &[u8]) -> Error {
    let n = src.len();
    if let Err(e) = len_from_padding(src) {
        // Report a bad character before it, if there is one: it is the likelier cause.
        return first_bad_char(src).unwrap_or(e);
    }
    if let Some(e) = first_bad_char(src) {
        return e;
    }
    // Characters and padding placement are fine: the last quantum has non-zero unused bits.
    Error::Base64 {
        offset: n.saturating_sub(1 + src.iter().rev().take_while(|&&c| c == b'=').count()),
        reason: "non-canonical encoding: unused bits of the last character are not zero",
    }
}

fn first_bad_char(src: &[u8]) -> Option<Error> {
    let n = src.len();
    for (i, &c) in src.iter().enumerate() {
        if sextet(c).is_some() {
            continue;
        }
        if c == b'=' {
            let last_quantum = n.is_multiple_of(4) && i + 4 >= n;
            let ok = last_quantum && (i == n - 1 || (i == n - 2 && src[n - 1] == b'='));
            if ok {
                continue;
            }
            return Some(Error::Base64 {
                offset: i,
                reason: "padding '=' in the middle of the data",
            });
        }
        return Some(Error::Base64 {
            offset: i,
            reason: if c.is_ascii_whitespace() {
                "whitespace is not allowed"
            } else {
                "character outside the standard base64 alphabet"
            },
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_all_lengths() {
        for n in 0..200usize {
            let data: Vec<u8> = (0..n).map(|i| (i * 131 + 7) as u8).collect();
            let mut text = vec![0u8; encoded_len(n)];
            encode_into(&data, &mut text).unwrap();
            assert_eq!(decode(&text).unwrap(), data);
        }
    }

    /// Every length and alignment (through the AVX2 path where present) agrees with the
    /// portable encoder.
    #[test]
    fn encode_matches_portable_encoder() {
        let data: Vec<u8> = (0..3000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for start in 0..5 {
            for n in (0..400).chain([960, 2999 - start]) {
                let src = &data[start..start + n];
                let mut got = vec![0u8; encoded_len(n)];
                encode_into(src, &mut got).unwrap();
                assert_eq!(
                    got,
                    STANDARD.encode_type::<Vec<u8>>(src),
                    "start {start} n {n}"
                );
            }
        }
        // Every output alignment (the AVX2 path aligns its stores with a portable head).
        for shift in 0..33 {
            let n = 1000;
            let mut buf = vec![0u8; encoded_len(n) + 33];
            encode_into(&data[..n], &mut buf[shift..shift + encoded_len(n)]).unwrap();
            assert_eq!(
                &buf[shift..shift + encoded_len(n)],
                STANDARD.encode_type::<Vec<u8>>(&data[..n]).as_slice(),
                "output shift {shift}"
            );
        }
        let all: Vec<u8> = (0..=255u8).cycle().take(3 * 256).collect();
        assert_eq!(decode(&STANDARD.encode_type::<Vec<u8>>(&all)).unwrap(), all);
    }

    /// Every length (through the AVX-512 blocks where present) decodes like the portable
    /// decoder, and a bad character anywhere is found at its offset.
    #[test]
    fn decode_matches_portable_decoder() {
        let data: Vec<u8> = (0..2000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        for n in (0..300).chain([720, 960, 1999]) {
            let text = STANDARD.encode_type::<Vec<u8>>(&data[..n]);
            assert_eq!(decode(&text).unwrap(), &data[..n], "n {n}");
        }
        let text = STANDARD.encode_type::<Vec<u8>>(&data[..960]);
        for i in 0..text.len() - 4 {
            for bad in [b'!', b'=', b' ', 0xC3, b'A' | 0x80] {
                let mut t = text.clone();
                t[i] = bad;
                assert_eq!(err(&t).0, i, "offset {i} char {bad}");
            }
        }
    }

    /// The AVX2 encoder on its own (machines with AVX-512 VBMI never reach it otherwise).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_encoder_matches_portable_encoder() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        let data: Vec<u8> = (0..3000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for n in (0..300).chain([960, 2999]) {
            let mut out = vec![MaybeUninit::new(0u8); encoded_len(n)];
            // SAFETY: AVX2 is present; `out` holds the whole encoding.
            let done = unsafe { avx2::encode(&data[..n], &mut out) };
            let want = STANDARD.encode_type::<Vec<u8>>(&data[..done]);
            // SAFETY: the kernel wrote the first `done / 3 * 4` bytes.
            let got: Vec<u8> = out[..done / 3 * 4]
                .iter()
                .map(|b| unsafe { b.assume_init() })
                .collect();
            assert_eq!(got, want, "n {n}");
        }
    }

    #[test]
    fn known_vectors() {
        assert_eq!(decode(b"").unwrap(), b"");
        assert_eq!(decode(b"Zm9vYmFy").unwrap(), b"foobar");
        assert_eq!(decode(b"Zm9vYg==").unwrap(), b"foob");
        assert_eq!(decode(b"Zm9vYmE=").unwrap(), b"fooba");
    }

    fn err(s: &[u8]) -> (usize, &'static str) {
        match decode(s) {
            Err(Error::Base64 { offset, reason }) => (offset, reason),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_name_the_offset() {
        assert_eq!(err(b"Zm9vYm!y").0, 6);
        assert_eq!(err(b"Zm9vYmF").0, 7);
        assert_eq!(err(b"Zm9v YmF").0, 4);
        assert_eq!(err(b"Zm=vYmFy").0, 2);
        assert_eq!(err(b"Zm9vY===").0, 5);
        assert_eq!(err(b"Zg=A").0, 2);
        assert!(err(b"Zh==").1.contains("non-canonical"));
        assert!(err("Zm9vYmé=".as_bytes()).1.contains("alphabet"));
    }
}
