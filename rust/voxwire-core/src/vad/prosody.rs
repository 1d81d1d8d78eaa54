//! The prosody of an utterance's end, for the semantic end-of-turn rule
//! ([`super::turn::EndMode::Semantic`]): a cheap pitch tracker and a short history of the
//! last speech frames (level, pitch, VAD probability), from which a few features of the
//! utterance's last few hundred milliseconds are taken when the speaker falls silent.
//!
//! - Pitch: the audio is box-averaged down to about 4 kHz (a low-pass that keeps the
//!   fundamental and the first formant), and the normalised cross-correlation of its last
//!   25 ms with the same span one period earlier is searched for lags of 60-400 Hz. Of the
//!   correlation's peaks (local maxima rising 0.2 above the lowest correlation at a shorter
//!   lag: smooth low-frequency noise has none), the shortest lag within 10 % of the best is
//!   taken (against octave-down errors), refined by a parabola; a frame whose best peak is
//!   under 0.5 is unpitched. About 4,000 multiply-adds per frame, run only on the frames of a turn.
//! - Features (see [`Features`]): the pitch slope over the last 300 ms of speech, the final
//!   pitch against the turn's mean, the level slope over the last 200 ms, the final level
//!   against the turn's loudest frame, the share of pitched frames at the end, the VAD's
//!   final probability and the turn's length; the windows end at the last pitched frame
//!   (the voice's end), not at the last frame the VAD called speech.
//!
//! Nothing here allocates after construction.

/// Frames of speech kept (the features look back at most 300 ms; 64 frames hold that for
/// frames of 5 ms and longer).
const HIST: usize = 64;
/// Lowest and highest pitch searched, Hz.
const F0_MIN: f32 = 60.0;
const F0_MAX: f32 = 400.0;
/// The correlation window, seconds.
const WINDOW_S: f32 = 0.025;
/// Best normalised correlation under which a frame is unpitched.
const VOICING: f32 = 0.5;
/// How far a correlation peak must rise above the lowest correlation at a shorter lag.
const PROMINENCE: f32 = 0.2;

/// Pitch of the latest audio by normalised cross-correlation at about 4 kHz.
#[derive(Debug, Clone)]
pub struct PitchTracker {
    /// Decimation factor and the rate after it.
    d: usize,
    rate: f32,
    /// The last `ring.len()` decimated samples, oldest at `at`.
    ring: Vec<f32>,
    at: usize,
    /// Partial block of the box average.
    acc: f32,
    acc_n: usize,
    lag_min: usize,
    lag_max: usize,
    w: usize,
    /// Scratch: the ring in time order, and one correlation per lag.
    lin: Vec<f32>,
    r: Vec<f32>,
}

impl PitchTracker {
    /// A tracker for audio at `rate` Hz.
    pub fn new(rate: u32) -> Self {
        let d = ((rate as f32 / 4000.0).round() as usize).max(1);
        let dr = rate as f32 / d as f32;
        let lag_min = (dr / F0_MAX).floor().max(2.0) as usize;
        let lag_max = (dr / F0_MIN).ceil() as usize;
        let w = (dr * WINDOW_S).round() as usize;
        let n = w + lag_max + 1;
        Self {
            d,
            rate: dr,
            ring: vec![0.0; n],
            at: 0,
            acc: 0.0,
            acc_n: 0,
            lag_min,
            lag_max,
            w,
            lin: vec![0.0; n],
            r: vec![0.0; lag_max + 2],
        }
    }

    /// Appends audio (any length).
    pub fn push(&mut self, x: &[i16]) {
        let inv = 1.0 / self.d as f32;
        for &s in x {
            self.acc += f32::from(s);
            self.acc_n += 1;
            if self.acc_n == self.d {
                self.ring[self.at] = self.acc * inv;
                self.at = (self.at + 1) % self.ring.len();
                self.acc = 0.0;
                self.acc_n = 0;
            }
        }
    }

    /// Forgets the audio.
    pub fn clear(&mut self) {
        self.ring.iter_mut().for_each(|v| *v = 0.0);
        self.at = 0;
        self.acc = 0.0;
        self.acc_n = 0;
    }

