//! The row kernel and the layout moves with AVX-512F.

use super::{deal_body, weave_body, GROUP};

/// The row kernel with AVX-512F.
///
/// # Safety
/// See [`super::RowFn`]; the CPU has AVX-512F.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn rows(
    t: *const f32,
    ts: usize,
    m: usize,
    res0: usize,
    u: usize,
    w: *const f32,
    cols: usize,
    groups: usize,
    s: *mut f32,
    ss: usize,
) {
    // Accumulators: cols x G vectors (12 or fewer of the 32 registers), plus G inputs.
    match cols {
        1 => by_groups!(block512, 1, 8, t, ts, m, res0, u, w, groups, s, ss),
        2 => by_groups!(block512, 2, 6, t, ts, m, res0, u, w, groups, s, ss),
        3 => by_groups!(block512, 3, 4, t, ts, m, res0, u, w, groups, s, ss),
        4 => by_groups!(block512, 4, 3, t, ts, m, res0, u, w, groups, s, ss),
        5 => by_groups!(block512, 5, 2, t, ts, m, res0, u, w, groups, s, ss),
        _ => by_groups!(block512, 6, 2, t, ts, m, res0, u, w, groups, s, ss),
    }
}

/// `G` groups from group `g0` of `C` columns, one 16-lane accumulator each.
#[target_feature(enable = "avx512f")]
#[inline]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn block512<const C: usize, const G: usize>(
    t: *const f32,
    ts: usize,
    m: usize,
    res0: usize,
    u: usize,
    w: *const f32,
    g0: usize,
    s: *mut f32,
    ss: usize,
) {
    use std::arch::x86_64::*;
    let t = t.add(g0 * GROUP);
    let mut acc = [[_mm512_setzero_ps(); G]; C];
    let (mut res, mut q) = (res0, 0);
    for i in 0..u {
        let p = t.add(res * ts + q);
        let xs: [__m512; G] = std::array::from_fn(|g| _mm512_loadu_ps(p.add(g * GROUP)));
        for c in 0..C {
            let wv = _mm512_set1_ps(*w.add(c * u + i));
            for g in 0..G {
                acc[c][g] = _mm512_fmadd_ps(xs[g], wv, acc[c][g]);
            }
        }
        res += 1;
        if res == m {
            res = 0;
            q += 1;
        }
    }
    for c in 0..C {
        for g in 0..G {
            _mm512_storeu_ps(s.add(c * ss + (g0 + g) * GROUP), acc[c][g]);
        }
    }
}

#[target_feature(enable = "avx512f")]
pub(super) unsafe fn deal<const M: usize>(x: &[f32], t: &mut [f32], ts: usize, q: usize) {
    use std::arch::x86_64::*;
    let n = x.len() / M;
    assert!(M <= 3 && (M - 1) * ts + q + n <= t.len());
    // 16 groups of M at a time: residue r of group g is float g * M + r of the block; a
    // two-source permutation gathers the indices below 32, a second one the rest from
    // the third vector.
    let mut k = 0;
    if M == 2 {
        let i0 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let i1 = _mm512_add_epi32(i0, _mm512_set1_epi32(1));
        while k + 16 <= n {
            let a = _mm512_loadu_ps(x.as_ptr().add(2 * k));
            let b = _mm512_loadu_ps(x.as_ptr().add(2 * k + 16));
            _mm512_storeu_ps(t.as_mut_ptr().add(q + k), _mm512_permutex2var_ps(a, i0, b));
            _mm512_storeu_ps(
                t.as_mut_ptr().add(ts + q + k),
                _mm512_permutex2var_ps(a, i1, b),
            );
            k += 16;
        }
    } else if M == 3 {
        let idx: [[__m512i; 2]; 3] = std::array::from_fn(|r| {
            // Lane j takes float 3 j + r: from a or b while that is < 32, else from c.
            let first: [i32; 16] = std::array::from_fn(|j| ((3 * j + r) % 32) as i32);
            let second: [i32; 16] = std::array::from_fn(|j| {
                if 3 * j + r < 32 {
                    j as i32
                } else {
                    (3 * j + r - 16) as i32
                }
            });
            [
                _mm512_loadu_si512(first.as_ptr().cast()),
                _mm512_loadu_si512(second.as_ptr().cast()),
            ]
        });
        while k + 16 <= n {
            let a = _mm512_loadu_ps(x.as_ptr().add(3 * k));
            let b = _mm512_loadu_ps(x.as_ptr().add(3 * k + 16));
            let c = _mm512_loadu_ps(x.as_ptr().add(3 * k + 32));
            for (r, [i0, i1]) in idx.iter().enumerate() {
                let ab = _mm512_permutex2var_ps(a, *i0, b);
                _mm512_storeu_ps(
                    t.as_mut_ptr().add(r * ts + q + k),
                    _mm512_permutex2var_ps(ab, *i1, c),
                );
            }
            k += 16;
        }
    }
    deal_body::<M>(&x[k * M..], t, ts, q + k)
}

#[target_feature(enable = "avx512f")]
pub(super) unsafe fn weave<const C: usize>(s: &[f32], ss: usize, rows: usize, out: &mut [f32]) {
    weave_body::<C>(s, ss, rows, out)
}
