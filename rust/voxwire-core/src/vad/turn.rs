//! Server-side turn detection: when the user starts and stops talking, on the audio
//! timeline, with the utterance audio (prefix padding included) handed over at the end.
//!
//! One configuration carries OpenAI's `server_vad` parameters (`threshold`,
//! `prefix_padding_ms`, `silence_duration_ms`) and pipecat's `VADParams` (`start_secs`,
//! `stop_secs` = silence duration, `min_volume`). Decisions use the VAD's per-frame
//! probability, not its hangover, so event times are as sharp as the frames.

use super::Vad;
use crate::error::{Error, Result};

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
    pub end_gate_db: f32,
}

impl Default for TurnConfig {
    /// OpenAI's server_vad defaults: threshold 0.5, 300 ms prefix, 500 ms silence.
    fn default() -> Self {
        Self {
            threshold: 0.5,
            prefix_padding_ms: 300,
            silence_duration_ms: 500,
            start_ms: 0,
            min_volume: 0.0,
            end_gate_db: 35.0,
        }
    }
}

impl TurnConfig {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
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
        super::Engine::Energy(_) | super::Engine::WebRtc(_) => 1.0,
    }
}

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
    /// Last `prefix` samples while quiet (a ring), and the utterance while speaking.
    ring: Vec<i16>,
    ring_at: usize,
    ring_len: usize,
    utterance: Vec<i16>,
    /// Frame index where the current voiced run began, and where silence began.
    run_start: u64,
    silence_start: u64,
    voiced_frames: u64,
    /// Speech energy (sum of squares times the VAD's speech fraction) of the loudest voiced
    /// frame of the current turn, and the end gate as a power ratio (0: no gate).
    peak_energy: f64,
    gate: f64,
    /// The last finished utterance (kept until the next one finishes).
    last: Vec<i16>,
}

impl TurnDetector {
    /// A detector over `vad` with `cfg`.
    pub fn new(vad: Vad, cfg: TurnConfig) -> Result<Self> {
        cfg.validate()?;
        let frame = vad.frame_samples();
        let rate = vad.rate();
        let prefix = (cfg.prefix_padding_ms as u64 * rate as u64 / 1000) as usize;
        Ok(Self {
            vad,
            cfg,
            state: State::Quiet,
            frame,
            rate,
            frames: 0,
            pending: Vec::with_capacity(frame),
            ring: vec![0; prefix],
            ring_at: 0,
            ring_len: 0,
            utterance: Vec::new(),
            run_start: 0,
            silence_start: 0,
            voiced_frames: 0,
            peak_energy: 0.0,
            gate: if cfg.end_gate_db > 0.0 {
                10f64.powf(-f64::from(cfg.end_gate_db) / 10.0)
            } else {
                0.0
            },
            last: Vec::new(),
        })
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
                        // The utterance starts with the prefix padding.
                        self.utterance.clear();
                        // The ring's oldest kept sample is ring_len before ring_at.
                        let n = self.ring.len();
                        let start = (self.ring_at + n - self.ring_len) % n.max(1);
                        let first = (n - start).min(self.ring_len);
                        self.utterance
                            .extend_from_slice(&self.ring[start..start + first]);
                        self.utterance
                            .extend_from_slice(&self.ring[..self.ring_len - first]);
                    }
                    self.voiced_frames += 1;
                    self.peak_energy = self.peak_energy.max(energy);
                    self.utterance.extend_from_slice(f);
                    if self.voiced_frames >= self.frames_for(self.cfg.start_ms).max(1) {
                        self.state = State::Speaking;
                        self.silence_start = u64::MAX;
                        events.push(TurnEvent::SpeechStarted {
                            audio_start_ms: self.ms(self.run_start),
                        });
                    }
                } else {
                    if self.state == State::Starting {
                        // Too short to be a turn: back to quiet (its audio joins the prefix).
                        self.state = State::Quiet;
                    }
                    self.ring_push(f);
                }
            }
            State::Speaking => {
                self.utterance.extend_from_slice(f);
                self.peak_energy = self.peak_energy.max(energy);
                let loud_enough = energy >= self.peak_energy * self.gate;
                if voiced && loud_enough {
                    self.silence_start = u64::MAX;
                } else {
                    if self.silence_start == u64::MAX {
                        self.silence_start = now;
                    }
                    if now + 1 - self.silence_start >= self.frames_for(self.cfg.silence_duration_ms)
                    {
                        self.state = State::Quiet;
                        events.push(TurnEvent::SpeechStopped {
                            audio_end_ms: self.ms(self.silence_start),
                            emitted_at_ms: self.ms(now + 1),
                        });
                        std::mem::swap(&mut self.last, &mut self.utterance);
                        self.utterance.clear();
                        self.ring_len = 0;
                    }
                }
            }
        }
        Ok(())
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
