//! A stream: the input history (in the row layout or as aligned lanes for the tile kernel)
//! and the output counter; `process_with` / `flush_with` drive the kernels.

use super::design::{floats, floats_mut, Design, Lane, ZERO_LANE};
use super::rows::{self, GROUP};
use super::tile::{self, plan_columns, Group, ROW_BLOCK};
use super::Quality;
use crate::error::{Error, Result};
use std::sync::Arc;

/// Input samples handled per step of a large `process` call.
const SLICE: usize = 16 * 1024;

/// Input samples converted at a time before they are dealt to the residue arrays.
const STAGE: usize = 1024;

/// The error for an output slice of `len` samples that cannot take the `want` a `what`
/// ("push" or "flush") yields.
pub fn check_room(len: usize, want: usize, what: &str) -> Result<()> {
    if len < want {
        return Err(Error::InvalidArgument(format!(
            "output holds {len} samples, the {what} yields {want}"
        )));
    }
    Ok(())
}

/// One stream's state: the input history and the output counter.
#[derive(Debug, Clone)]
pub struct Resampler {
    d: Arc<Design>,
    /// The input history, 32-byte aligned: float `h` holds input `h + base - lead`, for
    /// `h < len`; the first `lead` inputs of a stream are the zeros before input 0. At least
    /// two lanes past `len` are allocated (kernels read up to 15 floats past the newest
    /// input, with zero coefficients) and hold finite values.
    hist: Vec<Lane>,
    len: usize,
    /// A multiple of 8, so that alignment in `hist` is alignment in absolute input index.
    base: u64,
    /// Inputs received (zeros of a flush not counted).
    n_in: u64,
    /// Outputs produced.
    n_out: u64,
    /// f32 outputs of the current call before conversion (grows to the largest call).
    scratch: Vec<f32>,
    /// The current call's columns (aligned window start, bank, chunks) and groups (grow to
    /// the design's period).
    cols: Vec<(usize, usize, usize)>,
    plan: Vec<Group>,
    /// What `plan` was built for: the first output's place in the period, and the columns.
    plan_key: Option<(usize, usize)>,
    /// The history in the row layout, for designs that have one (`hist` is then unused).
    rows: Option<RowState>,
}

/// Two address ranges (start, bytes) a long call touches after the kernel: the next slice's
/// input and this slice's output. Addresses only (the memory is never read through them),
/// so a stream stays `Send`.
#[derive(Debug, Clone, Copy, Default)]
struct Ahead {
    input: (usize, usize),
    output: (usize, usize),
}

impl Ahead {
    /// Cache lines in both ranges.
    fn lines(&self) -> (usize, usize) {
        (self.input.1.div_ceil(64), self.output.1.div_ceil(64))
    }

    /// Asks the cache for lines `from..to` of the input (to read) and of the output (to
    /// write). Between kernel calls the hardware prefetchers lose a stream, and a slice's
    /// input would otherwise come from memory at the pace of demand misses.
    fn warm(&self, input: (usize, usize), output: (usize, usize)) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_ET0, _MM_HINT_T0};
            for i in input.0..input.1 {
                // SAFETY: a prefetch is a hint: it never faults, whatever the address.
                unsafe { _mm_prefetch::<_MM_HINT_T0>((self.input.0 + i * 64) as *const i8) };
            }
            for i in output.0..output.1 {
                // SAFETY: as above.
                unsafe { _mm_prefetch::<_MM_HINT_ET0>((self.output.0 + i * 64) as *const i8) };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (input, output);
    }
}

/// The memory ahead, warmed a share at a time before each of `calls` kernel calls.
struct Warming {
    ahead: Ahead,
    lines: (usize, usize),
    per: (usize, usize),
    k: usize,
}

impl Warming {
    fn new(ahead: Ahead, calls: usize) -> Self {
        let lines = ahead.lines();
        let calls = calls.max(1);
        Warming {
            ahead,
            lines,
            per: (lines.0.div_ceil(calls), lines.1.div_ceil(calls)),
            k: 0,
        }
    }

