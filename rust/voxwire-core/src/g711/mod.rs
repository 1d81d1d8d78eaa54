//! G.711 mu-law and A-law, bit-exact with CPython's `audioop` (`lin2ulaw`, `ulaw2lin`,
//! `lin2alaw`, `alaw2lin` at width 2).
//!
//! The reference algorithm (Sun Microsystems' public-domain g711.c, as adopted by audioop) is
//! evaluated at compile time into tables: a 64 KiB code table per law for encoding, indexed
//! by the sample's bit pattern, and a 256-entry sample table for decoding. Each sample then
//! costs one load.

#[cfg(target_arch = "x86_64")]
mod avx2;

const SEG_UEND: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
const SEG_AEND: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

const fn segment(val: i32, table: &[i32; 8]) -> i32 {
    let mut i = 0;
    while i < 8 {
        if val <= table[i] {
            return i as i32;
        }
        i += 1;
    }
    8
}

/// mu-law code of a 14-bit sample (the 16-bit sample shifted right by 2).
const fn ulaw_of_14bit(sample: i32) -> u8 {
    const BIAS: i32 = 0x84 >> 2;
    const CLIP: i32 = 8159;
    let (mut v, mask) = if sample < 0 {
        (-sample, 0x7F)
    } else {
        (sample, 0xFF)
    };
    if v > CLIP {
        v = CLIP;
    }
    v += BIAS;
    let seg = segment(v, &SEG_UEND);
    if seg >= 8 {
        (0x7F ^ mask) as u8
    } else {
        (((seg << 4) | ((v >> (seg + 1)) & 0xF)) ^ mask) as u8
    }
}

/// A-law code of a 13-bit sample (the 16-bit sample shifted right by 3).
const fn alaw_of_13bit(sample: i32) -> u8 {
    let (v, mask) = if sample >= 0 {
        (sample, 0xD5)
    } else {
        (-sample - 1, 0x55)
    };
    let seg = segment(v, &SEG_AEND);
    if seg >= 8 {
        (0x7F ^ mask) as u8
    } else {
        let q = if seg < 2 {
            (v >> 1) & 0xF
        } else {
            (v >> seg) & 0xF
        };
        (((seg << 4) | q) ^ mask) as u8
    }
}

const fn ulaw_to_linear(code: u8) -> i16 {
    let u = !code as i32;
    let t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4);
    (if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
}

const fn alaw_to_linear(code: u8) -> i16 {
    let a = (code ^ 0x55) as i32;
    let mut t = (a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    t = match seg {
        0 => t + 8,
        1 => t + 0x108,
        _ => (t + 0x108) << (seg - 1),
    };
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

const fn encode_table(ulaw: bool) -> [u8; 65536] {
    let mut t = [0u8; 65536];
    let mut i = 0;
    while i < 65536 {
        let s = (i as u16) as i16 as i32;
        t[i] = if ulaw {
            ulaw_of_14bit(s >> 2)
        } else {
            alaw_of_13bit(s >> 3)
        };
        i += 1;
    }
    t
}

const fn decode_table(ulaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if ulaw {
            ulaw_to_linear(i as u8)
        } else {
            alaw_to_linear(i as u8)
        };
        i += 1;
    }
    t
}

static ULAW_ENC: [u8; 65536] = encode_table(true);
static ALAW_ENC: [u8; 65536] = encode_table(false);
static ULAW_DEC: [i16; 256] = decode_table(true);
static ALAW_DEC: [i16; 256] = decode_table(false);

#[inline(always)]
fn encode(table: &[u8; 65536], x: &[i16], out: &mut [u8]) {
    for (o, &s) in out.iter_mut().zip(x) {
        *o = table[s as u16 as usize];
    }
}

#[inline(always)]
fn decode(table: &[i16; 256], x: &[u8], out: &mut [i16]) {
    for (o, &c) in out.iter_mut().zip(x) {
        *o = table[c as usize];
    }
}

/// Encodes samples to mu-law codes (`out` at least as long as `x`).
pub fn ulaw_encode(x: &[i16], out: &mut [u8]) {
    encode(&ULAW_ENC, x, out);
}

/// Decodes mu-law codes to samples (`out` at least as long as `x`).
pub fn ulaw_decode(x: &[u8], out: &mut [i16]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present.
        let n = unsafe { avx2::ulaw_decode(x, out) };
        return decode(&ULAW_DEC, &x[n..], &mut out[n..]);
    }
    decode(&ULAW_DEC, x, out);
}

/// Encodes samples to A-law codes (`out` at least as long as `x`).
pub fn alaw_encode(x: &[i16], out: &mut [u8]) {
    encode(&ALAW_ENC, x, out);
}

/// Decodes A-law codes to samples (`out` at least as long as `x`).
pub fn alaw_decode(x: &[u8], out: &mut [i16]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present.
        let n = unsafe { avx2::alaw_decode(x, out) };
        return decode(&ALAW_DEC, &x[n..], &mut out[n..]);
    }
    decode(&ALAW_DEC, x, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SIMD decoders agree with the tables on every code, at every offset and tail length.
    #[test]
    fn simd_decode_matches_tables() {
        let codes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).chain(0..77).collect();
        for start in 0..17 {
            let x = &codes[start..];
            let mut got = vec![0i16; x.len()];
            let mut want = vec![0i16; x.len()];
            ulaw_decode(x, &mut got);
            decode(&ULAW_DEC, x, &mut want);
            assert_eq!(got, want, "ulaw from {start}");
            alaw_decode(x, &mut got);
            decode(&ALAW_DEC, x, &mut want);
            assert_eq!(got, want, "alaw from {start}");
        }
    }

    #[test]
    fn known_codes() {
        // Silence and full scale, from the G.711 tables.
        let mut c = [0u8; 3];
        ulaw_encode(&[0, i16::MAX, i16::MIN], &mut c);
        assert_eq!(c, [0xFF, 0x80, 0x00]);
        alaw_encode(&[0, i16::MAX, i16::MIN], &mut c);
        assert_eq!(c, [0xD5, 0xAA, 0x2A]);
    }

    #[test]
    fn decode_then_encode_is_identity_on_codes() {
        for law in [true, false] {
            for code in 0..=255u8 {
                let mut s = [0i16];
                let mut back = [0u8];
                if law {
                    ulaw_decode(&[code], &mut s);
                    ulaw_encode(&s, &mut back);
                    // mu-law has two zeros (0x7F and 0xFF); both decode to 0, which encodes to 0xFF.
                    let want = if code == 0x7F { 0xFF } else { code };
                    assert_eq!(back[0], want, "ulaw {code:#x}");
                } else {
                    alaw_decode(&[code], &mut s);
                    alaw_encode(&s, &mut back);
                    assert_eq!(back[0], code, "alaw {code:#x}");
                }
            }
        }
    }

    #[test]
    fn encoding_is_monotonic() {
        let mut prev = i16::MIN;
        for s in i16::MIN..=i16::MAX {
            let mut c = [0u8];
            let mut d = [0i16];
            ulaw_encode(&[s], &mut c);
            ulaw_decode(&c, &mut d);
            assert!(d[0] >= prev);
            prev = d[0];
        }
    }
}
