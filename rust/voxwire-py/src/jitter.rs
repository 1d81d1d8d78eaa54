//! `JitterBuffer`: adaptive playout of audio that arrives in bursts, on the caller's clock.

use crate::buffer::{Buf, Pcm};
use crate::errors::{guard, sat, IntoPyResult};
use crate::pcm::fill_array;
use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use voxwire_core::jitter::{JitterBuffer as Core, JitterConfig};

/// A playout jitter buffer driven by the caller's clock (sans-I/O; times in milliseconds).
///
/// ``push(pcm, now_ms)`` appends audio of any size (int16 array or PCM16 bytes) as it
/// arrives; ``mark_end()`` says the current stream (one response) is complete, so its tail
/// plays without waiting; the next push starts a new stream. ``pop(now_ms)`` returns exactly
/// one frame of ``frame_ms`` on every call: audio, concealment, or silence when idle.
/// ``clear()`` (barge-in) drops what is queued and returns how many ms of the current stream
/// were played. ``stats()`` returns counters and levels.
///
/// Adaptive mode (default) starts each stream after a target delay estimated from how late
/// earlier streams' chunks arrived against a real-time schedule (which folds the source's
/// rate and the arrival jitter into one number), slows down (inserting pitch periods) when the
/// queue runs low, speeds up (removing pitch periods) when playback lags its schedule, and
/// conceals underruns by pitch-period repetition fading to silence, rejoining with a
/// crossfade. ``adaptive=False`` is the plain pre-buffer client: wait for ``prebuffer_ms`` (or
/// the end of the stream), play the input exactly, and on an underrun output silence and
/// pre-buffer again. At most ``max_ms`` of audio is queued; the excess of a push is dropped.
///
/// Bounds (else InvalidInputError): ``sample_rate`` one of 8000, 11025, 16000, 22050, 24000,
/// 32000, 44100, 48000; ``frame_ms`` 1 to 1000 and a whole number of samples; ``max_ms``
/// ``2 * max(frame_ms, 50)`` to 600000; ``prebuffer_ms`` 0 to ``max_ms``. Times (``now_ms``)
/// are finite, at most ``1e13`` from 0 (any monotonic clock, or the Unix epoch in ms), and
/// never go backwards; a refused time changes nothing, so the buffer stays usable.
#[pyclass(module = "voxwire._voxwire")]
pub struct JitterBuffer {
    inner: Core,
}

fn ms_arg(v: i64, what: &str) -> PyResult<u32> {
    u32::try_from(v)
        .map_err(|_| {
            voxwire_core::Error::InvalidArgument(format!(
                "{what} must be a non-negative number of ms (within the documented bounds), got {v}"
            ))
        })
        .py()
}

#[pymethods]
impl JitterBuffer {
    #[new]
    #[pyo3(signature = (sample_rate, *, frame_ms = 10, prebuffer_ms = 250, adaptive = true, max_ms = 60000, min_start_ms = None))]
    fn new(
        #[pyo3(from_py_with = sat)] sample_rate: i64,
        #[pyo3(from_py_with = sat)] frame_ms: i64,
        #[pyo3(from_py_with = sat)] prebuffer_ms: i64,
        adaptive: bool,
        #[pyo3(from_py_with = sat)] max_ms: i64,
        min_start_ms: Option<i64>,
    ) -> PyResult<Self> {
        guard(|| {
            let cfg = JitterConfig {
                sample_rate: u32::try_from(sample_rate).unwrap_or(0),
                frame_ms: ms_arg(frame_ms, "frame_ms")?,
                prebuffer_ms: ms_arg(prebuffer_ms, "prebuffer_ms")?,
                adaptive,
                max_ms: ms_arg(max_ms, "max_ms")?,
                min_start_ms: min_start_ms
                    .map(|v| ms_arg(v, "min_start_ms"))
                    .transpose()?,
            };
            Ok(Self {
                inner: Core::new(cfg).py()?,
            })
        })
    }

    /// Appends audio (int16 array or PCM16 bytes, whole samples) that arrived at ``now_ms``.
    fn push(&mut self, pcm: &Bound<'_, PyAny>, now_ms: f64) -> PyResult<()> {
        guard(|| {
            let b = Buf::get(pcm, "pcm")?;
            match b.whole_pcm("pcm")? {
                Pcm::Samples(s) => self.inner.push(s, now_ms),
                Pcm::Bytes(bb) => self.inner.push_bytes(bb, now_ms),
            }
            .py()
        })
    }

    /// The current stream is complete: its tail plays without waiting for more.
    fn mark_end(&mut self) {
        self.inner.mark_end();
    }

    /// Exactly one frame (int16, ``frame_samples`` long) for playout at ``now_ms``.
    fn pop<'py>(&mut self, py: Python<'py>, now_ms: f64) -> PyResult<Bound<'py, PyArray1<i16>>> {
        guard(|| {
            let n = self.inner.frame_samples();
            let inner = &mut self.inner;
            fill_array(py, n, 0, |out| inner.pop(now_ms, out))
        })
    }

    /// Barge-in: drops what is queued; returns the ms of the current stream played.
    fn clear(&mut self) -> u64 {
        self.inner.clear()
    }

    /// Counters and levels (ms unless a count).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.stats();
        let d = PyDict::new(py);
        d.set_item("played_ms", s.played_ms)?;
        d.set_item("output_ms", s.output_ms)?;
        d.set_item("buffered_ms", s.buffered_ms)?;
        d.set_item("max_buffered_ms", s.max_buffered_ms)?;
        d.set_item("target_ms", s.target_ms)?;
        d.set_item("delay_ms", s.delay_ms)?;
        d.set_item("underruns", s.underruns)?;
        d.set_item("concealed_ms", s.concealed_ms)?;
        d.set_item("stretched_ms", s.expanded_ms + s.accelerated_ms)?;
        d.set_item("expanded_ms", s.expanded_ms)?;
        d.set_item("accelerated_ms", s.accelerated_ms)?;
        d.set_item("streams", s.streams)?;
        d.set_item("late_pushes", s.late_pushes)?;
        d.set_item("dropped_ms", s.dropped_ms)?;
        d.set_item("cleared_ms", s.cleared_ms)?;
        Ok(d)
    }

    /// Sample rate in Hz.
    #[getter]
    fn sample_rate(&self) -> u32 {
        self.inner.config().sample_rate
    }

    /// Frame length in ms.
    #[getter]
    fn frame_ms(&self) -> u32 {
        self.inner.config().frame_ms
    }

    /// Samples per frame.
    #[getter]
    fn frame_samples(&self) -> usize {
        self.inner.frame_samples()
    }

    /// Whether the buffer adapts (else it is the plain pre-buffer client).
    #[getter]
    fn adaptive(&self) -> bool {
        self.inner.config().adaptive
    }

    /// The current target delay in ms (``prebuffer_ms`` in fixed mode).
    #[getter]
    fn target_ms(&self) -> f64 {
        self.inner.target_ms()
    }

    fn __repr__(&self) -> String {
        let c = self.inner.config();
        format!(
            "JitterBuffer(sample_rate={}, frame_ms={}, prebuffer_ms={}, adaptive={}, max_ms={})",
            c.sample_rate,
            c.frame_ms,
            c.prebuffer_ms,
            if c.adaptive { "True" } else { "False" },
            c.max_ms
        )
    }
}
