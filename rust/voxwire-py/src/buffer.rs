//! Zero-copy access to any object that exports the buffer protocol (bytes, bytearray,
//! memoryview, array.array, numpy arrays), with the element type checked, and the GIL
//! released around bulk work.
//!
//! Two cases are copied, once per call, into private aligned memory: int16 or float32 items
//! that are not aligned to their size (`np.frombuffer(b, np.int16, offset=1)`), so the
//! results are those of aligned input; and memory that other code may write (anything but
//! an exact `bytes`) when the work is long enough to release the GIL and asks for it
//! ([`Buf::private`]): another thread cannot change it under the work, so what was checked
//! (finite floats, base64 padding) stays true. Aligned input of a normal call is never copied.
//!
//! `Py_buffer` lives on the stack (pyo3's `PyBuffer` boxes it: one allocation per call).

use crate::errors::dtype_error;
use numpy::npyffi::types::NPY_TYPES;
use numpy::{PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::ffi::CStr;
use std::os::raw::c_int;

const NPY_BYTE: c_int = NPY_TYPES::NPY_BYTE as c_int;
const NPY_UBYTE: c_int = NPY_TYPES::NPY_UBYTE as c_int;
const NPY_SHORT: c_int = NPY_TYPES::NPY_SHORT as c_int;
const NPY_FLOAT: c_int = NPY_TYPES::NPY_FLOAT as c_int;
use std::mem::MaybeUninit;

/// Work of at least this many bytes runs with the GIL released. Below it, releasing and
/// re-acquiring the GIL costs more than it frees (a 20 ms chunk is 640-1920 bytes).
pub const DETACH_BYTES: usize = 64 * 1024;

/// Runs `f`, with the GIL released when `work_bytes` is large enough to pay for it.
pub fn run<T, F>(py: Python<'_>, work_bytes: usize, f: F) -> T
where
    F: Send + FnOnce() -> T,
    T: Send,
{
    if work_bytes >= DETACH_BYTES {
        py.detach(f)
    } else {
        f()
    }
}

/// What the elements of a buffer are.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Elem {
    /// Raw bytes (format `B`, `b`, `c`, or none).
    Bytes,
    /// Native-endian int16 (`h`).
    I16,
    /// Native-endian float32 (`f`).
    F32,
    /// Anything else, by its format string.
    Other,
}

/// A borrowed, C-contiguous, 1-D view of an object's memory.
///
/// Two fast paths skip the buffer protocol, whose round trip costs about 55 ns on `bytes`
/// and 130 ns on a numpy array (numpy builds a format string for each export), more than
/// the work on a 20 ms chunk: exact `bytes` (immutable) and small 1-D contiguous numpy
/// arrays of a known native dtype. Large arrays take the buffer protocol, whose export
/// pins their memory while the GIL is released. Everything else, and every error, goes
/// through the buffer protocol too.
pub struct Buf {
    /// Set when the memory came through the buffer protocol (released on drop).
    view: Option<ffi::Py_buffer>,
    ptr: *const u8,
    len: usize,
    pub elem: Elem,
    /// Whether other code may write the memory while we read it: true for everything but an
    /// exact `bytes` object and our own copy.
    shared: bool,
    /// Our copy (4-aligned), when `ptr` points into it; empty otherwise.
    copy: Vec<u32>,
}

impl Buf {
    /// Gets the memory of `obj`; `what` names the argument in errors.
    pub fn get(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Self> {
        if let Ok(b) = obj.cast_exact::<PyBytes>() {
            let s = b.as_bytes();
            return Ok(Buf {
                view: None,
                ptr: s.as_ptr(),
                len: s.len(),
                elem: Elem::Bytes,
                shared: false,
                copy: Vec::new(),
            });
        }
        if let Ok(a) = obj.cast::<PyUntypedArray>() {
            if let Some(mut b) = Self::small_array(a) {
                b.align();
                return Ok(b);
            }
        }
        let mut b = Self::get_buffer(obj, what)?;
        b.align();
        Ok(b)
    }

    /// Copies int16 or float32 items that are not aligned to their size into `copy`.
    fn align(&mut self) {
        let size = match self.elem {
            Elem::I16 => 2,
            Elem::F32 => 4,
            _ => return,
        };
        if !(self.ptr as usize).is_multiple_of(size) {
            self.make_copy();
        }
    }

    /// Points `ptr` at a private, 4-aligned copy of the memory.
    fn make_copy(&mut self) {
        let mut copy = vec![0u32; self.len.div_ceil(4)];
        // SAFETY: `copy` holds at least `len` bytes; `ptr` points at `len` readable bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr, copy.as_mut_ptr().cast::<u8>(), self.len)
        };
        self.ptr = copy.as_ptr().cast::<u8>();
        self.copy = copy;
        self.shared = false;
    }

    /// Makes the memory private before work that releases the GIL: memory that other code
    /// may write is copied (once) when it is at least [`DETACH_BYTES`] long, the size at
    /// which [`run`] releases the GIL. For the expensive work (resampling, VAD) whose checks
    /// of the input (finite floats) must hold while it runs without the GIL.
    pub fn private(&mut self) {
        if self.shared && self.len >= DETACH_BYTES {
            self.make_copy();
        }
    }

    /// `n` if work on this memory may release the GIL (the memory is private), else 0: a
    /// shared buffer (bytearray, numpy array...) is read with the GIL held, so no Python
    /// thread can change it under the work. For the cheap, memory-bound work (base64, PCM,
    /// G.711, framing), where a copy would cost as much as the work.
    pub fn detach_bytes(&self, n: usize) -> usize {
        if self.shared {
            0
        } else {
            n
        }
    }

    fn small_array(a: &Bound<'_, PyUntypedArray>) -> Option<Self> {
        if a.ndim() != 1 || !a.is_c_contiguous() {
            return None;
        }
        let d = a.dtype();
        if d.is_native_byteorder() == Some(false) {
            return None;
        }
        let (elem, size) = match d.num() {
            NPY_UBYTE | NPY_BYTE => (Elem::Bytes, 1),
            NPY_SHORT => (Elem::I16, 2),
            NPY_FLOAT => (Elem::F32, 4),
            _ => return None,
        };
        let len = a.len() * size;
        if len >= DETACH_BYTES {
            return None;
        }
        // SAFETY: a valid array object; `data` points at `len` contiguous bytes that stay
        // alive while the caller holds `a` and the GIL (small arrays never release it).
        let ptr = unsafe { (*a.as_array_ptr()).fields.data as *const u8 };
        Some(Buf {
            view: None,
            ptr,
            len,
            elem,
            shared: true,
            copy: Vec::new(),
        })
    }

    fn get_buffer(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Self> {
        let mut view = MaybeUninit::<ffi::Py_buffer>::uninit();
        let flags = ffi::PyBUF_FORMAT | ffi::PyBUF_C_CONTIGUOUS;
        // SAFETY: `view` is written by PyObject_GetBuffer when it returns 0; we own the
        // reference until PyBuffer_Release in Drop.
        let rc = unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), view.as_mut_ptr(), flags) };
        if rc != 0 {
            let cause = PyErr::fetch(obj.py());
            let tname = obj
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default();
            return Err(dtype_error(format!(
                "{what} must be a C-contiguous bytes-like object or numpy array, got {tname} ({cause})"
            )));
        }
        let view = unsafe { view.assume_init() };
        let mut b = Buf {
            ptr: view.buf as *const u8,
            len: usize::try_from(view.len).unwrap_or(0),
            view: Some(view),
            elem: Elem::Other,
            shared: true,
            copy: Vec::new(),
        };
        if view.ndim > 1 {
            return Err(dtype_error(format!(
                "{what} must be 1-D, got a {}-D buffer",
                view.ndim
            )));
        }
        b.elem = match (b.format(), view.itemsize) {
            ("" | "B" | "b" | "c", 1) => Elem::Bytes,
            ("h" | "@h" | "=h", 2) => Elem::I16,
            ("<h", 2) if cfg!(target_endian = "little") => Elem::I16,
            ("f" | "@f" | "=f", 4) => Elem::F32,
            ("<f", 4) if cfg!(target_endian = "little") => Elem::F32,
            _ => Elem::Other,
        };
        Ok(b)
    }

    /// The struct-module format string ("" when the exporter gives none).
    pub fn format(&self) -> &str {
        let Some(view) = &self.view else {
            return match self.elem {
                Elem::I16 => "h",
                Elem::F32 => "f",
                _ => "B",
            };
        };
        if view.format.is_null() {
            return "";
        }
        // SAFETY: a non-null format is a NUL-terminated string owned by the exporter.
        unsafe { CStr::from_ptr(view.format) }
            .to_str()
            .unwrap_or("?")
    }

    fn itemsize(&self) -> isize {
        match (&self.view, self.elem) {
            (Some(v), _) => v.itemsize,
            (None, Elem::I16) => 2,
            (None, Elem::F32) => 4,
            (None, _) => 1,
        }
    }

    /// The memory as bytes.
    pub fn bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `len` contiguous bytes, alive while `self` (and the object) are.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// The memory as int16 samples (only for `Elem::I16`; items are 2-byte aligned).
    pub fn i16s(&self) -> &[i16] {
        debug_assert_eq!(self.elem, Elem::I16);
        let n = self.len / 2;
        if n == 0 {
            return &[];
        }
        debug_assert!((self.ptr as usize).is_multiple_of(2));
        // SAFETY: format `h`, itemsize 2, contiguous, and 2-aligned: `get` copied unaligned
        // int16 items into `copy`.
        unsafe { std::slice::from_raw_parts(self.ptr as *const i16, n) }
    }

    /// The memory as float32 samples (only for `Elem::F32`).
    pub fn f32s(&self) -> &[f32] {
        debug_assert_eq!(self.elem, Elem::F32);
        let n = self.len / 4;
        if n == 0 {
            return &[];
        }
        debug_assert!((self.ptr as usize).is_multiple_of(4));
        // SAFETY: as for i16s (4-aligned).
        unsafe { std::slice::from_raw_parts(self.ptr as *const f32, n) }
    }

    /// A type error naming what was expected and what came.
    pub fn wrong(&self, what: &str, expected: &str) -> PyErr {
        dtype_error(format!(
            "{what} must be {expected}, got a buffer of format '{}' (itemsize {})",
            self.format(),
            self.itemsize()
        ))
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        if let Some(view) = &mut self.view {
            // SAFETY: the view was filled by a successful PyObject_GetBuffer, and Buf is
            // never sent across threads (it is !Send), so the GIL is held here.
            unsafe { ffi::PyBuffer_Release(view) }
        }
    }
}

