//! The one place where core errors become Python exceptions. The classes live in
//! `voxwire.errors` (Python), so they can inherit from both `VoxwireError` and the builtin
//! `ValueError`/`TypeError`.

use pyo3::prelude::*;
use voxwire_core::Error;

pyo3::import_exception!(voxwire.errors, InvalidInputError);
pyo3::import_exception!(voxwire.errors, OddLengthError);
pyo3::import_exception!(voxwire.errors, Base64DecodeError);
pyo3::import_exception!(voxwire.errors, DTypeError);
pyo3::import_exception!(voxwire.errors, BufferFullError);
pyo3::import_exception!(voxwire.errors, InternalError);

/// A core error on its way to Python; `?` converts it.
pub struct CoreError(pub Error);

impl From<Error> for CoreError {
    fn from(e: Error) -> Self {
        CoreError(e)
    }
}

impl From<CoreError> for PyErr {
    fn from(e: CoreError) -> PyErr {
        let msg = e.0.to_string();
        match e.0 {
            Error::Base64 { offset, .. } => Base64DecodeError::new_err((msg, offset)),
            Error::OddLength { .. } => OddLengthError::new_err(msg),
            Error::InvalidArgument(_) => InvalidInputError::new_err(msg),
            Error::BufferFull { max_ms } => BufferFullError::new_err((msg, max_ms)),
        }
    }
}

/// Core results convert with `.map_err(CoreError)?`; this shortens that to `.py()?`.
pub trait IntoPyResult<T> {
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for voxwire_core::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(|e| CoreError(e).into())
    }
}

/// A wrong type or dtype.
pub fn dtype_error(msg: String) -> PyErr {
    DTypeError::new_err(msg)
}

/// Runs the body of a Python-facing function, turning a panic (a bug: no input should cause
/// one) into :class:`voxwire.errors.InternalError`, an ``Exception`` that ``except
/// Exception`` catches, instead of pyo3's ``PanicException`` (a ``BaseException``). The
/// release profile keeps `panic = "unwind"` for this (with `panic = "abort"` a panic would end
/// the process). An object whose method panicked may be left in any state: reset or drop it.
#[inline]
pub fn guard<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(InternalError::new_err(format!(
                "internal error in voxwire's Rust core (please report it): {what}"
            )))
        }
    }
}

/// Reads a Python ``int`` argument as an ``i64``, saturated: an int beyond the 64-bit range
/// becomes ``i64::MIN`` or ``i64::MAX``, which the range checks then refuse with
/// :class:`voxwire.errors.InvalidInputError` (rather than pyo3's ``OverflowError``). Other
/// types raise ``TypeError`` as before. For `#[pyo3(from_py_with = sat)]`.
pub fn sat(obj: &Bound<'_, PyAny>) -> PyResult<i64> {
    match obj.extract::<i64>() {
        Ok(v) => Ok(v),
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyOverflowError>(obj.py()) => {
            Ok(if obj.lt(0)? { i64::MIN } else { i64::MAX })
        }
        Err(e) => Err(e),
    }
}

/// [`sat`] for an optional argument (``None`` stays ``None``).
pub fn sat_opt(obj: &Bound<'_, PyAny>) -> PyResult<Option<i64>> {
    if obj.is_none() {
        Ok(None)
    } else {
        sat(obj).map(Some)
    }
}
