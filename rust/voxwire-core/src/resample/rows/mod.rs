//! The row kernel: resampling for rate pairs with few phases (`l` and `m` at most 6, which
//! covers every pair among 8, 16, 24, 32 and 48 kHz and among 11.025, 22.05 and 44.1 kHz).
//!
//! Output `j` is column `c = j mod l` and row `R = j div l`. Every output of a column uses
//! the same phase, and row `R + 1`'s window is `m` inputs after row `R`'s. So for a
//! position `v` of the column windows, the inputs of 16 consecutive rows are
//! `x[v + R*m], x[v + (R+1)*m], ...`: contiguous once the history is stored as `m`
//! residue arrays (`T[r][q] = x[q*m + r]`). A kernel step loads that vector once and does
//! one fused multiply-add per column with the column's coefficient for `v` broadcast, so
//! each vector lane accumulates one output: no horizontal sums, no lane padding, and the
//! multiplies run at the FMA rate.
//!
//! Every output is `acc = fma(x, w, acc)` over the positions `v` in ascending order from
//! `acc = +0`, whichever kernel (AVX-512, AVX2 or scalar), lane or call computes it. The
//! positions outside a column's own taps have zero coefficients; with finite inputs they
//! add exact zeros (an accumulator that starts at +0 is never -0), so they change nothing.

/// Largest `l` and `m` the row layout serves.
pub const MAX_LM: usize = 6;

/// Rows per kernel group (the lanes of an AVX-512 vector).
pub const GROUP: usize = 16;

/// Computes `groups` groups of 16 rows for each of `cols` columns: for column `c` and row
/// `g * 16 + r`, the sum over `i < u` of `t[res_i * ts + q_i + g * 16 + r] * w[c * u + i]`,
/// where `(res_i, q_i)` step from `(res0, 0)` by one residue at a time (`res` wraps at `m`,
/// and `q` then moves on by one), written to `s[c * ss + g * 16 + r]`.
///
/// # Safety
/// `t` must be readable at every index that formula reaches, `w` at `cols * u` floats, `s`
/// writable at `cols * ss` with `ss >= groups * 16`; `cols` in 1..=6 and `m >= 1`; the CPU
/// has the kernel's features (see `kernel`).
pub type RowFn = unsafe fn(
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
);

/// The fastest kernel this CPU runs.
pub fn kernel() -> RowFn {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return avx512::rows;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return avx2::rows;
        }
    }
    rows_scalar
}

/// The groups `kernel()` computes at once for `cols` columns (its register block): calls of
/// that many groups run no partial blocks.
pub fn block_groups(cols: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return [8, 6, 4, 3, 2, 2][cols.clamp(1, MAX_LM) - 1];
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // Half-groups of 8 rows: 10, 6, 4, 2, 2, 1 of them.
            return [5, 3, 2, 1, 1, 1][cols.clamp(1, MAX_LM) - 1];
        }
    }
    let _ = cols;
    1
}

/// Every kernel this CPU runs (for the tests that hold them to the same results).
#[cfg(test)]
pub fn all_kernels() -> Vec<(&'static str, RowFn)> {
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))] // x86 adds kernels
    let mut v: Vec<(&'static str, RowFn)> = vec![("scalar", rows_scalar)];
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            v.push(("avx2", avx2::rows));
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            v.push(("avx512", avx512::rows));
        }
    }
    v
}

/// The scalar kernel: the definition of the arithmetic.
///
/// # Safety
/// See [`RowFn`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn rows_scalar(
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
    for c in 0..cols {
        for row in 0..groups * GROUP {
            let (mut res, mut q) = (res0, 0);
            let mut acc = 0f32;
            for i in 0..u {
                let x = *t.add(res * ts + q + row);
                acc = x.mul_add(*w.add(c * u + i), acc);
                res += 1;
                if res == m {
                    res = 0;
                    q += 1;
                }
            }
            *s.add(c * ss + row) = acc;
        }
    }
}

