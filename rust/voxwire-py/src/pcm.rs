//! PCM16, base64 and G.711 functions.

use crate::buffer::{run, Buf, Elem};
use crate::errors::{guard, IntoPyResult};
use numpy::{PyArray1, PyArrayMethods};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use std::mem::MaybeUninit;
use voxwire_core::{b64, g711, pcm, Error};

/// A new 1-D numpy array of `n` elements whose contents the caller fully overwrites.
pub fn new_array<'py, T: numpy::Element>(py: Python<'py>, n: usize) -> Bound<'py, PyArray1<T>> {
    // SAFETY: every caller writes all `n` elements before the array reaches Python.
    unsafe { PyArray1::<T>::new(py, n, false) }
}

/// The writable memory of an array made by `new_array` (always contiguous).
///
/// # Safety
/// `a` must be fresh from `new_array` and not yet visible to Python code, and no other slice
/// of it may be alive.
#[allow(clippy::mut_from_ref)]
pub unsafe fn slice_mut<'a, T: numpy::Element>(a: &'a Bound<'_, PyArray1<T>>) -> &'a mut [T] {
    // A fresh 1-D array is contiguous, so this never fails (a failure would be a bug, which
    // `errors::guard` reports as InternalError).
    unsafe { a.as_slice_mut() }.expect("a fresh array is contiguous")
}

/// A new `bytes` object of `len` bytes that `fill` writes in full. Unlike
/// `PyBytes::new_with`, the memory is not zeroed first (7.7 MB of zeroing is 15-30% of a
/// two-minute base64 encode).
pub fn new_bytes<'py>(
    py: Python<'py>,
    len: usize,
    fill: impl FnOnce(&mut [MaybeUninit<u8>]) -> PyResult<()>,
) -> PyResult<Bound<'py, PyBytes>> {
    let n = ffi::Py_ssize_t::try_from(len)
        .map_err(|_| pyo3::exceptions::PyMemoryError::new_err("output too large"))?;
    // SAFETY: a NULL source asks CPython for an uninitialised bytes object of `n` bytes,
    // which only we hold until `fill` has written all of it.
    unsafe {
        let obj =
            Bound::from_owned_ptr_or_err(py, ffi::PyBytes_FromStringAndSize(std::ptr::null(), n))?;
        let buf = ffi::PyBytes_AsString(obj.as_ptr()) as *mut MaybeUninit<u8>;
        fill(std::slice::from_raw_parts_mut(buf, len))?;
        Ok(obj.cast_into_unchecked::<PyBytes>())
    }
}

/// The buffer [`new_ascii_str`] builds text in on the stable ABI (reused across calls);
/// empty, and never used, on the full C API.
#[derive(Default)]
pub struct AsciiScratch(#[cfg(feature = "abi3")] Vec<MaybeUninit<u8>>);

/// A new `str` of `len` ASCII characters that `fill` writes in full (base64 text). On the
/// full C API it is written in place, in the str's own memory; on the stable ABI (feature
/// `abi3`), which has no way to do that, into `scratch`, then copied (and checked).
pub fn new_ascii_str<'py>(
    py: Python<'py>,
    len: usize,
    scratch: &mut AsciiScratch,
    fill: impl FnOnce(&mut [MaybeUninit<u8>]) -> PyResult<()>,
) -> PyResult<Bound<'py, PyString>> {
    #[cfg(not(feature = "abi3"))]
    {
        let _ = scratch;
        let n = ffi::Py_ssize_t::try_from(len)
            .map_err(|_| pyo3::exceptions::PyMemoryError::new_err("output too large"))?;
        // SAFETY: PyUnicode_New(n, 127) makes a compact ASCII str of n one-byte characters
        // (uninitialised, NUL-terminated) that only we hold until `fill` has written all n,
        // and `fill` writes only ASCII (base64's alphabet and '='), as that kind requires.
        unsafe {
            let obj = Bound::from_owned_ptr_or_err(py, ffi::PyUnicode_New(n, 127))?;
            let data = ffi::PyUnicode_1BYTE_DATA(obj.as_ptr()).cast::<MaybeUninit<u8>>();
            fill(std::slice::from_raw_parts_mut(data, len))?;
            Ok(obj.cast_into_unchecked::<PyString>())
        }
    }
    #[cfg(feature = "abi3")]
    {
        let buf = &mut scratch.0;
        buf.resize(len, MaybeUninit::new(0));
        fill(&mut buf[..len])?;
        // SAFETY: `fill` wrote all `len` bytes, and base64 is ASCII.
        let s = unsafe {
            std::str::from_utf8_unchecked(std::slice::from_raw_parts(
                buf.as_ptr().cast::<u8>(),
                len,
            ))
        };
        Ok(PyString::new(py, s))
    }
}

