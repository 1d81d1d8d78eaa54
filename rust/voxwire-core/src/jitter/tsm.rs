//! Pitch-synchronous time-scale modification and concealment for the jitter buffer.
//!
//! Everything works on one contiguous `f32` view `z` of the signal around the playout point
//! `p`: the output already decided (history, `z[..p]`) followed by queued source audio
//! (lookahead, `z[p..]`). Stretching removes or inserts exactly one pitch period with a linear
//! crossfade between two segments one period apart (WSOLA with the period as the search
//! result), so the pitch is kept and the signal stays continuous at both ends.

/// Where the periodicity is measured, relative to the playout point `p`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Around {
    /// Pairs `(z[i], z[i + T])` for `i` in `p - w/2 .. p + w/2`: needs `w/2 + T` lookahead
    /// (accelerate, which crossfades `z[p..p+T]` into `z[p+T..p+2T]`).
    Ahead,
    /// Pairs `(z[i - T], z[i])` for `i` in `p - w .. p`: history only (expand, concealment).
    Behind,
}

/// Normalised-correlation period search over 2.5-15 ms, coarse on a box-decimated copy near
/// 8 kHz, then refined at the full rate. Buffers are allocated once.
#[derive(Debug, Clone)]
pub struct PitchSearch {
    /// Shortest and longest period, in samples.
    pub tmin: usize,
    pub tmax: usize,
    /// Correlation window, in samples (a multiple of `dec`).
    pub win: usize,
    dec: usize,
    zd: Vec<f32>,
    coarse: Vec<f32>,
}

/// The result of a search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Period {
    /// Period in samples.
    pub lag: usize,
    /// Normalised correlation at that lag, in [-1, 1].
    pub corr: f32,
    /// RMS of the window (int16 scale).
    pub rms: f32,
}

impl PitchSearch {
    /// A search for `rate` Hz, able to look at up to `max_len` samples of `z`.
    pub fn new(rate: u32, max_len: usize) -> Self {
        let dec = ((rate as f32 / 8000.0).round() as usize).max(1);
        let ms = |m: f32| (rate as f32 * m / 1000.0).round() as usize;
        let win = ms(10.0).div_ceil(dec) * dec;
        Self {
            tmin: ms(2.5),
            tmax: ms(15.0),
            win,
            dec,
            zd: vec![0.0; max_len / dec + 1],
            coarse: vec![0.0; ms(15.0) / dec + 2],
        }
    }

    /// History needed before `p` and lookahead needed after it for a search `at`.
    pub fn needs(&self, at: Around) -> (usize, usize) {
        match at {
            Around::Ahead => (self.win / 2 + self.dec, self.win / 2 + self.tmax + self.dec),
            Around::Behind => (self.win + self.tmax + self.dec, 0),
        }
    }

    /// Start of the window's first element for lag `t` (in the units of `z`).
    fn start(at: Around, p: usize, w: usize, t: usize) -> usize {
        match at {
            Around::Ahead => p - w / 2,
            Around::Behind => p - w - t,
        }
    }

    /// The best period of `z` around `p`. `z` must cover [`PitchSearch::needs`].
    pub fn search(&mut self, z: &[f32], p: usize, at: Around) -> Period {
        let d = self.dec;
        // Coarse pass on the decimated signal (box average: a cheap anti-alias filter).
        let nd = z.len() / d;
        for (j, v) in self.zd[..nd].iter_mut().enumerate() {
            *v = z[j * d..j * d + d].iter().sum::<f32>() / d as f32;
        }
        let zd = &self.zd[..nd];
        let (pd, wd) = (p / d, self.win / d);
        let (lo, hi) = (self.tmin.div_ceil(d), self.tmax / d);
        let mut top = f32::NEG_INFINITY;
        for t in lo..=hi {
            let s = Self::start(at, pd, wd, t);
            let c = ncorr(&zd[s..s + wd], &zd[s + t..s + t + wd]).0;
            self.coarse[t] = c;
            top = top.max(c);
        }
        // The shortest lag whose peak is nearly as good as the best: multiples of the period
        // correlate as well as the period itself.
        let c = &self.coarse;
        let mut best = (lo, f32::NEG_INFINITY);
        for t in lo..=hi {
            let peak = (t == lo || c[t] >= c[t - 1]) && (t == hi || c[t] >= c[t + 1]);
            if peak && c[t] >= 0.9 * top {
                best = (t, c[t]);
                break;
            }
        }
        // Refinement at the full rate around the coarse lag.
        let centre = best.0 * d;
        let lo = centre.saturating_sub(d).max(self.tmin);
        let hi = (centre + d).min(self.tmax);
        let mut out = Period {
            lag: centre.clamp(self.tmin, self.tmax),
            corr: f32::NEG_INFINITY,
            rms: 0.0,
        };
        for t in lo..=hi {
            let s = Self::start(at, p, self.win, t);
            let (c, e) = ncorr(&z[s..s + self.win], &z[s + t..s + t + self.win]);
            if c > out.corr {
                out = Period {
                    lag: t,
                    corr: c,
                    rms: (e / self.win as f32).sqrt(),
                };
            }
        }
        out
    }
}

