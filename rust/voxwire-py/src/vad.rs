//! `WebRtcVad`: the WebRTC-compatible detector, with py-webrtcvad's interface (the
//! `voxwire.webrtcvad` module re-exports it as `Vad`).

use crate::buffer::Buf;
use crate::errors::{guard, sat, sat_opt, IntoPyResult};
use crate::turn_config::TurnConfig;
use pyo3::exceptions::PyIndexError;
use pyo3::prelude::*;
use voxwire_core::vad::prosody;
use voxwire_core::vad::turn::{self, Eagerness, EndMode};
use voxwire_core::vad::webrtc;

pyo3::import_exception!(voxwire.errors, WebRtcVadError);

/// A WebRTC voice activity detector whose decisions agree with py-webrtcvad's frame for
/// frame at 8, 16 and 32 kHz. Drop-in: ``Vad(mode=0)``, ``set_mode(mode)``,
/// ``is_speech(buf, sample_rate, length=None)``.
///
/// ``mode`` 0 is the least aggressive about filtering out non-speech, 3 the most. ``buf``
/// holds little-endian PCM16 (bytes-like or an int16 array); ``length`` is the frame length in
/// samples (default: all of ``buf``) and must be 10, 20 or 30 ms at 8000, 16000, 32000 or
/// 48000 Hz, else :class:`voxwire.webrtcvad.Error` is raised.
///
/// Differences from py-webrtcvad, on purpose: at 48 kHz py-webrtcvad classifies only the
/// first 10 ms of a 20 or 30 ms frame (repeated); voxwire resamples the whole frame to 8 kHz
/// (a 2 ms low-latency filter) and classifies all of it. A negative mode raises ValueError
/// (py-webrtcvad raises SystemError).
#[pyclass(module = "voxwire._voxwire", name = "WebRtcVad")]
pub struct WebRtcVad {
    inner: webrtc::WebRtcVad,
}

#[pymethods]
impl WebRtcVad {
    #[new]
    #[pyo3(signature = (mode = None))]
    fn new(#[pyo3(from_py_with = sat_opt)] mode: Option<i64>) -> PyResult<Self> {
        guard(|| {
            Ok(Self {
                inner: webrtc::WebRtcVad::new(mode.unwrap_or(0)).py()?,
            })
        })
    }

    /// Sets the aggressiveness mode, 0 to 3 (ValueError otherwise).
    fn set_mode(&mut self, #[pyo3(from_py_with = sat)] mode: i64) -> PyResult<()> {
        guard(|| self.inner.set_mode(mode).py())
    }

    /// Whether the frame (the first ``length`` samples of ``buf``) holds speech.
    #[pyo3(signature = (buf, sample_rate, length = None))]
    fn is_speech(
        &mut self,
        buf: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = sat)] sample_rate: i64,
        #[pyo3(from_py_with = sat_opt)] length: Option<i64>,
    ) -> PyResult<bool> {
        guard(|| self.is_speech_impl(buf, sample_rate, length))
    }

    /// Whether py-webrtcvad (and this detector) accept ``frame_length`` samples at ``rate``.
    #[staticmethod]
    fn valid_rate_and_frame_length(
        #[pyo3(from_py_with = sat)] rate: i64,
        #[pyo3(from_py_with = sat)] frame_length: i64,
    ) -> bool {
        frame_length >= 0
            && webrtc::WebRtcVad::valid_rate_and_frame_length(rate, frame_length as usize)
    }

    /// The current mode.
    #[getter]
    fn mode(&self) -> usize {
        self.inner.mode()
    }
}