    /// The pitch of the latest audio in Hz, or `None` when it is not periodic.
    pub fn pitch(&mut self) -> Option<f32> {
        let n = self.ring.len();
        let (old, new) = self.ring.split_at(self.at);
        self.lin[..new.len()].copy_from_slice(new);
        self.lin[new.len()..].copy_from_slice(old);
        let mean = self.lin.iter().sum::<f32>() / n as f32;
        self.lin.iter_mut().for_each(|v| *v -= mean);
        let x = &self.lin;
        let a = &x[n - self.w..];
        let e0: f32 = a.iter().map(|v| v * v).sum();
        if e0 <= 1e-3 * self.w as f32 {
            return None;
        }
        // One lag either side of the searched range, so that a peak at its edge is seen
        // as a peak only when the correlation falls on both sides (a correlation that
        // only decreases from the shortest lag is low-frequency noise, not a 400 Hz voice).
        let (lo, hi) = (self.lag_min - 1, self.lag_max + 1);
        // The lagged window's energy, slid one sample per lag.
        let mut eb: f32 = x[n - self.w - lo..n - lo].iter().map(|v| v * v).sum();
        for lag in lo..=hi {
            let b = &x[n - self.w - lag..n - lag];
            self.r[lag] = dot(a, b) / (e0 * eb).sqrt().max(1e-9);
            // Next lag: one older sample in, the newest of this window out.
            if lag < hi {
                let inn = x[n - self.w - lag - 1];
                let out = x[n - lag - 1];
                eb = (eb + inn * inn - out * out).max(0.0);
            }
        }
        // The peaks of the correlation in the searched range: local maxima that rise at
        // least PROMINENCE above the lowest correlation at a shorter lag (a voice's
        // correlation dips between lag 0 and its period; smooth noise's only sags). The
        // best of them must reach VOICING, and the shortest lag at a peak within 10 % of
        // it is taken (against octave-down errors).
        let mut best = f32::MIN;
        let mut low = self.r[lo];
        for l in self.lag_min..=self.lag_max {
            low = low.min(self.r[l]);
            if self.is_peak(l, low) {
                best = best.max(self.r[l]);
            }
        }
        if best < VOICING {
            return None;
        }
        let mut lag = self.lag_min;
        low = self.r[lo];
        for l in self.lag_min..=self.lag_max {
            low = low.min(self.r[l]);
            if self.is_peak(l, low) && self.r[l] >= 0.9 * best {
                lag = l;
                break;
            }
        }
        let mut t = lag as f32;
        let (l, c, r) = (self.r[lag - 1], self.r[lag], self.r[lag + 1]);
        let den = l - 2.0 * c + r;
        if den < 0.0 {
            t += (0.5 * (l - r) / den).clamp(-0.5, 0.5);
        }
        Some(self.rate / t)
    }

    /// Whether lag `l` is a peak of the correlation, `low` the lowest at lags up to `l`.
    fn is_peak(&self, l: usize, low: f32) -> bool {
        let r = &self.r;
        r[l] >= r[l - 1] && r[l] >= r[l + 1] && r[l] - low >= PROMINENCE
    }
}

