//! The row kernel with AVX2 and FMA.

/// The row kernel with AVX2 and FMA.
///
/// # Safety
/// See [`super::RowFn`]; the CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
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
    // In half-groups of 8 rows (one register each): cols x H accumulators, at most 12 of
    // the 16 registers beside the cols broadcasts and an input (two FMAs a cycle with a
    // latency of 4 want 8 or more independent sums; 10 at 5 per input spilled).
    let halves = 2 * groups;
    match cols {
        1 => by_groups!(block256, 1, 10, t, ts, m, res0, u, w, halves, s, ss),
        2 => by_groups!(block256, 2, 6, t, ts, m, res0, u, w, halves, s, ss),
        3 => by_groups!(block256, 3, 4, t, ts, m, res0, u, w, halves, s, ss),
        4 => by_groups!(block256, 4, 2, t, ts, m, res0, u, w, halves, s, ss),
        5 => by_groups!(block256, 5, 2, t, ts, m, res0, u, w, halves, s, ss),
        _ => by_groups!(block256, 6, 1, t, ts, m, res0, u, w, halves, s, ss),
    }
}

/// `H` half-groups (8 rows each) from half-group `h0` of `C` columns.
#[target_feature(enable = "avx2,fma")]
#[inline]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn block256<const C: usize, const H: usize>(
    t: *const f32,
    ts: usize,
    m: usize,
    res0: usize,
    u: usize,
    w: *const f32,
    h0: usize,
    s: *mut f32,
    ss: usize,
) {
    use std::arch::x86_64::*;
    let t = t.add(h0 * 8);
    let mut acc = [[_mm256_setzero_ps(); H]; C];
    let (mut res, mut q) = (res0, 0);
    for i in 0..u {
        let p = t.add(res * ts + q);
        // The broadcasts first, then one input at a time (C + 1 registers besides the
        // C x H accumulators).
        let wv: [__m256; C] = std::array::from_fn(|c| _mm256_broadcast_ss(&*w.add(c * u + i)));
        for h in 0..H {
            let x = _mm256_loadu_ps(p.add(h * 8));
            for c in 0..C {
                acc[c][h] = _mm256_fmadd_ps(x, wv[c], acc[c][h]);
            }
        }
        res += 1;
        if res == m {
            res = 0;
            q += 1;
        }
    }
    for c in 0..C {
        for h in 0..H {
            _mm256_storeu_ps(s.add(c * ss + (h0 + h) * 8), acc[c][h]);
        }
    }
}
