//! An adaptive playout jitter buffer for audio that arrives in bursts (TTS responses over a
//! WebSocket), driven by the caller's clock: sans-I/O, all times in milliseconds.
//!
//! `push` appends source audio of any size, `pop` returns exactly one frame per call (audio,
//! concealment or silence), `mark_end` says a stream (one response) is complete and `clear`
//! drops what is queued (barge-in).
//!
//! # Adaptive mode
//!
//! The target is how long the queue must last for the next push to arrive: the 95th
//! percentile of the gaps between consecutive pushes of a stream (over the last 256 pushes,
//! starting from a prior of `min(prebuffer_ms, 100)`), times 1.25, plus one frame, at most
//! `prebuffer_ms` (so a harsh network does not inflate it beyond the fixed client's wait).
//! That gap folds in the chunk sizes, the source's pace and network jitter. The statistics
//! carry across the streams of a session. A stream starts playing when either
//!
//! - `prebuffer_ms` is queued (never later than the fixed pre-buffer client), or
//! - its queue lasts until the latest *regular* arrival of the next push, `buffered >=
//!   max(target, worst) - (now - last push)`, where `worst` is the longest recent gap that is
//!   not a stall (gaps above 1.5x the 90th percentile count as stalls), plus a frame; *and* it
//!   holds the target (unless the next push is already later than that horizon: waiting on
//!   would not be backed by the statistics); *and* the
//!   wait since the stream's first arrival covers the worst start-up lateness of the last 32
//!   streams (x1.2 + 20 ms, less the first chunk). A stream's start-up lateness is how late
//!   its pushes in the first second of audio came against real-time playback from the end
//!   of its first chunk: consecutive slow chunks add up, which the gap alone does not see.
//!   Until four streams have been seen, that lateness is taken as `prebuffer_ms`.
//!
//! A new stream also needs `min_start_ms` queued (default `prebuffer_ms`: the fixed client's
//! start); once the last `CALM_GAPS` (128) or more arrival gaps hold no stall, only
//! `CALM_MARGIN` (1.1) times the target. And it never starts on its first arrival alone: the
//! gap after a stream's first chunk is the one no statistic of the session describes (a TTS
//! that sends a small chunk and then stalls), so a stream waits for a second arrival (a push
//! at a later time) unless it already holds `prebuffer_ms` or has ended. The fixed client needs
//! that second arrival too whenever the first chunk is shorter than `prebuffer_ms`, so this
//! never starts later than it. Before the fixed client starts it cannot underrun, whatever
//! the next gap; a stream started earlier on a small queue can, and no statistic bounds a
//! stall the session has not seen yet (issue 28, docs/design/jitter.md).
//!
//! It starts at once when the stream has ended. A rejoin after an underrun needs only the
//! condition on the gaps (or `prebuffer_ms` queued), except within a stream's start-up after
//! a hole longer than any regular gap: then also as much queued as the hole lasted, at most
//! `prebuffer_ms` and no later than the fixed client would rejoin. While playing:
//!
//! - *expand* (slow down by inserting one pitch period, at most one per frame of output, or
//!   per period when that is longer) before the stream has ended, when the queue would not
//!   last the mean remaining wait for the next push, estimated from the recent gaps longer
//!   than the wait so far (at least 8 of them): once a push is overdue, the session's own
//!   stalls and bad spells say how much longer it is likely to take, so a queue that outlasts
//!   that adds no latency and a shorter one is stretched rather than run dry. Beyond the
//!   session's experience: when the queue falls below half of what is needed until the next
//!   push is due, or below the target once a push is overdue. And once a push is overdue
//!   (beyond the target), whenever the queue is below half of what the fixed client would
//!   hold of the stream: stretched at half speed it then lasts as long as the fixed client's;
//! - *accelerate* (remove one pitch period) when playback lags its schedule (`(now - t0) -
//!   played`) by more than the target and the queue holds the target plus what is needed
//!   (twice the target after an underrun), removing delay that stalls or expansion added. The
//!   surplus a faster-than-real-time source builds is not accelerated away on its own: it
//!   costs no latency (the stream ends when its last sample plays) and absorbs stalls.
//!   Once a stream has ended (all of it is queued, nothing can be late, the target protects
//!   nothing any more), all delay above the hysteresis (2 frames + 20 ms), start-up wait
//!   included, is won back whatever the queue holds;
//! - on an underrun, *conceal* by repeating the last pitch period (fading to silence after
//!   20 ms, over 60 ms) and rejoin with a 5 ms crossfade once the start condition holds again.
//!
//! Stretching is pitch-synchronous (see [`tsm`]): it keeps the pitch.
//!
//! # Fixed mode
//!
//! The plain pre-buffer client: wait until `prebuffer_ms` is queued (or the stream ended),
//! play, and on an underrun output silence and pre-buffer again. Output is the input, exactly.
//!
//! No allocation after construction: the queue is a ring of `max_ms` of audio.

mod tsm;

use crate::error::{Error, Result};
pub use tsm::{Around, Concealer, Period, PitchSearch};

/// Sample rates the buffer accepts.
pub const RATES: [u32; 8] = [8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000];

/// Arrival gaps the target is estimated from.
const WINDOW: usize = 256;
/// Quantile of the arrival gaps that the target covers.
const QUANTILE: f64 = 0.95;
/// Safety factor on that quantile.
const MARGIN: f64 = 1.25;
/// Target before any stream has been observed, at most `prebuffer_ms`.
const PRIOR_MS: f64 = 100.0;
/// Gaps above `STALL_K` times the `STALL_Q` quantile count as stalls, not regular gaps.
const STALL_Q: f64 = 0.9;
const STALL_K: f64 = 1.5;
/// Start-up lateness is measured over the first second of audio after a stream's first chunk.
const LATE_HORIZON_MS: f64 = 1000.0;
/// Margin on the worst start-up lateness of recent streams.
const LATE_MARGIN: f64 = 1.2;
const LATE_ADD_MS: f64 = 20.0;
/// Gaps seen before the remaining wait for a push is estimated from them, and the fewest
/// gaps longer than the wait so far that the estimate averages (else it is beyond the
/// session's experience and the fallback rule applies).
const RESIDUAL_SEEN: usize = 32;
const RESIDUAL_TAIL: usize = 8;
/// Default `min_start_ms`, as a fraction of `prebuffer_ms`.
pub const DEFAULT_MIN_START: f64 = 1.0;
/// Gaps a session must have shown, none of them a stall, before `min_start_ms` is lowered
/// to `CALM_MARGIN` times the target.
const CALM_GAPS: usize = 128;
/// A calm session's start floor, as a multiple of the target (issue 28: at 1.0, a session
/// calm for 128 gaps started a mobile-network stream on 199 ms queued against a 191 ms
/// target and ran dry in a 360 ms hole; docs/design/jitter.md has the curve).
const CALM_MARGIN: f64 = 1.1;
/// Correlation above which a segment counts as periodic enough to stretch.
const VOICED: f32 = 0.6;
/// RMS below which a segment is quiet enough to stretch whatever its periodicity.
const QUIET: f32 = 300.0;

/// Configuration of a [`JitterBuffer`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JitterConfig {
    /// Sample rate in Hz (one of [`RATES`]).
    pub sample_rate: u32,
    /// Frame length in ms; `frame_ms * sample_rate / 1000` must be a whole number.
    pub frame_ms: u32,
    /// Fixed mode's pre-buffer; adaptive mode's ceiling for the initial target.
    pub prebuffer_ms: u32,
    /// Adaptive target, time-stretching and concealment (else the plain pre-buffer client).
    pub adaptive: bool,
    /// Most audio the queue holds; pushes beyond it are dropped (and counted).
    pub max_ms: u32,
    /// Adaptive mode: the least audio a stream must have queued to start (or resume after
    /// an underrun) before `prebuffer_ms` is queued, whatever the session's evidence says;
    /// `None`: [`DEFAULT_MIN_START`] of `prebuffer_ms`. At `prebuffer_ms` or above, streams
    /// start exactly when the fixed client would. See the module documentation.
    pub min_start_ms: Option<u32>,
}

