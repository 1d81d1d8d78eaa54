//! `Resampler` and `resample`: streaming and one-shot polyphase resampling.

use crate::buffer::{Buf, Elem, Pcm};
use crate::errors::{guard, sat, sat_opt, IntoPyResult};
use crate::pcm::{fill_array, new_array, slice_mut};
use pyo3::prelude::*;
use voxwire_core::resample::MultiResampler;
use voxwire_core::resample::{self as rs, Quality};
use voxwire_core::Error;

/// Input of a resampler call: int16 samples (arrays or PCM16 bytes) or float32 samples.
enum Samples<'a> {
    I16(Pcm<'a>),
    F32(&'a [f32]),
}

/// The samples of `b`, float input checked to be finite. Call [`Buf::private`] first: the
/// check then holds while the work runs without the GIL.
fn samples<'a>(b: &'a Buf, what: &str) -> PyResult<Samples<'a>> {
    match b.elem {
        Elem::F32 => {
            let x = b.f32s();
            if let Some(i) = rs::first_non_finite(x) {
                return Err(Error::InvalidArgument(format!(
                    "{what} holds a non-finite value ({}) at index {i}",
                    x[i]
                )))
                .py();
            }
            Ok(Samples::F32(x))
        }
        Elem::I16 | Elem::Bytes => Ok(Samples::I16(b.whole_pcm(what)?)),
        Elem::Other => Err(b.wrong(what, "int16 or float32 samples, or PCM16 bytes")),
    }
}

/// Streaming sample-rate converter between 8000, 11025, 16000, 22050, 24000, 32000, 44100 and
/// 48000 Hz (every pair), and any rate from 1000 to 384000 Hz whose ratio to the other reduces
/// to at most 1024/1024 (12 kHz, 96 kHz...); a rational polyphase filter in the Rust core.
///
/// ``process(x)`` takes any amount of int16 or float32 samples (or PCM16 bytes) and returns
/// the output they complete, in the input's dtype (int16 for bytes). ``flush()`` returns the
/// rest, so the total is ``round(n * out_rate / in_rate)`` samples, and starts a new stream.
/// The output is aligned with the input (no leading filter delay) and bit-identical however
/// the input is chunked; ``delay`` is how far, in output samples, it trails the input.
///
/// Presets: ``"hq"`` (default; passband to 0.875 of the lower Nyquist frequency, stopband
/// from Nyquist) and ``"lowlat"`` (delay at most 2 ms). Float input must be finite.
///
/// ``channels=2`` (up to 8) takes and returns interleaved samples, whole frames per call;
/// each channel's output is exactly the mono resampler's for that channel.
#[pyclass(module = "voxwire._voxwire")]
pub struct Resampler {
    inner: rs::Resampler,
    /// The channels' streams when there are two or more (`inner` then only describes).
    multi: Option<MultiResampler>,
    quality: String,
    /// dtype of the last process() call, which flush() follows.
    last_float: bool,
}

fn quality_of(q: &str) -> PyResult<Quality> {
    Quality::parse(q).py()
}

fn check_rate(r: i64) -> PyResult<u32> {
    u32::try_from(r)
        .map_err(|_| Error::InvalidArgument(format!("unsupported sample rate {r} Hz")))
        .py()
}

#[pymethods]
impl Resampler {
    #[new]
    #[pyo3(signature = (in_rate, out_rate, *, quality = "hq", channels = 1))]
    fn new(
        #[pyo3(from_py_with = sat)] in_rate: i64,
        #[pyo3(from_py_with = sat)] out_rate: i64,
        quality: &str,
        #[pyo3(from_py_with = sat)] channels: i64,
    ) -> PyResult<Self> {
        guard(|| {
            let q = quality_of(quality)?;
            let (a, b) = (check_rate(in_rate)?, check_rate(out_rate)?);
            Ok(Self {
                inner: rs::Resampler::new(a, b, q).py()?,
                multi: multi_of(a, b, q, channels)?,
                quality: quality.to_owned(),
                last_float: false,
            })
        })
    }

