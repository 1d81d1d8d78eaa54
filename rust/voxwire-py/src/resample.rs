//! `Resampler` and `resample`: streaming and one-shot polyphase resampling.

use crate::buffer::{Buf, Elem, Pcm};
use crate::errors::IntoPyResult;
use crate::pcm::{fill_array, new_array, slice_mut};
use pyo3::prelude::*;
use voxwire_core::resample::{self as rs, Quality};
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
#[pyclass(module = "voxwire._voxwire")]
pub struct Resampler {
    inner: rs::Resampler,
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
    #[pyo3(signature = (in_rate, out_rate, quality = "hq"))]
    fn new(in_rate: i64, out_rate: i64, quality: &str) -> PyResult<Self> {
        let q = quality_of(quality)?;
        Ok(Self {
            inner: rs::Resampler::new(check_rate(in_rate)?, check_rate(out_rate)?, q).py()?,
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
            "Resampler({}, {}, quality={:?})",
            d.in_rate, d.out_rate, self.quality
        )
    }
}

/// Resamples a whole signal at once: aligned with the input (delay-compensated) and
/// ``round(n * out_rate / in_rate)`` samples long, in the input's dtype (int16 for bytes).
/// Identical to streaming the same samples through a :class:`Resampler` and flushing.
#[pyfunction]
#[pyo3(signature = (x, in_rate, out_rate, quality = "hq"))]
pub fn resample<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    in_rate: i64,
    out_rate: i64,
    quality: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let q = quality_of(quality)?;
    let mut r = rs::Resampler::new(check_rate(in_rate)?, check_rate(out_rate)?, q).py()?;
    let b = Buf::get(x, "x")?;
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
