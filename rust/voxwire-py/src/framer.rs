//! `Framer`: fixed-size frames from a PCM16 stream of any chunking.

use crate::buffer::{run, Buf, Pcm};
use crate::errors::{guard, sat, IntoPyResult};
use crate::pcm::{new_array, slice_mut};
use numpy::{PyArray1, PyArray2, PyArrayMethods};
use pyo3::prelude::*;
use voxwire_core::Error;

/// Cuts a PCM16 stream into frames of exactly ``frame_samples`` samples.
///
/// ``push`` takes chunks of any size (bytes-like PCM16, including an odd number of bytes, or
/// int16 arrays) and returns the complete frames as a 2-D int16 array of shape
/// ``(n_frames, frame_samples)``: iterating it yields the frames in order. The remainder waits
/// for the next push. The frames reproduce the input exactly, whatever the chunking.
///
/// ``frame_samples`` is 1 to 4,194,304 (``2**22``), else InvalidInputError.
#[pyclass(module = "voxwire._voxwire")]
pub struct Framer {
    inner: voxwire_core::Framer,
}

#[pymethods]
impl Framer {
    #[new]
    fn new(#[pyo3(from_py_with = sat)] frame_samples: i64) -> PyResult<Self> {
        guard(|| {
            // Negative counts become 0, which the core refuses like any out-of-range size.
            let n = usize::try_from(frame_samples).unwrap_or(0);
            Ok(Self {
                inner: voxwire_core::Framer::new(n).py()?,
            })
        })
    }

    /// Appends a chunk; returns the frames it completes, shape ``(n, frame_samples)``.
    fn push<'py>(
        &mut self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<i16>>> {
        guard(|| {
            let b = Buf::get(x, "x")?;
            let p = b.pcm("x")?;
            let f = self.inner.frame_samples();
            let frames = match p {
                Pcm::Samples(s) => self.inner.frames_for_samples(s.len()),
                Pcm::Bytes(bb) => self.inner.frames_for_bytes(bb.len()),
            };
            // SAFETY: push writes all `frames * f` elements (it checks the size first).
            let arr = unsafe { PyArray2::<i16>::new(py, [frames, f], false) };
            let out = unsafe { arr.as_slice_mut() }.expect("a fresh array is contiguous");
            let inner = &mut self.inner;
            let done = run(py, b.detach_bytes(out.len() * 2), || match p {
                Pcm::Samples(s) => inner.push_samples(s, out),
                Pcm::Bytes(bb) => inner.push_bytes(bb, out),
            })
            .py()?;
            debug_assert_eq!(done, frames);
            Ok(arr)
        })
    }

    /// Returns what is pending and empties the framer: one zero-padded frame when ``pad``
    /// (an empty array if nothing is pending), else the pending samples as they are.
    /// Raises OddLengthError, changing nothing, if half a sample (one byte) is pending.
    #[pyo3(signature = (*, pad = true))]
    fn flush<'py>(&mut self, py: Python<'py>, pad: bool) -> PyResult<Bound<'py, PyArray1<i16>>> {
        guard(|| {
            if self.inner.has_pending_byte() {
                return Err(Error::OddLength {
                    len: 2 * self.inner.pending() + 1,
                })
                .py();
            }
            let pending = self.inner.pending();
            let n = if pad && pending > 0 {
                self.inner.frame_samples()
            } else {
                pending
            };
            let arr = new_array::<i16>(py, n);
            // SAFETY: `arr` is fresh and only this slice touches it.
            self.inner.flush(pad, unsafe { slice_mut(&arr) }).py()?;
            Ok(arr)
        })
    }

    /// Drops everything pending, including a pending half sample.
    fn reset(&mut self) {
        self.inner.reset();
    }

    /// Whole samples waiting for the next frame.
    #[getter]
    fn pending(&self) -> usize {
        self.inner.pending()
    }

    /// Whether one byte (half a sample) waits for the next bytes chunk.
    #[getter]
    fn pending_byte(&self) -> bool {
        self.inner.has_pending_byte()
    }

    /// Samples per frame.
    #[getter]
    fn frame_samples(&self) -> usize {
        self.inner.frame_samples()
    }

    fn __repr__(&self) -> String {
        format!(
            "Framer(frame_samples={}, pending={})",
            self.inner.frame_samples(),
            self.inner.pending()
        )
    }
}