/// The dot product of two equal-length slices, in eight partial sums (which the compiler
/// vectorises; one running sum it must not reorder).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(p, q)| p * q)
        .sum();
    for (p, q) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += p[k] * q[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// One speech frame of the turn.
#[derive(Debug, Clone, Copy, Default)]
struct Rec {
    /// Level in dBFS.
    db: f32,
    /// Pitch in semitones above 100 Hz, NaN when unpitched.
    st: f32,
    /// The VAD's probability.
    p: f32,
}

/// What the semantic rule looks at when the speaker falls silent (the model's inputs, in
/// these units; see [`FEATURE_NAMES`]).
pub type Features = [f32; 7];

/// Names of [`Features`], in order.
pub const FEATURE_NAMES: [&str; 7] = [
    "pitch_slope_st_per_s",
    "final_pitch_st",
    "level_slope_db_per_s",
    "final_level_db",
    "pitched_share",
    "final_probability",
    "log2_turn_s",
];

/// The last speech frames of a turn and its running statistics.
#[derive(Debug, Clone)]
pub struct History {
    recs: [Rec; HIST],
    /// Frames recorded in this turn (the newest at `(count - 1) % HIST`).
    count: u64,
    frame_s: f32,
    sum_st: f64,
    n_st: u64,
    peak_db: f32,
}

impl History {
    /// A history for frames of `frame_s` seconds.
    pub fn new(frame_s: f32) -> Self {
        Self {
            recs: [Rec::default(); HIST],
            count: 0,
            frame_s,
            sum_st: 0.0,
            n_st: 0,
            peak_db: -120.0,
        }
    }

    /// Starts a turn.
    pub fn clear(&mut self) {
        self.count = 0;
        self.sum_st = 0.0;
        self.n_st = 0;
        self.peak_db = -120.0;
    }

    /// Records a speech frame: its level (dBFS), pitch (Hz, if any) and VAD probability.
    pub fn record(&mut self, db: f32, f0: Option<f32>, p: f32) {
        let st = match f0 {
            Some(f) => 12.0 * (f / 100.0).log2(),
            None => f32::NAN,
        };
        if !st.is_nan() {
            self.sum_st += f64::from(st);
            self.n_st += 1;
        }
        self.peak_db = self.peak_db.max(db);
        self.recs[(self.count % HIST as u64) as usize] = Rec { db, st, p };
        self.count += 1;
    }

    /// The `k` newest records before `upto` (a count of records), at most what the
    /// history holds, oldest first, by index.
    fn last(&self, upto: u64, k: usize) -> impl Iterator<Item = (usize, &Rec)> + '_ {
        let oldest = self.count.saturating_sub(HIST as u64);
        let k = (k as u64).min(upto - oldest);
        let first = upto - k;
        (0..k).map(move |i| (i as usize, &self.recs[((first + i) % HIST as u64) as usize]))
    }

    /// The end of the voice: the count of records up to the newest pitched one the history
    /// holds (all of them when none is pitched). The unpitched frames after it are a final
    /// consonant, a breath or noise that the VAD still calls speech (Silero holds on to
    /// speech for 50-150 ms after the voice ends); measured from there, the end's features
    /// describe the voice, not that tail.
    fn voice_end(&self) -> u64 {
        let oldest = self.count.saturating_sub(HIST as u64);
        let mut c = self.count;
        while c > oldest {
            if !self.recs[((c - 1) % HIST as u64) as usize].st.is_nan() {
                return c;
            }
            c -= 1;
        }
        self.count
    }

    fn frames(&self, s: f32) -> usize {
        ((s / self.frame_s).round() as usize).clamp(1, HIST)
    }

    /// The pitch of the voice's end in semitones above 100 Hz: the median of the last five
    /// pitched frames of the last 300 ms up to the last pitched frame (None: none pitched).
    pub fn final_st(&self) -> Option<f32> {
        let mut tail = [0f32; 5];
        let mut nt = 0usize;
        for (_, r) in self.last(self.voice_end(), self.frames(0.3)) {
            if !r.st.is_nan() {
                tail[nt % 5] = r.st;
                nt += 1;
            }
        }
        (nt > 0).then(|| {
            let k = nt.min(5);
            let v = &mut tail[..k];
            v.sort_by(f32::total_cmp);
            v[k / 2]
        })
    }

    /// The turn's loudest frame, dBFS.
    pub fn peak_db(&self) -> f32 {
        self.peak_db
    }

    /// The features of the turn's end: of the frames recorded so far up to the last pitched
    /// one (the turn's length: all of them).
    pub fn features(&self) -> Features {
        let n300 = self.frames(0.3);
        let n200 = self.frames(0.2);
        let n50 = self.frames(0.05);
        let dt = self.frame_s;
        let upto = self.voice_end();
        // Pitch slope: least squares over the pitched frames of the last 300 ms.
        let mut pitch_fit = LineFit::default();
        let mut tail = [0f32; 5];
        let mut nt = 0usize;
        let mut total = 0usize;
        for (i, r) in self.last(upto, n300) {
            total += 1;
            if r.st.is_nan() {
                continue;
            }
            pitch_fit.add(i as f32 * dt, r.st);
            tail[nt % 5] = r.st;
            nt += 1;
        }
        let pitch_slope = pitch_fit.slope().clamp(-50.0, 50.0);
        let final_pitch = if nt > 0 && self.n_st > 0 {
            let k = nt.min(5);
            let v = &mut tail[..k];
            v.sort_by(f32::total_cmp);
            (v[k / 2] - (self.sum_st / self.n_st as f64) as f32).clamp(-12.0, 12.0)
        } else {
            0.0
        };
        let pitched_share = if total > 0 {
            nt as f32 / total as f32
        } else {
            0.0
        };
        // Level slope over the last 200 ms.
        let mut level_fit = LineFit::default();
        for (i, r) in self.last(upto, n200) {
            level_fit.add(i as f32 * dt, r.db);
        }
        let level_slope = level_fit.slope().clamp(-150.0, 150.0);
        // Final level and probability: the last 50 ms.
        let (mut db, mut p, mut k) = (0f32, 0f32, 0f32);
        for (_, r) in self.last(upto, n50) {
            db += r.db;
            p += r.p;
            k += 1.0;
        }
        let (final_level, final_p) = if k > 0.0 {
            ((db / k - self.peak_db).clamp(-50.0, 0.0), p / k)
        } else {
            (0.0, 0.0)
        };
        let turn_s = (self.count as f32 * dt).max(0.05);
        [
            pitch_slope,
            final_pitch,
            level_slope,
            final_level,
            pitched_share,
            final_p,
            turn_s.log2(),
        ]
    }
}

