//! Voice activity detection.
//!
//! - `webrtc`: reproduces the WebRTC VAD (py-webrtcvad's) decisions frame for frame.
//! - `energy`: an adaptive-noise-floor energy detector, the baseline.
//! - `silero`: the Silero VAD network (8 and 16 kHz; other rates resampled), run natively.
//! - [`Vad`]: one interface over the engines, for a fixed rate and frame length.

pub mod energy;
pub mod prosody;
pub mod silero;
pub mod spectral;
pub mod turn;
pub mod webrtc;

use crate::error::{Error, Result};
use crate::limits;

/// Holds a speech decision on for a number of frames after the raw decision drops, so that
/// word endings and short stops are kept.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hangover {
    frames: u32,
    left: u32,
}

impl Hangover {
    pub(crate) fn new(frames: u32) -> Self {
        Self { frames, left: 0 }
    }

    /// The decision for a frame whose raw decision is `raw`.
    pub(crate) fn apply(&mut self, raw: bool) -> bool {
        if raw {
            self.left = self.frames;
            true
        } else if self.left > 0 {
            self.left -= 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn reset(&mut self) {
        self.left = 0;
    }
}

/// A detector engine.
#[derive(Debug, Clone)]
pub enum Engine {
    /// Adaptive-floor energy detector.
    Energy(energy::EnergyVad),
    /// WebRTC GMM detector (decisions only: probability is 0 or 1).
    WebRtc(Box<webrtc::WebRtcVad>),
    /// Statistical model-based detector (Sohn et al.) with minimum-statistics noise.
    Spectral(Box<spectral::SpectralVad>),
    /// The Silero VAD network.
    Silero(Box<silero::SileroVad>),
}

/// Voice activity detection over fixed-length frames at one sample rate.
#[derive(Debug, Clone)]
pub struct Vad {
    engine: Engine,
    rate: u32,
    frame: usize,
}

impl Vad {
    /// A detector. `engine` is "spectral", "silero", "energy" or "webrtc" (with `mode`
    /// 0-3); `frame_ms` must give a whole number of samples (and, for "webrtc", be 10, 20 or
    /// 30 ms at 8, 16, 32 or 48 kHz; "silero" takes any rate the resampler does, and frames of
    /// any length: it runs its network on every 32 ms window the frames complete). `rate` is
    /// [`limits::MIN_VAD_RATE`] to [`limits::MAX_VAD_RATE`] Hz, `frame_ms` 1 to
    /// [`limits::MAX_FRAME_MS`].
    pub fn new(engine: &str, rate: u32, frame_ms: u32, mode: i64) -> Result<Self> {
        limits::check_range(
            rate,
            limits::MIN_VAD_RATE,
            limits::MAX_VAD_RATE,
            "the VAD's sample rate",
            " Hz",
        )?;
        limits::check_range(frame_ms, 1, limits::MAX_FRAME_MS, "frame_ms", " ms")?;
        if !(rate as u64 * frame_ms as u64).is_multiple_of(1000) {
            return Err(Error::InvalidArgument(format!(
                "{frame_ms} ms at {rate} Hz is not a whole number of samples"
            )));
        }
        let frame = (rate as u64 * frame_ms as u64 / 1000) as usize;
        let engine = match engine {
            "energy" => Engine::Energy(energy::EnergyVad::new(rate, frame)),
            "spectral" => Engine::Spectral(Box::new(spectral::SpectralVad::new(rate, frame))),
            "silero" => {
                if rate != 8000 && rate != 16000 && !crate::resample::RATES.contains(&rate) {
                    return Err(Error::InvalidArgument(format!(
                        "the silero engine takes 8000 or 16000 Hz, or a rate it resamples \
                         from ({:?}), not {rate} Hz",
                        crate::resample::RATES
                    )));
                }
                Engine::Silero(Box::new(silero::SileroVad::new(rate, frame)?))
            }
            "webrtc" => {
                if !webrtc::WebRtcVad::valid_rate_and_frame_length(rate as i64, frame) {
                    return Err(Error::InvalidArgument(format!(
                        "the webrtc engine takes 10, 20 or 30 ms at 8000, 16000, 32000 or \
                         48000 Hz, not {frame_ms} ms at {rate} Hz"
                    )));
                }
                Engine::WebRtc(Box::new(webrtc::WebRtcVad::new(mode)?))
            }
            other => {
                return Err(Error::InvalidArgument(format!(
                    "unknown VAD engine {other:?}: use \"spectral\", \"silero\", \"webrtc\" or \
                     \"energy\""
                )))
            }
        };
        Ok(Self {
            engine,
            rate,
            frame,
        })
    }

    /// A new detector with the same engine, rate and frame length, and fresh state.
    pub fn fresh(&self) -> Result<Self> {
        let (name, mode) = match &self.engine {
            Engine::Energy(_) => ("energy", 0),
            Engine::Spectral(_) => ("spectral", 0),
            Engine::Silero(_) => ("silero", 0),
            Engine::WebRtc(w) => ("webrtc", w.mode() as i64),
        };
        Self::new(
            name,
            self.rate,
            (self.frame as u64 * 1000 / self.rate as u64) as u32,
            mode,
        )
    }

    /// Forgets the stream: the next frame is the first of a new one.
    pub fn reset(&mut self) -> Result<()> {
        match &mut self.engine {
            Engine::Silero(s) => s.reset(),
            _ => *self = self.fresh()?,
        }
        Ok(())
    }

    /// Clears the silero engine's recurrent state and context (the stream position, the
    /// window under way and the resampler stay); the other engines have none to clear.
    pub fn reset_recurrent(&mut self) {
        if let Engine::Silero(s) = &mut self.engine {
            s.reset_state();
        }
    }

    /// The engine's name.
    pub fn engine_name(&self) -> &'static str {
        match &self.engine {
            Engine::Energy(_) => "energy",
            Engine::Spectral(_) => "spectral",
            Engine::Silero(_) => "silero",
            Engine::WebRtc(_) => "webrtc",
        }
    }

    /// Samples per frame.
    pub fn frame_samples(&self) -> usize {
        self.frame
    }

    /// Sample rate.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    fn check(&self, frame: &[i16]) -> Result<()> {
        if frame.len() != self.frame {
            return Err(Error::InvalidArgument(format!(
                "a frame holds {} samples, got {}",
                self.frame,
                frame.len()
            )));
        }
        Ok(())
    }