impl WebRtcVad {
    fn is_speech_impl(
        &mut self,
        buf: &Bound<'_, PyAny>,
        sample_rate: i64,
        length: Option<i64>,
    ) -> PyResult<bool> {
        let b = Buf::get(buf, "buf")?;
        // Like py-webrtcvad, an odd trailing byte is ignored (whole samples only).
        let pcm = b.pcm("buf")?;
        let mut scratch = Vec::new();
        let frame = pcm.samples(&mut scratch);
        let have = frame.len();
        let n = match length {
            Some(l) if l != 0 => l,
            _ => have as i64,
        };
        if n < 0 || n as usize > have {
            return Err(PyIndexError::new_err(format!(
                "buffer has {have} frames, but length argument was {n}"
            )));
        }
        let frame = &frame[..n as usize];
        if !webrtc::WebRtcVad::valid_rate_and_frame_length(sample_rate, frame.len()) {
            return Err(WebRtcVadError::new_err(format!(
                "Error while processing frame: {} samples at {sample_rate} Hz is not a \
                 10, 20 or 30 ms frame at 8000, 16000, 32000 or 48000 Hz",
                frame.len()
            )));
        }
        self.inner.process(sample_rate, frame).py()
    }
}

/// Frame-by-frame voice activity detection at one sample rate and frame length.
///
/// Engines:
/// ``"silero"`` (default, chosen on evaluation sets no engine was tuned on: see
/// docs/benchmarks.md): the Silero VAD network (the model of the ``silero-vad`` package's
/// ``silero_vad.onnx``, MIT licence), run natively: no onnxruntime or torch. It runs on
/// windows of 512 samples at 16 kHz (256 at 8 kHz) with the reference's 64 (32) context
/// samples, its LSTM state carried across calls; other rates are resampled to 16 kHz.
/// Frames may have any length: a frame's probability is the highest of the windows it
/// completes, or the last window's if it completes none (0 before the first), so with
/// ``frame_ms=32`` at 8 or 16 kHz each frame is one window and its probability is the
/// reference model's. ``is_speech`` uses Silero's hysteresis (speech from 0.5, until under
/// 0.35).
/// ``"spectral"``: a statistical model-based detector (Sohn et al. 1999) with the noise
/// spectrum tracked by minimum statistics, over 100-4000 Hz; any rate, any frame length; about
/// 5x cheaper than ``"silero"`` in a turn detector, but it calls music, faint babble and key
/// clicks speech.
/// ``"webrtc"``: the WebRTC GMM detector (``mode`` 0-3), decisions identical to py-webrtcvad;
/// its probability is 0 or 1; 10, 20 or 30 ms at 8, 16, 32 or 48 kHz.
/// ``"energy"``: level above an adaptive noise floor; any rate and frame length.
///
/// Frames are int16 arrays or PCM16 bytes of exactly ``frame_samples`` samples;
/// ``classify(x)`` and ``probabilities(x)`` take a long signal and return one value per
/// whole frame. ``reset()`` starts a new stream.
///
/// Bounds (else InvalidInputError): ``sample_rate`` 8000 to 192000 Hz, ``frame_ms`` 1 to
/// 1000 and a whole number of samples.
#[pyclass(module = "voxwire._voxwire", name = "Vad")]
pub struct Vad {
    inner: voxwire_core::vad::Vad,
    engine: String,
}

impl Vad {
    /// One value per whole frame of ``x`` from ``f`` (``classify`` or ``probabilities``):
    /// the input read once (privately), the output written straight into a new array.
    fn per_frame<'py, T, R>(
        &mut self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        f: fn(&mut voxwire_core::vad::Vad, &[i16], &mut [T]) -> voxwire_core::Result<R>,
    ) -> PyResult<Bound<'py, numpy::PyArray1<T>>>
    where
        T: numpy::Element + Send,
        R: Send,
    {
        guard(|| {
            let mut b = Buf::get(x, "x")?;
            b.private();
            let p = b.whole_pcm("x")?;
            let mut scratch = Vec::new();
            let s = p.samples(&mut scratch);
            let n = s.len() / self.inner.frame_samples();
            let work = s.len() * 2 * self.inner.work_factor();
            let inner = &mut self.inner;
            crate::pcm::fill_array(py, n, work, |out| f(inner, s, out))
        })
    }
}