/// Frames of non-speech kept for the noise's level and pitch (at 10 ms, the last 640 ms).
const NOISE_HIST: usize = 64;

/// What the semantic rule knows of the noise: the level and pitch of the last non-speech
/// frames (before the turn and in its pauses), from which [`NoiseHistory::floor`] and
/// [`NoiseHistory::tone`] are taken when a pause is judged.
#[derive(Debug, Clone)]
pub struct NoiseHistory {
    db: [f32; NOISE_HIST],
    /// Pitch in semitones above 100 Hz, NaN when unpitched.
    st: [f32; NOISE_HIST],
    count: u64,
}

impl Default for NoiseHistory {
    fn default() -> Self {
        Self {
            db: [0.0; NOISE_HIST],
            st: [f32::NAN; NOISE_HIST],
            count: 0,
        }
    }
}

impl NoiseHistory {
    /// Records a non-speech frame: its level (dBFS) and pitch (Hz, if any).
    pub fn record(&mut self, db: f32, f0: Option<f32>) {
        let i = (self.count % NOISE_HIST as u64) as usize;
        self.db[i] = db;
        self.st[i] = f0.map_or(f32::NAN, |f| 12.0 * (f / 100.0).log2());
        self.count += 1;
    }

    /// Frames held.
    pub fn len(&self) -> usize {
        self.count.min(NOISE_HIST as u64) as usize
    }

    /// Whether no frame is held.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The noise floor: the lower quartile of the held frames' levels, dBFS (-120 when
    /// none is held).
    pub fn floor(&self) -> f32 {
        let n = self.len();
        if n == 0 {
            return -120.0;
        }
        let mut v = self.db;
        let v = &mut v[..n];
        v.sort_by(f32::total_cmp);
        v[n / 4]
    }

    /// Of the held frames at the noise floor (within [`NOISE_BAND_DB`] of
    /// [`NoiseHistory::floor`]: the noise itself, not a faint voice in a pause), the share
    /// that is pitched, and the median of their pitch in semitones above 100 Hz (NaN when
    /// none is).
    pub fn tone(&self) -> (f32, f32) {
        let n = self.len();
        let top = self.floor() + NOISE_BAND_DB;
        let mut v = [0f32; NOISE_HIST];
        let (mut k, mut m) = (0, 0);
        for (&st, &db) in self.st[..n].iter().zip(&self.db[..n]) {
            if db > top {
                continue;
            }
            m += 1;
            if !st.is_nan() {
                v[k] = st;
                k += 1;
            }
        }
        if k == 0 {
            return (0.0, f32::NAN);
        }
        let v = &mut v[..k];
        v.sort_by(f32::total_cmp);
        (k as f32 / m as f32, v[k / 2])
    }
}

/// Running sums of a least-squares line fit of `y` against `t`.
#[derive(Default)]
struct LineFit {
    n: f32,
    sx: f32,
    sy: f32,
    sxx: f32,
    sxy: f32,
}

impl LineFit {
    fn add(&mut self, t: f32, y: f32) {
        self.n += 1.0;
        self.sx += t;
        self.sy += y;
        self.sxx += t * t;
        self.sxy += t * y;
    }

    /// The fitted slope; 0 with fewer than four points or no spread in `t`.
    fn slope(&self) -> f32 {
        let den = self.n * self.sxx - self.sx * self.sx;
        if self.n >= 4.0 && den > 1e-9 {
            (self.n * self.sxy - self.sx * self.sy) / den
        } else {
            0.0
        }
    }
}