#[cfg(target_arch = "x86_64")]
/// Runs `$f::<C, G>` over `groups` groups, `$g` at a time, then the rest.
macro_rules! by_groups {
    ($f:ident, $c:literal, $g:literal, $t:expr, $ts:expr, $m:expr, $res0:expr, $u:expr, $w:expr, $groups:expr, $s:expr, $ss:expr) => {{
        let mut g0 = 0;
        #[allow(clippy::int_plus_one)]
        while g0 + $g <= $groups {
            $f::<$c, $g>($t, $ts, $m, $res0, $u, $w, g0, $s, $ss);
            g0 += $g;
        }
        // The rest (fewer than $g groups) in calls of up to 11.
        let mut rest = $groups - g0;
        while rest > 0 {
            let n = rest.min(11);
            match n {
                1 => $f::<$c, 1>($t, $ts, $m, $res0, $u, $w, g0, $s, $ss),
                2 => $f::<$c, 2>($t, $ts, $m, $res0, $u, $w, g0, $s, $ss),
                3 => $f::<$c, 3>($t, $ts, $m, $res0, $u, $w, g0, $s, $ss),
                4 => $f::<$c, 4>($t, $ts, $m, $res0, $u, $w, g0, $s, $ss),
                5 => $f::<$c, 5>($t, $ts, $m, $res0, $u, $w, g0, $s, $ss),
                6 => $f::<$c, 6>($t, $ts, $m, $res0, $u, $w, g0, $s, $ss),
                7 => $f::<$c, 7>($t, $ts, $m, $res0, $u, $w, g0, $s, $ss),
                8 => $f::<$c, 8>($t, $ts, $m, $res0, $u, $w, g0, $s, $ss),
                9 => $f::<$c, 9>($t, $ts, $m, $res0, $u, $w, g0, $s, $ss),
                10 => $f::<$c, 10>($t, $ts, $m, $res0, $u, $w, g0, $s, $ss),
                _ => $f::<$c, 11>($t, $ts, $m, $res0, $u, $w, g0, $s, $ss),
            }
            g0 += n;
            rest -= n;
        }
    }};
}

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

/// Writes `x` (inputs `a0..a0 + x.len()` of the stream) into the residue arrays: input `a`
/// to `t[(a % m) * ts + a / m - q0]`.
pub fn scatter(x: &[f32], a0: u64, m: usize, t: &mut [f32], ts: usize, q0: u64) {
    let mut i = 0;
    let mut a = a0;
    // Up to a whole group of m (residue 0), one at a time.
    while i < x.len() && !(a as usize).is_multiple_of(m) {
        t[(a % m as u64) as usize * ts + (a / m as u64 - q0) as usize] = x[i];
        i += 1;
        a += 1;
    }
    let q = (a / m as u64 - q0) as usize;
    let whole = (x.len() - i) / m;
    match m {
        1 => t[q..q + whole].copy_from_slice(&x[i..i + whole]),
        2 => deal::<2>(&x[i..i + 2 * whole], t, ts, q),
        3 => deal::<3>(&x[i..i + 3 * whole], t, ts, q),
        4 => deal_body::<4>(&x[i..i + 4 * whole], t, ts, q),
        _ => {
            for k in 0..whole {
                for r in 0..m {
                    t[r * ts + q + k] = x[i + k * m + r];
                }
            }
        }
    }
    i += whole * m;
    a += (whole * m) as u64;
    while i < x.len() {
        t[(a % m as u64) as usize * ts + (a / m as u64 - q0) as usize] = x[i];
        i += 1;
        a += 1;
    }
}

/// `x` in groups of `M` to `M` residue arrays from index `q`.
fn deal<const M: usize>(x: &[f32], t: &mut [f32], ts: usize, q: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F is present.
        return unsafe { avx512::deal::<M>(x, t, ts, q) };
    }
    deal_body::<M>(x, t, ts, q)
}