#[pymethods]
impl Vad {
    #[new]
    #[pyo3(signature = (engine = "silero", *, sample_rate = 16000, frame_ms = 10, mode = 0))]
    fn new(
        engine: &str,
        #[pyo3(from_py_with = sat)] sample_rate: i64,
        #[pyo3(from_py_with = sat)] frame_ms: i64,
        #[pyo3(from_py_with = sat)] mode: i64,
    ) -> PyResult<Self> {
        guard(|| {
            Ok(Self {
                inner: voxwire_core::vad::Vad::new(
                    engine,
                    u32_or_max(sample_rate),
                    u32_or_max(frame_ms),
                    mode,
                )
                .py()?,
                engine: engine.to_owned(),
            })
        })
    }

    /// Whether the frame holds speech.
    fn is_speech(&mut self, frame: &Bound<'_, PyAny>) -> PyResult<bool> {
        guard(|| {
            let b = Buf::get(frame, "frame")?;
            let p = b.whole_pcm("frame")?;
            let mut scratch = Vec::new();
            self.inner.is_speech(p.samples(&mut scratch)).py()
        })
    }

    /// Speech probability of the frame, in [0, 1].
    fn probability(&mut self, frame: &Bound<'_, PyAny>) -> PyResult<f32> {
        guard(|| {
            let b = Buf::get(frame, "frame")?;
            let p = b.whole_pcm("frame")?;
            let mut scratch = Vec::new();
            self.inner.probability(p.samples(&mut scratch)).py()
        })
    }

    /// One decision per whole frame of ``x`` (a trailing partial frame is ignored).
    fn classify<'py>(
        &mut self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, numpy::PyArray1<bool>>> {
        self.per_frame(py, x, voxwire_core::vad::Vad::classify)
    }

    /// One speech probability per whole frame of ``x`` (float32; a trailing partial frame
    /// is ignored).
    fn probabilities<'py>(
        &mut self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, numpy::PyArray1<f32>>> {
        self.per_frame(py, x, voxwire_core::vad::Vad::probabilities)
    }

    /// Forgets the stream (detector state, and for "silero" its network state, context and
    /// partial window): the next frame starts a new one.
    fn reset(&mut self) -> PyResult<()> {
        guard(|| self.inner.reset().py())
    }

    /// Samples per frame.
    #[getter]
    fn frame_samples(&self) -> usize {
        self.inner.frame_samples()
    }

    /// Sample rate in Hz.
    #[getter]
    fn sample_rate(&self) -> u32 {
        self.inner.rate()
    }

    /// The engine's name.
    #[getter]
    fn engine(&self) -> &str {
        &self.engine
    }
}

/// A size or rate argument as `u32`: negative values become 0 and values beyond `u32`
/// become `u32::MAX`, both of which the core's range checks refuse.
pub fn u32_or_max(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<WebRtcVad>()?;
    m.add_class::<Vad>()
}

/// Emitted when a turn starts: speech began at ``audio_start_ms`` on the audio timeline.
#[pyclass(module = "voxwire._voxwire", frozen, eq, get_all)]
#[derive(PartialEq, Eq, Clone)]
pub struct SpeechStarted {
    audio_start_ms: u64,
}

#[pymethods]
impl SpeechStarted {
    fn __repr__(&self) -> String {
        format!("SpeechStarted(audio_start_ms={})", self.audio_start_ms)
    }
}

/// Emitted when a turn ends: speech ended at ``audio_end_ms``; the event comes once the
/// silence after it has lasted ``silence_duration_ms``, at ``emitted_at_ms``.
#[pyclass(module = "voxwire._voxwire", frozen, eq, get_all)]
#[derive(PartialEq, Eq, Clone)]
pub struct SpeechStopped {
    audio_end_ms: u64,
    emitted_at_ms: u64,
}

#[pymethods]
impl SpeechStopped {
    fn __repr__(&self) -> String {
        format!(
            "SpeechStopped(audio_end_ms={}, emitted_at_ms={})",
            self.audio_end_ms, self.emitted_at_ms
        )
    }
}