/// A new 1-D array of `n` elements written by `fill`, which runs with the GIL released when
/// `work_bytes` is large enough to pay for it (see `buffer::run`). `fill` writes all `n`.
pub fn fill_array<'py, T, R, F>(
    py: Python<'py>,
    n: usize,
    work_bytes: usize,
    fill: F,
) -> PyResult<Bound<'py, PyArray1<T>>>
where
    T: numpy::Element + Send,
    R: Send,
    F: Send + FnOnce(&mut [T]) -> voxwire_core::Result<R>,
{
    let arr = new_array::<T>(py, n);
    // SAFETY: `arr` is fresh and only this slice touches it until it is returned.
    let out = unsafe { slice_mut(&arr) };
    run(py, work_bytes, || fill(out)).py()?;
    Ok(arr)
}

fn as_bytes_mut(x: &mut [i16]) -> &mut [u8] {
    // SAFETY: i16 has no padding and any byte pattern is a valid i16.
    unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr() as *mut u8, x.len() * 2) }
}

/// The characters of a base64 ``str`` as bytes: its UTF-8, borrowed (ASCII text is its own
/// UTF-8; a non-ASCII character then fails the decoder's alphabet check at its index, as every
/// character before it is ASCII). A ``str`` that has no UTF-8 (a lone surrogate) raises
/// Base64DecodeError at its first offending character.
pub fn b64_text<'a>(s: &'a Bound<'_, PyString>) -> PyResult<std::borrow::Cow<'a, [u8]>> {
    match s.to_cow() {
        Ok(std::borrow::Cow::Borrowed(t)) => Ok(std::borrow::Cow::Borrowed(t.as_bytes())),
        Ok(std::borrow::Cow::Owned(t)) => Ok(std::borrow::Cow::Owned(t.into_bytes())),
        Err(_) => {
            // Each surrogate becomes U+FFFD, outside the alphabet, and everything before the
            // first one is unchanged: the first error found is at a character index.
            let lossy = s.to_string_lossy();
            Err(b64::diagnose(lossy.as_bytes())).py()
        }
    }
}

/// Decodes base64 (str or bytes-like, standard alphabet, padded) straight into int16 samples.
///
/// Strict: a character outside the alphabet (any non-ASCII character included), whitespace,
/// misplaced or missing padding, non-zero unused bits, or an odd decoded byte count raise
/// :class:`voxwire.errors.Base64DecodeError`, whose ``offset`` says where.
#[pyfunction]
fn b64decode_pcm16<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray1<i16>>> {
    guard(|| {
        if let Ok(s) = data.cast::<PyString>() {
            // A str is immutable: decoding it may release the GIL.
            let text = b64_text(s)?;
            return decode_pcm(py, &text, text.len());
        }
        let b = Buf::get(data, "data")?;
        if b.elem != Elem::Bytes {
            return Err(b.wrong("data", "str or bytes"));
        }
        decode_pcm(py, b.bytes(), b.detach_bytes(b.bytes().len()))
    })
}

/// Decodes `src`; `work_bytes` is 0 when `src` may change (the GIL stays held).
fn decode_pcm<'py>(
    py: Python<'py>,
    src: &[u8],
    work_bytes: usize,
) -> PyResult<Bound<'py, PyArray1<i16>>> {
    let n = b64::decoded_len(src).py()?;
    if n % 2 != 0 {
        // Report a bad character first if there is one (error path: allocating is fine).
        b64::decode(src).py()?;
        return Err(Error::Base64 {
            offset: src.len(),
            reason: "decodes to an odd number of bytes, not whole PCM16 samples",
        })
        .py();
    }
    fill_array(py, n / 2, work_bytes, |out: &mut [i16]| {
        b64::decode_into(src, as_bytes_mut(out))?;
        if cfg!(target_endian = "big") {
            out.iter_mut().for_each(|s| *s = i16::from_le(*s));
        }
        Ok(())
    })
}

/// Encodes PCM16 (int16 array or little-endian bytes) as standard padded base64 ``bytes``.
#[pyfunction]
fn b64encode_pcm16<'py>(py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    guard(|| {
        let b = Buf::get(x, "x")?;
        let p = b.whole_pcm("x")?;
        let mut scratch = Vec::new();
        let src = p.le_bytes(&mut scratch);
        new_bytes(py, b64::encoded_len(src.len()), |out| {
            run(py, b.detach_bytes(src.len()), || {
                b64::encode_uninit(src, out)
            })
            .py()
        })
    })
}

/// Converts PCM16 to float32 in [-1, 1): ``x / 32768``.
#[pyfunction]
fn pcm16_to_float32<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray1<f32>>> {
    guard(|| {
        let b = Buf::get(x, "x")?;
        let p = b.whole_pcm("x")?;
        let mut scratch = Vec::new();
        let s = p.samples(&mut scratch);
        fill_array(py, s.len(), b.detach_bytes(s.len() * 2), |out| {
            pcm::i16_to_f32(s, out);
            Ok(())
        })
    })
}