    /// Warms the next share.
    fn step(&mut self) {
        let (k, (li, lo), (pi, po)) = (self.k, self.lines, self.per);
        self.ahead.warm(
            ((k * pi).min(li), ((k + 1) * pi).min(li)),
            ((k * po).min(lo), ((k + 1) * po).min(lo)),
        );
        self.k += 1;
    }
}

/// A row-layout stream's history: `m` residue arrays of `ts` floats, `t[r * ts + i]` holding
/// history input `A = (tq0 + i) * m + r` (input `A - lead`; the first `lead` are the zeros
/// before input 0). Floats past the newest input hold finite values (zeros or old inputs).
#[derive(Debug, Clone, Default)]
struct RowState {
    t: Vec<f32>,
    ts: usize,
    tq0: u64,
    /// History inputs so far (`A < len_a`).
    len_a: u64,
    /// A call's inputs as f32, and the kernel's column-major outputs (grow to the largest
    /// call).
    stage: Vec<f32>,
    s: Vec<f32>,
}

impl RowState {
    /// Makes every residue array at least `need` floats long.
    fn room(&mut self, m: usize, need: usize) {
        if need <= self.ts {
            return;
        }
        let ts = need.max(2 * self.ts).max(256);
        let mut t = vec![0f32; m * ts];
        for r in 0..m {
            t[r * ts..][..self.ts].copy_from_slice(&self.t[r * self.ts..][..self.ts]);
        }
        self.t = t;
        self.ts = ts;
    }

    /// Appends `x` (as f32) to the history.
    fn append(&mut self, m: usize, x: &[f32]) {
        if x.is_empty() {
            return;
        }
        let need = ((self.len_a + x.len() as u64 - 1) / m as u64 - self.tq0 + 1) as usize;
        self.room(m, need);
        rows::scatter(x, self.len_a, m, &mut self.t, self.ts, self.tq0);
        self.len_a += x.len() as u64;
    }

    /// Drops the history before residue index `keep` (absolute).
    fn drop_before(&mut self, m: usize, keep: u64) {
        // Never past the history received (the next input's index must not fall below tq0;
        // with windows of at least m positions it cannot, this keeps it so regardless).
        let keep = keep.min(self.len_a / m as u64);
        if keep <= self.tq0 {
            return;
        }
        let shift = (keep - self.tq0) as usize;
        let used = (self.len_a.div_ceil(m as u64).saturating_sub(self.tq0) as usize).min(self.ts);
        if shift < used {
            for r in 0..m {
                self.t[r * self.ts..][..used].copy_within(shift..used, 0);
            }
        }
        self.tq0 = keep;
    }
}

impl Resampler {
    /// A stream for a rate pair and preset.
    pub fn new(in_rate: u32, out_rate: u32, quality: Quality) -> Result<Self> {
        Ok(Self::with_design(Design::shared(
            in_rate, out_rate, quality,
        )?))
    }

    /// A stream over a shared design.
    pub fn with_design(d: Arc<Design>) -> Self {
        let lanes = if d.rows.is_some() {
            0
        } else {
            (d.lead + d.k + 4096).div_ceil(8) + 2
        };
        let mut r = Resampler {
            d,
            hist: Vec::with_capacity(lanes),
            len: 0,
            base: 0,
            n_in: 0,
            n_out: 0,
            scratch: Vec::new(),
            cols: Vec::new(),
            plan: Vec::new(),
            plan_key: None,
            rows: None,
        };
        if r.d.rows.is_some() {
            r.hist = Vec::new();
            r.rows = Some(RowState::default());
        }
        r.reset();
        r
    }

    /// The filter design.
    pub fn design(&self) -> &Design {
        &self.d
    }

    /// Forgets the stream: the next input is input 0 of a new stream.
    pub fn reset(&mut self) {
        self.n_in = 0;
        self.n_out = 0;
        if let (Some(rs), Some(rd)) = (self.rows.as_mut(), self.d.rows.as_ref()) {
            let m = self.d.m;
            let per = rd.lead / m;
            rs.room(m, per + 1);
            for r in 0..m {
                rs.t[r * rs.ts..][..per].fill(0.0);
            }
            rs.tq0 = 0;
            rs.len_a = rd.lead as u64;
            return;
        }
        let lead = self.d.lead;
        self.grow(lead);
        floats_mut(&mut self.hist)[..lead].fill(0.0);
        self.len = lead;
        self.base = 0;
        self.n_in = 0;
        self.n_out = 0;
    }

