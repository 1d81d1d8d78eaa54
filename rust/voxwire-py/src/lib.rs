//! voxwire._voxwire: the only PyO3 code of voxwire. Thin wrappers over voxwire-core that read
//! any buffer without copying, write straight into the numpy arrays or bytes they return,
//! map the core's one error type once (see `errors`), and release the GIL for bulk work.

mod buffer;
mod errors;
mod framer;
mod jitter;
mod pcm;
mod pipeline;
mod resample;
mod turn_config;
mod vad;

use pyo3::prelude::*;

/// The compiled core of voxwire. Use the public `voxwire` package, which re-exports it.
#[pymodule]
fn _voxwire(m: &Bound<'_, PyModule>) -> PyResult<()> {
    pcm::register(m)?;
    resample::register(m)?;
    vad::register(m)?;
    vad::register_turn(m)?;
    m.add_class::<turn_config::TurnConfig>()?;
    pipeline::register(m)?;
    m.add_class::<framer::Framer>()?;
    m.add_class::<jitter::JitterBuffer>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
