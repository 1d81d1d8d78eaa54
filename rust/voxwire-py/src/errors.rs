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
