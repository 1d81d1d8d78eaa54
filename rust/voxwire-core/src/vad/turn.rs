//! Server-side turn detection: when the user starts and stops talking, on the audio
//! timeline, with the utterance audio (prefix padding included) handed over at the end.
//!
//! One configuration carries OpenAI's `server_vad` parameters (`threshold`,
//! `prefix_padding_ms`, `silence_duration_ms`) and pipecat's `VADParams` (`start_secs`,
//! `stop_secs` = silence duration, `min_volume`). Decisions use the VAD's per-frame
//! probability, not its hangover, so event times are as sharp as the frames.

use super::prosody::{Features, History, NoiseHistory, PitchTracker};
use super::Vad;
use crate::error::{Error, Result};

/// How eager the semantic rule is to end a turn (OpenAI `semantic_vad` `eagerness`; its
/// `auto` is `Medium`, as OpenAI documents).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eagerness {
    /// Waits longest for the speaker to go on (at most 4 s of silence; OpenAI: 8 s).
    Low,
    /// In between (at most 2 s; OpenAI: 4 s).
    Medium,
    /// Ends soonest (at most 2 s; OpenAI: 2 s).
    High,
}

impl Eagerness {
    /// Parses "low", "medium", "high" or "auto" (= medium).
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "low" => Ok(Self::Low),
            "medium" | "auto" => Ok(Self::Medium),
            "high" => Ok(Self::High),
            _ => Err(Error::InvalidArgument(format!(
                "unknown eagerness {name:?}: use \"low\", \"medium\", \"high\" or \"auto\""
            ))),
        }
    }

    /// The silence (ms) after which a turn ends: [`EagernessWaits::complete_ms`] when the
    /// end looks complete, up to [`EagernessWaits::max_ms`] when it looks unfinished.
    pub fn waits(self) -> EagernessWaits {
        EAGERNESS_WAITS[self as usize]
    }
}

/// The waiting times of one eagerness (see [`semantic_wait_ms`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EagernessWaits {
    /// Silence that ends a turn judged complete with probability `sure_p` or more.
    pub complete_ms: u32,
    /// Silence that ends a turn judged surely unfinished (p = 0), the longest wait: within
    /// OpenAI's documented maximum timeouts (8, 4 and 2 s for low, medium and high).
    pub max_ms: u32,
    /// The probability of completeness from which on the wait is `complete_ms`; below it
    /// the wait grows with `sure_p - p`, to `max_ms` at p = 0.
    pub sure_p: f32,
    /// How the wait grows below `sure_p`: as the power `shape` of `(sure_p - p) / sure_p`
    /// (1: in proportion; under 1: steeply at first, so that an end just under `sure_p`
    /// already waits long; over 1: slowly at first, long waits only for clearly unfinished
    /// ends).
    pub shape: f32,
}

/// Waits of Low, Medium and High, in that order: chosen on the two tuning sets of
/// `benches/semantic_turn.py` (`--fit`: espeak-ng's `tune` split and the recorded speech of
/// `real-tune`), with Silero deciding speech, as the fewest turns cut at pauses (each set's
/// cuts counted against server_vad 500 ms's there) for a mean latency no higher than
/// server_vad's at 500 ms (Medium), 400 ms (High) and 800 ms (Low) on each set, and so
/// that for every p a lower eagerness never waits less. On recorded speech the model tells
/// ends from pauses far less well than on espeak-ng's, so the shortest waits (300-450 ms)
/// are near server_vad's and the longest 1-2 s (docs/design/turns.md).
pub const EAGERNESS_WAITS: [EagernessWaits; 3] = [
    EagernessWaits {
        complete_ms: 450,
        max_ms: 2000,
        sure_p: 0.65,
        shape: 0.5,
    },
    EagernessWaits {
        complete_ms: 400,
        max_ms: 1000,
        sure_p: 0.55,
        shape: 0.75,
    },
    EagernessWaits {
        complete_ms: 300,
        max_ms: 1000,
        sure_p: 0.6,
        shape: 1.0,
    },
];

/// The semantic rule's model: the probability that the utterance is complete when the
/// speaker falls silent is `sigmoid(END_MODEL_BIAS + sum(END_MODEL_WEIGHTS[i] *
/// features[i]))`, on the features of [`super::prosody::FEATURE_NAMES`] (measured up to the
/// last pitched frame before the pause): a logistic regression fitted on the tuning sets
/// of `benches/semantic_turn.py` pooled (espeak-ng's `tune` and recorded `real-tune`) with
/// Silero deciding speech (ends of turns against pauses of 250 ms or more inside them). In
/// standard units the weights are: final pitch against the turn's mean -1.03 (a low end:
/// complete), the level slope -0.36 (a level still falling steeply at the pause: a word cut
/// off), the VAD's final probability -0.19, the final level +0.06, the pitch slope -0.02,
/// the share of pitched frames +0.02. The turn's length is left out (weight 0): it made
/// one-word answers wait.
pub const END_MODEL_BIAS: f32 = 3.6224;
/// See [`END_MODEL_BIAS`].
pub const END_MODEL_WEIGHTS: Features = [-0.0013, -0.2973, -0.0065, 0.0104, 0.1365, -4.3718, 0.0];
/// What a text hint adds to the model's log-odds (complete: +, unfinished: -). The sum is
/// then judged like the audio's alone: in full where the gate passes, [`NOISY_TRUST`] of
/// the way under broadband noise, not at all under tonal noise. Chosen with the server's
/// PocketSphinx hint on the tuning sets (`benches/semantic_turn.py --hint-fit`): of 1-4,
/// and of this rule or the hint judging alone where the gate fails (before round six: 3,
/// alone), the fewest turns cut at high with each tuning set's mean latency no higher than
/// server_vad 500 ms's.
pub const HINT_LOGIT: f32 = 2.0;

