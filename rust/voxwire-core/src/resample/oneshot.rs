//! Whole signals at once: a one-shot call cut into parts run on scoped threads, each part's
//! stream started mid-signal, bit-identical to one stream.

use super::design::Design;
use super::stream::{check_room, Resampler};
use super::{conv_f32, emit_f32, Quality};
use crate::error::{Error, Result};
use std::sync::{Arc, Mutex};

/// Input samples a part of a split one-shot call takes at least.
pub(super) const MIN_PART: usize = 64 * 1024;

/// Resamples a whole signal (process, then flush) into `out`, which must hold
/// `d.total_outputs(x.len())`; returns how many. With `threads` > 1 and a long enough input
/// the signal is cut into up to `threads` parts run on scoped threads, each part's resampler
/// started mid-stream (`seek`): the output is bit-identical to one thread's, since every
/// output's arithmetic is the same whichever call computes it.
pub fn one_shot_with<T, U>(
    d: &Arc<Design>,
    x: &[T],
    conv: impl Fn(&[T], &mut [f32]) + Sync,
    out: &mut [U],
    emit: impl Fn(&[f32], &mut [U]) + Sync,
    threads: usize,
) -> Result<usize>
where
    T: Sync,
    U: Send,
{
    let total = d.total_outputs(x.len() as u64) as usize;
    check_room(out.len(), total, "one-shot call")?;
    let parts = threads.clamp(1, (x.len() / MIN_PART).max(1));
    // Part i takes inputs [cut[i], cut[i + 1]) and the outputs they complete; the last part
    // also flushes. Each part after the first seeks to its first output.
    let cuts: Vec<usize> = (0..=parts).map(|i| x.len() * i / parts).collect();
    let firsts: Vec<usize> = cuts[..parts]
        .iter()
        .map(|&c| d.outputs_ready(c as u64) as usize)
        .collect();
    let mut streams = Vec::with_capacity(parts);
    for (i, &f) in firsts.iter().enumerate() {
        let mut r = Resampler::with_design(d.clone());
        let from = if i == 0 { Some(0) } else { r.seek(f as u64) };
        match from {
            Some(from) => streams.push((r, from)),
            None => {
                // Too short to split this far: one stream does it all.
                let mut r = Resampler::with_design(d.clone());
                let head = r.process_with(x, &conv, out, &emit)?;
                return Ok(head + r.flush_with(&mut out[head..], &emit)?);
            }
        }
    }
    let mut rest = &mut out[..total];
    let mut slots = Vec::with_capacity(parts);
    for i in 0..parts {
        let end = if i + 1 < parts { firsts[i + 1] } else { total };
        let (head, tail) = rest.split_at_mut(end - firsts[i]);
        slots.push(head);
        rest = tail;
    }
    // Each part's stream, first input and output slot, taken by whichever thread runs it.
    let cells: Vec<_> = streams
        .into_iter()
        .zip(slots)
        .map(|((r, from), o)| Mutex::new(Some((r, from, o))))
        .collect();
    let job = |i: usize| -> Result<()> {
        let taken = cells[i].lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some((mut r, from, o)) = taken else {
            return Ok(()); // already run
        };
        let head = r.process_with(&x[from..cuts[i + 1]], &conv, o, &emit)?;
        if i + 1 == parts {
            r.flush_with(&mut o[head..], &emit)?;
        }
        Ok(())
    };
    std::thread::scope(|sc| {
        let job = &job;
        let mut result = Ok(());
        let mut handles = Vec::with_capacity(parts);
        for i in 1..parts {
            match std::thread::Builder::new().spawn_scoped(sc, move || job(i)) {
                Ok(h) => handles.push(h),
                // No thread to be had: this one does the part.
                Err(_) => result = result.and(job(i)),
            }
        }
        result = result.and(job(0));
        for h in handles {
            result = result.and(h.join().unwrap_or_else(|_| {
                Err(Error::InvalidArgument(
                    "a resampling thread failed".to_owned(),
                ))
            }));
        }
        result
    })?;
    Ok(total)
}

/// One-shot resampling of f32 samples, aligned with the input, `round(n*out/in)` long.
pub fn resample_f32(x: &[f32], in_rate: u32, out_rate: u32, quality: Quality) -> Result<Vec<f32>> {
    let mut r = Resampler::new(in_rate, out_rate, quality)?;
    let mut out = vec![0f32; r.pending_outputs(x.len())];
    r.process_with(x, conv_f32, &mut out, emit_f32)?;
    let mut tail = vec![0f32; r.flush_outputs()];
    r.flush_with(&mut tail, emit_f32)?;
    out.extend_from_slice(&tail);
    Ok(out)
}
