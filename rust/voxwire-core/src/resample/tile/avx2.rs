//! The tile kernel with AVX2 and FMA.

use super::MAX_COLS;

/// Most rows of a tile (4 x 3 accumulators, 3 coefficient vectors and an input vector fill
/// the 16 AVX2 registers).
const MAX_ROWS: usize = 4;

/// The AVX2 tile kernel (see [`super::TileFn`]).
#[allow(clippy::too_many_arguments)]
pub(super) fn tile(
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
    assert!(
        rows >= 1
            && (1..=MAX_COLS).contains(&ncols)
            && a0.is_multiple_of(8)
            && stride.is_multiple_of(8)
            && (x.as_ptr() as usize).is_multiple_of(32)
            && (banks.as_ptr() as usize).is_multiple_of(32)
            && a0 + (rows - 1) * stride + nch * 8 <= x.len()
            && w[..ncols]
                .iter()
                .all(|&o| o.is_multiple_of(8) && o + nch * 8 <= banks.len())
            && (rows - 1) * ostride + ncols <= out.len()
    );
    // SAFETY: in bounds (asserted).
    let xp = unsafe { x.as_ptr().add(a0) };
    let wp = w.map(|o| banks.as_ptr().wrapping_add(o));
    let op = out.as_mut_ptr();
    // SAFETY: AVX2 and FMA are present (checked by `kernel`); every load is aligned and
    // in bounds, every store in bounds (asserted above).
    unsafe {
        match ncols {
            1 => tile_rows_avx2::<1>(xp, stride, &wp, nch, rows, op, ostride),
            2 => tile_rows_avx2::<2>(xp, stride, &wp, nch, rows, op, ostride),
            _ => tile_rows_avx2::<3>(xp, stride, &wp, nch, rows, op, ostride),
        }
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn tile_rows_avx2<const C: usize>(
    x: *const f32,
    stride: usize,
    w: &[*const f32; MAX_COLS],
    nch: usize,
    rows: usize,
    out: *mut f32,
    ostride: usize,
) {
    let mut r = 0;
    while r + MAX_ROWS <= rows {
        tile_avx2_impl::<MAX_ROWS, C>(
            x.add(r * stride),
            stride,
            w,
            nch,
            out.add(r * ostride),
            ostride,
        );
        r += MAX_ROWS;
    }
    let (x, out) = (x.add(r * stride), out.add(r * ostride));
    match rows - r {
        1 => tile_avx2_impl::<1, C>(x, stride, w, nch, out, ostride),
        2 => tile_avx2_impl::<2, C>(x, stride, w, nch, out, ostride),
        3 => tile_avx2_impl::<3, C>(x, stride, w, nch, out, ostride),
        _ => {}
    }
}

#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile_avx2_impl<const R: usize, const C: usize>(
    x: *const f32,
    stride: usize,
    w: &[*const f32; MAX_COLS],
    nch: usize,
    out: *mut f32,
    ostride: usize,
) {
    use std::arch::x86_64::*;
    let xs: [*const f32; R] = std::array::from_fn(|r| x.add(r * stride));
    let mut a = [[_mm256_setzero_ps(); C]; R];
    for ch in 0..nch {
        let wv: [__m256; C] = std::array::from_fn(|c| _mm256_load_ps(w[c].add(ch * 8)));
        for r in 0..R {
            let xv = _mm256_load_ps(xs[r].add(ch * 8));
            for c in 0..C {
                a[r][c] = _mm256_fmadd_ps(xv, wv[c], a[r][c]);
            }
        }
    }
    // Reduce 8 accumulators at a time (output (r, c) is accumulator r * C + c).
    let mut acc = [_mm256_setzero_ps(); 16];
    for r in 0..R {
        for c in 0..C {
            acc[r * C + c] = a[r][c];
        }
    }
    let mut v = [0f32; 16];
    let (lo, hi) = acc.split_at(8);
    _mm256_storeu_ps(v.as_mut_ptr(), reduce8(lo.try_into().unwrap()));
    if R * C > 8 {
        _mm256_storeu_ps(v.as_mut_ptr().add(8), reduce8(hi.try_into().unwrap()));
    }
    for r in 0..R {
        for c in 0..C {
            *out.add(r * ostride + c) = v[r * C + c];
        }
    }
}

/// `[sum(a[0]), ..., sum(a[7])]`, each as `((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))`.
#[target_feature(enable = "avx2,fma")]
unsafe fn reduce8(a: &[std::arch::x86_64::__m256; 8]) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    // hadd(a, b) = [a0+a1, a2+a3, b0+b1, b2+b3 | a4+a5, a6+a7, b4+b5, b6+b7]
    let s01 = _mm256_hadd_ps(a[0], a[1]);
    let s23 = _mm256_hadd_ps(a[2], a[3]);
    let s45 = _mm256_hadd_ps(a[4], a[5]);
    let s67 = _mm256_hadd_ps(a[6], a[7]);
    let s0123 = _mm256_hadd_ps(s01, s23);
    let s4567 = _mm256_hadd_ps(s45, s67);
    let lo = _mm256_permute2f128_ps::<0x20>(s0123, s4567);
    let hi = _mm256_permute2f128_ps::<0x31>(s0123, s4567);
    _mm256_add_ps(lo, hi)
}