/// The reliability gate: the semantic judgement is used only when the turn stands at
/// least this many dB above the noise (its loudest frame against the lower quartile of the
/// levels of the last 64 non-speech frames, before the turn and in its pauses) ...
pub const GATE_MIN_SNR_DB: f32 = 32.0;
/// ... and the noise is not tonal where the voice ends: the judgement is distrusted when at
/// least this share of the non-speech frames at the noise floor are pitched and the pitch
/// at the voice's end lies within [`GATE_NEAR_ST`] of the noise's (mains hum, brown noise,
/// a fan: the pitch tracker follows the noise, and the end's pitch and probability mislead
/// the model). Otherwise the turn ends as with `server_vad`, after `silence_duration_ms`
/// (under other noise, see [`NOISY_TRUST`]). The thresholds were chosen on the tuning split
/// and its tuning noises (`benches/semantic_turn.py --gate`): of the thresholds with which
/// no eagerness cuts more turns than server_vad 500 ms in any tuning condition and high
/// ends turns no more than 100 ms later on average, those that cut the fewest turns at
/// high. With the waits of [`EAGERNESS_WAITS`] that is an SNR of 32 dB; no tuning noise
/// condition stands that far above its noise, so the tonal thresholds are the ones the
/// search chose when it was 20 dB.
pub const GATE_TONAL_SHARE: f32 = 0.2;
/// See [`GATE_TONAL_SHARE`]: semitones, octaves folded.
pub const GATE_NEAR_ST: f32 = 2.0;
/// Names of [`TurnDetector::end_gate`]'s measures, in order: the turn's SNR (dB), the share
/// of pitched frames among the non-speech frames at the noise floor, and how far
/// (semitones, octaves folded, 6 when either is unpitched) the pitch at the voice's end
/// lies from the noise's median pitch.
pub const GATE_NAMES: [&str; 3] = ["snr_db", "noise_pitched_share", "pitch_to_noise_st"];

/// How far a pause the gate distrusts for its SNR alone (noise within [`GATE_MIN_SNR_DB`]
/// of the turn, not tonal) moves from `silence_duration_ms` towards the judged wait: the
/// wait is `silence + NOISY_TRUST * (judged - silence)`, so a pause judged surely complete
/// at high waits 440 ms instead of 500, one judged surely unfinished 650 ms. Under tonal
/// noise the judgement is not used at all (the pitch it rests on is the noise's). Chosen on
/// the same tuning split and tuning noises as the gate (`benches/semantic_turn.py --gate`):
/// of 0, 0.1, ..., 1, the value with which no eagerness cuts more turns than server_vad
/// 500 ms (or than with 0) in any tuning condition, the fewest turns cut at high, then the
/// lowest mean latency at high.
pub const NOISY_TRUST: f32 = 0.3;

/// Whether the gate's measures at a pause (see [`GATE_NAMES`]) let the semantic judgement
/// decide.
pub fn gate_passes(m: &[f32; 3]) -> bool {
    m[0] >= GATE_MIN_SNR_DB && !gate_tonal(m)
}

/// Whether the gate's measures at a pause say the noise is tonal at the voice's pitch (see
/// [`GATE_TONAL_SHARE`]).
pub fn gate_tonal(m: &[f32; 3]) -> bool {
    m[1] >= GATE_TONAL_SHARE && m[2] <= GATE_NEAR_ST
}

/// The wait of a pause the gate distrusts for its SNR alone (see [`NOISY_TRUST`]), ms.
pub fn noisy_wait_ms(silence_ms: u32, judged_ms: u32) -> u32 {
    let w = silence_ms as f32 + NOISY_TRUST * (judged_ms as f32 - silence_ms as f32);
    w.round().max(0.0) as u32
}

/// The silence (ms) after which the semantic rule ends a turn whose end is complete with
/// probability `p`, at `eagerness`.
pub fn semantic_wait_ms(eagerness: Eagerness, p: f32) -> u32 {
    let w = eagerness.waits();
    let span = (w.max_ms - w.complete_ms) as f32;
    let short = ((w.sure_p - p.clamp(0.0, 1.0)) / w.sure_p).clamp(0.0, 1.0);
    w.complete_ms + (span * short.powf(w.shape)).round() as u32
}

/// The rule that ends a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EndMode {
    /// A fixed silence, `silence_duration_ms` (OpenAI `server_vad`).
    #[default]
    Silence,
    /// After a silence, judge whether the utterance is complete from its end's prosody
    /// (pitch and level contour, the VAD's probability) and an optional text hint, and
    /// wait accordingly (OpenAI `semantic_vad`). `silence_duration_ms` is used only when the
    /// judgement is not trusted (the reliability gate: [`GATE_MIN_SNR_DB`]).
    Semantic(Eagerness),
}

