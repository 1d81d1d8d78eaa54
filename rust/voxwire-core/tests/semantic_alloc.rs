//! The semantic end-of-turn rule allocates nothing per chunk in steady state: once a few
//! turns at least as long as the later ones have gone through in chunks like the later ones
//! (the buffers have grown), pushing turns through `TurnDetector` and `InputPipeline` in
//! semantic mode allocates nothing, pitch tracking and judgements included (silence mode
//! alongside, as the reference).

mod common;
use common::allocations;

use voxwire_core::pipeline::{Encoding, InputConfig, InputPipeline};
use voxwire_core::vad::turn::{Eagerness, EndMode, TurnConfig, TurnDetector, TurnEvent};
use voxwire_core::vad::Vad;

const WARM_S: usize = 12;

/// Turns of a gliding harmonic voice (1.2 s, then 2.5 s of quiet noise), `n` samples; the
/// turns that begin in the first `warm` samples have 1.4 s of voice, so that the warm-up's
/// turns are longer than the later ones (the turn's end, and so its length, varies by a few
/// frames from turn to turn).
fn speech(n: usize, rate: u32, warm: usize) -> Vec<i16> {
    let mut r: u32 = 1;
    let mut ph = 0f32;
    let period = rate as usize * 37 / 10;
    (0..n)
        .map(|i| {
            r = r.wrapping_mul(1664525).wrapping_add(1013904223);
            let noise = ((r >> 20) as f32 - 2048.0) / 64.0;
            let k = i % period;
            let voice = if i - k < warm { 1.4 } else { 1.2 };
            if k < (rate as f32 * voice) as usize {
                let f0 = 150.0 - 40.0 * k as f32 / (rate as f32 * voice);
                ph += 2.0 * std::f32::consts::PI * f0 / rate as f32;
                let v: f32 = (1..8).map(|h| (ph * h as f32).sin() / h as f32).sum();
                (v * 5000.0 + noise) as i16
            } else {
                noise as i16
            }
        })
        .collect()
}

#[test]
fn no_allocation_per_chunk_in_semantic_mode() {
    for eagerness in [
        EndMode::Silence,
        EndMode::Semantic(Eagerness::High),
        EndMode::Semantic(Eagerness::Low),
    ] {
        let cfg = TurnConfig {
            end_mode: eagerness,
            ..TurnConfig::default()
        };
        let x = speech(16000 * 30, 16000, 16000 * WARM_S);
        let mut td = TurnDetector::new(Vad::new("spectral", 16000, 10, 0).unwrap(), cfg).unwrap();
        let mut events: Vec<TurnEvent> = Vec::with_capacity(16);
        let (warm, rest) = x.split_at(16000 * WARM_S);
        for c in warm.chunks(333) {
            td.push(c, &mut events).unwrap();
            events.clear();
        }
        let before = allocations();
        for c in rest.chunks(333) {
            td.push(c, &mut events).unwrap();
            if events.len() > 8 {
                events.clear();
            }
        }
        assert_eq!(allocations(), before, "{eagerness:?}");

        let mut p = InputPipeline::new(InputConfig {
            in_rate: 24000,
            encoding: Encoding::Raw,
            turn: cfg,
            // The synthetic voiced tones are speech to the spectral engine (not to Silero,
            // the default): the detector below uses it too.
            engine: "spectral".into(),
            ..InputConfig::default()
        })
        .unwrap();
        let y = speech(24000 * 30, 24000, 24000 * WARM_S);
        let bytes: Vec<u8> = y.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut stopped = 0;
        let (warm, rest) = bytes.split_at(2 * 24000 * WARM_S);
        for c in warm.chunks(960) {
            p.push(c, &mut events).unwrap();
            events.clear();
        }
        let before = allocations();
        for c in rest.chunks(960) {
            p.push(c, &mut events).unwrap();
            stopped += events
                .iter()
                .filter(|e| matches!(e, TurnEvent::SpeechStopped { .. }))
                .count();
            events.clear();
        }
        assert_eq!(allocations(), before, "pipeline, {eagerness:?}");
        assert!(stopped >= 3, "{stopped}");
    }
}