    /// Speech probability of the next frame, in [0, 1].
    pub fn probability(&mut self, frame: &[i16]) -> Result<f32> {
        self.check(frame)?;
        Ok(match &mut self.engine {
            Engine::Energy(e) => e.probability(frame),
            Engine::Spectral(s) => s.probability(frame),
            Engine::Silero(s) => s.probability(frame),
            Engine::WebRtc(w) => f32::from(u8::from(w.process(self.rate as i64, frame)?)),
        })
    }

    /// Speech decision for the next frame.
    pub fn is_speech(&mut self, frame: &[i16]) -> Result<bool> {
        self.check(frame)?;
        match &mut self.engine {
            Engine::Energy(e) => Ok(e.is_speech(frame)),
            Engine::Spectral(s) => Ok(s.is_speech(frame)),
            Engine::Silero(s) => Ok(s.is_speech(frame)),
            Engine::WebRtc(w) => w.process(self.rate as i64, frame),
        }
    }

    /// One probability per whole frame of `x` (a trailing partial frame is not used).
    pub fn probabilities(&mut self, x: &[i16], out: &mut [f32]) -> Result<usize> {
        let n = x.len() / self.frame;
        if out.len() < n {
            return Err(Error::InvalidArgument(format!(
                "output holds {} probabilities, the input has {n} frames",
                out.len()
            )));
        }
        for (o, f) in out.iter_mut().zip(x.chunks_exact(self.frame)) {
            *o = self.probability(f)?;
        }
        Ok(n)
    }

    /// Roughly how much work a frame is next to a byte copy of it (for the Python binding's
    /// choice to release the GIL).
    pub fn work_factor(&self) -> usize {
        match self.engine {
            Engine::Silero(_) => 64,
            _ => 1,
        }
    }

    /// One decision per whole frame of `x` (a trailing partial frame is not classified).
    pub fn classify(&mut self, x: &[i16], out: &mut [bool]) -> Result<usize> {
        let n = x.len() / self.frame;
        if out.len() < n {
            return Err(Error::InvalidArgument(format!(
                "output holds {} decisions, the input has {n} frames",
                out.len()
            )));
        }
        for (o, f) in out.iter_mut().zip(x.chunks_exact(self.frame)) {
            *o = self.is_speech(f)?;
        }
        Ok(n)
    }
}