/// Converts float32 to PCM16: ``round(x * 32768)`` (ties to even), saturated to
/// [-32768, 32767]. NaN becomes 0, +inf 32767 and -inf -32768.
#[pyfunction]
fn float32_to_pcm16<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray1<i16>>> {
    guard(|| {
        let b = Buf::get(x, "x")?;
        if b.elem != Elem::F32 {
            return Err(b.wrong("x", "a float32 array"));
        }
        let s = b.f32s();
        fill_array(py, s.len(), b.detach_bytes(s.len() * 4), |out| {
            pcm::f32_to_i16(s, out);
            Ok(())
        })
    })
}

/// Downmixes interleaved stereo PCM16 ``[l0, r0, l1, r1, ...]`` to mono: ``(l + r) / 2``,
/// truncated toward zero. An odd sample count raises InvalidInputError.
#[pyfunction]
fn downmix_stereo<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray1<i16>>> {
    guard(|| {
        let b = Buf::get(x, "x")?;
        let p = b.whole_pcm("x")?;
        let mut scratch = Vec::new();
        let s = p.samples(&mut scratch);
        // The core refuses an odd sample count before writing anything.
        fill_array(py, s.len() / 2, b.detach_bytes(s.len() * 2), |out| {
            pcm::downmix_stereo(s, out)
        })
    })
}

/// Applies a gain in dB to PCM16, saturating (never wrapping), rounding ties to even.
#[pyfunction]
fn apply_gain<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    db: f64,
) -> PyResult<Bound<'py, PyArray1<i16>>> {
    guard(|| {
        let factor = pcm::db_to_factor(db).py()?;
        let b = Buf::get(x, "x")?;
        let p = b.whole_pcm("x")?;
        let mut scratch = Vec::new();
        let s = p.samples(&mut scratch);
        fill_array(py, s.len(), b.detach_bytes(s.len() * 2), |out| {
            pcm::apply_gain(s, factor, out);
            Ok(())
        })
    })
}

fn g711_encode<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    f: fn(&[i16], &mut [u8]),
) -> PyResult<Bound<'py, PyBytes>> {
    guard(|| {
        let b = Buf::get(x, "x")?;
        let p = b.whole_pcm("x")?;
        let mut scratch = Vec::new();
        let s = p.samples(&mut scratch);
        PyBytes::new_with(py, s.len(), |out| {
            run(py, b.detach_bytes(s.len() * 2), || f(s, out));
            Ok(())
        })
    })
}

fn g711_decode<'py>(
    py: Python<'py>,
    codes: &Bound<'py, PyAny>,
    f: fn(&[u8], &mut [i16]),
) -> PyResult<Bound<'py, PyArray1<i16>>> {
    guard(|| {
        let b = Buf::get(codes, "codes")?;
        if b.elem != Elem::Bytes {
            return Err(b.wrong("codes", "bytes-like G.711 codes (uint8)"));
        }
        let c = b.bytes();
        fill_array(py, c.len(), b.detach_bytes(c.len() * 2), |out| {
            f(c, out);
            Ok(())
        })
    })
}

/// Encodes PCM16 to G.711 mu-law ``bytes``, bit-exact with ``audioop.lin2ulaw(x, 2)``.
#[pyfunction]
fn ulaw_encode<'py>(py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    g711_encode(py, x, g711::ulaw_encode)
}

/// Decodes G.711 mu-law codes to int16, bit-exact with ``audioop.ulaw2lin(codes, 2)``.
#[pyfunction]
fn ulaw_decode<'py>(
    py: Python<'py>,
    codes: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray1<i16>>> {
    g711_decode(py, codes, g711::ulaw_decode)
}

/// Encodes PCM16 to G.711 A-law ``bytes``, bit-exact with ``audioop.lin2alaw(x, 2)``.
#[pyfunction]
fn alaw_encode<'py>(py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    g711_encode(py, x, g711::alaw_encode)
}

/// Decodes G.711 A-law codes to int16, bit-exact with ``audioop.alaw2lin(codes, 2)``.
#[pyfunction]
fn alaw_decode<'py>(
    py: Python<'py>,
    codes: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray1<i16>>> {
    g711_decode(py, codes, g711::alaw_decode)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(b64decode_pcm16, m)?)?;
    m.add_function(wrap_pyfunction!(b64encode_pcm16, m)?)?;
    m.add_function(wrap_pyfunction!(pcm16_to_float32, m)?)?;
    m.add_function(wrap_pyfunction!(float32_to_pcm16, m)?)?;
    m.add_function(wrap_pyfunction!(downmix_stereo, m)?)?;
    m.add_function(wrap_pyfunction!(apply_gain, m)?)?;
    m.add_function(wrap_pyfunction!(ulaw_encode, m)?)?;
    m.add_function(wrap_pyfunction!(ulaw_decode, m)?)?;
    m.add_function(wrap_pyfunction!(alaw_encode, m)?)?;
    m.add_function(wrap_pyfunction!(alaw_decode, m)?)?;
    Ok(())
}