    /// Makes room for `len` floats of history plus the lane kernels may read past them.
    fn grow(&mut self, len: usize) {
        let lanes = len.div_ceil(8) + 2;
        if self.hist.len() < lanes {
            self.hist.resize(lanes, ZERO_LANE);
        }
    }

    /// Outputs the next push of `n` samples yields.
    pub fn pending_outputs(&self, n: usize) -> usize {
        (self.d.outputs_ready(self.n_in + n as u64) - self.n_out) as usize
    }

    /// Outputs `flush` yields.
    pub fn flush_outputs(&self) -> usize {
        (self.d.total_outputs(self.n_in).saturating_sub(self.n_out)) as usize
    }

    /// Pushes samples and writes the outputs they complete to `out`; returns how many.
    /// `conv` converts input samples to f32 (slice to slice), `emit` converts f32 outputs
    /// to the output type (slice to slice). `out` must hold `pending_outputs(x.len())`.
    pub fn process_with<T, U>(
        &mut self,
        x: &[T],
        conv: impl Fn(&[T], &mut [f32]),
        out: &mut [U],
        emit: impl Fn(&[f32], &mut [U]),
    ) -> Result<usize> {
        let want = self.pending_outputs(x.len());
        check_room(out.len(), want, "push")?;
        // Large inputs go through in slices, so the history stays in cache (the output is
        // the same however the input is sliced).
        let mut done = 0;
        for (i, part) in x.chunks(SLICE).enumerate() {
            let n = self.pending_outputs(part.len());
            // Memory this slice touches after the kernel, warmed while it runs (a call of
            // one slice warms nothing).
            let mut ahead = Ahead::default();
            if x.len() > SLICE {
                let next = &x[((i + 1) * SLICE).min(x.len())..];
                let next = &next[..next.len().min(SLICE)];
                ahead = Ahead {
                    input: (next.as_ptr() as usize, std::mem::size_of_val(next)),
                    output: (
                        out[done..].as_ptr() as usize,
                        std::mem::size_of_val(&out[done..done + n]),
                    ),
                };
            }
            if let Some(rs) = self.rows.as_mut() {
                // Converted a cache-resident piece at a time, then dealt to the residues.
                let mut stage = std::mem::take(&mut rs.stage);
                for piece in part.chunks(STAGE) {
                    if stage.len() < piece.len() {
                        stage.resize(piece.len(), 0.0);
                    }
                    conv(piece, &mut stage[..piece.len()]);
                    rs.append(self.d.m, &stage[..piece.len()]);
                }
                rs.stage = stage;
            } else {
                let at = self.len;
                self.grow(at + part.len());
                conv(part, &mut floats_mut(&mut self.hist)[at..at + part.len()]);
                self.len += part.len();
            }
            self.n_in += part.len() as u64;
            let off = self.run(n, ahead);
            emit(&self.scratch[off..off + n], &mut out[done..done + n]);
            done += n;
        }
        Ok(want)
    }