/// Turn detection parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TurnConfig {
    /// Speech probability at or above which a frame is voiced (OpenAI `threshold`).
    pub threshold: f32,
    /// Audio kept before the start of speech in the utterance (OpenAI `prefix_padding_ms`).
    pub prefix_padding_ms: u32,
    /// Silence that ends a turn (OpenAI `silence_duration_ms`, pipecat `stop_secs`).
    pub silence_duration_ms: u32,
    /// Voiced time needed before a turn starts (pipecat `start_secs`), in ms.
    pub start_ms: u32,
    /// Minimum frame level for voiced frames, on pipecat's 0-1 scale: 0 is -60 dBFS or
    /// below, 1 is 0 dBFS (pipecat `min_volume`; 0 disables the check).
    pub min_volume: f32,
    /// A frame whose speech energy is this many dB or more below the loudest of the turn so
    /// far does not keep the turn going (it counts as silence for the end of the turn,
    /// whatever the VAD says): faint tails, breath and room echo then do not hold a turn open.
    /// A frame's speech energy is its energy times the share of its spectrum that stands
    /// above the noise heard before the turn (the spectral engine's
    /// `speech_fraction`; other engines: the whole energy), so stationary noise that
    /// is louder than the gate, like mains hum, does not keep it from acting. 0 disables it.
    ///
    /// With the gate on and the spectral engine at 16 kHz, a frame also keeps the turn
    /// going, up to 250 ms after its last voiced frame, if its 4-8 kHz energy is at least
    /// twice that band's noise heard before the turn and no more than `end_gate_db` - 7 dB
    /// under the turn's loudest frame: a final fricative (s, sh, f, th), whose energy lies
    /// mostly above the VAD's 100-4000 Hz band, so that under noise the VAD misses it. The
    /// VAD's own decisions do not change.
    pub end_gate_db: f32,
    /// The rule that ends a turn (default: a fixed silence).
    pub end_mode: EndMode,
    /// While no turn is under way, the silero engine's recurrent state is cleared once this
    /// much audio has passed since it was last cleared and the last
    /// [`VAD_RESET_QUIET_MS`] were all below [`VAD_RESET_MAX_P`], as pipecat's
    /// `SileroVADAnalyzer` does every 2 s: after minutes of music or other noise the
    /// network's memory of it otherwise keeps it from hearing speech that starts over it.
    /// 0 disables it; the other engines have no such state and ignore it.
    pub vad_reset_ms: u32,
}

/// The default [`TurnConfig::vad_reset_ms`]: on the tuning split, 2 s (pipecat's) let
/// through more false starts on music, 5-10 s found fewer onsets over it.
pub const DEFAULT_VAD_RESET_MS: u32 = 3000;
/// The default [`TurnConfig::start_ms`]: on the tuning split, none or 50-150 ms let music
/// start turns, 250 ms found fewer onsets.
pub const DEFAULT_START_MS: u32 = 200;
/// How long the speech probability must have stayed under [`VAD_RESET_MAX_P`] before the
/// silero engine's state is cleared (pipecat: 5 windows of 32 ms).
pub const VAD_RESET_QUIET_MS: u32 = 160;
/// See [`VAD_RESET_QUIET_MS`].
pub const VAD_RESET_MAX_P: f32 = 0.1;

impl Default for TurnConfig {
    /// OpenAI's server_vad defaults (threshold 0.5, 300 ms prefix, 500 ms silence), and
    /// the turn-start rule chosen on the tuning split of `benches/turn_start_sweep.py`: 200 ms
    /// of voiced frames before a turn starts ([`DEFAULT_START_MS`]; the turn still starts at
    /// its first voiced frame) and the silero engine's state cleared while quiet every 3 s
    /// ([`DEFAULT_VAD_RESET_MS`]).
    fn default() -> Self {
        Self {
            threshold: 0.5,
            prefix_padding_ms: 300,
            silence_duration_ms: 500,
            start_ms: DEFAULT_START_MS,
            min_volume: 0.0,
            end_gate_db: 35.0,
            end_mode: EndMode::Silence,
            vad_reset_ms: DEFAULT_VAD_RESET_MS,
        }
    }
}

impl TurnConfig {
    /// Checks the ranges: `threshold` and `min_volume` in [0, 1], `end_gate_db` finite and
    /// non-negative, the times at most [`crate::limits::MAX_TURN_MS`].
    pub fn validate(&self) -> Result<()> {
        use crate::limits::{check_range, MAX_TURN_MS};
        check_range(
            self.prefix_padding_ms,
            0,
            MAX_TURN_MS,
            "prefix_padding_ms",
            " ms",
        )?;
        check_range(
            self.silence_duration_ms,
            0,
            MAX_TURN_MS,
            "silence_duration_ms",
            " ms",
        )?;
        check_range(self.start_ms, 0, MAX_TURN_MS, "start_ms", " ms")?;
        check_range(self.vad_reset_ms, 0, MAX_TURN_MS, "vad_reset_ms", " ms")?;
        if !(0.0..=1.0).contains(&self.threshold) || !(0.0..=1.0).contains(&self.min_volume) {
            return Err(Error::InvalidArgument(format!(
                "threshold and min_volume must be in [0, 1], got {} and {}",
                self.threshold, self.min_volume
            )));
        }
        if !(self.end_gate_db.is_finite() && self.end_gate_db >= 0.0) {
            return Err(Error::InvalidArgument(format!(
                "end_gate_db must be a non-negative number of dB, got {}",
                self.end_gate_db
            )));
        }
        Ok(())
    }
}

/// A turn event, with times in ms on the audio timeline (from the first sample pushed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnEvent {
    /// Speech began at `audio_start_ms` (the first voiced frame of the turn).
    SpeechStarted { audio_start_ms: u64 },
    /// Speech ended at `audio_end_ms` (the end of its last voiced frame); emitted once the
    /// silence after it has lasted `silence_duration_ms`, at `emitted_at_ms`.
    SpeechStopped {
        audio_end_ms: u64,
        emitted_at_ms: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Quiet,
    Starting,
    Speaking,
}

/// The share of the last frame's power that `vad` attributes to speech rather than to the
/// noise it heard before the speech: the spectral engine's
/// [`super::spectral::SpectralVad::speech_fraction`]; 1 for the engines that do not
/// separate the two.
fn speech_fraction(vad: &mut Vad) -> f32 {
    match &mut vad.engine {
        super::Engine::Spectral(s) => s.speech_fraction(),
        super::Engine::Energy(_) | super::Engine::WebRtc(_) | super::Engine::Silero(_) => 1.0,
    }
}

/// The last frame's energy in the VAD's high band (4-8 kHz) above the noise heard there
/// before the speech, when it stands clearly above that noise: the spectral engine's
/// [`super::spectral::SpectralVad::high_band_energy`]; 0 for the other engines.
fn high_band_energy(vad: &Vad) -> f32 {
    match &vad.engine {
        super::Engine::Spectral(s) => s.high_band_energy(),
        super::Engine::Energy(_) | super::Engine::WebRtc(_) | super::Engine::Silero(_) => 0.0,
    }
}

