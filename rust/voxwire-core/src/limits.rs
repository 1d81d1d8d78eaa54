//! The documented bounds of every size and time a constructor or call takes.
//!
//! Each constructor checks its arguments against these before it allocates anything, so a
//! hostile or mistaken argument is an [`crate::Error::InvalidArgument`], never a huge
//! allocation (which aborts the process) or a loop that does not end. The Python classes
//! take the same bounds (and document them).

/// Lowest sample rate of a voice activity detector ([`crate::vad::Vad`]), turn detector or
/// input pipeline's VAD, in Hz.
pub const MIN_VAD_RATE: u32 = 8_000;
/// Highest sample rate of a voice activity detector, in Hz.
pub const MAX_VAD_RATE: u32 = 192_000;
/// Longest VAD frame, in ms.
pub const MAX_FRAME_MS: u32 = 1_000;
/// Largest frame of a [`crate::Framer`], in samples (8 MiB of int16; 87 s at 48 kHz).
pub const MAX_FRAME_SAMPLES: usize = 1 << 22;
/// Longest turn-detection time (`prefix_padding_ms`, `silence_duration_ms`, `start_ms`),
/// in ms.
pub const MAX_TURN_MS: u32 = 60_000;
/// Largest `max_buffer_ms` of an input pipeline (one hour), in ms.
pub const MAX_INPUT_BUFFER_MS: u32 = 3_600_000;
/// Largest `max_ms` (and so `prebuffer_ms`) of a jitter buffer (ten minutes), in ms.
pub const MAX_JITTER_MS: u32 = 600_000;
/// Largest absolute timestamp a jitter buffer takes, in ms: 10^13 ms is about 317 years, so
/// any monotonic clock and the Unix epoch in ms (1.7e12 in 2024) fit, and at that magnitude
/// an f64 still resolves 2 microseconds.
pub const MAX_TIME_MS: f64 = 1e13;

/// Checks that `v` is within `lo..=hi`; `what` names it in the error.
pub(crate) fn check_range<T>(v: T, lo: T, hi: T, what: &str, unit: &str) -> crate::Result<T>
where
    T: PartialOrd + std::fmt::Display + Copy,
{
    if v < lo || v > hi {
        return Err(crate::Error::InvalidArgument(format!(
            "{what} must be between {lo} and {hi}{unit}, got {v}{unit}"
        )));
    }
    Ok(v)
}
