//! `Resampler` and `resample`: streaming and one-shot polyphase resampling.

use crate::buffer::{Buf, Elem, Pcm};
use crate::errors::IntoPyResult;
use crate::pcm::{fill_array, new_array, slice_mut};
use pyo3::prelude::*;
use voxwire_core::resample::{self as rs, Quality};
use voxwire_core::resample_multi::MultiResampler;
use voxwire_core::Error;

/// Input of a resampler call: int16 samples (arrays or PCM16 bytes) or float32 samples.
enum Samples<'a> {
    I16(Pcm<'a>),
    F32(&'a [f32]),
}

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
/// 48000 Hz (every pair), a rational polyphase filter in the Rust core.
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
    #[pyo3(signature = (in_rate, out_rate, quality = "hq", channels = 1))]
    fn new(in_rate: i64, out_rate: i64, quality: &str, channels: i64) -> PyResult<Self> {
        let q = quality_of(quality)?;
        let (a, b) = (check_rate(in_rate)?, check_rate(out_rate)?);
        Ok(Self {
            inner: rs::Resampler::new(a, b, q).py()?,
            multi: multi_of(a, b, q, channels)?,
            quality: quality.to_owned(),
            last_float: false,
        })
    }

    /// Resamples a chunk; returns the output it completes (int16 or float32, like ``x``).
    fn process<'py>(
        &mut self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let b = Buf::get(x, "x")?;
        let s = samples(&b, "x")?;
        if let Some(m) = &mut self.multi {
            self.last_float = matches!(s, Samples::F32(_));
            return multi_process(py, m, s);
        }
        let inner = &mut self.inner;
        match s {
            Samples::F32(v) => {
                self.last_float = true;
                let n = inner.pending_outputs(v.len());
                let arr = fill_array(py, n, v.len() * 4, |out| {
                    inner.process_with(v, rs::conv_f32, out, rs::emit_f32)
                })?;
                Ok(arr.into_any())
            }
            Samples::I16(p) => {
                self.last_float = false;
                let mut scratch = Vec::new();
                let v = p.samples(&mut scratch);
                let n = inner.pending_outputs(v.len());
                let arr = fill_array(py, n, v.len() * 2, |out| {
                    inner.process_with(v, rs::conv_i16, out, rs::emit_i16)
                })?;
                Ok(arr.into_any())
            }
        }
    }

    /// Ends the stream: returns the remaining output (dtype of the last ``process`` input,
    /// int16 if none) and resets, ready for a new stream.
    fn flush<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        if let Some(m) = &mut self.multi {
            let n = m.flush_outputs();
            return if self.last_float {
                let arr = new_array::<f32>(py, n);
                // SAFETY: fresh array, only this slice touches it.
                m.flush_with(unsafe { slice_mut(&arr) }, rs::emit_f32)
                    .py()?;
                Ok(arr.into_any())
            } else {
                let arr = new_array::<i16>(py, n);
                // SAFETY: fresh array, only this slice touches it.
                m.flush_with(unsafe { slice_mut(&arr) }, rs::emit_i16)
                    .py()?;
                Ok(arr.into_any())
            };
        }
        let n = self.inner.flush_outputs();
        if self.last_float {
            let arr = new_array::<f32>(py, n);
            // SAFETY: fresh array, only this slice touches it.
            self.inner
                .flush_with(unsafe { slice_mut(&arr) }, rs::emit_f32)
                .py()?;
            Ok(arr.into_any())
        } else {
            let arr = new_array::<i16>(py, n);
            // SAFETY: fresh array, only this slice touches it.
            self.inner
                .flush_with(unsafe { slice_mut(&arr) }, rs::emit_i16)
                .py()?;
            Ok(arr.into_any())
        }
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
#[pyfunction]
#[pyo3(signature = (x, in_rate, out_rate, quality = "hq", channels = 1))]
pub fn resample<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    in_rate: i64,
    out_rate: i64,
    quality: &str,
    channels: i64,
) -> PyResult<Bound<'py, PyAny>> {
    let q = quality_of(quality)?;
    let (a, bb) = (check_rate(in_rate)?, check_rate(out_rate)?);
    let b = Buf::get(x, "x")?;
    if let Some(mut m) = multi_of(a, bb, q, channels)? {
        return multi_one_shot(py, &mut m, samples(&b, "x")?);
    }
    let mut r = rs::Resampler::new(a, bb, q).py()?;
    match samples(&b, "x")? {
        Samples::F32(v) => {
            let n = r.design().total_outputs(v.len() as u64) as usize;
            let arr = fill_array(py, n, v.len() * 4, |out| {
                one_shot(&mut r, v, rs::conv_f32, out, rs::emit_f32)
            })?;
            Ok(arr.into_any())
        }
        Samples::I16(p) => {
            let mut scratch = Vec::new();
            let v = p.samples(&mut scratch);
            let n = r.design().total_outputs(v.len() as u64) as usize;
            let arr = fill_array(py, n, v.len() * 2, |out| {
                one_shot(&mut r, v, rs::conv_i16, out, rs::emit_i16)
            })?;
            Ok(arr.into_any())
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

fn multi_process<'py>(
    py: Python<'py>,
    m: &mut MultiResampler,
    s: Samples<'_>,
) -> PyResult<Bound<'py, PyAny>> {
    match s {
        Samples::F32(v) => {
            let n = m.pending_outputs(v.len()).py()?;
            let arr = fill_array(py, n, v.len() * 4, |out| {
                m.process_with(v, rs::conv_f32, out, rs::emit_f32)
            })?;
            Ok(arr.into_any())
        }
        Samples::I16(p) => {
            let mut scratch = Vec::new();
            let v = p.samples(&mut scratch);
            let n = m.pending_outputs(v.len()).py()?;
            let arr = fill_array(py, n, v.len() * 2, |out| {
                m.process_with(v, rs::conv_i16, out, rs::emit_i16)
            })?;
            Ok(arr.into_any())
        }
    }
}

