//! voxwire-core: the pure-Rust audio core of voxwire.
//!
//! Nothing here knows about Python. Every routine works on caller-provided slices so that the
//! binding crate (and any Rust user) decides where memory lives; allocating conveniences are
//! thin layers on top. Errors are one type, [`Error`], which the binding crate maps once.

pub mod b64;
pub mod error;
pub mod frame;
pub mod g711;
pub mod jitter;
pub mod limits;

pub mod pcm;
pub mod pipeline;
pub mod resample;
pub mod vad;

pub use error::{Error, Result};
pub use frame::Framer;
pub use jitter::{JitterBuffer, JitterConfig, JitterStats};
