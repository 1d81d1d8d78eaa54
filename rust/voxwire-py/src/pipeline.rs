//! `InputPipeline` and `OutputPipeline`: one FFI crossing per WebSocket message.

use crate::buffer::{Buf, Elem};
use crate::errors::{guard, sat, IntoPyResult};
use crate::pcm::{b64_text, new_ascii_str, new_bytes, AsciiScratch};
use crate::vad::{end_mode_arg, events_to_py, u32_or_max};
use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::PyString;
use voxwire_core::pipeline::{self as pl, Encoding, Format};
use voxwire_core::resample::Quality;
use voxwire_core::vad::turn::{EndMode, TurnConfig};
use voxwire_core::Error;

/// A non-negative integer argument; too large saturates to `u32::MAX`, which the core's
/// range checks refuse with the bounds in the message.
fn u32_arg(v: i64, what: &str) -> PyResult<u32> {
    if v < 0 {
        return Err(Error::InvalidArgument(format!(
            "{what} must be a non-negative integer, got {}",
            v
        )))
        .py();
    }
    Ok(u32_or_max(v))
}

fn rate_arg(v: i64, what: &str) -> PyResult<u32> {
    u32::try_from(v)
        .map_err(|_| Error::InvalidArgument(format!("unsupported {what} {} Hz", v)))
        .py()
}

/// The inbound hot path in one call per message: decode (base64 or raw bytes; PCM16, G.711
/// mu-law or A-law) -> resample to ``vad_rate`` -> frame -> VAD -> turn detection.
///
/// ``push(chunk)`` takes what arrived (base64 ``str`` or bytes, raw bytes, or an int16
/// array of already decoded samples) and returns the turn events it causes
/// (:class:`SpeechStarted`, :class:`SpeechStopped`, timed on the audio timeline). A message
/// that fails to decode raises (:class:`voxwire.errors.Base64DecodeError`,
/// :class:`voxwire.errors.OddLengthError`) and is dropped whole: the pipeline is as before.
///
/// The decoded input is kept, at ``in_rate``, until it is committed: ``audio(start_ms,
/// end_ms)`` reads a span of the timeline, ``discard_until(ms)`` drops what is before a point,
/// ``buffered()`` and ``clear_buffer()`` serve manual commits. Between turns only the prefix
/// padding is kept; at most ``max_buffer_ms`` is held (a push beyond it raises
/// :class:`voxwire.errors.InvalidInputError`). ``turn_detection=False`` skips VAD and turns
/// (manual commits only).
///
/// Turn parameters are OpenAI's server_vad (``threshold``, ``prefix_padding_ms``,
/// ``silence_duration_ms``) and pipecat's (``start_secs``, ``min_volume``), and
/// ``end_gate_db``, ``end_mode`` and ``eagerness`` (keyword-only; ``end_mode="semantic"`` is
/// OpenAI's semantic_vad: see :class:`TurnDetector`); ``engine``,
/// ``mode`` and ``frame_ms`` choose the VAD (see :class:`Vad`); ``quality`` the resampler.
///
/// Bounds (else InvalidInputError): ``in_rate`` one of 8000, 11025, 16000, 22050, 24000,
/// 32000, 44100, 48000; ``vad_rate`` and ``frame_ms`` as for :class:`Vad` (and ``vad_rate``
/// one of those rates when it differs from ``in_rate``); the turn parameters as for
/// :class:`TurnDetector`; ``max_buffer_ms`` 0 to 3600000 (one hour).
#[pyclass(module = "voxwire._voxwire")]
pub struct InputPipeline {
    inner: pl::InputPipeline,
    events: Vec<voxwire_core::vad::turn::TurnEvent>,
}