/// PCM16 input: int16 samples, either borrowed as they are or read from little-endian bytes.
pub enum Pcm<'a> {
    Samples(&'a [i16]),
    Bytes(&'a [u8]),
}

impl Buf {
    /// This buffer as PCM16: int16 arrays as samples, bytes as little-endian pairs.
    pub fn pcm(&self, what: &str) -> PyResult<Pcm<'_>> {
        match self.elem {
            Elem::I16 => Ok(Pcm::Samples(self.i16s())),
            Elem::Bytes => Ok(Pcm::Bytes(self.bytes())),
            _ => Err(self.wrong(what, "int16 samples or PCM16 bytes")),
        }
    }

    /// PCM16 input that must hold whole samples (no odd byte count).
    pub fn whole_pcm(&self, what: &str) -> PyResult<Pcm<'_>> {
        let p = self.pcm(what)?;
        if let Pcm::Bytes(b) = p {
            if b.len() % 2 != 0 {
                return Err(crate::errors::CoreError(voxwire_core::Error::OddLength {
                    len: b.len(),
                })
                .into());
            }
        }
        Ok(p)
    }
}

impl Pcm<'_> {
    /// The samples as a slice: borrowed for int16 input (and for bytes on little-endian
    /// machines when 2-aligned), else converted into `scratch`.
    pub fn samples<'s>(&'s self, scratch: &'s mut Vec<i16>) -> &'s [i16] {
        match self {
            Pcm::Samples(s) => s,
            Pcm::Bytes(b) => {
                let n = b.len() / 2;
                if cfg!(target_endian = "little") && (b.as_ptr() as usize).is_multiple_of(2) {
                    // SAFETY: 2-aligned, n*2 <= len bytes, i16 has no invalid bit patterns,
                    // and little-endian bytes are native samples.
                    return unsafe { std::slice::from_raw_parts(b.as_ptr() as *const i16, n) };
                }
                scratch.resize(n, 0);
                voxwire_core::pcm::le_bytes_to_i16(&b[..2 * n], scratch);
                scratch
            }
        }
    }

    /// The samples as little-endian bytes (only ever borrowed on little-endian machines).
    pub fn le_bytes<'s>(&'s self, scratch: &'s mut Vec<u8>) -> &'s [u8] {
        match self {
            Pcm::Bytes(b) => &b[..b.len() / 2 * 2],
            Pcm::Samples(s) => {
                if cfg!(target_endian = "little") {
                    // SAFETY: any i16 slice is valid as bytes.
                    return unsafe {
                        std::slice::from_raw_parts(s.as_ptr() as *const u8, s.len() * 2)
                    };
                }
                scratch.clear();
                scratch.extend(s.iter().flat_map(|v| v.to_le_bytes()));
                scratch
            }
        }
    }
}
