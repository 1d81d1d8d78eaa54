//! `WebRtcVad`: the WebRTC-compatible detector, with py-webrtcvad's interface (the
//! `voxwire.webrtcvad` module re-exports it as `Vad`).

use crate::buffer::{Buf, Elem};
use crate::errors::IntoPyResult;
use pyo3::exceptions::PyIndexError;
use pyo3::prelude::*;
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
    fn new(mode: Option<i64>) -> PyResult<Self> {
        Ok(Self {
            inner: webrtc::WebRtcVad::new(mode.unwrap_or(0)).py()?,
        })
    }

    /// Sets the aggressiveness mode, 0 to 3 (ValueError otherwise).
    fn set_mode(&mut self, mode: i64) -> PyResult<()> {
        self.inner.set_mode(mode).py()
    }

    /// Whether the frame (the first ``length`` samples of ``buf``) holds speech.
    #[pyo3(signature = (buf, sample_rate, length = None))]
    fn is_speech(
        &mut self,
        buf: &Bound<'_, PyAny>,
        sample_rate: i64,
        length: Option<i64>,
    ) -> PyResult<bool> {
        let b = Buf::get(buf, "buf")?;
        let (samples, have): (Vec<i16>, usize);
        let frame: &[i16] = match b.elem {
            Elem::I16 => {
                let s = b.i16s();
                have = s.len();
                s
            }
            Elem::Bytes => {
                let bytes = b.bytes();
                have = bytes.len() / 2;
                if cfg!(target_endian = "little") && (bytes.as_ptr() as usize).is_multiple_of(2) {
                    // SAFETY: 2-aligned, `have` whole samples, any bit pattern is an i16.
                    unsafe { std::slice::from_raw_parts(bytes.as_ptr() as *const i16, have) }
                } else {
                    samples = bytes
                        .chunks_exact(2)
                        .map(|p| i16::from_le_bytes([p[0], p[1]]))
                        .collect();
                    &samples
                }
            }
            _ => return Err(b.wrong("buf", "PCM16 bytes or an int16 array")),
        };
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

    /// Whether py-webrtcvad (and this detector) accept ``frame_length`` samples at ``rate``.
    #[staticmethod]
    fn valid_rate_and_frame_length(rate: i64, frame_length: i64) -> bool {
        frame_length >= 0
            && webrtc::WebRtcVad::valid_rate_and_frame_length(rate, frame_length as usize)
    }

    /// The current mode.
    #[getter]
    fn mode(&self) -> usize {
        self.inner.mode()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<WebRtcVad>()
}