#[pymethods]
impl InputPipeline {
    #[new]
    #[pyo3(signature = (
        in_rate = 24000, encoding = "base64", format = "pcm16", vad_rate = 16000,
        engine = "silero", mode = 3, frame_ms = 10, quality = "vad", threshold = 0.5,
        prefix_padding_ms = 300, silence_duration_ms = 500, start_secs = 0.2,
        min_volume = 0.0, turn_detection = true, max_buffer_ms = 900_000, end_gate_db = 35.0,
        *, end_mode = "silence", eagerness = "auto", vad_reset_ms = 3000
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        #[pyo3(from_py_with = sat)] in_rate: i64,
        encoding: &str,
        format: &str,
        #[pyo3(from_py_with = sat)] vad_rate: i64,
        engine: &str,
        #[pyo3(from_py_with = sat)] mode: i64,
        #[pyo3(from_py_with = sat)] frame_ms: i64,
        quality: &str,
        threshold: f32,
        #[pyo3(from_py_with = sat)] prefix_padding_ms: i64,
        #[pyo3(from_py_with = sat)] silence_duration_ms: i64,
        start_secs: f64,
        min_volume: f32,
        turn_detection: bool,
        #[pyo3(from_py_with = sat)] max_buffer_ms: i64,
        end_gate_db: f32,
        end_mode: &str,
        eagerness: &str,
        #[pyo3(from_py_with = sat)] vad_reset_ms: i64,
    ) -> PyResult<Self> {
        guard(|| {
            Self::new_impl(
                in_rate,
                encoding,
                format,
                vad_rate,
                engine,
                mode,
                frame_ms,
                quality,
                threshold,
                prefix_padding_ms,
                silence_duration_ms,
                start_secs,
                min_volume,
                turn_detection,
                max_buffer_ms,
                end_gate_db,
                end_mode_arg(end_mode, eagerness).py()?,
                vad_reset_ms,
            )
        })
    }

    /// With ``end_mode="semantic"``: whether the words so far end a sentence (see
    /// :meth:`TurnDetector.set_text_hint`).
    fn set_text_hint(&mut self, complete: Option<bool>) {
        self.inner.set_text_hint(complete)
    }

    /// With ``end_mode="semantic"``, while a turn's speech has paused:
    /// ``(audio_end_ms, p_complete, wait_ms)`` (see :attr:`TurnDetector.end_estimate`).
    #[getter]
    fn end_estimate(&self) -> Option<(u64, f32, u32)> {
        self.inner.end_estimate()
    }

    /// Pushes one message's audio; returns the turn events it causes (usually none).
    fn push<'py>(
        &mut self,
        py: Python<'py>,
        chunk: &Bound<'py, PyAny>,
    ) -> PyResult<Vec<Py<PyAny>>> {
        guard(|| self.push_impl(py, chunk))
    }

    /// Input audio (int16 at ``in_rate``, a copy) from ``start_ms`` to ``end_ms`` on the
    /// timeline, as far as it is still buffered: both ends are clamped to the buffered span
    /// (negative values count as 0), so any values are accepted; the result is empty when
    /// the span and the buffer do not overlap or ``end_ms <= start_ms``.
    fn audio<'py>(
        &self,
        py: Python<'py>,
        #[pyo3(from_py_with = sat)] start_ms: i64,
        #[pyo3(from_py_with = sat)] end_ms: i64,
    ) -> PyResult<Bound<'py, PyArray1<i16>>> {
        let ms = |v: i64| u64::try_from(v).unwrap_or(0);
        guard(|| {
            Ok(PyArray1::from_slice(
                py,
                self.inner.audio(ms(start_ms), ms(end_ms)),
            ))
        })
    }

    /// Drops buffered input before ``ms`` on the timeline (clamped like ``audio``).
    fn discard_until(&mut self, #[pyo3(from_py_with = sat)] ms: i64) -> PyResult<()> {
        let ms = u64::try_from(ms).unwrap_or(0);
        guard(|| {
            self.inner.discard_until(ms);
            Ok(())
        })
    }

    /// Everything buffered: ``(start_ms, samples)`` (a copy, int16 at ``in_rate``).
    fn buffered<'py>(&self, py: Python<'py>) -> (u64, Bound<'py, PyArray1<i16>>) {
        let (start, x) = self.inner.buffered();
        (start, PyArray1::from_slice(py, x))
    }

    /// Drops everything buffered.
    fn clear_buffer(&mut self) {
        self.inner.clear_buffer()
    }

    /// The last finished turn's audio at ``vad_rate`` (prefix padding included), a copy.
    /// With the default ``quality="vad"`` only the lower half of its band is clean (it feeds
    /// the VAD); ``audio()`` gives the input as sent, or use ``quality="hq"``.
    fn last_utterance<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i16>> {
        PyArray1::from_slice(py, self.inner.last_utterance())
    }

    /// Starts over: timeline, buffer, VAD and resampler state.
    fn reset(&mut self) -> PyResult<()> {
        guard(|| self.inner.reset().py())
    }

    /// Milliseconds of input buffered (not yet committed or dropped).
    #[getter]
    fn buffered_ms(&self) -> u64 {
        self.inner.buffered_ms()
    }

    /// Milliseconds of input received: the end of the timeline.
    #[getter]
    fn position_ms(&self) -> u64 {
        self.inner.position_ms()
    }

    /// RMS level of the last message in dBFS (-120 for digital silence).
    #[getter]
    fn level_db(&self) -> f32 {
        self.inner.level_db()
    }

    /// Whether a turn is in progress.
    #[getter]
    fn speaking(&self) -> bool {
        self.inner.speaking()
    }

    /// Input sample rate.
    #[getter]
    fn in_rate(&self) -> u32 {
        self.inner.config().in_rate
    }

    /// VAD sample rate.
    #[getter]
    fn vad_rate(&self) -> u32 {
        self.inner.config().vad_rate
    }
}