/// Server-side turn detection (OpenAI's server_vad and semantic_vad, pipecat's VADParams):
/// ``TurnDetector(engine="silero", *, sample_rate=16000, frame_ms=10, mode=0, turn=None)``.
/// ``engine``, ``sample_rate``, ``frame_ms`` and ``mode`` choose the VAD (see :class:`Vad`);
/// ``turn`` is a :class:`TurnConfig` (``None``: its defaults, server_vad's 0.5 threshold,
/// 300 ms prefix and 500 ms silence).
///
/// ``end_gate_db`` (see :class:`TurnConfig`): with the spectral engine a frame's level for
/// the gate counts only its speech share (band power above the noise heard before the
/// turn), so steady noise such as hum does not keep it from acting; under random noise
/// louder than the gate it does not act. With the gate on, the spectral engine at 16 kHz
/// also keeps a turn going up to 250 ms after its last voiced frame on frames whose 4-8 kHz
/// energy stands above that band's noise before the turn and within ``end_gate_db`` - 7 dB
/// of the turn's peak (final fricatives, which under noise the VAD's 100-4000 Hz band
/// misses).
///
/// ``push(x)`` takes audio of any length at ``sample_rate`` and returns the events it
/// causes: :class:`SpeechStarted` and :class:`SpeechStopped`, timed on the audio timeline
/// (milliseconds since the first sample pushed), not the wall clock. After a stop,
/// ``last_utterance()`` returns the turn's audio: prefix padding, speech and the silence that
/// ended it. ``reset()`` starts over (between sessions).
///
/// ``TurnConfig(end_mode="semantic")`` (OpenAI's ``semantic_vad``) ends a turn by
/// judging, when the speech pauses, whether the utterance is complete from the prosody of
/// its last 300 ms (pitch slope and final pitch against the turn's mean, level slope and
/// final level, the VAD's probability) and an optional text hint (``set_text_hint``), then
/// waiting a short silence if it looks complete and longer, up to a maximum, if not;
/// ``eagerness`` ("low", "medium", "high", "auto" = medium) sets the waits (complete /
/// maximum: low 120 ms / 4 s, medium 100 ms / 2 s, high 100 ms / 2 s).
/// ``silence_duration_ms`` is used only when the reliability gate (``end_gate``) does not
/// trust the judgement (noise within 20 dB of the turn, or pitched noise such as mains
/// hum): the turn then ends as with server_vad. The default, ``"silence"``, is server_vad's
/// fixed silence.
///
/// Bounds (else InvalidInputError): ``sample_rate`` and ``frame_ms`` as for :class:`Vad`;
/// the turn parameters as for :class:`TurnConfig`.
#[pyclass(module = "voxwire._voxwire")]
pub struct TurnDetector {
    inner: voxwire_core::vad::turn::TurnDetector,
}