/// How long after the turn's last voiced frame a frame may still continue the turn by its
/// high-band energy alone (a final fricative, after a stop that under noise the VAD sees as
/// longer than it is); also the most this can delay the end of a turn. On vad-dev, 150 ms
/// found the fricatives at 20 dB SNR and 3 at pink 10 dB; 250 ms (the same up to 400 ms)
/// 2 more at pink 10 dB and 1 at ALSA 10 dB.
const HIGH_BAND_SPAN_MS: u32 = 250;
/// How much closer to the turn's loudest frame than the end gate a frame's high-band
/// energy must be to continue the turn (with a gate under this, never). At the gate itself,
/// the VAD's 32 ms analysis window still holds a fricative's end in the first frame after
/// it: 4 of the 15 clean vad-dev turns ended 10 ms late (3 dB: 2); 5 to 10 dB keep every
/// clean end where it was and find the same fricatives in noise; 12 dB lose some.
const HIGH_BAND_MARGIN_DB: f32 = 7.0;
/// With a start rule (`start_ms` > 0), a voiced run that begins at most this long after the
/// last voiced frame of a run too short to start a turn continues it: the turn starts at the
/// first run's onset. A choppy onset (a VAD that drops a frame or two at the start of speech
/// in noise) is then not dated to its last run.
const START_CHAIN_GAP_MS: u32 = 100;
/// The longest such chain before its onset moves on to the latest run (and so the most audio
/// kept for it while no turn is under way, besides the prefix and the start rule's run).
const START_CHAIN_MAX_MS: u32 = 500;

/// Turn detector over a frame VAD.
#[derive(Debug, Clone)]
pub struct TurnDetector {
    vad: Vad,
    cfg: TurnConfig,
    state: State,
    frame: usize,
    rate: u32,
    /// Frames processed (the timeline).
    frames: u64,
    /// Partial frame carried between pushes.
    pending: Vec<i16>,
    /// The last samples while no turn is under way (a ring of the prefix, the longest
    /// onset chain and the start rule's run), and the utterance while speaking.
    ring: Vec<i16>,
    /// Prefix padding in samples.
    prefix: usize,
    ring_at: usize,
    ring_len: usize,
    utterance: Vec<i16>,
    /// Frame index where the current voiced run began, and where silence began.
    run_start: u64,
    /// The onset of the current start attempt (the first voiced frame of a chain of runs
    /// each less than START_CHAIN_GAP_MS after the last), the chain's last voiced frame
    /// (u64::MAX: none), and those two times in frames.
    chain_start: u64,
    chain_last: u64,
    chain_gap: u64,
    chain_max: u64,
    silence_start: u64,
    /// Frame index of the turn's last voiced frame (within the gate).
    last_voiced: u64,
    voiced_frames: u64,
    /// Speech energy (sum of squares times the VAD's speech fraction) of the loudest voiced
    /// frame of the current turn, and the end gate as a power ratio (0: no gate).
    peak_energy: f64,
    gate: f64,
    /// The high-band cue's gate as a power ratio (0: no cue, as the end gate is off), and
    /// HIGH_BAND_SPAN_MS in frames.
    high_band_gate: f64,
    high_band_span: u64,
    /// The last finished utterance (kept until the next one finishes).
    last: Vec<i16>,
    /// Frames since the VAD's recurrent state was last cleared, and in a row with a speech
    /// probability under VAD_RESET_MAX_P; vad_reset_ms and VAD_RESET_QUIET_MS in frames
    /// (u64::MAX: never).
    since_reset: u64,
    low_run: u64,
    reset_every: u64,
    reset_quiet: u64,
    /// The semantic rule's state (None in silence mode).
    semantic: Option<Box<Semantic>>,
}

/// The semantic end rule's state.
#[derive(Debug, Clone)]
struct Semantic {
    eagerness: Eagerness,
    pitch: PitchTracker,
    hist: History,
    /// At the start of the current silence: the features, the model's log-odds from them,
    /// and the resulting probability and wait (frames and ms).
    features: Features,
    logit: f32,
    p: f32,
    wait_ms: u32,
    wait: u64,
    /// The text hint for the words so far (None: no hint).
    hint: Option<bool>,
    /// The non-speech frames heard (level, pitch).
    noise: NoiseHistory,
    /// At the start of the current silence: the gate's measures and whether they passed.
    gate: [f32; 3],
    trusted: bool,
    /// server_vad's wait, ms (`silence_duration_ms`), used when the gate does not pass.
    silence_ms: u32,
}