impl InputPipeline {
    #[allow(clippy::too_many_arguments)]
    fn new_impl(
        in_rate: i64,
        encoding: &str,
        format: &str,
        vad_rate: i64,
        engine: &str,
        mode: i64,
        frame_ms: i64,
        quality: &str,
        threshold: f32,
        prefix_padding_ms: i64,
        silence_duration_ms: i64,
        start_secs: f64,
        min_volume: f32,
        turn_detection: bool,
        max_buffer_ms: i64,
        end_gate_db: f32,
        end_mode: EndMode,
        vad_reset_ms: i64,
    ) -> PyResult<Self> {
        if !(start_secs.is_finite() && start_secs >= 0.0) {
            return Err(Error::InvalidArgument(
                "start_secs must be a non-negative number".into(),
            ))
            .py();
        }
        let cfg = pl::InputConfig {
            in_rate: rate_arg(in_rate, "input rate")?,
            encoding: Encoding::parse(encoding).py()?,
            format: Format::parse(format).py()?,
            vad_rate: rate_arg(vad_rate, "VAD rate")?,
            engine: engine.to_owned(),
            mode,
            frame_ms: u32_arg(frame_ms, "frame_ms")?,
            quality: Quality::parse(quality).py()?,
            turn: TurnConfig {
                threshold,
                prefix_padding_ms: u32_arg(prefix_padding_ms, "prefix_padding_ms")?,
                silence_duration_ms: u32_arg(silence_duration_ms, "silence_duration_ms")?,
                start_ms: (start_secs * 1000.0).round() as u32,
                min_volume,
                end_gate_db,
                end_mode,
                vad_reset_ms: u32_arg(vad_reset_ms, "vad_reset_ms")?,
            },
            detect_turns: turn_detection,
            max_buffer_ms: u32_arg(max_buffer_ms, "max_buffer_ms")?,
        };
        Ok(Self {
            inner: pl::InputPipeline::new(cfg).py()?,
            events: Vec::with_capacity(4),
        })
    }