#[inline(always)]
fn deal_body<const M: usize>(x: &[f32], t: &mut [f32], ts: usize, q: usize) {
    let n = x.len() / M;
    let rows: [&mut [f32]; M] = {
        let mut rest = t;
        std::array::from_fn(|_| {
            let all = std::mem::take(&mut rest);
            let cut = ts.min(all.len());
            let (head, tail) = all.split_at_mut(cut);
            rest = tail;
            &mut head[q..q + n]
        })
    };
    for (k, g) in x.chunks_exact(M).enumerate() {
        for r in 0..M {
            rows[r][k] = g[r];
        }
    }
}

/// Interleaves `cols` columns of `rows` outputs (`s[c * ss + r]`) into `out[r * cols + c]`.
pub fn gather(s: &[f32], ss: usize, cols: usize, rows: usize, out: &mut [f32]) {
    match cols {
        1 => out[..rows].copy_from_slice(&s[..rows]),
        2 => weave::<2>(s, ss, rows, out),
        3 => weave::<3>(s, ss, rows, out),
        4 => weave::<4>(s, ss, rows, out),
        _ => {
            for r in 0..rows {
                for c in 0..cols {
                    out[r * cols + c] = s[c * ss + r];
                }
            }
        }
    }
}

fn weave<const C: usize>(s: &[f32], ss: usize, rows: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F is present.
        return unsafe { avx512::weave::<C>(s, ss, rows, out) };
    }
    weave_body::<C>(s, ss, rows, out)
}

#[inline(always)]
fn weave_body<const C: usize>(s: &[f32], ss: usize, rows: usize, out: &mut [f32]) {
    let cols: [&[f32]; C] = std::array::from_fn(|c| &s[c * ss..][..rows]);
    for (r, o) in out[..rows * C].chunks_exact_mut(C).enumerate() {
        for c in 0..C {
            o[c] = cols[c][r];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_agree_bit_for_bit() {
        let ts = 300;
        for m in 1..=MAX_LM {
            let t: Vec<f32> = (0..m * ts + 64)
                .map(|i| ((i as f32) * 0.731).sin() * 3000.0)
                .collect();
            for cols in 1..=MAX_LM {
                for u in [1usize, 5, 17, 93] {
                    let w: Vec<f32> = (0..cols * u)
                        .map(|i| {
                            if i % 7 == 3 {
                                0.0
                            } else {
                                ((i as f32) * 0.37).cos()
                            }
                        })
                        .collect();
                    for groups in [1usize, 2, 5, 9, 11, 13] {
                        let ss = groups * GROUP + 3;
                        let mut want = vec![0f32; cols * ss];
                        for (name, k) in all_kernels() {
                            let mut got = vec![0f32; cols * ss];
                            let res0 = (u + m - 1) % m;
                            // SAFETY: reads reach at most (m-1)*ts + u/m + 1 + groups*16 < t.len().
                            unsafe {
                                k(
                                    t.as_ptr(),
                                    ts,
                                    m,
                                    res0,
                                    u,
                                    w.as_ptr(),
                                    cols,
                                    groups,
                                    got.as_mut_ptr(),
                                    ss,
                                )
                            };
                            if name == "scalar" {
                                want = got;
                            } else {
                                assert_eq!(
                                    got, want,
                                    "{name} m={m} cols={cols} u={u} groups={groups}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn scatter_and_gather_are_inverse_layouts() {
        for m in 1..=MAX_LM {
            for a0 in 0..m as u64 + 2 {
                let x: Vec<f32> = (0..211).map(|i| i as f32).collect();
                let ts = 220;
                let q0 = a0 / m as u64;
                let mut t = vec![-1f32; m * ts];
                scatter(&x, a0, m, &mut t, ts, q0);
                for (i, &v) in x.iter().enumerate() {
                    let a = a0 + i as u64;
                    assert_eq!(t[(a as usize % m) * ts + (a / m as u64 - q0) as usize], v);
                }
            }
        }
        for cols in 1..=MAX_LM {
            let rows = 21;
            let ss = 24;
            let s: Vec<f32> = (0..cols * ss).map(|i| i as f32).collect();
            let mut out = vec![0f32; rows * cols];
            gather(&s, ss, cols, rows, &mut out);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(out[r * cols + c], s[c * ss + r]);
                }
            }
        }
    }
}