impl TurnDetector {
    /// A detector over `vad` with `cfg`.
    pub fn new(vad: Vad, cfg: TurnConfig) -> Result<Self> {
        cfg.validate()?;
        let frame = vad.frame_samples();
        let rate = vad.rate();
        let prefix = (cfg.prefix_padding_ms as u64 * rate as u64 / 1000) as usize;
        let frames_for = |ms: u32| (u64::from(ms) * rate as u64).div_ceil(1000 * frame as u64);
        let chain_max = frames_for(START_CHAIN_MAX_MS);
        // The utterance is cut from the ring when the turn starts: the prefix before the
        // chain's onset, the chain and the run that confirmed the start.
        let need = frames_for(cfg.start_ms).max(1);
        let ring = prefix + ((chain_max + need + 1) * frame as u64) as usize;
        let gate = |db: f32| {
            if cfg.end_gate_db > 0.0 {
                10f64.powf(-f64::from(db) / 10.0)
            } else {
                0.0
            }
        };
        Ok(Self {
            vad,
            cfg,
            state: State::Quiet,
            frame,
            rate,
            frames: 0,
            pending: Vec::with_capacity(frame),
            ring: vec![0; ring],
            prefix,
            ring_at: 0,
            ring_len: 0,
            utterance: Vec::new(),
            run_start: 0,
            chain_start: 0,
            chain_last: u64::MAX,
            chain_gap: frames_for(START_CHAIN_GAP_MS),
            chain_max,
            silence_start: 0,
            last_voiced: 0,
            voiced_frames: 0,
            peak_energy: 0.0,
            gate: gate(cfg.end_gate_db),
            high_band_gate: gate(cfg.end_gate_db - HIGH_BAND_MARGIN_DB),
            high_band_span: (u64::from(HIGH_BAND_SPAN_MS) * rate as u64)
                .div_ceil(1000 * frame as u64),
            last: Vec::new(),
            since_reset: 0,
            low_run: 0,
            reset_every: if cfg.vad_reset_ms > 0 {
                (u64::from(cfg.vad_reset_ms) * rate as u64).div_ceil(1000 * frame as u64)
            } else {
                u64::MAX
            },
            reset_quiet: (u64::from(VAD_RESET_QUIET_MS) * rate as u64)
                .div_ceil(1000 * frame as u64),
            semantic: match cfg.end_mode {
                EndMode::Silence => None,
                EndMode::Semantic(eagerness) => Some(Box::new(Semantic {
                    eagerness,
                    pitch: PitchTracker::new(rate),
                    hist: History::new(frame as f32 / rate as f32),
                    features: [0.0; 7],
                    logit: 0.0,
                    p: 0.0,
                    wait_ms: 0,
                    wait: u64::MAX,
                    hint: None,
                    noise: NoiseHistory::default(),
                    gate: [0.0; 3],
                    trusted: true,
                    silence_ms: cfg.silence_duration_ms,
                })),
            },
        })
    }

    /// Sets the log-odds from the current features and hint, and the wait from them.
    fn judge(&mut self) {
        let rate = self.rate as u64;
        let frame = self.frame as u64;
        if let Some(s) = &mut self.semantic {
            let hint = match s.hint {
                Some(true) => HINT_LOGIT,
                Some(false) => -HINT_LOGIT,
                None => 0.0,
            };
            let z = s.logit + hint;
            s.p = 1.0 / (1.0 + (-z).exp());
            s.wait_ms = if s.trusted {
                semantic_wait_ms(s.eagerness, s.p)
            } else if gate_tonal(&s.gate) {
                s.silence_ms
            } else {
                // Noise near the turn's level: the judgement moves the wait only part of
                // the way from server_vad's.
                noisy_wait_ms(s.silence_ms, semantic_wait_ms(s.eagerness, s.p))
            };
            s.wait = (s.wait_ms as u64 * rate).div_ceil(1000 * frame).max(1);
        }
    }

    /// Records a speech frame of the turn for the semantic rule.
    fn record(&mut self, f: &[i16], p: f32, voiced: bool) {
        if let Some(s) = &mut self.semantic {
            let db = super::energy::EnergyVad::level_db(f);
            let f0 = if voiced { s.pitch.pitch() } else { None };
            s.hist.record(db, f0, p);
        }
    }

    /// Records a non-speech frame (before a turn or in its pauses) for the semantic rule's
    /// picture of the noise.
    fn record_noise(&mut self, f: &[i16]) {
        if let Some(s) = &mut self.semantic {
            let db = super::energy::EnergyVad::level_db(f);
            let f0 = s.pitch.pitch();
            s.noise.record(db, f0);
        }
    }

    /// Tells the semantic rule whether the words so far end a sentence (from an ASR, say):
    /// `Some(true)` shortens the wait, `Some(false)` lengthens it, `None` withdraws the hint.
    /// It holds until speech resumes or the turn ends; in silence mode it does nothing.
    pub fn set_text_hint(&mut self, complete: Option<bool>) {
        if let Some(s) = &mut self.semantic {
            s.hint = complete;
            self.judge();
        }
    }

    /// While the semantic rule waits in a silence: where the speech ended (ms), the
    /// probability that the utterance is complete, and the silence (ms) that will end the
    /// turn. None otherwise (and always in silence mode).
    pub fn end_estimate(&self) -> Option<(u64, f32, u32)> {
        let s = self.semantic.as_ref()?;
        (self.state == State::Speaking && self.silence_start != u64::MAX)
            .then(|| (self.ms(self.silence_start), s.p, s.wait_ms))
    }

    /// The features the semantic rule judged at the start of the last silence in a turn
    /// (see [`super::prosody::FEATURE_NAMES`]); None in silence mode.
    pub fn end_features(&self) -> Option<Features> {
        self.semantic.as_ref().map(|s| s.features)
    }

    /// The reliability gate at the start of the last silence in a turn: whether it passed
    /// (the semantic judgement was used) and its measures (see [`GATE_NAMES`]); None in
    /// silence mode.
    pub fn end_gate(&self) -> Option<(bool, [f32; 3])> {
        self.semantic.as_ref().map(|s| (s.trusted, s.gate))
    }

    fn ms(&self, frames: u64) -> u64 {
        frames * self.frame as u64 * 1000 / self.rate as u64
    }

    fn frames_for(&self, ms: u32) -> u64 {
        (ms as u64 * self.rate as u64).div_ceil(1000 * self.frame as u64)
    }

