//! Streaming rational polyphase resampling between the common voice rates.
//!
//! Design: for `in_rate -> out_rate` with `g = gcd`, upsample by `L = out/g`, low-pass at the
//! virtual rate `in_rate * L`, and keep every `M = in/g`-th sample. The low-pass is a
//! Kaiser-windowed sinc of odd length, split into `L` phases of `K` taps (zero-padded to a
//! multiple of 8 for SIMD). Output `m` is the filter centred on virtual time `m * M`, so
//! the output is aligned with the input (no leading filter delay) and streaming is simply
//! waiting until the input that output needs has arrived; `delay` says how long that is.
//! The arithmetic is f32 with a fixed summation order, so any chunking of the same input
//! gives bit-identical output, and `flush` completes the stream to `round(n * out / in)`
//! samples.
//!
//! Two kernels. Pairs with `l` and `m` at most 6 (every pair among 8, 16, 24, 32 and 48 kHz
//! and among 11.025, 22.05 and 44.1 kHz) keep their history as `m` residue arrays and run
//! the row kernel (`rows`): 16 outputs of a phase per vector, one FMA per tap, at
//! the CPU's FMA rate. The others (44.1k <-> 16k and the like, up to 441 phases) run the
//! tile kernel (`tile`) over coefficient banks per phase and alignment.
//!
//! The module's parts: `design` (the filter and its schedule), `stream` (a stream's history
//! and output counter, `Resampler`), the `rows` and `tile` kernels (each with its per-ISA
//! variants), `convert` (sample conversions in and out of f32), `oneshot` (whole signals,
//! split over threads) and `multi` (interleaved channels).

mod convert;
mod design;
mod multi;
mod oneshot;
mod rows;
mod stream;
mod tile;

pub use convert::{conv_f32, conv_i16, emit_f32, emit_i16, first_non_finite};
pub use design::Design;
pub use multi::MultiResampler;
pub use oneshot::{one_shot_with, resample_f32};
pub use stream::{check_room, Resampler};

use crate::error::{Error, Result};
use design::gcd;

/// The common voice rates: every pair among them is supported (and measured).
pub const RATES: [u32; 8] = [8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000];

/// Other rates (12 kHz, 96 kHz, 37.8 kHz...) are supported between these bounds, in Hz...
pub const MIN_RATE: u32 = 1000;
pub const MAX_RATE: u32 = 384_000;
/// ...when the pair's ratio reduces to `l / m` with both at most this: it bounds the
/// filter's phases (memory) and the taps per output.
pub const MAX_FACTOR: u64 = 1024;

/// Whether `in_rate -> out_rate` is a pair the resampler designs a filter for.
pub fn supported_pair(in_rate: u32, out_rate: u32) -> bool {
    if RATES.contains(&in_rate) && RATES.contains(&out_rate) {
        return true;
    }
    if ![in_rate, out_rate]
        .iter()
        .all(|r| (MIN_RATE..=MAX_RATE).contains(r))
    {
        return false;
    }
    let g = gcd(in_rate as u64, out_rate as u64);
    out_rate as u64 / g <= MAX_FACTOR && in_rate as u64 / g <= MAX_FACTOR
}

/// A filter preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quality {
    /// At most 2 ms of delay; passband to 0.80 of the lower Nyquist frequency, stopband from
    /// Nyquist, as much attenuation as that length allows (capped at 100 dB).
    LowLatency,
    /// The default: passband to 0.875 of the lower Nyquist frequency, stopband from Nyquist,
    /// 100 dB stopband attenuation (designed; the int16 floor is 96 dB).
    High,
    /// For analysis (voice activity detection), not for listening: flat to 0.5 of the lower
    /// Nyquist frequency, 80 dB stopband from 1.5 of it, so the lower half of the output band
    /// is clean while its upper half may hold aliases or images. About a tenth of the taps
    /// of "hq".
    Analysis,
}

impl Quality {
    /// Parses a preset name: `"lowlat"` / `"low_latency"` or `"hq"` / `"high"`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "lowlat" | "low_latency" => Ok(Quality::LowLatency),
            "hq" | "high" => Ok(Quality::High),
            "vad" | "analysis" => Ok(Quality::Analysis),
            _ => Err(Error::InvalidArgument(format!(
                "unknown quality {name:?}: use \"hq\", \"lowlat\" or \"vad\""
            ))),
        }
    }
}

#[cfg(test)]
mod tests;