    /// Ends the stream: pads with silence, writes the last outputs (so the total is
    /// `round(n * out_rate / in_rate)`) and resets. `out` must hold `flush_outputs()`.
    pub fn flush_with<U>(
        &mut self,
        out: &mut [U],
        emit: impl Fn(&[f32], &mut [U]),
    ) -> Result<usize> {
        let want = self.flush_outputs();
        check_room(out.len(), want, "flush")?;
        if want > 0 {
            let last = self.n_out + want as u64 - 1;
            let (_, i_end) = self.d.locate(last);
            // The history must reach input i_end, with zeros after the real inputs.
            if let (Some(rs), Some(rd)) = (self.rows.as_mut(), self.d.rows.as_ref()) {
                let need = i_end + 1 + rd.lead as u64;
                if need > rs.len_a {
                    let zeros = (need - rs.len_a) as usize;
                    let mut stage = std::mem::take(&mut rs.stage);
                    if stage.len() < zeros {
                        stage.resize(zeros, 0.0);
                    }
                    stage[..zeros].fill(0.0);
                    rs.append(self.d.m, &stage[..zeros]);
                    rs.stage = stage;
                }
            } else {
                let need_len = (i_end + 1 + self.d.lead as u64 - self.base) as usize;
                if need_len > self.len {
                    self.grow(need_len);
                    floats_mut(&mut self.hist)[self.len..need_len].fill(0.0);
                    self.len = need_len;
                }
            }
            let off = self.run(want, Ahead::default());
            emit(&self.scratch[off..off + want], &mut out[..want]);
        }
        self.reset();
        Ok(want)
    }

    /// Restarts the stream at output `first` of a signal, as if the inputs before the one
    /// this returns had been pushed: push the signal from that input on. None when output
    /// `first`'s window reaches before input 0 (start from the beginning instead).
    pub(super) fn seek(&mut self, first: u64) -> Option<usize> {
        if let Some(rd) = self.d.rows.as_ref() {
            // Row `first / l` onward needs the history from residue index q0 + that row.
            let keep = rd.q0 + first / self.d.l as u64;
            let start = (keep * self.d.m as u64).checked_sub(rd.lead as u64)?;
            self.reset();
            let rs = self.rows.as_mut()?;
            rs.tq0 = keep;
            rs.len_a = keep * self.d.m as u64;
            self.n_in = start;
            self.n_out = first;
            return Some(start as usize);
        }
        let (_, e) = self.d.locate(first);
        let start = (e + 1).checked_sub(self.d.k as u64)? & !7;
        self.reset();
        // The history starts at input `start` (so `base - lead = start`) and is empty.
        self.base = start + self.d.lead as u64;
        self.len = 0;
        self.n_in = start;
        self.n_out = first;
        self.plan_key = None;
        Some(start as usize)
    }

    /// Computes the next `count` outputs into `scratch[off..off + count]`, warming `ahead`
    /// meanwhile; returns `off`.
    fn run(&mut self, count: usize, ahead: Ahead) -> usize {
        if count == 0 {
            return 0;
        }
        if self.rows.is_some() {
            return self.run_rows(count, ahead);
        }
        self.run_tiles(count, ahead);
        0
    }

    /// `run` in the row layout.
    fn run_rows(&mut self, count: usize, ahead: Ahead) -> usize {
        let d = &*self.d;
        let (Some(rd), Some(rs)) = (d.rows.as_ref(), self.rows.as_mut()) else {
            return 0;
        };
        let (l, m) = (d.l as u64, d.m);
        let first = self.n_out / l;
        let nrows = ((self.n_out + count as u64 - 1) / l - first + 1) as usize;
        let groups = nrows.div_ceil(GROUP);
        let ss = groups * GROUP;
        // The kernel reads residue indices up to q0 + (res0 + u - 1) / m + first + ss - 1.
        let top = rd.q0 + ((rd.res0 + rd.u - 1) / m) as u64 + first + ss as u64 - rs.tq0;
        rs.room(m, top as usize);
        // One column is already in output order: the kernel writes it to `scratch`.
        let dst = if d.l == 1 {
            &mut self.scratch
        } else {
            &mut rs.s
        };
        if dst.len() < d.l * ss {
            dst.resize(d.l * ss, 0.0);
        }
        let at = (rd.q0 + first - rs.tq0) as usize;
        // In calls of one kernel block each, with a share of the memory ahead warmed before
        // each (spread thin, so the prefetches never queue up): the same outputs, since an
        // output's arithmetic does not depend on the call that computes it.
        let (lin, lout) = ahead.lines();
        let chunk = if lin + lout > 0 {
            rows::block_groups(d.l)
        } else {
            groups
        };
        let calls = groups.div_ceil(chunk);
        let mut warming = Warming::new(ahead, calls);
        for k in 0..calls {
            let g0 = k * chunk;
            warming.step();
            // SAFETY: the kernel's reads stay below `top <= ts` in each residue array from
            // `at` (computed above), its writes within `s[..l * ss]` (rows g0 * 16 on of
            // groups g0..g0 + n < groups); `l <= 6`; the kernel matches the CPU (`kernel`).
            unsafe {
                (rows::kernel())(
                    rs.t.as_ptr().add(at + g0 * GROUP),
                    rs.ts,
                    m,
                    rd.res0,
                    rd.u,
                    rd.w.as_ptr(),
                    d.l,
                    chunk.min(groups - g0),
                    dst.as_mut_ptr().add(g0 * GROUP),
                    ss,
                )
            };
        }
        if d.l > 1 {
            if self.scratch.len() < nrows * d.l {
                self.scratch.resize(nrows * d.l, 0.0);
            }
            rows::gather(&rs.s, ss, d.l, nrows, &mut self.scratch);
        }
        let off = (self.n_out - first * l) as usize;
        self.n_out += count as u64;
        rs.drop_before(m, rd.q0 + self.n_out / l);
        off
    }