    /// Pushes audio of any length; appends the events it causes to `events`.
    pub fn push(&mut self, x: &[i16], events: &mut Vec<TurnEvent>) -> Result<()> {
        let mut rest = x;
        if !self.pending.is_empty() {
            let take = (self.frame - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == self.frame {
                let f = std::mem::take(&mut self.pending);
                self.frame_step(&f, events)?;
                self.pending = f;
                self.pending.clear();
            }
        }
        let mut chunks = rest.chunks_exact(self.frame);
        for f in &mut chunks {
            self.frame_step(f, events)?;
        }
        self.pending.extend_from_slice(chunks.remainder());
        Ok(())
    }

    fn frame_step(&mut self, f: &[i16], events: &mut Vec<TurnEvent>) -> Result<()> {
        let p = self.vad.probability(f)?;
        self.since_reset += 1;
        self.low_run = if p < VAD_RESET_MAX_P {
            self.low_run + 1
        } else {
            0
        };
        if self.state == State::Quiet
            && self.since_reset >= self.reset_every
            && self.low_run >= self.reset_quiet
        {
            // From the next window on; this frame's probability stands.
            self.vad.reset_recurrent();
            self.since_reset = 0;
        }
        if let Some(s) = &mut self.semantic {
            s.pitch.push(f);
        }
        // The level only when min_volume asks for it (0 disables the check).
        let voiced = p >= self.cfg.threshold
            && (self.cfg.min_volume <= 0.0
                || ((super::energy::EnergyVad::level_db(f) + 60.0) / 60.0).clamp(0.0, 1.0)
                    >= self.cfg.min_volume);
        let now = self.frames;
        self.frames += 1;
        // The frame's speech energy, when the end gate needs it (voiced frames only): its
        // energy less the share of stationary noise the VAD sees in its spectrum.
        let energy = if voiced && self.gate > 0.0 {
            super::energy::sum_squares(f) as f64 * f64::from(speech_fraction(&mut self.vad))
        } else {
            0.0
        };
        match self.state {
            State::Quiet | State::Starting => {
                if voiced {
                    if self.state == State::Quiet {
                        self.state = State::Starting;
                        self.run_start = now;
                        self.voiced_frames = 0;
                        self.peak_energy = 0.0;
                        if let Some(s) = &mut self.semantic {
                            s.hist.clear();
                            s.hint = None;
                        }
                        // A run soon after the last one's voiced frames continues its chain:
                        // the turn's onset stays at the chain's first voiced frame.
                        if self.chain_last == u64::MAX
                            || now - self.chain_last > self.chain_gap + 1
                            || now - self.chain_start > self.chain_max
                        {
                            self.chain_start = now;
                        }
                    }
                    self.chain_last = now;
                    self.voiced_frames += 1;
                    self.peak_energy = self.peak_energy.max(energy);
                    self.ring_push(f);
                    self.record(f, p, true);
                    if self.voiced_frames >= self.frames_for(self.cfg.start_ms).max(1) {
                        self.state = State::Speaking;
                        self.silence_start = u64::MAX;
                        self.last_voiced = now;
                        self.chain_last = u64::MAX;
                        // The utterance: the prefix padding before the onset, then everything
                        // since (the ring's last samples).
                        let want = self.prefix + (now + 1 - self.chain_start) as usize * self.frame;
                        let take = want.min(self.ring_len);
                        let n = self.ring.len();
                        let start = (self.ring_at + n - take) % n;
                        let first = (n - start).min(take);
                        self.utterance.clear();
                        self.utterance
                            .extend_from_slice(&self.ring[start..start + first]);
                        self.utterance.extend_from_slice(&self.ring[..take - first]);
                        events.push(TurnEvent::SpeechStarted {
                            audio_start_ms: self.ms(self.chain_start),
                        });
                    }
                } else {
                    if self.state == State::Starting {
                        // Too short to be a turn yet: back to quiet.
                        self.state = State::Quiet;
                    }
                    self.ring_push(f);
                    self.record_noise(f);
                }
            }
            State::Speaking => {
                self.utterance.extend_from_slice(f);
                self.peak_energy = self.peak_energy.max(energy);
                let loud_enough = energy >= self.peak_energy * self.gate;
                if voiced && loud_enough {
                    self.resume();
                    self.last_voiced = now;
                    self.record(f, p, true);
                } else if self.high_band_gate > 0.0
                    && now - self.last_voiced <= self.high_band_span
                    && f64::from(high_band_energy(&self.vad))
                        > self.peak_energy * self.high_band_gate
                {
                    // Not voiced (or under the gate), but shortly after the last voiced
                    // frame, loud in the high band over the noise heard there before the
                    // turn, and near enough the turn's peak: a final fricative, still speech.
                    self.resume();
                    self.record(f, p, false);
                } else {
                    if self.silence_start == u64::MAX {
                        self.silence_start = now;
                        if let Some(s) = &mut self.semantic {
                            s.features = s.hist.features();
                            s.logit = END_MODEL_BIAS
                                + END_MODEL_WEIGHTS
                                    .iter()
                                    .zip(&s.features)
                                    .map(|(w, x)| w * x)
                                    .sum::<f32>();
                            let (share, tone) = s.noise.tone();
                            let near = match s.hist.final_st() {
                                Some(st) if !tone.is_nan() => {
                                    let d = (st - tone).rem_euclid(12.0);
                                    d.min(12.0 - d)
                                }
                                _ => 6.0,
                            };
                            s.gate = [s.hist.peak_db() - s.noise.floor(), share, near];
                            s.trusted = gate_passes(&s.gate);
                        }
                        self.judge();
                    }
                    self.record_noise(f);
                    let wait = match &self.semantic {
                        None => self.frames_for(self.cfg.silence_duration_ms),
                        Some(s) => s.wait,
                    };
                    if now + 1 - self.silence_start >= wait {
                        self.state = State::Quiet;
                        events.push(TurnEvent::SpeechStopped {
                            audio_end_ms: self.ms(self.silence_start),
                            emitted_at_ms: self.ms(now + 1),
                        });
                        // A copy, not a swap: each buffer keeps the capacity of the longest
                        // turn so far, so turns no longer than that allocate nothing.
                        self.last.clear();
                        self.last.extend_from_slice(&self.utterance);
                        self.utterance.clear();
                        self.ring_len = 0;
                    }
                }
            }
        }
        Ok(())
    }

    /// Speech goes on: no silence, and a text hint about the words before it is stale.
    fn resume(&mut self) {
        if self.silence_start != u64::MAX {
            self.silence_start = u64::MAX;
            if let Some(s) = &mut self.semantic {
                s.hint = None;
            }
        }
    }

    fn ring_push(&mut self, f: &[i16]) {
        let n = self.ring.len();
        if n == 0 {
            return;
        }
        // Only the last n samples of f can stay; copy them in at most two pieces.
        let f = &f[f.len().saturating_sub(n)..];
        let first = (n - self.ring_at).min(f.len());
        self.ring[self.ring_at..self.ring_at + first].copy_from_slice(&f[..first]);
        self.ring[..f.len() - first].copy_from_slice(&f[first..]);
        self.ring_at = (self.ring_at + f.len()) % n;
        self.ring_len = (self.ring_len + f.len()).min(n);
    }

    /// The audio of the last finished turn: prefix padding, speech, and the silence that
    /// ended it.
    pub fn last_utterance(&self) -> &[i16] {
        &self.last
    }

    /// How far before the moment a turn starts (its `SpeechStarted` is emitted) the turn's
    /// audio can begin, prefix padding included: the prefix, the longest onset chain and the
    /// start rule's run (ms). Audio kept for a turn must reach that far back.
    pub fn max_lookback_ms(&self) -> u64 {
        self.ring.len() as u64 * 1000 / u64::from(self.rate)
    }

    /// Whether a turn is in progress.
    pub fn speaking(&self) -> bool {
        self.state == State::Speaking
    }

    /// Milliseconds of audio processed.
    pub fn position_ms(&self) -> u64 {
        self.ms(self.frames)
    }

    /// Forgets everything: timeline, VAD state, audio.
    pub fn reset(&mut self) -> Result<()> {
        let engine_vad = self.vad.fresh()?;
        *self = Self::new(engine_vad, self.cfg)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: usize = 16000;

    #[test]
    fn a_noisy_pause_moves_part_of_the_way_from_the_silence() {
        assert_eq!(noisy_wait_ms(500, 300), 440);
        assert_eq!(noisy_wait_ms(500, 1000), 650);
        assert_eq!(noisy_wait_ms(500, 500), 500);
        assert_eq!(noisy_wait_ms(700, 300), 580);
        // Monotone in the judged wait, and never past it nor past the silence.
        let mut last = 0;
        for judged in (0..=4000).step_by(10) {
            let w = noisy_wait_ms(500, judged);
            assert!(w >= last && w >= judged.min(500) && w <= judged.max(500));
            last = w;
        }
        let tonal = [10.0, 0.5, 1.0];
        let broadband = [10.0, 0.05, 6.0];
        assert!(gate_tonal(&tonal) && !gate_passes(&tonal));
        assert!(!gate_tonal(&broadband) && !gate_passes(&broadband));
        assert!(gate_passes(&[40.0, 0.05, 6.0]));
    }

    /// Uniform noise in [-amp, amp].
    fn noise(n: usize, seed: u64, amp: f32) -> Vec<f32> {
        let mut r = seed;
        (0..n)
            .map(|_| {
                r = r
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((r >> 40) as f32 / (1u64 << 23) as f32 - 1.0) * amp
            })
            .collect()
    }

    /// A voiced sound: 140 Hz and its harmonics to 1260 Hz.
    fn voiced(n: usize, amp: f32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let t = i as f32 / RATE as f32;
                (1..10)
                    .map(|k| (2.0 * std::f32::consts::PI * 140.0 * k as f32 * t).sin() / k as f32)
                    .sum::<f32>()
                    * amp
            })
            .collect()
    }

