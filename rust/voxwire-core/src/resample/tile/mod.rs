//! The tile kernel: for pairs with many phases (44.1k <-> 16k and the like, up to 441), each
//! output is a dot product of an aligned input window with a coefficient bank chosen by its
//! phase and alignment. Outputs are planned in columns (one per place in the design's
//! period) grouped by shared window starts, and computed in tiles of rows x columns.

use super::design::Design;

#[cfg(target_arch = "x86_64")]
mod avx2;

/// Builds the groups of `ncols` columns from the first output's phase `p` and newest
/// input `e`, window starts relative to `origin`.
#[allow(clippy::too_many_arguments)]
pub(super) fn plan_columns(
    d: &Design,
    base: u64,
    cols: &mut Vec<(usize, usize, usize)>,
    plan: &mut Vec<Group>,
    ncols: usize,
    mut p: usize,
    mut e: u64,
    origin: usize,
) {
    cols.clear();
    for _ in 0..ncols {
        let h = d.window_start(e, base);
        let b = p * 8 + (h & 7);
        cols.push(((h & !7) - origin, b * d.kc * 8, d.bank_nch[b] as usize));
        let (np, adv) = d.step[p];
        p = np as usize;
        e += adv as u64;
    }
    // Split each run of columns that share an aligned start into groups of at most
    // MAX_COLS, as even as possible.
    plan.clear();
    let mut start = 0;
    while start < ncols {
        let mut end = start + 1;
        while end < ncols && cols[end].0 == cols[start].0 {
            end += 1;
        }
        let n = end - start;
        let parts = n.div_ceil(MAX_COLS);
        let mut g0 = start;
        for i in 0..parts {
            let g1 = start + n * (i + 1) / parts;
            let mut g = Group {
                c0: g0,
                ncols: g1 - g0,
                a0: cols[g0].0,
                w: [0; MAX_COLS],
                nch: 0,
            };
            for (q, c) in cols[g0..g1].iter().enumerate() {
                g.w[q] = c.1;
                g.nch = g.nch.max(c.2);
            }
            plan.push(g);
            g0 = g1;
        }
        start = end;
    }
}

/// Rows per kernel call at most (a block of rows across all groups at a time).
pub(super) const ROW_BLOCK: usize = 64;

/// Most columns of a kernel tile (the AVX2 kernel's register budget; see `avx2::MAX_ROWS`).
const MAX_COLS: usize = 3;

/// Neighbouring columns whose windows start in the same aligned chunk.
#[derive(Debug, Clone, Copy)]
pub(super) struct Group {
    /// First column and how many.
    pub(super) c0: usize,
    pub(super) ncols: usize,
    /// Aligned window start of the group's first row, relative to the first column's.
    pub(super) a0: usize,
    /// Each column's bank (offset into the bank floats).
    pub(super) w: [usize; MAX_COLS],
    /// Chunks: the most any of its banks needs (the others have zeros there).
    pub(super) nch: usize,
}

/// Computes `rows` (any) x `ncols` (1..=3) outputs (the AVX2 kernel in tiles of up to 4 rows): output (r, c) is the dot
/// product of `x[a0 + r * stride..][..nch * 8]` with `banks[w[c]..][..nch * 8]`, accumulated
/// in 8 lanes over chunks of 8 in order, then reduced as `((l0 + l1) + (l2 + l3)) + ((l4 +
/// l5) + (l6 + l7))`, and written to `out[r * ostride + c]`. `a0`, `stride` and the `w` are
/// multiples of 8, `x` and `banks` 32-byte aligned. Chunks of zero coefficients past an
/// output's own add exact zeros (an accumulator that starts at +0 is never -0, and the
/// inputs are finite), so they do not change it.
pub(super) type TileFn =
    fn(&[f32], usize, usize, &[f32], &[usize; MAX_COLS], usize, usize, usize, &mut [f32], usize);

/// The fastest tile kernel this CPU runs.
pub(super) fn kernel() -> TileFn {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        return avx2::tile;
    }
    tile_scalar
}

#[allow(clippy::too_many_arguments)]
fn tile_scalar(
    x: &[f32],
    a0: usize,
    stride: usize,
    banks: &[f32],
    w: &[usize; MAX_COLS],
    ncols: usize,
    nch: usize,
    rows: usize,
    out: &mut [f32],
    ostride: usize,
) {
    for r in 0..rows {
        let xs = &x[a0 + r * stride..][..nch * 8];
        for c in 0..ncols {
            let ws = &banks[w[c]..][..nch * 8];
            let mut acc = [0f32; 8];
            for (cx, cw) in xs.chunks_exact(8).zip(ws.chunks_exact(8)) {
                for j in 0..8 {
                    acc[j] += cx[j] * cw[j];
                }
            }
            out[r * ostride + c] =
                ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resample::design::{floats, Lane};

    #[test]
    fn simd_and_scalar_kernels_agree() {
        let h: Vec<Lane> = (0..60)
            .map(|i| Lane(std::array::from_fn(|j| ((i * 8 + j) as f32 * 0.37).sin())))
            .collect();
        let c: Vec<Lane> = (0..40)
            .map(|i| Lane(std::array::from_fn(|j| ((i * 8 + j) as f32 * 0.11).cos())))
            .collect();
        let (x, w) = (floats(&h), floats(&c));
        // Rows past one AVX2 tile (4) and a remainder.
        for rows in 1..=9 {
            for ncols in 1..=MAX_COLS {
                for nch in [1, 3, 12] {
                    let mut s = vec![0f32; 64];
                    let mut v = vec![0f32; 64];
                    let b = [0, 96, 200];
                    tile_scalar(x, 16, 24, w, &b, ncols, nch, rows, &mut s, 5);
                    (kernel())(x, 16, 24, w, &b, ncols, nch, rows, &mut v, 5);
                    for i in 0..64 {
                        assert!((s[i] - v[i]).abs() < 1e-4, "{rows} {ncols} {nch} {i}");
                    }
                    assert_eq!(s.iter().filter(|&&y| y != 0.0).count(), rows * ncols);
                }
            }
        }
    }
}