impl Default for JitterConfig {
    fn default() -> Self {
        Self {
            sample_rate: 24000,
            frame_ms: 10,
            prebuffer_ms: 250,
            adaptive: true,
            max_ms: 60_000,
            min_start_ms: None,
        }
    }
}

/// Counters and levels, in ms unless named otherwise.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JitterStats {
    /// Source audio played (source time: stretching does not change it).
    pub played_ms: f64,
    /// Output produced (frames returned by `pop`).
    pub output_ms: f64,
    /// Source audio queued.
    pub buffered_ms: f64,
    /// Largest `buffered_ms` seen.
    pub max_buffered_ms: f64,
    /// Current target delay (fixed mode: `prebuffer_ms`).
    pub target_ms: f64,
    /// How far the current stream's playback trails its first arrival, beyond its own
    /// duration: `(now - t0) - played` (0 when no stream plays).
    pub delay_ms: f64,
    /// Times playback of a stream ran dry before its end.
    pub underruns: u64,
    /// Output produced during underruns (concealment, or silence in fixed mode).
    pub concealed_ms: f64,
    /// Output time added by slowing down.
    pub expanded_ms: f64,
    /// Output time removed by speeding up.
    pub accelerated_ms: f64,
    /// Streams begun.
    pub streams: u64,
    /// Pushes that arrived while their stream was in an underrun.
    pub late_pushes: u64,
    /// Source audio dropped because the queue was full.
    pub dropped_ms: f64,
    /// Source audio dropped by `clear`.
    pub cleared_ms: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No audio to play: silence.
    Idle,
    /// A stream is waiting for its start condition.
    Buffering,
    /// Playing queued audio.
    Playing,
    /// Underrun: concealment (adaptive) or silence while pre-buffering again (fixed).
    Underrun,
}

/// The queue: a ring of int16 samples allocated once.
#[derive(Debug, Clone)]
struct Ring {
    buf: Vec<i16>,
    head: usize,
    len: usize,
}

impl Ring {
    fn new(cap: usize) -> Self {
        Self {
            buf: vec![0; cap],
            head: 0,
            len: 0,
        }
    }

    fn free(&self) -> usize {
        self.buf.len() - self.len
    }

    /// Appends as many samples as fit; returns how many.
    fn push_with(&mut self, n: usize, mut get: impl FnMut(usize) -> i16) -> usize {
        let n = n.min(self.free());
        let cap = self.buf.len();
        let mut w = (self.head + self.len) % cap;
        for i in 0..n {
            self.buf[w] = get(i);
            w += 1;
            if w == cap {
                w = 0;
            }
        }
        self.len += n;
        n
    }

    fn push(&mut self, x: &[i16]) -> usize {
        let n = x.len().min(self.free());
        let cap = self.buf.len();
        let w = (self.head + self.len) % cap;
        let first = n.min(cap - w);
        self.buf[w..w + first].copy_from_slice(&x[..first]);
        self.buf[..n - first].copy_from_slice(&x[first..n]);
        self.len += n;
        n
    }

    fn get(&self, i: usize) -> i16 {
        self.buf[(self.head + i) % self.buf.len()]
    }

    /// Copies the first `dst.len()` queued samples (which must be queued) as f32.
    fn peek_f32(&self, dst: &mut [f32]) {
        let cap = self.buf.len();
        let first = dst.len().min(cap - self.head);
        for (d, &s) in dst[..first]
            .iter_mut()
            .zip(&self.buf[self.head..self.head + first])
        {
            *d = s as f32;
        }
        for (d, &s) in dst[first..].iter_mut().zip(&self.buf) {
            *d = s as f32;
        }
    }

    fn skip(&mut self, n: usize) {
        let n = n.min(self.len);
        self.head = (self.head + n) % self.buf.len();
        self.len -= n;
    }

    fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }
}

/// Arrival-gap statistics: the time between consecutive pushes of a stream, over a window of
/// recent pushes. The quantile is how long the queue must last for the next push to arrive
/// in time; it folds in chunk sizes, the source's pace and network jitter. Rare long stalls
/// fall outside it: expansion and concealment handle them rather than every stream's start.
#[derive(Debug, Clone)]
struct Estimator {
    win: [f64; WINDOW],
    n: usize,
    next: usize,
    prior: f64,
    /// The current quantile (recomputed per push).
    needed: f64,
    /// Prior of the worst regular gap.
    worst_prior: f64,
    /// The longest gap in the window that is not a stall (recomputed per push).
    worst: f64,
    /// Stalls (gaps above `STALL_K` times the `STALL_Q` quantile) in the window.
    stalls: usize,
    /// The window sorted, and `suffix[i]` = sum of `sorted[i..n]` (recomputed per push).
    sorted: [f64; WINDOW],
    suffix: [f64; WINDOW + 1],
}

impl Estimator {
    fn new(prior: f64, worst_prior: f64) -> Self {
        Self {
            win: [0.0; WINDOW],
            n: 0,
            next: 0,
            prior,
            needed: prior,
            worst_prior,
            worst: worst_prior,
            stalls: 0,
            sorted: [0.0; WINDOW],
            suffix: [0.0; WINDOW + 1],
        }
    }

    fn observe(&mut self, gap: f64) {
        self.win[self.next] = gap.max(0.0);
        self.next = (self.next + 1) % WINDOW;
        self.n = (self.n + 1).min(WINDOW);
        let v = &mut self.sorted[..self.n];
        v.copy_from_slice(&self.win[..self.n]);
        v.sort_unstable_by(f64::total_cmp);
        let k = ((QUANTILE * self.n as f64).ceil() as usize).clamp(1, self.n) - 1;
        let q = v[k];
        let kk = ((STALL_Q * self.n as f64).ceil() as usize).clamp(1, self.n) - 1;
        let lim = v[kk] * STALL_K;
        let worst = v.iter().copied().filter(|&g| g <= lim).fold(0.0, f64::max);
        self.stalls = v.iter().filter(|&&g| g > lim).count();
        self.suffix[self.n] = 0.0;
        for i in (0..self.n).rev() {
            self.suffix[i] = self.suffix[i + 1] + self.sorted[i];
        }
        // Blend in the prior while few gaps have been seen.
        let w = (self.n as f64 / 32.0).min(1.0);
        self.needed = w * q + (1.0 - w) * self.prior;
        self.worst = w * worst + (1.0 - w) * self.worst_prior.max(worst);
    }

    fn needed_ms(&self) -> f64 {
        self.needed
    }

    /// The mean remaining wait for the next push once `e` ms have passed since the last
    /// one: the mean of `g - e` over the recent gaps `g` longer than `e`. `None` while fewer
    /// than `RESIDUAL_SEEN` gaps have been seen or fewer than `RESIDUAL_TAIL` are that long.
    fn remaining(&self, e: f64) -> Option<f64> {
        if self.n < RESIDUAL_SEEN {
            return None;
        }
        let i = self.sorted[..self.n].partition_point(|&g| g <= e);
        let m = self.n - i;
        if m < RESIDUAL_TAIL {
            return None;
        }
        Some((self.suffix[i] / m as f64 - e).max(0.0))
    }
}