    /// A fricative-like hiss: equal sinusoids every 50 Hz from 4.5 to 7.5 kHz with random
    /// phases, RMS `rms` (nothing in the VAD's 100-4000 Hz band).
    fn hiss(n: usize, rms: f32) -> Vec<f32> {
        let phases = noise(61, 11, std::f32::consts::PI);
        let amp = rms * (2.0 / phases.len() as f32).sqrt();
        (0..n)
            .map(|i| {
                let t = i as f32 / RATE as f32;
                phases
                    .iter()
                    .enumerate()
                    .map(|(j, &p)| {
                        let f = 4500.0 + 50.0 * j as f32;
                        (2.0 * std::f32::consts::PI * f * t + p).sin()
                    })
                    .sum::<f32>()
                    * amp
            })
            .collect()
    }

    fn add(x: &mut [f32], at_s: f32, y: &[f32]) {
        let at = (at_s * RATE as f32) as usize;
        for (a, &b) in x[at..].iter_mut().zip(y) {
            *a += b;
        }
    }

    #[test]
    fn semantic_waits_follow_the_documented_rule() {
        assert_eq!(TurnConfig::default().end_mode, EndMode::Silence);
        assert_eq!(Eagerness::parse("auto").unwrap(), Eagerness::Medium);
        assert!(Eagerness::parse("eager").is_err());
        let all = [Eagerness::High, Eagerness::Medium, Eagerness::Low];
        for e in all {
            let w = e.waits();
            assert_eq!(semantic_wait_ms(e, 1.0), w.complete_ms);
            assert_eq!(semantic_wait_ms(e, w.sure_p), w.complete_ms);
            assert_eq!(semantic_wait_ms(e, 0.0), w.max_ms);
        }
        // Within OpenAI's maximum timeouts.
        for (e, most) in all.into_iter().zip([2000, 4000, 8000]) {
            assert!(e.waits().max_ms <= most);
        }
        // Less complete: never a shorter wait; lower eagerness: never a shorter wait.
        for i in 0..=100 {
            let p = i as f32 / 100.0;
            let w = all.map(|e| semantic_wait_ms(e, p));
            assert!(w[0] <= w[1] && w[1] <= w[2], "{p} {w:?}");
            for e in all {
                assert!(semantic_wait_ms(e, p) >= semantic_wait_ms(e, p + 0.01));
            }
        }
    }

