//! The one error type of the core.

use std::fmt;

/// Everything that can go wrong in the core. Each variant maps to one Python exception class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Base64 input that is not canonical standard-alphabet base64 with padding.
    Base64 {
        /// Byte offset of the first offending character (or of the end, for a length problem).
        offset: usize,
        /// What is wrong there.
        reason: &'static str,
    },
    /// A PCM16 byte stream whose length is odd, so it cannot hold whole samples.
    OddLength {
        /// The byte count that was seen.
        len: usize,
    },
    /// An argument outside its documented range.
    InvalidArgument(String),
    /// The input pipeline's buffer would hold more than its `max_buffer_ms`: commit or
    /// clear it first.
    BufferFull {
        /// The buffer's capacity in milliseconds.
        max_ms: u32,
    },
}

/// Result alias for the core.
pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Base64 { offset, reason } => {
                write!(f, "invalid base64 at offset {offset}: {reason}")
            }
            Error::OddLength { len } => {
                write!(f, "PCM16 data must have an even number of bytes, got {len}")
            }
            Error::InvalidArgument(msg) => f.write_str(msg),
            Error::BufferFull { max_ms } => write!(
                f,
                "the input buffer holds at most {max_ms} ms; commit or clear it first"
            ),
        }
    }
}

impl std::error::Error for Error {}