    /// `run` with the tile kernel, into `scratch[..count]`.
    fn run_tiles(&mut self, count: usize, ahead: Ahead) {
        if self.scratch.len() < count {
            self.scratch.resize(count, 0.0);
        }
        let d = &*self.d;
        let tile = tile::kernel();
        // Column c holds outputs c, c + period, c + 2 * period, ... (rows): one bank, windows
        // period_in (a multiple of 8) apart. Neighbouring columns whose windows start in the
        // same aligned chunk form a group; a kernel call computes a tile of up to 4 rows of
        // a group of up to 3 columns, loading each input chunk once for the group and each
        // coefficient chunk once for the rows, all loads aligned. Each output's arithmetic
        // is the same whichever call computes it (see `TileFn`), so the chunking of the
        // input cannot change any output.
        // The plan depends only on the first output's place in the period (and on how many
        // columns there are), so a stream of equal chunks builds it once.
        let ncols = d.period.min(count);
        let (p, e) = d.locate(self.n_out);
        let origin = d.window_start(e, self.base) & !7;
        let key = ((self.n_out % d.period as u64) as usize, ncols);
        if self.plan_key != Some(key) {
            self.plan_key = Some(key);
            plan_columns(
                d,
                self.base,
                &mut self.cols,
                &mut self.plan,
                ncols,
                p,
                e,
                origin,
            );
        }
        let x = floats(&self.hist);
        let banks = floats(&d.banks);
        let out = &mut self.scratch[..count];
        // Rows every column has; columns c < extra have one more. Blocks of rows, each
        // across all groups, keep the inputs in use in cache.
        let (full, extra) = (count / d.period, count % d.period);
        let (pi, po) = (d.period_in, d.period);
        let mut warming = Warming::new(ahead, full.div_ceil(ROW_BLOCK));
        let mut r0 = 0;
        while r0 < full {
            let nr = (full - r0).min(ROW_BLOCK);
            warming.step();
            for g in &self.plan {
                let (a0, o) = (origin + g.a0 + r0 * pi, &mut out[g.c0 + r0 * po..]);
                tile(x, a0, pi, banks, &g.w, g.ncols, g.nch, nr, o, po);
            }
            r0 += nr;
        }
        for g in &self.plan {
            let ne = extra.saturating_sub(g.c0).min(g.ncols);
            if ne > 0 {
                let (a0, o) = (origin + g.a0 + full * pi, &mut out[g.c0 + full * po..]);
                tile(x, a0, pi, banks, &g.w, ne, g.nch, 1, o, po);
            }
        }
        self.n_out += count as u64;
        // Drop history no future output needs (before the next output's aligned window).
        let (_, e) = d.locate(self.n_out);
        let keep_from = d.window_start(e, self.base).min(self.len) & !7;
        if keep_from > 0 {
            let lanes = self.len.div_ceil(8);
            self.hist.copy_within(keep_from / 8..lanes, 0);
            self.len -= keep_from;
            self.base += keep_from as u64;
        }
    }
}