    /// Resamples a chunk; returns the output it completes (int16 or float32, like ``x``).
    fn process<'py>(
        &mut self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            let mut b = Buf::get(x, "x")?;
            b.private();
            let s = samples(&b, "x")?;
            self.last_float = matches!(s, Samples::F32(_));
            match &mut self.multi {
                Some(m) => push(py, m, s, false),
                None => push(py, &mut self.inner, s, false),
            }
        })
    }

    /// Ends the stream: returns the remaining output (dtype of the last ``process`` input,
    /// int16 if none) and resets, ready for a new stream.
    fn flush<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        guard(|| match &mut self.multi {
            Some(m) => flush(py, m, self.last_float),
            None => flush(py, &mut self.inner, self.last_float),
        })
    }

    /// Forgets the stream without returning its tail.
    fn reset(&mut self) {
        self.inner.reset();
        if let Some(m) = &mut self.multi {
            m.reset();
        }
    }

    /// Interleaved channels.
    #[getter]
    fn channels(&self) -> usize {
        self.multi.as_ref().map_or(1, |m| m.channels())
    }

    /// Latency in output samples: how far the newest output trails the input.
    #[getter]
    fn delay(&self) -> f64 {
        self.inner.design().delay()
    }

    /// ``out_rate / in_rate``.
    #[getter]
    fn ratio(&self) -> f64 {
        let d = self.inner.design();
        d.out_rate as f64 / d.in_rate as f64
    }

    /// Input sample rate in Hz.
    #[getter]
    fn in_rate(&self) -> u32 {
        self.inner.design().in_rate
    }

    /// Output sample rate in Hz.
    #[getter]
    fn out_rate(&self) -> u32 {
        self.inner.design().out_rate
    }

    /// The preset name.
    #[getter]
    fn quality(&self) -> &str {
        &self.quality
    }

    /// Taps per output sample (the filter length divided by the upsampling factor).
    #[getter]
    fn taps_per_output(&self) -> usize {
        self.inner.design().k
    }

    fn __repr__(&self) -> String {
        let d = self.inner.design();
        format!(
            "Resampler({}, {}, quality={:?}, channels={})",
            d.in_rate,
            d.out_rate,
            self.quality,
            self.channels()
        )
    }
}

/// Resamples a whole signal at once: aligned with the input (delay-compensated) and
/// ``round(n * out_rate / in_rate)`` samples long, in the input's dtype (int16 for bytes).
/// Identical to streaming the same samples through a :class:`Resampler` and flushing.
/// ``channels=2`` (up to 8): interleaved samples in and out, whole frames.
///
/// ``threads``: mono inputs of at least 128k samples are cut into up to this many parts
/// resampled in parallel without the GIL (default: the CPUs available); the output is
/// bit-identical whatever the count. ``threads=1`` keeps the call on one core.
#[pyfunction]
#[pyo3(signature = (x, in_rate, out_rate, *, quality = "hq", channels = 1, threads = None))]
#[allow(clippy::too_many_arguments)]
pub fn resample<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    #[pyo3(from_py_with = sat)] in_rate: i64,
    #[pyo3(from_py_with = sat)] out_rate: i64,
    quality: &str,
    #[pyo3(from_py_with = sat)] channels: i64,
    #[pyo3(from_py_with = sat_opt)] threads: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    guard(|| resample_impl(py, x, in_rate, out_rate, quality, channels, threads))
}

#[allow(clippy::too_many_arguments)]
fn resample_impl<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    in_rate: i64,
    out_rate: i64,
    quality: &str,
    channels: i64,
    threads: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    let q = quality_of(quality)?;
    let (a, bb) = (check_rate(in_rate)?, check_rate(out_rate)?);
    let threads = match threads {
        None => std::thread::available_parallelism().map_or(1, |n| n.get().min(8)),
        Some(t @ 1..=64) => t as usize,
        Some(t) => {
            return Err(Error::InvalidArgument(format!(
                "threads must be 1 to 64 or None, got {t}"
            )))
            .py()
        }
    };
    let mut b = Buf::get(x, "x")?;
    b.private();
    if let Some(mut m) = multi_of(a, bb, q, channels)? {
        return push(py, &mut m, samples(&b, "x")?, true);
    }
    let d = rs::Design::shared(a, bb, q).py()?;
    fn whole<'py, T: Sync, U: numpy::Element + Send>(
        py: Python<'py>,
        d: &std::sync::Arc<rs::Design>,
        x: &[T],
        conv: impl Fn(&[T], &mut [f32]) + Send + Sync,
        emit: impl Fn(&[f32], &mut [U]) + Send + Sync,
        threads: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let n = d.total_outputs(x.len() as u64) as usize;
        let arr = fill_array(py, n, std::mem::size_of_val(x), move |out| {
            rs::one_shot_with(d, x, conv, out, emit, threads)
        })?;
        Ok(arr.into_any())
    }
    match samples(&b, "x")? {
        Samples::F32(v) => whole(py, &d, v, rs::conv_f32, rs::emit_f32, threads),
        Samples::I16(p) => {
            let mut scratch = Vec::new();
            let v = p.samples(&mut scratch);
            whole(py, &d, v, rs::conv_i16, rs::emit_i16, threads)
        }
    }
}