/// The jitter buffer. See the module documentation.
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    cfg: JitterConfig,
    rate: f64,
    frame: usize,
    ring: Ring,
    state: State,
    /// Whether pushes belong to an open stream (false after `mark_end`/`clear`).
    open: bool,
    /// Whether the stream being played has been marked complete.
    ended: bool,
    /// Source samples of the stream being played that precede the stream queued after it,
    /// when a new stream starts before the previous one finished playing.
    boundary: Option<usize>,
    last_now: Option<f64>,
    /// First arrival of the stream being played, and of the open stream.
    t0: f64,
    open_t0: f64,
    /// Time of the last push.
    last_arrival: f64,
    /// Source samples pushed to the open stream.
    open_pushed: u64,
    /// Source samples of the current stream played.
    stream_played: u64,

    /// Decided output: history, then queued samples (the last `queued`).
    syn: Vec<f32>,
    syn_len: usize,
    queued: usize,
    hist: usize,
    /// Scratch: history followed by lookahead.
    work: Vec<f32>,
    pitch: PitchSearch,
    conceal: Concealer,
    xfade: usize,
    /// Output samples to wait before the next stretch.
    cooldown: usize,
    /// Whether the stream being played has had an underrun (it then keeps the delay it
    /// gained: no acceleration).
    stream_underrun: bool,
    /// The gap between pushes that caused the current underrun (negative until the first
    /// push after it).
    hole: f64,
    /// The fixed client on the open stream, shadowed: source ms it has played of it, and
    /// whether it is playing (not pre-buffering).
    fixed_played: f64,
    fixed_playing: bool,

    est: Estimator,
    /// Start-up lateness of recent streams (see `late_need`), newest at `lates_next - 1`.
    lates: [f64; STREAMS],
    lates_n: usize,
    lates_next: usize,
    /// The open stream's first chunk (ms) and its start-up lateness so far.
    open_first: f64,
    open_late: f64,
    /// When the open stream had `prebuffer_ms` pushed (the fixed client would start), if it has.
    open_full_at: Option<f64>,
    stats: Counters,
}

/// Streams whose start-up lateness the start rule remembers.
const STREAMS: usize = 32;

#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    played: u64,
    output: u64,
    concealed: u64,
    expanded: u64,
    accelerated: u64,
    underruns: u64,
    streams: u64,
    late_pushes: u64,
    dropped: u64,
    cleared: u64,
    max_buffered: usize,
}