fn multi_one_shot<'py>(
    py: Python<'py>,
    m: &mut MultiResampler,
    s: Samples<'_>,
) -> PyResult<Bound<'py, PyAny>> {
    let c = m.channels();
    let total = |n: usize| m.design().total_outputs((n / c) as u64) as usize * c;
    match s {
        Samples::F32(v) => {
            m.pending_outputs(v.len()).py()?; // whole frames
            let n = total(v.len());
            let arr = fill_array(py, n, v.len() * 4, |out| {
                let head = m.process_with(v, rs::conv_f32, out, rs::emit_f32)?;
                m.flush_with(&mut out[head..], rs::emit_f32).map(|_| ())
            })?;
            Ok(arr.into_any())
        }
        Samples::I16(p) => {
            let mut scratch = Vec::new();
            let v = p.samples(&mut scratch);
            m.pending_outputs(v.len()).py()?;
            let n = total(v.len());
            let arr = fill_array(py, n, v.len() * 2, |out| {
                let head = m.process_with(v, rs::conv_i16, out, rs::emit_i16)?;
                m.flush_with(&mut out[head..], rs::emit_i16).map(|_| ())
            })?;
            Ok(arr.into_any())
        }
    }
}

/// Process then flush into one output slice of exactly the total length.
fn one_shot<T, U>(
    r: &mut rs::Resampler,
    x: &[T],
    conv: impl Fn(&[T], &mut [f32]),
    out: &mut [U],
    emit: impl Fn(&[f32], &mut [U]) + Copy,
) -> voxwire_core::Result<()> {
    let head = r.process_with(x, conv, out, emit)?;
    r.flush_with(&mut out[head..], emit)?;
    Ok(())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Resampler>()?;
    m.add_function(wrap_pyfunction!(resample, m)?)?;
    Ok(())
}