fn multi_of(a: u32, b: u32, q: Quality, channels: i64) -> PyResult<Option<MultiResampler>> {
    match channels {
        1 => Ok(None),
        2..=8 => Ok(Some(MultiResampler::new(a, b, q, channels as usize).py()?)),
        _ => Err(Error::InvalidArgument(format!(
            "channels must be 1 to 8, got {channels}"
        )))
        .py(),
    }
}

/// What the bindings need of a stream, mono or interleaved channels.
trait Stream: Send {
    /// Samples the next push of `n` samples yields (an error for partial frames).
    fn pending(&self, n: usize) -> voxwire_core::Result<usize>;
    /// Samples the whole signal of `n` samples (pushed, then flushed) comes to.
    fn total(&self, n: usize) -> usize;
    fn flush_len(&self) -> usize;
    fn push_into<T, U>(
        &mut self,
        x: &[T],
        conv: impl Fn(&[T], &mut [f32]),
        out: &mut [U],
        emit: impl Fn(&[f32], &mut [U]),
    ) -> voxwire_core::Result<usize>;
    fn flush_into<U>(
        &mut self,
        out: &mut [U],
        emit: impl Fn(&[f32], &mut [U]),
    ) -> voxwire_core::Result<usize>;
}

/// The methods both stream types have under the same names.
macro_rules! forward_io {
    () => {
        fn flush_len(&self) -> usize {
            self.flush_outputs()
        }
        fn push_into<T, U>(
            &mut self,
            x: &[T],
            conv: impl Fn(&[T], &mut [f32]),
            out: &mut [U],
            emit: impl Fn(&[f32], &mut [U]),
        ) -> voxwire_core::Result<usize> {
            self.process_with(x, conv, out, emit)
        }
        fn flush_into<U>(
            &mut self,
            out: &mut [U],
            emit: impl Fn(&[f32], &mut [U]),
        ) -> voxwire_core::Result<usize> {
            self.flush_with(out, emit)
        }
    };
}

impl Stream for rs::Resampler {
    fn pending(&self, n: usize) -> voxwire_core::Result<usize> {
        Ok(self.pending_outputs(n))
    }
    fn total(&self, n: usize) -> usize {
        self.design().total_outputs(n as u64) as usize
    }
    forward_io!();
}

impl Stream for MultiResampler {
    fn pending(&self, n: usize) -> voxwire_core::Result<usize> {
        self.pending_outputs(n)
    }
    fn total(&self, n: usize) -> usize {
        let c = self.channels();
        self.design().total_outputs((n / c) as u64) as usize * c
    }
    forward_io!();
}

/// Pushes `x` and returns the output in its dtype; with `whole`, flushes too (one-shot).
/// Large calls run without the GIL (`fill_array`).
fn push<'py, S: Stream>(
    py: Python<'py>,
    s: &mut S,
    x: Samples<'_>,
    whole: bool,
) -> PyResult<Bound<'py, PyAny>> {
    fn run<'py, S: Stream, T: Sync, U: numpy::Element + Send + Copy>(
        py: Python<'py>,
        s: &mut S,
        x: &[T],
        conv: impl Fn(&[T], &mut [f32]) + Send,
        emit: impl Fn(&[f32], &mut [U]) + Send + Copy,
        whole: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let head = s.pending(x.len()).py()?;
        let n = if whole { s.total(x.len()) } else { head };
        let arr = fill_array(py, n, std::mem::size_of_val(x), move |out| {
            let done = s.push_into(x, conv, out, emit)?;
            if whole {
                s.flush_into(&mut out[done..], emit)?;
            }
            Ok(())
        })?;
        Ok(arr.into_any())
    }
    match x {
        Samples::F32(v) => run(py, s, v, rs::conv_f32, rs::emit_f32, whole),
        Samples::I16(p) => {
            let mut scratch = Vec::new();
            let v = p.samples(&mut scratch);
            run(py, s, v, rs::conv_i16, rs::emit_i16, whole)
        }
    }
}

/// Ends the stream: its tail as float32 (`float`) or int16.
fn flush<'py, S: Stream>(py: Python<'py>, s: &mut S, float: bool) -> PyResult<Bound<'py, PyAny>> {
    let n = s.flush_len();
    if float {
        let arr = new_array::<f32>(py, n);
        // SAFETY: fresh array, only this slice touches it.
        s.flush_into(unsafe { slice_mut(&arr) }, rs::emit_f32)
            .py()?;
        Ok(arr.into_any())
    } else {
        let arr = new_array::<i16>(py, n);
        // SAFETY: fresh array, only this slice touches it.
        s.flush_into(unsafe { slice_mut(&arr) }, rs::emit_i16)
            .py()?;
        Ok(arr.into_any())
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Resampler>()?;
    m.add_function(wrap_pyfunction!(resample, m)?)?;
    Ok(())
}