impl JitterBuffer {
    /// A buffer with the given configuration.
    pub fn new(cfg: JitterConfig) -> Result<Self> {
        if !RATES.contains(&cfg.sample_rate) {
            return Err(Error::InvalidArgument(format!(
                "unsupported sample rate {} Hz (supported: {RATES:?})",
                cfg.sample_rate
            )));
        }
        let samples = cfg.frame_ms as u64 * cfg.sample_rate as u64;
        if cfg.frame_ms == 0 || cfg.frame_ms > 1000 || !samples.is_multiple_of(1000) {
            return Err(Error::InvalidArgument(format!(
                "frame_ms={} does not give a whole number of samples at {} Hz (1-1000 ms)",
                cfg.frame_ms, cfg.sample_rate
            )));
        }
        let frame = (samples / 1000) as usize;
        let max_ms = crate::limits::MAX_JITTER_MS;
        if cfg.max_ms < 2 * cfg.frame_ms.max(50) || cfg.max_ms > max_ms {
            return Err(Error::InvalidArgument(format!(
                "max_ms={} must be between {} and {max_ms}",
                cfg.max_ms,
                2 * cfg.frame_ms.max(50)
            )));
        }
        if cfg.prebuffer_ms > cfg.max_ms {
            return Err(Error::InvalidArgument(format!(
                "prebuffer_ms={} exceeds max_ms={}",
                cfg.prebuffer_ms, cfg.max_ms
            )));
        }
        let rate = cfg.sample_rate as f64;
        let cap = (cfg.max_ms as u64 * cfg.sample_rate as u64).div_ceil(1000) as usize;
        let ms = |m: f64| (rate * m / 1000.0).round() as usize;
        let mut pitch = PitchSearch::new(cfg.sample_rate, 0);
        let (hb, _) = pitch.needs(Around::Behind);
        let (ha, la) = pitch.needs(Around::Ahead);
        let hist = hb.max(ha).max(pitch.tmax + 1);
        let look = la.max(2 * pitch.tmax);
        pitch = PitchSearch::new(cfg.sample_rate, hist + look);
        let syn_cap = hist + frame + 4 * pitch.tmax + ms(10.0);
        let conceal = Concealer::new(pitch.tmax, ms(20.0), ms(60.0));
        Ok(Self {
            rate,
            frame,
            ring: Ring::new(cap),
            state: State::Idle,
            open: false,
            ended: false,
            boundary: None,
            last_now: None,
            t0: 0.0,
            open_t0: 0.0,
            open_pushed: 0,
            last_arrival: 0.0,
            stream_played: 0,
            syn: vec![0.0; syn_cap],
            syn_len: hist,
            queued: 0,
            hist,
            work: vec![0.0; hist + look],
            pitch,
            conceal,
            xfade: ms(5.0),
            cooldown: 0,
            stream_underrun: false,
            hole: 0.0,
            fixed_played: 0.0,
            fixed_playing: false,
            lates: [0.0; STREAMS],
            lates_n: 0,
            lates_next: 0,
            open_first: 0.0,
            open_late: 0.0,
            open_full_at: None,
            est: Estimator::new(
                PRIOR_MS.min(cfg.prebuffer_ms as f64),
                cfg.prebuffer_ms as f64,
            ),
            stats: Counters::default(),
            cfg,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &JitterConfig {
        &self.cfg
    }

    /// Samples per frame.
    pub fn frame_samples(&self) -> usize {
        self.frame
    }

    fn ms_of(&self, samples: u64) -> f64 {
        samples as f64 * 1000.0 / self.rate
    }

    /// Checks and records the caller's clock: finite, within
    /// [`crate::limits::MAX_TIME_MS`] of 0, and not before the last call's. A refused time
    /// changes nothing.
    fn tick(&mut self, now_ms: f64) -> Result<()> {
        let max = crate::limits::MAX_TIME_MS;
        if !(now_ms.is_finite() && now_ms.abs() <= max) {
            return Err(Error::InvalidArgument(format!(
                "now_ms must be a finite time between -{max:e} and {max:e} ms, got {now_ms}"
            )));
        }
        if let Some(last) = self.last_now {
            if now_ms < last {
                return Err(Error::InvalidArgument(format!(
                    "time went backwards: now_ms={now_ms} after {last}"
                )));
            }
        }
        self.last_now = Some(now_ms);
        Ok(())
    }

    /// Appends int16 samples that arrived at `now_ms`.
    pub fn push(&mut self, x: &[i16], now_ms: f64) -> Result<()> {
        self.tick(now_ms)?;
        if x.is_empty() {
            return Ok(());
        }
        self.begin_push(now_ms);
        let n = self.ring.push(x);
        self.end_push(x.len(), n, now_ms);
        Ok(())
    }

    /// Appends little-endian PCM16 bytes (an even count) that arrived at `now_ms`.
    pub fn push_bytes(&mut self, x: &[u8], now_ms: f64) -> Result<()> {
        if !x.len().is_multiple_of(2) {
            return Err(Error::OddLength { len: x.len() });
        }
        self.tick(now_ms)?;
        if x.is_empty() {
            return Ok(());
        }
        self.begin_push(now_ms);
        let n = self.ring.push_with(x.len() / 2, |i| {
            i16::from_le_bytes([x[2 * i], x[2 * i + 1]])
        });
        self.end_push(x.len() / 2, n, now_ms);
        Ok(())
    }

    fn begin_push(&mut self, now: f64) {
        if !self.open {
            // A new stream.
            if self.open_pushed > 0 {
                self.lates[self.lates_next] = self.open_late;
                self.lates_next = (self.lates_next + 1) % STREAMS;
                self.lates_n = (self.lates_n + 1).min(STREAMS);
            }
            self.open_late = 0.0;
            self.open_full_at = None;
            self.fixed_played = 0.0;
            self.fixed_playing = false;
            self.open = true;
            self.open_t0 = now;
            self.open_pushed = 0;
            self.stats.streams += 1;
            if self.state == State::Idle || self.ring.len == 0 {
                if self.state == State::Underrun {
                    self.conceal.fade_within(self.xfade);
                }
                self.start_stream(now);
                self.state = State::Buffering;
            } else {
                {
                    // The previous stream is still playing: queue this one behind it.
                    if self.boundary.is_none() {
                        self.boundary = Some(self.ring.len);
                    }
                    self.ended = false;
                }
            }
        }
        if self.open_pushed > 0 {
            self.est.observe(now - self.last_arrival);
            // How late this push is against real-time playback from the end of the first chunk.
            let ahead = self.ms_of(self.open_pushed) - self.open_first;
            if ahead <= LATE_HORIZON_MS {
                let late = now - self.open_t0 - ahead;
                self.open_late = self.open_late.max(late);
            }
        }
        if self.state == State::Underrun && self.hole < 0.0 {
            self.hole = now - self.last_arrival;
        }
        self.last_arrival = now;
        if self.state == State::Underrun && self.boundary.is_none() {
            self.stats.late_pushes += 1;
        }
    }

    fn end_push(&mut self, wanted: usize, pushed: usize, now: f64) {
        if self.open_pushed == 0 {
            self.open_first = self.ms_of(wanted as u64);
        }
        self.open_pushed += wanted as u64;
        if self.open_full_at.is_none()
            && self.ms_of(self.open_pushed) >= self.cfg.prebuffer_ms as f64
        {
            self.open_full_at = Some(now);
        }
        self.stats.dropped += (wanted - pushed) as u64;
        self.stats.max_buffered = self.stats.max_buffered.max(self.ring.len);
    }

    fn start_stream(&mut self, t0: f64) {
        self.t0 = t0;
        self.cooldown = 0;
        self.stream_played = 0;
        self.stream_underrun = false;
        self.ended = false;
        self.boundary = None;
    }

    /// The current stream is complete: its tail plays without waiting; the next push starts
    /// a new stream. Does nothing when no stream is open.
    pub fn mark_end(&mut self) {
        if !self.open {
            return;
        }
        self.open = false;
        if self.boundary.is_none() {
            self.ended = true;
        }
    }

    /// Barge-in: drops everything queued, ends the stream and returns how many ms of it were
    /// played (source time, floored).
    pub fn clear(&mut self) -> u64 {
        let played = self.stream_played * 1000 / self.cfg.sample_rate as u64;
        self.stats.cleared += self.ring.len as u64;
        self.ring.clear();
        self.open = false;
        self.boundary = None;
        self.ended = false;
        self.stream_played = 0;
        if self.state == State::Underrun && self.cfg.adaptive {
            self.conceal.fade_within(self.xfade);
        } else {
            self.conceal.made = usize::MAX / 2;
        }
        // Queued output is dropped too, with a short fade so the stop does not click.
        let q0 = self.syn_len - self.queued;
        let keep = self.queued.min(self.xfade);
        if self.cfg.adaptive {
            for k in 0..keep {
                self.syn[q0 + k] *= 1.0 - tsm::ramp(k, keep);
            }
            self.syn_len = q0 + keep;
            self.queued = keep;
        } else {
            self.syn_len = q0;
            self.queued = 0;
        }
        self.state = State::Idle;
        played
    }

    /// The target delay, ms.
    pub fn target_ms(&self) -> f64 {
        if !self.cfg.adaptive {
            return self.cfg.prebuffer_ms as f64;
        }
        let f = self.cfg.frame_ms as f64;
        (self.est.needed_ms() * MARGIN + f)
            .min(self.cfg.prebuffer_ms as f64)
            .clamp(2.0 * f, self.cfg.max_ms as f64 / 2.0)
    }

    fn buffered_ms(&self) -> f64 {
        self.ms_of(self.ring.len as u64)
    }

    fn delay_ms(&self) -> f64 {
        match (self.state, self.last_now) {
            (State::Idle, _) | (_, None) => 0.0,
            (_, Some(now)) => (now - self.t0) - self.ms_of(self.stream_played),
        }
    }

    /// Counters and levels.
    pub fn stats(&self) -> JitterStats {
        let s = &self.stats;
        JitterStats {
            played_ms: self.ms_of(s.played),
            output_ms: self.ms_of(s.output),
            buffered_ms: self.buffered_ms(),
            max_buffered_ms: self.ms_of(s.max_buffered as u64),
            target_ms: self.target_ms(),
            delay_ms: self.delay_ms(),
            underruns: s.underruns,
            concealed_ms: self.ms_of(s.concealed),
            expanded_ms: self.ms_of(s.expanded),
            accelerated_ms: self.ms_of(s.accelerated),
            streams: s.streams,
            late_pushes: s.late_pushes,
            dropped_ms: self.ms_of(s.dropped),
            cleared_ms: self.ms_of(s.cleared),
        }
    }

    /// Writes exactly one frame (`out.len() == frame_samples()`) for the playout time
    /// `now_ms`: audio, concealment or silence.
    pub fn pop(&mut self, now_ms: f64, out: &mut [i16]) -> Result<()> {
        if out.len() != self.frame {
            return Err(Error::InvalidArgument(format!(
                "pop needs a frame of {} samples, got {}",
                self.frame,
                out.len()
            )));
        }
        self.tick(now_ms)?;
        self.shadow_fixed();
        self.maybe_start(now_ms);
        let mut guard = 0;
        while self.queued < self.frame {
            self.produce(now_ms);
            guard += 1;
            if guard >= 64 {
                self.append_zeros(self.frame - self.queued);
            }
        }
        let q0 = self.syn_len - self.queued;
        for (o, &v) in out.iter_mut().zip(&self.syn[q0..q0 + self.frame]) {
            *o = v.round().clamp(-32768.0, 32767.0) as i16;
        }
        self.queued -= self.frame;
        self.cooldown = self.cooldown.saturating_sub(self.frame);
        self.stats.output += self.frame as u64;
        // Keep `hist` samples of history before the queued output.
        let keep = self.hist + self.queued;
        if self.syn_len > keep {
            self.syn.copy_within(self.syn_len - keep..self.syn_len, 0);
            self.syn_len = keep;
        }
        Ok(())
    }

    /// Advances the shadow of the fixed client on the open stream by one frame: it starts
    /// (and resumes after running dry) once `prebuffer_ms` of the stream is queued or the
    /// stream has ended.
    fn shadow_fixed(&mut self) {
        let left = self.ms_of(self.open_pushed) - self.fixed_played;
        if !self.fixed_playing && left > 0.0 && (left >= self.cfg.prebuffer_ms as f64 || !self.open)
        {
            self.fixed_playing = true;
        }
        if self.fixed_playing {
            let f = self.cfg.frame_ms as f64;
            self.fixed_played += f.min(left);
            if left < f && self.open {
                self.fixed_playing = false;
            }
        }
    }

    /// Starts playback (or resumes after an underrun) when the mode's condition holds.
    fn maybe_start(&mut self, now: f64) {
        let (waiting, after_underrun) = match self.state {
            State::Buffering => (true, false),
            State::Underrun => (true, true),
            _ => (false, false),
        };
        if !waiting || self.ring.len == 0 {
            return;
        }
        let ready = if self.ended {
            true
        } else if !self.cfg.adaptive {
            self.buffered_ms() >= self.cfg.prebuffer_ms as f64
        } else {
            let b = self.buffered_ms();
            let need = self.start_need(now);
            // A new stream also needs the target queued, unless the next push is already
            // later than any regular gap (waiting on would not be backed by the statistics;
            // playback then starts by stretching, see `wants_expand`).
            // And it needs `min_start_ms` queued (a margin over the target once the session
            // has been calm): before the fixed client starts, nothing bounds the next gap.
            // And a second arrival: the gap after the first chunk is not in the statistics.
            // A rejoin after a start-up stall also needs what the stall lasted (at most
            // `prebuffer_ms`, the fixed client's rejoin): see `rejoin_need`.
            let trusted = b >= self.target_ms() || need == 0.0;
            b >= self.cfg.prebuffer_ms as f64
                || (b >= need.max(self.floor_ms())
                    && ((after_underrun && b >= self.rejoin_need())
                        || self.boundary.is_some()
                        || (trusted
                            && self.last_arrival > self.open_t0
                            && b >= self.min_start_ms()
                            && now - self.open_t0 >= self.late_need())))
        };
        if !ready {
            return;
        }
        if after_underrun && self.cfg.adaptive {
            self.rejoin();
        }
        self.state = State::Playing;
    }

    /// Queue that lasts until the next push is due: the target, less the time since the
    /// last push (adaptive mode).
    fn needed_now(&self, now: f64) -> f64 {
        if self.open_pushed == 0 || !self.open {
            return 0.0;
        }
        (self.last_arrival + self.target_ms() - now).max(0.0)
    }

    /// Queue to start a stream with: it must last until the latest regular arrival of the
    /// next push (the longest non-stall gap seen, plus a margin).
    fn start_need(&self, now: f64) -> f64 {
        if self.open_pushed == 0 || !self.open {
            return 0.0;
        }
        let g = self
            .target_ms()
            .max(self.est.worst + self.cfg.frame_ms as f64);
        (self.last_arrival + g - now).max(0.0)
    }

    /// Queue a rejoin needs beyond the gap condition: when the underrun came within the
    /// stream's start-up (its first `LATE_HORIZON_MS` of audio after the first chunk) and
    /// the hole that caused it was a stall by the session's own statistics (longer than any
    /// regular gap of the window), as much as that hole lasted, at most `prebuffer_ms`, and
    /// only while the fixed client (shadowed on the stream) is still pre-buffering: never
    /// later than its rejoin. A TTS that stalls while warming up tends to stall again before
    /// it reaches its pace (issue 28: warm-up seed 82 rejoined on 239 ms after a 355 ms hole
    /// and ran dry in a second 346 ms one, where the fixed client, pre-buffering again, waited
    /// through it). Later in a stream, and after a regular gap, the gap condition alone
    /// decides (rejoining sooner there is most of the latency the adaptive buffer wins in
    /// stall-heavy sessions; docs/design/jitter.md, round four).
    fn rejoin_need(&self) -> f64 {
        if self.boundary.is_some() || self.hole <= self.est.worst || self.fixed_playing {
            return 0.0;
        }
        let startup = self.ms_of(self.open_pushed) - self.open_first <= LATE_HORIZON_MS;
        if !startup {
            return 0.0;
        }
        self.hole.min(self.cfg.prebuffer_ms as f64)
    }

    /// Wait after a stream's first arrival that recent streams' start-up lateness calls for.
    fn late_need(&self) -> f64 {
        // Until a few streams have been seen, the fixed pre-buffer's wait.
        let mut m = if self.lates_n < 4 {
            self.cfg.prebuffer_ms as f64
        } else {
            0.0
        };
        for &l in &self.lates[..self.lates_n] {
            m = m.max(l);
        }
        m * LATE_MARGIN + LATE_ADD_MS - self.open_first
    }

    /// What the fixed pre-buffer client would have queued of the open stream: all of it
    /// until `prebuffer_ms` has arrived, then less what it has played since (ignoring its
    /// own underruns).
    fn fixed_queue_ms(&self, now: f64) -> f64 {
        let pushed = self.ms_of(self.open_pushed);
        match self.open_full_at {
            None => pushed,
            Some(t) => (pushed - (now - t)).max(0.0),
        }
    }

    /// The least queue a new stream starts with before `prebuffer_ms` is queued:
    /// `min_start_ms` (at most `prebuffer_ms`), lowered to `CALM_MARGIN` times the target
    /// once the last `CALM_GAPS` or more gaps hold no stall.
    fn min_start_ms(&self) -> f64 {
        let pre = self.cfg.prebuffer_ms as f64;
        let floor = self
            .cfg
            .min_start_ms
            .map_or(DEFAULT_MIN_START * pre, |m| m as f64)
            .min(pre);
        if self.est.n >= CALM_GAPS && self.est.stalls == 0 {
            // A session without stalls in its recent gaps starts on the evidence, with a
            // margin over the target.
            return floor.min(CALM_MARGIN * self.target_ms());
        }
        floor
    }

    /// The least queue to start or rejoin with: a frame and two pitch periods.
    fn floor_ms(&self) -> f64 {
        self.ms_of((self.frame + 2 * self.pitch.tmax) as u64)
    }

    /// Whether adaptive playback slows down (expands): when the queue would not last the
    /// mean remaining wait for the next push, estimated from the session's gaps longer than
    /// the wait so far ([`Estimator::remaining`]). Once a push is overdue, that wait comes
    /// from the long gaps the session has seen (stalls, bad network spells): a queue that
    /// outlasts it plays at normal speed and adds no latency, a shorter one is stretched
    /// rather than run into an underrun. Beyond the session's experience (too few gaps that
    /// long), and until enough gaps have been seen: below half of what is needed until the
    /// next push is due, or below the target once it is overdue.
    fn wants_expand(&self, now: f64, buffered: f64) -> bool {
        let floor = self.ms_of((self.frame + self.pitch.tmax) as u64);
        if buffered < floor {
            return true;
        }
        if !self.open || self.open_pushed == 0 {
            return false;
        }
        let e = now - self.last_arrival;
        // A push is overdue: keep at least half of what the fixed client would hold, so
        // that stretching at half speed lasts as long as its queue would.
        if self.boundary.is_none()
            && e > self.target_ms()
            && buffered < 0.5 * self.fixed_queue_ms(now)
        {
            return true;
        }
        let wait = match self.est.remaining(e) {
            Some(r) => r,
            None if e > self.target_ms() => self.target_ms(),
            None => 0.5 * self.needed_now(now),
        };
        buffered < wait
    }

    /// Crossfades from concealment into the queued audio.
    fn rejoin(&mut self) {
        let n = self.xfade.min(self.ring.len);
        self.reserve(n);
        for k in 0..n {
            let w = tsm::ramp(k, n);
            let c = self.conceal.next_sample();
            let x = self.ring.get(k) as f32;
            self.syn[self.syn_len + k] = (1.0 - w) * c + w * x;
        }
        self.syn_len += n;
        self.queued += n;
        self.consume(n);
    }

    /// Makes room for `n` more samples in `syn` (dropping old history).
    fn reserve(&mut self, n: usize) {
        if self.syn_len + n > self.syn.len() {
            let keep = (self.hist + self.queued).min(self.syn_len);
            self.syn.copy_within(self.syn_len - keep..self.syn_len, 0);
            self.syn_len = keep;
        }
        debug_assert!(self.syn_len + n <= self.syn.len());
    }

    fn append_zeros(&mut self, n: usize) {
        self.reserve(n);
        self.syn[self.syn_len..self.syn_len + n].fill(0.0);
        self.syn_len += n;
        self.queued += n;
    }

    /// Takes `n` source samples off the queue as played.
    fn consume(&mut self, n: usize) {
        self.ring.skip(n);
        self.stats.played += n as u64;
        self.stream_played += n as u64;
        if let Some(b) = self.boundary {
            if n >= b {
                // Playback crossed into the stream queued behind: it becomes current.
                let over = n - b;
                self.boundary = None;
                self.t0 = self.open_t0;
                self.stream_played = over as u64;
                self.stream_underrun = false;
                self.ended = !self.open;
            } else {
                self.boundary = Some(b - n);
            }
        }
    }

    /// Copies history then up to `look` lookahead samples into `work`; returns (p, len).
    fn fill_work(&mut self, look: usize) -> (usize, usize) {
        let h = self.hist.min(self.syn_len);
        let p = h;
        self.work[..h].copy_from_slice(&self.syn[self.syn_len - h..self.syn_len]);
        let l = look.min(self.ring.len).min(self.work.len() - h);
        self.ring.peek_f32(&mut self.work[h..h + l]);
        (p, h + l)
    }

    /// Appends output to `syn` until at least one more sample is queued.
    fn produce(&mut self, now: f64) {
        let need = self.frame - self.queued;
        match self.state {
            State::Idle | State::Buffering => self.produce_quiet(need),
            State::Underrun => self.produce_quiet(need),
            State::Playing => {
                if self.ring.len == 0 {
                    if self.ended {
                        self.state = State::Idle;
                        self.conceal.made = usize::MAX / 2;
                        self.append_zeros(need);
                    } else {
                        self.underrun();
                        self.produce_quiet(need);
                    }
                    return;
                }
                if self.cfg.adaptive && self.cooldown == 0 && self.try_stretch(now) {
                    return;
                }
                let n = need.min(self.ring.len);
                self.reserve(n);
                let base = self.syn_len;
                for k in 0..n {
                    self.syn[base + k] = self.ring.get(k) as f32;
                }
                self.syn_len += n;
                self.queued += n;
                self.consume(n);
            }
        }
    }

    fn underrun(&mut self) {
        self.stats.underruns += 1;
        self.stream_underrun = true;
        self.state = State::Underrun;
        self.hole = -1.0;
        if self.cfg.adaptive {
            let p = self.syn_len;
            let per = if p >= self.pitch.needs(Around::Behind).0 {
                let (pp, len) = self.fill_work(0);
                self.pitch.search(&self.work[..len], pp, Around::Behind).lag
            } else {
                self.pitch.tmin.max(1)
            };
            self.conceal.start(&self.syn[..p], per);
        }
    }

    /// Silence, or concealment during an adaptive underrun (also fading out a concealment
    /// cut short by the end of the stream or a clear).
    fn produce_quiet(&mut self, need: usize) {
        let counting = self.state == State::Underrun;
        self.reserve(need);
        let base = self.syn_len;
        if self.cfg.adaptive && !self.conceal.silent() {
            for k in 0..need {
                self.syn[base + k] = self.conceal.next_sample();
            }
        } else {
            self.syn[base..base + need].fill(0.0);
        }
        self.syn_len += need;
        self.queued += need;
        if counting {
            self.stats.concealed += need as u64;
            if self.ended && self.ring.len == 0 {
                // The stream ended during the underrun: nothing more will come.
                self.state = State::Idle;
                self.conceal.fade_within(self.xfade);
            }
        }
    }

    /// Adaptive stretching: expands when the queue runs low, accelerates when playback lags
    /// its schedule by more than the target. Returns whether it produced output.
    fn try_stretch(&mut self, now: f64) -> bool {
        let buffered = self.buffered_ms();
        let target = self.target_ms();
        let tmax = self.pitch.tmax;
        let open_stream = !self.ended || self.boundary.is_some();
        let delay = (now - self.t0) - self.ms_of(self.stream_played);
        let expand = open_stream && self.ring.len >= tmax && self.wants_expand(now, buffered);
        let hyst = 2.0 * self.cfg.frame_ms as f64 + 20.0;
        let slack = self.ms_of((self.frame + 2 * tmax) as u64);
        // After an underrun, keep a second target's worth: the stream has shown it stalls.
        let extra = if self.stream_underrun { target } else { 0.0 };
        // Once the whole stream is queued (it has ended), no arrival can be late any more:
        // delay beyond the target (what stalls and expansion added) is won back whatever the
        // queue holds.
        let complete = self.ended && self.boundary.is_none();
        let accelerate = !expand
            && ((delay > target + hyst
                && buffered > target + self.needed_now(now) + slack + extra)
                || (complete && delay > hyst && buffered > slack))
            && self.ring.len >= self.work.len() - self.hist;
        if !(expand || accelerate) {
            return false;
        }
        if self.syn_len < self.hist {
            return false;
        }
        let at = if expand {
            Around::Behind
        } else {
            Around::Ahead
        };
        let (p, len) = self.fill_work(2 * tmax + self.pitch.win);
        let per = self.pitch.search(&self.work[..len], p, at);
        if per.corr < VOICED && per.rms > QUIET {
            return false;
        }
        let t = per.lag;
        self.reserve(t);
        let base = self.syn_len;
        if expand {
            tsm::expand(&self.work[..len], p, t, &mut self.syn[base..base + t]);
            self.stats.expanded += t as u64;
        } else {
            tsm::accelerate(&self.work[..len], p, t, &mut self.syn[base..base + t]);
            self.consume(2 * t);
            self.stats.accelerated += t as u64;
        }
        self.syn_len += t;
        self.queued += t;
        // At most one period inserted per period played (playback no slower than half speed)
        // and one removed per three played (no faster than 1.25x).
        self.cooldown = if expand { t } else { 3 * t };
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(adaptive: bool) -> JitterConfig {
        JitterConfig {
            sample_rate: 16000,
            frame_ms: 10,
            prebuffer_ms: 100,
            adaptive,
            max_ms: 2000,
            min_start_ms: None,
        }
    }

    fn ramp_signal(n: usize) -> Vec<i16> {
        (0..n).map(|i| (i % 30000) as i16).collect()
    }

    #[test]
    fn rejects_bad_configuration() {
        let bad = [
            JitterConfig {
                sample_rate: 12345,
                ..cfg(true)
            },
            JitterConfig {
                frame_ms: 0,
                ..cfg(true)
            },
            JitterConfig {
                sample_rate: 11025,
                frame_ms: 10,
                ..cfg(true)
            },
            JitterConfig {
                max_ms: 10,
                ..cfg(true)
            },
            JitterConfig {
                prebuffer_ms: 5000,
                ..cfg(true)
            },
        ];
        for c in bad {
            assert!(JitterBuffer::new(c).is_err(), "{c:?}");
        }
        let ok = JitterConfig {
            sample_rate: 11025,
            frame_ms: 40,
            ..cfg(true)
        };
        assert_eq!(JitterBuffer::new(ok).unwrap().frame_samples(), 441);
    }

    #[test]
    fn fixed_mode_plays_input_exactly_after_prebuffer() {
        let mut jb = JitterBuffer::new(cfg(false)).unwrap();
        let x = ramp_signal(16000);
        let mut out = Vec::new();
        let mut frame = vec![0i16; 160];
        let mut fed = 0;
        for tick in 0..150 {
            let now = tick as f64 * 10.0;
            if fed < x.len() {
                jb.push(&x[fed..fed + 160], now).unwrap();
                fed += 160;
                if fed == x.len() {
                    jb.mark_end();
                }
            }
            jb.pop(now, &mut frame).unwrap();
            out.extend_from_slice(&frame);
        }
        let start = out.iter().position(|&v| v != 0).unwrap_or(0);
        // The ramp starts at 0: the first non-zero is its second sample.
        assert_eq!(&out[start - 1..start - 1 + x.len()], &x[..]);
        assert_eq!(jb.stats().underruns, 0);
        assert!((jb.stats().played_ms - 1000.0).abs() < 1e-9);
    }

    #[test]
    fn time_going_backwards_is_an_error_and_changes_nothing() {
        let mut jb = JitterBuffer::new(cfg(true)).unwrap();
        jb.push(&[1, 2, 3], 100.0).unwrap();
        assert!(jb.push(&[1, 2, 3], 99.0).is_err());
        let mut f = vec![0i16; 160];
        assert!(jb.pop(50.0, &mut f).is_err());
        assert!(jb.pop(f64::NAN, &mut f).is_err());
        assert!((jb.stats().buffered_ms - 3.0 / 16.0).abs() < 1e-9);
    }

    #[test]
    fn overflow_drops_and_counts() {
        let mut jb = JitterBuffer::new(cfg(true)).unwrap();
        let x = vec![7i16; 16000 * 3];
        jb.push(&x, 0.0).unwrap();
        let s = jb.stats();
        assert_eq!(s.buffered_ms, 2000.0);
        assert_eq!(s.dropped_ms, 1000.0);
    }

    #[test]
    fn clear_returns_played_ms_and_next_push_is_a_new_stream() {
        let mut jb = JitterBuffer::new(cfg(true)).unwrap();
        jb.push(&vec![100i16; 16000], 0.0).unwrap();
        let mut f = vec![0i16; 160];
        let mut t = 0.0;
        while jb.stats().played_ms < 300.0 {
            jb.pop(t, &mut f).unwrap();
            t += 10.0;
        }
        let played = jb.stats().played_ms as u64;
        assert_eq!(jb.clear(), played);
        assert_eq!(jb.stats().buffered_ms, 0.0);
        jb.push(&[1, 2], t).unwrap();
        assert_eq!(jb.stats().streams, 2);
    }

    #[test]
    fn no_allocation_growth_while_running() {
        let mut jb = JitterBuffer::new(cfg(true)).unwrap();
        let caps = (
            jb.ring.buf.capacity(),
            jb.syn.capacity(),
            jb.work.capacity(),
        );
        let mut f = vec![0i16; 160];
        let x: Vec<i16> = (0..800)
            .map(|i| ((i as f32 * 0.07).sin() * 8000.0) as i16)
            .collect();
        for tick in 0..2000u32 {
            let now = tick as f64 * 10.0;
            if tick % 7 == 0 && tick % 300 < 200 {
                jb.push(&x, now).unwrap();
            }
            jb.pop(now, &mut f).unwrap();
        }
        assert_eq!(
            caps,
            (
                jb.ring.buf.capacity(),
                jb.syn.capacity(),
                jb.work.capacity()
            )
        );
        let s = jb.stats();
        assert!(s.underruns > 0 && s.accelerated_ms + s.expanded_ms > 0.0);
    }

    /// Plays streams of a 40 ms chunk at `t`, another `late` ms later and 200 ms more right
    /// after, and returns the time the first audio of one more 40 ms stream plays.
    fn start_after_history(late: f64) -> f64 {
        // The lateness rule alone (no `min_start_ms` floor).
        let mut jb = JitterBuffer::new(JitterConfig {
            min_start_ms: Some(0),
            ..cfg(true)
        })
        .unwrap();
        let x = vec![1000i16; 640];
        let mut f = vec![0i16; 160];
        let mut t = 0.0;
        for _ in 0..6 {
            jb.push(&x, t).unwrap();
            let mut pushed = false;
            for k in 0..150 {
                let now = t + k as f64 * 10.0;
                if !pushed && now >= t + late {
                    jb.push(&x, now).unwrap();
                    jb.push(&vec![1000i16; 3200], now).unwrap();
                    jb.mark_end();
                    pushed = true;
                }
                jb.pop(now, &mut f).unwrap();
            }
            t += 1500.0;
        }
        let played = jb.stats().played_ms;
        jb.push(&x, t).unwrap();
        let mut now = t;
        while jb.stats().played_ms == played && now < t + 2000.0 {
            if now == t + 10.0 {
                // A second arrival (no stream starts on its first alone).
                jb.push(&x, now).unwrap();
            }
            jb.pop(now, &mut f).unwrap();
            now += 10.0;
        }
        now - 10.0 - t
    }

    #[test]
    fn start_waits_for_the_start_up_lateness_of_recent_streams() {
        // Second chunks 40 ms after the first: no wait beyond the gap rule.
        let prompt = start_after_history(40.0);
        // Second chunks 150 ms after the first (110 ms late): the next stream waits for it.
        let late = start_after_history(150.0);
        assert!(late >= 110.0 * 1.2 + 20.0 - 40.0 - 10.0, "{prompt} {late}");
        assert!(late > prompt + 50.0, "{prompt} {late}");
    }

    /// A stream at 16 kHz: a `first` ms chunk at `t0`, nothing for `stall` ms, then 20 ms
    /// chunks every 10 ms up to `total` ms. Returns (underruns, first-audio wait in ms).
    fn stall_after_first_chunk(
        jb: &mut JitterBuffer,
        t0: f64,
        first: usize,
        stall: f64,
        total: usize,
    ) -> (u64, f64) {
        let x: Vec<i16> = (0..16 * total)
            .map(|i| ((i as f32 * 0.06).sin() * 8000.0) as i16)
            .collect();
        let mut pushes = vec![(t0, 0, 16 * first)];
        let mut p = 16 * first;
        let mut t = t0 + stall;
        while p < x.len() {
            let q = (p + 320).min(x.len());
            pushes.push((t, p, q));
            p = q;
            t += 10.0;
        }
        let u0 = jb.stats().underruns;
        let played0 = jb.stats().played_ms;
        let mut f = vec![0i16; 160];
        let mut k = 0;
        let mut first_audio = f64::NAN;
        for tick in 0..(total as u64 / 10 + stall as u64 / 10 + 200) {
            let now = t0 + tick as f64 * 10.0;
            while k < pushes.len() && pushes[k].0 <= now {
                let (at, a, b) = pushes[k];
                jb.push(&x[a..b], at).unwrap();
                k += 1;
                if k == pushes.len() {
                    jb.mark_end();
                }
            }
            jb.pop(now, &mut f).unwrap();
            if first_audio.is_nan() && jb.stats().played_ms > played0 {
                first_audio = now - t0;
            }
        }
        (jb.stats().underruns - u0, first_audio)
    }

    fn cfg250(adaptive: bool, min_start_ms: Option<u32>) -> JitterConfig {
        JitterConfig {
            prebuffer_ms: 250,
            min_start_ms,
            ..cfg(adaptive)
        }
    }

    #[test]
    fn a_stall_after_a_small_first_chunk_is_waited_out_like_the_fixed_client() {
        // 145 ms, then nothing for 600 ms (seed 1 of the "stall after the first chunk"
        // scenario). A rule that started on the first chunk ran dry; the fixed client waits
        // for 250 ms queued, and the adaptive one for the floor and for a second arrival (so
        // even without the floor, min_start_ms = 0, it waits the stall out).
        let run =
            |c| stall_after_first_chunk(&mut JitterBuffer::new(c).unwrap(), 0.0, 145, 600.0, 1500);
        let (no_floor_u, no_floor_first) = run(cfg250(true, Some(0)));
        let (new_u, new_first) = run(cfg250(true, None));
        let (fixed_u, fixed_first) = run(cfg250(false, None));
        assert_eq!((no_floor_u, new_u, fixed_u), (0, 0, 0));
        assert!(new_first <= fixed_first, "{new_first} {fixed_first}");
        assert!(no_floor_first >= 600.0, "{no_floor_first}");
    }

    /// A session calm for 8 streams of 40 ms chunks every 20 ms (no stall among 128+ gaps);
    /// returns the time after it.
    fn calm_session(jb: &mut JitterBuffer) -> f64 {
        let x = vec![1000i16; 640];
        let mut f = vec![0i16; 160];
        let mut t = 0.0;
        for _ in 0..8 {
            for k in 0..200 {
                let now = t + k as f64 * 10.0;
                if k % 2 == 0 && k < 40 {
                    jb.push(&x, now).unwrap();
                    if k == 38 {
                        jb.mark_end();
                    }
                }
                jb.pop(now, &mut f).unwrap();
            }
            t += 2000.0;
        }
        assert_eq!(jb.stats().buffered_ms, 0.0);
        t
    }

    #[test]
    fn no_stream_starts_on_its_first_arrival_alone() {
        // A calm session (the floor down to a margin over the target), then a 195 ms first
        // chunk and nothing for 358 ms (seed 7 turn 9 of "stall after the first chunk"): the
        // stream waits for its second arrival, as the fixed client does (195 < 250 ms).
        let mut jb = JitterBuffer::new(cfg250(true, None)).unwrap();
        let t = calm_session(&mut jb);
        assert!(jb.min_start_ms() < 100.0);
        let (u, first) = stall_after_first_chunk(&mut jb, t, 195, 358.0, 1500);
        let mut fixed = JitterBuffer::new(cfg250(false, None)).unwrap();
        let (fu, ffirst) = stall_after_first_chunk(&mut fixed, t, 195, 358.0, 1500);
        assert_eq!((u, fu), (0, 0));
        assert!((358.0..=ffirst).contains(&first), "{first} {ffirst}");
        // A first chunk of `prebuffer_ms` or more starts at once, like the fixed client.
        let (u, first) = stall_after_first_chunk(&mut jb, t + 4000.0, 260, 200.0, 1500);
        assert_eq!((u, first), (0, 0.0));
    }

    /// Plays the shape of warm-up seed 82 turn 48 at `t`: 254 ms in two pushes, a 355 ms
    /// hole, 239 ms in three pushes, a 346 ms hole, then the rest (1180 ms in all). Returns
    /// the underruns it caused.
    fn two_start_up_stalls(jb: &mut JitterBuffer, t: f64) -> u64 {
        let x: Vec<i16> = (0..16 * 1180)
            .map(|i| ((i as f32 * 0.06).sin() * 8000.0) as i16)
            .collect();
        let cuts = [0, 126, 254, 352, 414, 493, 1180].map(|m| 16 * m);
        let at = [0.0, 4.0, 359.0, 359.0, 359.0, 705.0];
        let u0 = jb.stats().underruns;
        let played0 = jb.stats().played_ms;
        let mut f = vec![0i16; 160];
        let mut k = 0;
        for tick in 0..300 {
            let now = t + tick as f64 * 10.0;
            while k < at.len() && t + at[k] <= now {
                jb.push(&x[cuts[k]..cuts[k + 1]], t + at[k]).unwrap();
                k += 1;
                if k == at.len() {
                    jb.mark_end();
                }
            }
            jb.pop(now, &mut f).unwrap();
        }
        assert!((jb.stats().played_ms - played0 - 1180.0).abs() < 1e-9);
        jb.stats().underruns - u0
    }

    #[test]
    fn a_second_stall_in_the_start_up_is_waited_out_like_the_fixed_client() {
        // After a calm session the 355 ms hole is a stall by the session's statistics and it
        // came within the stream's start-up: the rejoin waits for what it lasted (capped at
        // prebuffer_ms, the fixed client's rejoin) instead of going on 239 ms, and the second
        // hole is waited out as the fixed client waits it out.
        let mut jb = JitterBuffer::new(cfg250(true, None)).unwrap();
        let t = calm_session(&mut jb);
        let mut fixed = JitterBuffer::new(cfg250(false, None)).unwrap();
        let tf = calm_session(&mut fixed);
        assert_eq!(two_start_up_stalls(&mut fixed, tf), 1);
        assert_eq!(two_start_up_stalls(&mut jb, t), 1);
    }

    #[test]
    fn min_start_ms_is_capped_at_the_prebuffer_and_waived_for_calm_sessions() {
        let jb = JitterBuffer::new(cfg250(true, Some(5000))).unwrap();
        assert_eq!(jb.min_start_ms(), 250.0);
        assert_eq!(
            JitterBuffer::new(cfg250(true, None))
                .unwrap()
                .min_start_ms(),
            250.0
        );
        // A calm session: the floor comes down to a margin over the target.
        let mut jb = JitterBuffer::new(cfg250(true, None)).unwrap();
        let t = calm_session(&mut jb);
        assert!((jb.min_start_ms() - CALM_MARGIN * jb.target_ms()).abs() < 1e-9);
        assert!(jb.min_start_ms() < 250.0);
        // Never above the configured floor.
        let mut low = JitterBuffer::new(cfg250(true, Some(0))).unwrap();
        calm_session(&mut low);
        assert_eq!(low.min_start_ms(), 0.0);
        let x = vec![1000i16; 640];
        // One stall in the window and the floor is back.
        jb.push(&x, t).unwrap();
        jb.push(&x, t + 900.0).unwrap();
        assert_eq!(jb.min_start_ms(), 250.0);
    }

    #[test]
    fn overdue_push_expands_to_keep_half_of_the_fixed_clients_queue() {
        // 215 ms queued within 46 ms, then 320 ms without a push (seed 2 of the very short
        // answers): a buffer that started early stretches early enough to last it out.
        let mut jb = JitterBuffer::new(cfg250(true, Some(0))).unwrap();
        let x: Vec<i16> = (0..16 * 600)
            .map(|i| ((i as f32 * 0.06).sin() * 8000.0) as i16)
            .collect();
        let pushes = [
            (0.0, 0, 1840),
            (23.0, 1840, 2704),
            (46.0, 2704, 3440),
            (366.0, 3440, 9600),
        ];
        let mut f = vec![0i16; 160];
        let mut k = 0;
        for tick in 0..120 {
            let now = tick as f64 * 10.0;
            while k < pushes.len() && pushes[k].0 <= now {
                jb.push(&x[pushes[k].1..pushes[k].2], now).unwrap();
                k += 1;
            }
            if k == pushes.len() {
                jb.mark_end();
            }
            jb.pop(now, &mut f).unwrap();
        }
        let s = jb.stats();
        assert_eq!(s.underruns, 0);
        assert!(s.expanded_ms > 0.0);
        assert!((s.played_ms - 600.0).abs() < 1e-9);
    }

    #[test]
    fn adaptive_never_waits_longer_than_the_prebuffer() {
        // The history says to wait long, but a full pre-buffer's worth starts at once.
        let mut jb = JitterBuffer::new(cfg(true)).unwrap();
        let mut f = vec![0i16; 160];
        jb.push(&vec![1000i16; 1600 + 160], 0.0).unwrap();
        jb.pop(0.0, &mut f).unwrap();
        assert!(jb.stats().played_ms > 0.0);
    }
}