/// How far above the noise floor a non-speech frame may be and still count as the noise
/// (stationary noise varies by 1-2 dB from one 10 ms frame to the next).
const NOISE_BAND_DB: f32 = 6.0;

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(f0: f32, n: usize, rate: u32) -> Vec<i16> {
        (0..n)
            .map(|i| {
                let t = i as f32 / rate as f32;
                ((1..8)
                    .map(|k| (2.0 * std::f32::consts::PI * f0 * k as f32 * t).sin() / k as f32)
                    .sum::<f32>()
                    * 4000.0) as i16
            })
            .collect()
    }

    #[test]
    fn finds_the_pitch_of_harmonic_tones() {
        for rate in [8000, 16000, 24000] {
            for f0 in [80.0f32, 120.0, 180.0, 250.0, 350.0] {
                let mut p = PitchTracker::new(rate);
                p.push(&tone(f0, rate as usize / 10, rate));
                let got = p.pitch().unwrap();
                assert!((got / f0 - 1.0).abs() < 0.03, "{rate} {f0} {got}");
            }
        }
    }

    #[test]
    fn noise_and_silence_are_unpitched() {
        let mut p = PitchTracker::new(16000);
        p.push(&[0; 1600]);
        assert_eq!(p.pitch(), None);
        let mut r = 1u64;
        let x: Vec<i16> = (0..1600)
            .map(|_| {
                r = r.wrapping_mul(6364136223846793005).wrapping_add(1);
                ((r >> 48) as i16) / 4
            })
            .collect();
        p.push(&x);
        assert_eq!(p.pitch(), None);
    }

    #[test]
    fn low_frequency_noise_is_unpitched() {
        // Rumble (white noise low-passed at about 40 Hz): its correlation only falls from
        // the shortest lag searched, which an edge taken for a peak read as a 400 Hz voice.
        let mut p = PitchTracker::new(16000);
        let (mut r, mut y) = (7u64, 0f32);
        let x: Vec<i16> = (0..3200)
            .map(|_| {
                r = r.wrapping_mul(6364136223846793005).wrapping_add(1);
                y += 0.016 * (((r >> 48) as i16) as f32 - y);
                (y * 2.0) as i16
            })
            .collect();
        let mut pitched = 0;
        for c in x.chunks(160) {
            p.push(c);
            if let Some(f) = p.pitch() {
                assert!(f < 390.0, "{f}");
                pitched += 1;
            }
        }
        assert!(pitched <= 2, "{pitched} of 20 frames pitched");
    }

    #[test]
    fn falling_pitch_has_a_negative_slope_and_a_low_end() {
        let mut h = History::new(0.01);
        for i in 0..100 {
            // 150 Hz falling to about 100 Hz over the last 300 ms.
            let f = if i < 70 {
                150.0
            } else {
                150.0 * 0.986f32.powi(i - 70)
            };
            h.record(-20.0, Some(f), 0.9);
        }
        let f = h.features();
        assert!(f[0] < -15.0, "{f:?}");
        assert!(f[1] < -4.0, "{f:?}");
        let mut h = History::new(0.01);
        for _ in 0..100 {
            h.record(-20.0, Some(150.0), 0.9);
        }
        let f = h.features();
        assert!(f[0].abs() < 0.5 && f[1].abs() < 0.5, "{f:?}");
    }

    #[test]
    fn noise_history_floor_and_tone() {
        let mut n = NoiseHistory::default();
        assert!(n.is_empty());
        assert_eq!(n.floor(), -120.0);
        assert_eq!(n.tone().0, 0.0);
        // 100 frames: the oldest 36 forgotten; of the 64 kept, 16 at -58 dB pitched at
        // 120 Hz, 48 at -60 dB unpitched.
        for i in 0..100 {
            if i % 4 == 0 {
                n.record(-58.0, Some(120.0));
            } else {
                n.record(-60.0, None);
            }
        }
        assert_eq!(n.len(), 64);
        assert_eq!(n.floor(), -60.0);
        let (share, st) = n.tone();
        assert!((share - 0.25).abs() < 1e-6, "{share}");
        assert!((st - 12.0 * 1.2f32.log2()).abs() < 1e-4, "{st}");
        // A faint voice 20 dB over the floor (in a pause) is not the noise's pitch.
        for i in 0..64 {
            if i % 4 == 0 {
                n.record(-40.0, Some(120.0));
            } else {
                n.record(-60.0, None);
            }
        }
        assert_eq!(n.tone().0, 0.0);
    }
}