#[pymethods]
impl TurnDetector {
    #[new]
    #[pyo3(signature = (
        engine = "silero", *, sample_rate = 16000, frame_ms = 10, mode = 0, turn = None
    ))]
    fn new(
        engine: &str,
        #[pyo3(from_py_with = sat)] sample_rate: i64,
        #[pyo3(from_py_with = sat)] frame_ms: i64,
        #[pyo3(from_py_with = sat)] mode: i64,
        turn: Option<&Bound<'_, TurnConfig>>,
    ) -> PyResult<Self> {
        let cfg = TurnConfig::core_of(turn);
        guard(|| {
            let vad = voxwire_core::vad::Vad::new(
                engine,
                u32_or_max(sample_rate),
                u32_or_max(frame_ms),
                mode,
            )
            .py()?;
            Ok(Self {
                inner: voxwire_core::vad::turn::TurnDetector::new(vad, cfg).py()?,
            })
        })
    }

    /// With ``end_mode="semantic"``: whether the words so far end a sentence (``True``
    /// shortens the wait, ``False`` lengthens it, ``None`` withdraws the hint); it holds
    /// until speech resumes or the turn ends. Does nothing in silence mode.
    fn set_text_hint(&mut self, complete: Option<bool>) {
        self.inner.set_text_hint(complete)
    }

    /// With ``end_mode="semantic"``, while a turn's speech has paused:
    /// ``(audio_end_ms, p_complete, wait_ms)``, where the speech ended, the judged
    /// probability that the utterance is complete and the silence that will end the turn.
    /// ``None`` otherwise.
    #[getter]
    fn end_estimate(&self) -> Option<(u64, f32, u32)> {
        self.inner.end_estimate()
    }

    /// With ``end_mode="semantic"``: the prosodic features judged at the last pause in a
    /// turn, by name (see ``voxwire._voxwire.END_FEATURE_NAMES``); ``None`` in silence mode.
    #[getter]
    fn end_features(&self) -> Option<Vec<(&'static str, f32)>> {
        self.inner
            .end_features()
            .map(|f| prosody::FEATURE_NAMES.iter().copied().zip(f).collect())
    }

    /// With ``end_mode="semantic"``: the reliability gate at the last pause in a turn,
    /// ``(passed, [(name, value), ...])`` (see ``voxwire._voxwire.END_GATE_NAMES``): when it
    /// did not pass, the turn waited ``silence_duration_ms`` as with server_vad under tonal
    /// noise, and under other noise a wait moved only ``END_NOISY_TRUST`` of the way from
    /// it towards the judged one. ``None`` in silence mode.
    #[getter]
    fn end_gate(&self) -> Option<(bool, Vec<(&'static str, f32)>)> {
        self.inner
            .end_gate()
            .map(|(ok, m)| (ok, turn::GATE_NAMES.iter().copied().zip(m).collect()))
    }

    /// Pushes audio (int16 array or PCM16 bytes, any length); returns the events it causes.
    fn push<'py>(&mut self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Vec<Py<PyAny>>> {
        guard(|| {
            let b = Buf::get(x, "x")?;
            let p = b.whole_pcm("x")?;
            let mut scratch = Vec::new();
            let s = p.samples(&mut scratch);
            let mut events = Vec::new();
            self.inner.push(s, &mut events).py()?;
            events_to_py(py, &events)
        })
    }

    /// The audio of the last finished turn (a copy), int16.
    fn last_utterance<'py>(&self, py: Python<'py>) -> Bound<'py, numpy::PyArray1<i16>> {
        numpy::PyArray1::from_slice(py, self.inner.last_utterance())
    }

    /// Whether a turn is in progress.
    #[getter]
    fn speaking(&self) -> bool {
        self.inner.speaking()
    }

    /// Milliseconds of audio processed so far.
    #[getter]
    fn position_ms(&self) -> u64 {
        self.inner.position_ms()
    }

    /// Starts over: timeline, VAD state and audio.
    fn reset(&mut self) -> PyResult<()> {
        guard(|| self.inner.reset().py())
    }
}

/// The end rule from the ``end_mode`` and ``eagerness`` arguments.
pub fn end_mode_arg(end_mode: &str, eagerness: &str) -> voxwire_core::Result<EndMode> {
    let e = Eagerness::parse(eagerness)?;
    match end_mode {
        "silence" => Ok(EndMode::Silence),
        "semantic" => Ok(EndMode::Semantic(e)),
        _ => Err(voxwire_core::Error::InvalidArgument(format!(
            "unknown end_mode {end_mode:?}: use \"silence\" or \"semantic\""
        ))),
    }
}

/// Turn events as Python objects.
pub fn events_to_py(
    py: Python<'_>,
    events: &[voxwire_core::vad::turn::TurnEvent],
) -> PyResult<Vec<Py<PyAny>>> {
    use voxwire_core::vad::turn::TurnEvent;
    events
        .iter()
        .map(|e| match *e {
            TurnEvent::SpeechStarted { audio_start_ms } => {
                Ok(Py::new(py, SpeechStarted { audio_start_ms })?.into_any())
            }
            TurnEvent::SpeechStopped {
                audio_end_ms,
                emitted_at_ms,
            } => Ok(Py::new(
                py,
                SpeechStopped {
                    audio_end_ms,
                    emitted_at_ms,
                },
            )?
            .into_any()),
        })
        .collect()
}

pub fn register_turn(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<SpeechStarted>()?;
    m.add_class::<SpeechStopped>()?;
    m.add("END_FEATURE_NAMES", prosody::FEATURE_NAMES.to_vec())?;
    m.add("END_GATE_NAMES", turn::GATE_NAMES.to_vec())?;
    m.add("END_NOISY_TRUST", turn::NOISY_TRUST)?;
    m.add_class::<TurnDetector>()
}