/// Normalised correlation of `a` and `b` and the energy of `b`.
fn ncorr(a: &[f32], b: &[f32]) -> (f32, f32) {
    let (mut ab, mut aa, mut bb) = (0.0f32, 0.0f32, 0.0f32);
    for (&x, &y) in a.iter().zip(b) {
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    let den = (aa * bb).sqrt();
    if den <= 1e-3 {
        (0.0, bb)
    } else {
        (ab / den, bb)
    }
}

/// Weight of the `n`-th of `len` crossfade samples: rises from just above 0 to just below 1.
#[inline]
pub fn ramp(n: usize, len: usize) -> f32 {
    (n as f32 + 1.0) / (len as f32 + 1.0)
}

/// Accelerate: `T` output samples from `2T` input, `out[n] = (1-w) x[n] + w x[n+T]`, where
/// `x = z[p..]`. Starts at `x[0]` and ends at `x[2T-1]`, so both joins are continuous.
pub fn accelerate(z: &[f32], p: usize, t: usize, out: &mut [f32]) {
    for (n, o) in out[..t].iter_mut().enumerate() {
        let w = ramp(n, t);
        *o = (1.0 - w) * z[p + n] + w * z[p + n + t];
    }
}

/// Expand: `T` extra output samples, no input consumed,
/// `out[n] = (1-w) z[p+n] + w z[p+n-T]`. Starts at `z[p]` and ends at `z[p-1]`, so playback
/// continues with `z[p]` without a jump. Needs `T` samples of lookahead and history.
pub fn expand(z: &[f32], p: usize, t: usize, out: &mut [f32]) {
    for (n, o) in out[..t].iter_mut().enumerate() {
        let w = ramp(n, t);
        *o = (1.0 - w) * z[p + n] + w * z[p + n - t];
    }
}

/// Concealment by pitch-period repetition: the last period of the history, corrected so its
/// repetition joins the history with a step no larger than the signal's own first difference.
#[derive(Debug, Clone)]
pub struct Concealer {
    period: Vec<f32>,
    len: usize,
    phase: usize,
    /// Samples generated since the underrun began.
    pub made: usize,
    hold: usize,
    fade: usize,
}

impl Concealer {
    /// A concealer for periods of up to `tmax` samples that holds full level for `hold`
    /// samples, then fades to silence over `fade` samples.
    pub fn new(tmax: usize, hold: usize, fade: usize) -> Self {
        Self {
            period: vec![0.0; tmax],
            len: 0,
            phase: 0,
            made: 0,
            hold,
            fade: fade.max(1),
        }
    }

    /// Starts concealing after the history `h` (ending at the playout point) with period `t`.
    pub fn start(&mut self, h: &[f32], t: usize) {
        let n = h.len();
        let t = t.min(self.period.len()).min(n.saturating_sub(1)).max(1);
        // Periodic extension of the last period, plus a correction that decays to zero over
        // a quarter period: the first repeated sample then steps from h[n-1] by the same
        // amount as h[n-t] steps from h[n-t-1], and later repetitions join seamlessly.
        let delta = h[n - 1] - h[n - 1 - t.min(n - 1)];
        let r = (t / 4).max(1);
        for k in 0..t {
            let c = if k < r {
                delta * (1.0 - k as f32 / r as f32)
            } else {
                0.0
            };
            self.period[k] = h[n - t + k] + c;
        }
        self.len = t;
        self.phase = 0;
        self.made = 0;
    }

    /// The gain at the current position (1, then a linear fade to 0).
    fn gain(&self) -> f32 {
        if self.made < self.hold {
            1.0
        } else {
            1.0 - ((self.made - self.hold) as f32 / self.fade as f32).min(1.0)
        }
    }

    /// Whether the output has faded out completely.
    pub fn silent(&self) -> bool {
        self.made >= self.hold + self.fade
    }

    /// Next concealment sample.
    #[inline]
    pub fn next_sample(&mut self) -> f32 {
        if self.len == 0 {
            return 0.0;
        }
        let v = self.period[self.phase] * self.gain();
        self.phase += 1;
        if self.phase == self.len {
            self.phase = 0;
        }
        self.made += 1;
        v
    }

    /// Shortens the remaining fade so that the output reaches silence within `n` samples.
    pub fn fade_within(&mut self, n: usize) {
        let g = self.gain();
        if g <= 0.0 {
            return;
        }
        // Restart the fade from the current gain, reaching 0 after n samples.
        let n = n.max(1) as f32;
        let fade = (n / g).round().max(1.0) as usize;
        let done = ((1.0 - g) * fade as f32).round() as usize;
        self.hold = 0;
        self.fade = fade;
        self.made = done;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn harmonic(rate: u32, f0: f32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let t = i as f32 / rate as f32;
                (1..=5)
                    .map(|k| {
                        (8000.0 / k as f32) * (2.0 * std::f32::consts::PI * f0 * k as f32 * t).sin()
                    })
                    .sum()
            })
            .collect()
    }

    #[test]
    fn finds_the_period_of_a_harmonic_signal() {
        for rate in [8000u32, 16000, 22050, 24000, 44100, 48000] {
            for f0 in [90.0f32, 150.0, 210.0] {
                let z = harmonic(rate, f0, rate as usize / 10);
                let mut ps = PitchSearch::new(rate, z.len());
                let p = z.len() / 2;
                for at in [Around::Ahead, Around::Behind] {
                    let r = ps.search(&z, p, at);
                    let want = rate as f32 / f0;
                    assert!(
                        (r.lag as f32 - want).abs() <= 1.0 + want * 0.01,
                        "rate {rate} f0 {f0}: lag {} want {want}",
                        r.lag
                    );
                    assert!(r.corr > 0.95);
                }
            }
        }
    }

    #[test]
    fn stretch_joins_are_continuous() {
        let rate = 16000;
        let z = harmonic(rate, 160.0, 4000);
        let maxd = z
            .windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0.0, f32::max);
        let p = 2000;
        let t = 100;
        let mut out = vec![0.0; t];
        accelerate(&z, p, t, &mut out);
        assert!((out[0] - z[p - 1]).abs() <= 1.5 * maxd);
        assert!((z[p + 2 * t] - out[t - 1]).abs() <= 1.5 * maxd);
        expand(&z, p, t, &mut out);
        assert!((out[0] - z[p - 1]).abs() <= 1.5 * maxd);
        assert!((z[p] - out[t - 1]).abs() <= 1.5 * maxd);
    }

    #[test]
    fn concealment_steps_no_more_than_the_signal() {
        let rate = 16000;
        let z = harmonic(rate, 173.0, 3000);
        let maxd = z
            .windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0.0, f32::max);
        let mut c = Concealer::new(240, 320, 960);
        // A period that is not exactly the true one still joins smoothly.
        c.start(&z, 90);
        let mut prev = *z.last().unwrap();
        for _ in 0..2000 {
            let v = c.next_sample();
            assert!((v - prev).abs() <= 1.5 * maxd, "{v} after {prev}");
            prev = v;
        }
        assert!(c.silent());
        assert_eq!(c.next_sample(), 0.0);
    }
}