    fn push_impl<'py>(
        &mut self,
        py: Python<'py>,
        chunk: &Bound<'py, PyAny>,
    ) -> PyResult<Vec<Py<PyAny>>> {
        self.events.clear();
        if let Ok(s) = chunk.cast::<PyString>() {
            if self.inner.config().encoding != Encoding::Base64 {
                return Err(Error::InvalidArgument(
                    "a str chunk needs encoding=\"base64\"; raw audio comes as bytes".into(),
                ))
                .py();
            }
            // Non-ASCII text fails the alphabet check; UTF-8 keeps ASCII offsets; a str
            // with no UTF-8 (a lone surrogate) is refused as base64.
            let text = b64_text(s)?;
            self.inner.push(&text, &mut self.events).py()?;
        } else {
            let b = Buf::get(chunk, "chunk")?;
            match b.elem {
                Elem::Bytes => self.inner.push(b.bytes(), &mut self.events).py()?,
                Elem::I16 => self.inner.push_samples(b.i16s(), &mut self.events).py()?,
                _ => return Err(b.wrong("chunk", "str, bytes or int16 samples")),
            }
        }
        events_to_py(py, &self.events)
    }
}

/// The outbound path in one call per chunk: resample ``in_rate`` int16 audio to
/// ``out_rate``, then encode it (PCM16, G.711 mu-law or A-law; base64 ``str`` or raw
/// ``bytes``). ``push(x)`` returns what is ready, ``flush()`` the resampler's tail (and starts
/// a new stream). The concatenated output equals a one-shot resample and encode.
#[pyclass(module = "voxwire._voxwire")]
pub struct OutputPipeline {
    inner: pl::OutputPipeline,
    text: AsciiScratch,
    scratch: Vec<i16>,
}

impl OutputPipeline {
    fn emit<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let n = self.inner.encoded_len(self.inner.samples().len());
        match self.inner.encoding().0 {
            Encoding::Raw => {
                let inner = &mut self.inner;
                Ok(new_bytes(py, n, |out| inner.encode_into(out).py())?.into_any())
            }
            Encoding::Base64 => {
                let inner = &mut self.inner;
                Ok(
                    new_ascii_str(py, n, &mut self.text, |out| inner.encode_into(out).py())?
                        .into_any(),
                )
            }
        }
    }
}

#[pymethods]
impl OutputPipeline {
    #[new]
    #[pyo3(signature = (in_rate = 24000, out_rate = 24000, encoding = "base64", format = "pcm16", quality = "hq"))]
    fn new(
        #[pyo3(from_py_with = sat)] in_rate: i64,
        #[pyo3(from_py_with = sat)] out_rate: i64,
        encoding: &str,
        format: &str,
        quality: &str,
    ) -> PyResult<Self> {
        guard(|| {
            Ok(Self {
                inner: pl::OutputPipeline::new(
                    rate_arg(in_rate, "input rate")?,
                    rate_arg(out_rate, "output rate")?,
                    Encoding::parse(encoding).py()?,
                    Format::parse(format).py()?,
                    Quality::parse(quality).py()?,
                )
                .py()?,
                text: AsciiScratch::default(),
                scratch: Vec::new(),
            })
        })
    }

    /// Resamples and encodes int16 samples (array or PCM16 bytes); returns base64 ``str`` or
    /// raw ``bytes``, per ``encoding``.
    fn push<'py>(&mut self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            let b = Buf::get(x, "x")?;
            let p = b.whole_pcm("x")?;
            let s = p.samples(&mut self.scratch);
            self.inner.process(s).py()?;
            self.emit(py)
        })
    }

    /// Ends the stream: the resampler's tail, encoded; the next push starts a new stream.
    fn flush<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            self.inner.flush().py()?;
            self.emit(py)
        })
    }

    /// Forgets the stream.
    fn reset(&mut self) {
        self.inner.reset()
    }

    /// Input sample rate.
    #[getter]
    fn in_rate(&self) -> u32 {
        self.inner.rates().0
    }

    /// Output sample rate.
    #[getter]
    fn out_rate(&self) -> u32 {
        self.inner.rates().1
    }

    /// How many samples the last ``push`` or ``flush`` returned (encoded).
    #[getter]
    fn last_samples(&self) -> usize {
        self.inner.samples().len()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<InputPipeline>()?;
    m.add_class::<OutputPipeline>()
}