    /// The `audio_end_ms` of each SpeechStopped the default detector gives on `x`.
    fn ends(x: &[f32]) -> Vec<u64> {
        let vad = Vad::new("spectral", RATE as u32, 10, 0).unwrap();
        let mut td = TurnDetector::new(vad, TurnConfig::default()).unwrap();
        let x: Vec<i16> = x
            .iter()
            .map(|&v| v.clamp(-32768.0, 32767.0) as i16)
            .collect();
        let mut ev = Vec::new();
        td.push(&x, &mut ev).unwrap();
        ev.iter()
            .filter_map(|e| match e {
                TurnEvent::SpeechStopped { audio_end_ms, .. } => Some(*audio_end_ms),
                TurnEvent::SpeechStarted { .. } => None,
            })
            .collect()
    }

    /// Bursts of voice (start s, length s) over faint noise; the SpeechStarted times the
    /// default start rule (200 ms) gives with the energy engine.
    fn starts(bursts: &[(f32, f32)]) -> Vec<u64> {
        let mut x = noise(RATE * 4, 3, 30.0);
        for &(at, len) in bursts {
            add(&mut x, at, &voiced((len * RATE as f32) as usize, 5000.0));
        }
        let vad = Vad::new("energy", RATE as u32, 10, 0).unwrap();
        let mut td = TurnDetector::new(vad, TurnConfig::default()).unwrap();
        let x: Vec<i16> = x.iter().map(|&v| v as i16).collect();
        let mut ev = Vec::new();
        td.push(&x, &mut ev).unwrap();
        ev.iter()
            .filter_map(|e| match e {
                TurnEvent::SpeechStarted { audio_start_ms } => Some(*audio_start_ms),
                TurnEvent::SpeechStopped { .. } => None,
            })
            .collect()
    }

    /// A choppy onset (runs too short for the start rule, 50 ms apart) dates the turn to
    /// its first run; runs 200 ms apart do not chain, and the turn starts at the last one.
    #[test]
    fn a_choppy_onset_dates_the_turn_to_its_first_run() {
        assert_eq!(TurnConfig::default().start_ms, 200);
        let s = starts(&[(1.0, 0.1), (1.15, 0.1), (1.3, 0.5)]);
        assert_eq!(s.len(), 1);
        assert!(s[0].abs_diff(1000) <= 10, "{s:?}");
        let s = starts(&[(1.0, 0.1), (1.3, 0.1), (1.6, 0.5)]);
        assert_eq!(s.len(), 1);
        assert!(s[0].abs_diff(1600) <= 10, "{s:?}");
    }

    /// Voice from 2.0 to 3.0 s in 4.5 s of `floor`-amplitude white noise.
    fn turn(floor: f32) -> Vec<f32> {
        let mut x = noise(RATE * 9 / 2, 5, floor);
        add(&mut x, 2.0, &voiced(RATE, 5000.0));
        x
    }

    /// Under white noise, a hiss 100 ms after a voiced sound (nothing in the VAD's band,
    /// which never calls it speech; 8 dB above the noise at 4-8 kHz; 17 dB under the voice)
    /// continues the turn to the hiss's end; the same hiss 300 ms after the voice does not.
    #[test]
    fn final_fricative_under_noise_extends_the_turn() {
        let floor = 600.0;
        assert_eq!(ends(&turn(floor)).len(), 1);
        let bare = ends(&turn(floor))[0];
        assert!(bare.abs_diff(3000) <= 30, "{bare}");
        let s = hiss(RATE * 12 / 100, 620.0);
        // The VAD alone: not one frame of the hiss over the noise is speech.
        let mut v = Vad::new("spectral", RATE as u32, 10, 0).unwrap();
        let mut x = noise(RATE * 2, 5, floor);
        add(&mut x, 1.0, &s);
        let x: Vec<i16> = x.iter().map(|&v| v as i16).collect();
        let voiced_frames = x
            .chunks_exact(160)
            .filter(|f| v.probability(f).unwrap() >= 0.5)
            .count();
        assert_eq!(voiced_frames, 0);
        let mut x = turn(floor);
        add(&mut x, 3.1, &s);
        let e = ends(&x);
        assert_eq!(e.len(), 1);
        assert!(e[0].abs_diff(3220) <= 30, "{e:?}");
        let mut x = turn(floor);
        add(&mut x, 3.3, &s);
        let e = ends(&x);
        assert!(e[0].abs_diff(bare) <= 10, "{e:?} vs {bare}");
    }

    /// In a quiet room, a breath (broadband noise), a click and a hiss 40 dB under the voice
    /// just after it are far above the noise heard before the turn, high band included, but
    /// under the end gate: the turn still ends where the voice does.
    #[test]
    fn faint_breath_click_or_hiss_in_quiet_does_not_hold_the_turn() {
        let floor = 30.0;
        let bare = ends(&turn(floor));
        assert_eq!(bare.len(), 1);
        assert!(bare[0].abs_diff(3000) <= 20, "{bare:?}");
        // The voice's RMS is about 4400; 40 dB under it, 44.
        let breath = noise(RATE * 15 / 100, 9, 44.0 * 3f32.sqrt());
        let mut click = vec![0.0f32; 160];
        // Four samples of +-280: 40 dB under a voiced frame's energy, mostly near 8 kHz.
        click[..4].copy_from_slice(&[280.0, -280.0, 280.0, -280.0]);
        let hi = hiss(RATE * 15 / 100, 44.0);
        for burst in [&breath, &click, &hi] {
            for at in [3.03, 3.1] {
                let mut x = turn(floor);
                add(&mut x, at, burst);
                let e = ends(&x);
                assert_eq!(e.len(), 1);
                assert!(e[0].abs_diff(bare[0]) <= 10, "at {at}: {e:?} vs {bare:?}");
            }
        }
    }
}
