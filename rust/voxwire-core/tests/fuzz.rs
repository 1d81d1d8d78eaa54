//! Randomized tests of every entry point the Python API reaches (a proptest harness that runs
//! on stable Rust, in `cargo test`): random bytes, sizes, chunkings and parameters, asserting
//! that nothing panics (or hangs) and that the documented invariants hold.
//!
//! Cases per target: `VOXWIRE_FUZZ_CASES` (default 64, a few seconds for all targets in a
//! debug build; the heavy targets, which build filters or VADs per case, run a fraction).
//! Each target prints its count. The long run:
//!
//! ```text
//! VOXWIRE_FUZZ_CASES=200000 cargo test --release -p voxwire-core --test fuzz -- --nocapture
//! ```
//!
//! A failure prints the shrunk input; `PROPTEST_RNG_SEED` is not used, every run draws new
//! inputs.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::mem::MaybeUninit;
use std::time::Instant;
use voxwire_core::jitter::{JitterBuffer, JitterConfig};
use voxwire_core::pipeline::{Encoding, Format, InputConfig, InputPipeline, OutputPipeline};
use voxwire_core::resample::MultiResampler;
use voxwire_core::resample::{self as rs, Quality, Resampler, RATES};
use voxwire_core::vad::turn::{Eagerness, EndMode, TurnConfig, TurnDetector, TurnEvent};
use voxwire_core::vad::webrtc::WebRtcVad;
use voxwire_core::vad::Vad;
use voxwire_core::{b64, g711, pcm, Error, Framer};

/// Cases for a target: `VOXWIRE_FUZZ_CASES` divided by `cost` (at least 8).
fn cases(cost: u32) -> u32 {
    let base = std::env::var("VOXWIRE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(64);
    (base / cost).max(8)
}

thread_local! {
    /// Cases of the running target that got past construction to the invariants.
    static DEEP: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts a case that reached the invariants (not refused at construction).
fn deep() {
    DEEP.with(|d| d.set(d.get() + 1));
}

fn run<S: Strategy>(
    name: &str,
    cost: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let n = cases(cost);
    let mut runner = TestRunner::new(Config {
        cases: n,
        failure_persistence: None,
        ..Config::default()
    });
    let t = Instant::now();
    DEEP.with(|d| d.set(0));
    if let Err(e) = runner.run(&strategy, test) {
        panic!("fuzz target {name} failed: {e}");
    }
    let deep = DEEP.with(|d| d.get());
    eprintln!(
        "fuzz {name}: {n} cases passed ({deep} past construction) in {:.1?}",
        t.elapsed()
    );
}

fn quality() -> impl Strategy<Value = Quality> {
    prop_oneof![
        Just(Quality::High),
        Just(Quality::LowLatency),
        Just(Quality::Analysis)
    ]
}

fn rate() -> impl Strategy<Value = u32> {
    proptest::sample::select(RATES.to_vec())
}

/// Cut points that split `n` items into random chunks (each 0..=max long).
fn chunks(n: usize, cuts: &[usize]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < n {
        let len = cuts
            .get(i % cuts.len().max(1))
            .copied()
            .unwrap_or(n)
            .min(n - at);
        out.push((at, at + len));
        at += len;
        i += 1;
        if i > 4 * n + 8 {
            out.push((at, n));
            break;
        }
    }
    out
}

fn encode(x: &[u8]) -> Vec<u8> {
    let mut t = vec![0u8; b64::encoded_len(x.len())];
    b64::encode_into(x, &mut t).unwrap();
    t
}

/// Base64-looking text: mostly alphabet characters and '=', sometimes anything.
fn b64ish() -> impl Strategy<Value = Vec<u8>> {
    let ch = prop_oneof![
        8 => proptest::sample::select(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".to_vec()
        ),
        2 => Just(b'='),
        1 => any::<u8>(),
    ];
    proptest::collection::vec(ch, 0..300)
}

#[test]
fn fuzz_b64_roundtrip() {
    run(
        "b64 roundtrip",
        1,
        proptest::collection::vec(any::<u8>(), 0..3000),
        |x| {
            deep();
            let t = encode(&x);
            prop_assert_eq!(t.len(), x.len().div_ceil(3) * 4);
            prop_assert_eq!(b64::decoded_len(&t).unwrap(), x.len());
            let mut back = vec![0u8; x.len()];
            b64::decode_into(&t, &mut back).unwrap();
            prop_assert_eq!(&back, &x);
            // Uninitialised output (the Python bytes path) gives the same text.
            let mut u = vec![MaybeUninit::new(0xAAu8); t.len()];
            b64::encode_uninit(&x, &mut u).unwrap();
            let same = u
                .iter()
                .zip(&t)
                .all(|(a, &b)| unsafe { a.assume_init() } == b);
            prop_assert!(same);
            Ok(())
        },
    );
}

#[test]
fn fuzz_b64_decode_strict() {
    run("b64 strict decode", 1, b64ish(), |t| {
        deep();
        match b64::decode(&t) {
            // Strict: the only text that decodes is the canonical encoding of its bytes.
            Ok(v) => prop_assert_eq!(encode(&v), t),
            Err(Error::Base64 { offset, .. }) => prop_assert!(offset <= t.len()),
            Err(e) => prop_assert!(false, "unexpected error {e:?}"),
        }
        Ok(())
    });
}

#[test]
fn fuzz_b64_mutated() {
    // Valid text with a few characters changed (the padding flips of a racing writer).
    let s = (
        proptest::collection::vec(any::<u8>(), 1..400),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    );
    run("b64 mutated", 1, s, |(x, muts)| {
        deep();
        let mut t = encode(&x);
        for (i, c) in muts {
            let i = i.index(t.len());
            t[i] = [b'=', b'A', b'/', c][c as usize % 4];
        }
        // A wrong-sized output is an error, never a panic.
        let mut out = vec![0u8; x.len()];
        let r = b64::decode_into(&t, &mut out);
        if r.is_ok() {
            prop_assert_eq!(encode(&out), t.clone());
        }
        if let Ok(v) = b64::decode(&t) {
            prop_assert_eq!(encode(&v), t);
        }
        Ok(())
    });
}

#[test]
fn fuzz_g711() {
    run(
        "g711",
        1,
        (
            proptest::collection::vec(any::<i16>(), 0..2000),
            proptest::collection::vec(any::<u8>(), 0..2000),
        ),
        |(x, codes)| {
            deep();
            for (enc, dec) in [
                (
                    g711::ulaw_encode as fn(&[i16], &mut [u8]),
                    g711::ulaw_decode as fn(&[u8], &mut [i16]),
                ),
                (g711::alaw_encode, g711::alaw_decode),
            ] {
                let mut c = vec![0u8; x.len()];
                enc(&x, &mut c);
                let mut y = vec![0i16; x.len()];
                dec(&c, &mut y);
                // Decoding then encoding a decoded value is a fixed point.
                let mut c2 = vec![0u8; x.len()];
                enc(&y, &mut c2);
                let mut y2 = vec![0i16; x.len()];
                dec(&c2, &mut y2);
                prop_assert_eq!(&y, &y2);
                // The quantization error is within the largest G.711 step (1/16 of the level).
                for (&a, &b) in x.iter().zip(&y) {
                    let err = (i32::from(a) - i32::from(b)).abs();
                    prop_assert!(err <= (i32::from(a).abs() / 16).max(16) + 64, "{a} -> {b}");
                }
                let mut z = vec![0i16; codes.len()];
                dec(&codes, &mut z);
                let mut c3 = vec![0u8; codes.len()];
                enc(&z, &mut c3);
                let mut z2 = vec![0i16; codes.len()];
                dec(&c3, &mut z2);
                prop_assert_eq!(&z, &z2);
            }
            Ok(())
        },
    );
}

#[test]
fn fuzz_pcm() {
    let f = prop_oneof![
        8 => -2.0f32..2.0,
        1 => any::<f32>(),
        1 => Just(f32::NAN),
        1 => Just(f32::INFINITY),
        1 => Just(f32::NEG_INFINITY),
    ];
    let s = (
        proptest::collection::vec(any::<i16>(), 0..2000),
        proptest::collection::vec(f, 0..2000),
        proptest::collection::vec(any::<u8>(), 0..2000),
        prop_oneof![any::<f64>(), -120.0f64..40.0],
    );
    run("pcm", 1, s, |(x, f, bytes, db)| {
        deep();
        let mut fl = vec![0f32; x.len()];
        pcm::i16_to_f32(&x, &mut fl);
        let mut back = vec![0i16; x.len()];
        pcm::f32_to_i16(&fl, &mut back);
        prop_assert_eq!(&back, &x);
        let mut q = vec![0i16; f.len()];
        pcm::f32_to_i16(&f, &mut q);
        for (&v, &s) in f.iter().zip(&q) {
            if v.is_nan() {
                prop_assert_eq!(s, 0);
            } else {
                let want = (f64::from(v) * 32768.0)
                    .round_ties_even()
                    .clamp(-32768.0, 32767.0);
                prop_assert_eq!(f64::from(s), want, "{}", v);
            }
        }
        let n = bytes.len() / 2;
        let mut le = vec![0i16; n];
        pcm::le_bytes_to_i16(&bytes[..2 * n], &mut le);
        for (i, &s) in le.iter().enumerate() {
            prop_assert_eq!(s, i16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]));
        }
        let mut mono = vec![0i16; x.len() / 2];
        let r = pcm::downmix_stereo(&x, &mut mono);
        if x.len() % 2 == 1 {
            prop_assert!(r.is_err());
        } else {
            prop_assert!(r.is_ok());
            for (i, &m) in mono.iter().enumerate() {
                let want = (i32::from(x[2 * i]) + i32::from(x[2 * i + 1])) / 2;
                prop_assert_eq!(i32::from(m), want);
            }
        }
        match pcm::db_to_factor(db) {
            Ok(g) => {
                let mut y = vec![0i16; x.len()];
                pcm::apply_gain(&x, g, &mut y);
                if db == 0.0 {
                    prop_assert_eq!(&y, &x);
                }
            }
            Err(_) => prop_assert!(!db.is_finite()),
        }
        Ok(())
    });
}

#[test]
fn fuzz_framer() {
    let s = (
        prop_oneof![
            1usize..8,
            8usize..2000,
            Just(0usize),
            Just(usize::MAX),
            any::<usize>()
        ],
        proptest::collection::vec(any::<u8>(), 0..6000),
        proptest::collection::vec(0usize..1500, 1..12),
        proptest::collection::vec(any::<bool>(), 1..8),
    );
    run("framer", 1, s, |(frame, data, cuts, as_samples)| {
        let Ok(mut f) = Framer::new(frame) else {
            prop_assert!(frame == 0 || frame > voxwire_core::limits::MAX_FRAME_SAMPLES);
            return Ok(());
        };
        deep();
        let mut got: Vec<i16> = Vec::new();
        for (k, (a, b)) in chunks(data.len(), &cuts).into_iter().enumerate() {
            let part = &data[a..b];
            // Samples may only be pushed when no half sample is pending.
            let samples =
                as_samples[k % as_samples.len()] && !f.has_pending_byte() && part.len() % 2 == 0;
            let (want, done) = if samples {
                let s: Vec<i16> = part
                    .chunks_exact(2)
                    .map(|c| i16::from_le_bytes([c[0], c[1]]))
                    .collect();
                let want = f.frames_for_samples(s.len());
                let mut out = vec![0i16; want * frame];
                (want, f.push_samples(&s, &mut out).map(|d| (d, out)))
            } else {
                let want = f.frames_for_bytes(part.len());
                let mut out = vec![0i16; want * frame];
                (want, f.push_bytes(part, &mut out).map(|d| (d, out)))
            };
            let (d, out) = done.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            prop_assert_eq!(d, want);
            got.extend_from_slice(&out);
        }
        prop_assert_eq!(f.has_pending_byte(), data.len() % 2 == 1);
        if !f.has_pending_byte() {
            let mut tail = vec![0i16; frame];
            let n = f.flush(false, &mut tail).unwrap();
            got.extend_from_slice(&tail[..n]);
            let want: Vec<i16> = data
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
            prop_assert_eq!(got, want);
        } else {
            prop_assert!(f.flush(false, &mut vec![0i16; frame]).is_err());
        }
        Ok(())
    });
}

#[test]
fn fuzz_resampler_streaming() {
    let s = (
        rate(),
        rate(),
        quality(),
        proptest::collection::vec(any::<i16>(), 0..6000),
        proptest::collection::vec(0usize..2500, 1..10),
        1usize..4,
    );
    run(
        "resampler streaming",
        4,
        s,
        |(a, b, q, x, cuts, threads)| {
            deep();
            let mut r = Resampler::new(a, b, q).unwrap();
            let mut got = Vec::new();
            for (lo, hi) in chunks(x.len(), &cuts) {
                let want = r.pending_outputs(hi - lo);
                let mut out = vec![0i16; want];
                let n = r
                    .process_with(&x[lo..hi], rs::conv_i16, &mut out, rs::emit_i16)
                    .unwrap();
                prop_assert_eq!(n, want);
                got.extend_from_slice(&out);
            }
            let mut tail = vec![0i16; r.flush_outputs()];
            r.flush_with(&mut tail, rs::emit_i16).unwrap();
            got.extend_from_slice(&tail);
            // round(n * b / a), ties to even.
            let total = r.design().total_outputs(x.len() as u64) as usize;
            let exact = x.len() as f64 * f64::from(b) / f64::from(a);
            prop_assert!((total as f64 - exact).abs() <= 0.5 + 1e-9);
            prop_assert_eq!(got.len(), total);
            // Streaming is bit-identical to one shot, whatever the thread count.
            let d = rs::Design::shared(a, b, q).unwrap();
            let mut one = vec![0i16; total];
            rs::one_shot_with(&d, &x, rs::conv_i16, &mut one, rs::emit_i16, threads).unwrap();
            prop_assert_eq!(&got, &one);
            // Too small an output is an error, not a panic.
            if total > 0 {
                let mut r2 = Resampler::new(a, b, q).unwrap();
                let mut small = vec![0i16; r2.pending_outputs(x.len()).saturating_sub(1)];
                if r2.pending_outputs(x.len()) > 0 {
                    prop_assert!(r2
                        .process_with(&x, rs::conv_i16, &mut small, rs::emit_i16)
                        .is_err());
                }
            }
            Ok(())
        },
    );
}

#[test]
fn fuzz_resampler_float_and_channels() {
    let s = (
        rate(),
        rate(),
        quality(),
        1usize..5,
        proptest::collection::vec(-1.0e4f32..1.0e4, 0..4000),
        proptest::collection::vec(0usize..1500, 1..8),
    );
    run(
        "resampler float/channels",
        4,
        s,
        |(a, b, q, ch, x, cuts)| {
            deep();
            let mut m = MultiResampler::new(a, b, q, ch.max(2)).unwrap();
            let ch = m.channels();
            let mut got: Vec<f32> = Vec::new();
            for (lo, hi) in chunks(x.len(), &cuts) {
                match m.pending_outputs(hi - lo) {
                    Err(_) => prop_assert!((hi - lo) % ch != 0),
                    Ok(want) => {
                        let mut out = vec![0f32; want];
                        let n = m
                            .process_with(&x[lo..hi], rs::conv_f32, &mut out, rs::emit_f32)
                            .unwrap();
                        prop_assert_eq!(n, want);
                        got.extend_from_slice(&out);
                    }
                }
            }
            let mut tail = vec![0f32; m.flush_outputs()];
            m.flush_with(&mut tail, rs::emit_f32).unwrap();
            got.extend_from_slice(&tail);
            prop_assert_eq!(got.len() % ch, 0);
            // Finite input of bounded size gives finite output.
            prop_assert!(got.iter().all(|v| v.is_finite()));
            Ok(())
        },
    );
}

/// A VAD configuration: mostly valid ones, sometimes anything.
fn vad_cfg() -> impl Strategy<Value = (&'static str, u32, u32, i64)> {
    let engine = prop_oneof![
        3 => Just("energy"),
        4 => Just("spectral"),
        3 => Just("webrtc"),
        1 => Just("bogus"),
    ];
    let rate = prop_oneof![
        6 => proptest::sample::select(vec![8000u32, 16000, 24000, 32000, 44100, 48000]),
        1 => 8000u32..=192_000,
        1 => any::<u32>(),
    ];
    let ms = prop_oneof![
        6 => proptest::sample::select(vec![10u32, 20, 30]),
        2 => 1u32..=100,
        1 => any::<u32>(),
    ];
    let mode = prop_oneof![4 => 0i64..4, 1 => any::<i64>()];
    (engine, rate, ms, mode)
}

#[test]
fn fuzz_vad() {
    let s = (
        vad_cfg(),
        proptest::collection::vec(any::<i16>(), 0..5000),
        0.0f32..1.0,
    );
    run("vad", 4, s, |((engine, rate, ms, mode), x, gain)| {
        let v = Vad::new(engine, rate, ms, mode);
        let Ok(mut v) = v else {
            return Ok(());
        };
        deep();
        let frame = v.frame_samples();
        prop_assert_eq!(frame as u64, u64::from(rate) * u64::from(ms) / 1000);
        let x: Vec<i16> = x.iter().map(|&s| (f32::from(s) * gain) as i16).collect();
        let mut out = vec![false; x.len() / frame];
        prop_assert_eq!(v.classify(&x, &mut out).unwrap(), x.len() / frame);
        for f in x.chunks(frame) {
            match v.probability(f) {
                Ok(p) => {
                    prop_assert_eq!(f.len(), frame);
                    prop_assert!((0.0..=1.0).contains(&p), "{}", p);
                }
                Err(_) => prop_assert!(f.len() != frame),
            }
        }
        let mut w = v.fresh().unwrap();
        prop_assert_eq!(w.frame_samples(), frame);
        prop_assert!(w.is_speech(&x[..x.len().min(frame)]).is_ok() == (x.len() >= frame));
        Ok(())
    });
}

#[test]
fn fuzz_webrtc_vad() {
    let s = (
        any::<i64>(),
        prop_oneof![
            proptest::sample::select(vec![8000i64, 16000, 32000, 48000]),
            any::<i64>()
        ],
        prop_oneof![
            proptest::sample::select(vec![80usize, 160, 240, 320, 480, 640, 960, 1440]),
            0usize..3000
        ],
        any::<u64>(),
    );
    run("webrtc vad", 2, s, |(mode, rate, len, seed)| {
        let Ok(mut v) = WebRtcVad::new(mode % 5) else {
            prop_assert!(!(0..=3).contains(&(mode % 5)));
            return Ok(());
        };
        let mut s = seed;
        let x: Vec<i16> = (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (s >> 48) as i16
            })
            .collect();
        deep();
        let ok = WebRtcVad::valid_rate_and_frame_length(rate, len);
        for _ in 0..3 {
            prop_assert_eq!(v.process(rate, &x).is_ok(), ok);
        }
        prop_assert!(v.set_mode(mode).is_ok() == (0..=3).contains(&mode));
        Ok(())
    });
}

#[test]
fn fuzz_turn_detector() {
    let ms = || prop_oneof![12 => 0u32..2000, 1 => any::<u32>()];
    let unit = || prop_oneof![12 => 0.0f32..=1.0, 1 => any::<f32>()];
    let s = (
        vad_cfg(),
        (
            unit(),
            unit(),
            ms(),
            ms(),
            ms(),
            prop_oneof![8 => 0.0f32..60.0, 1 => any::<f32>()],
            0usize..4,
            ms(),
        ),
        proptest::collection::vec((any::<i16>(), 0usize..2000), 0..12),
    );
    run(
        "turn detector",
        4,
        s,
        |((engine, rate, fms, mode), c, bursts)| {
            let cfg = TurnConfig {
                threshold: c.0,
                min_volume: c.1,
                prefix_padding_ms: c.2,
                silence_duration_ms: c.3,
                start_ms: c.4,
                end_gate_db: c.5,
                end_mode: [
                    EndMode::Silence,
                    EndMode::Semantic(Eagerness::Low),
                    EndMode::Semantic(Eagerness::Medium),
                    EndMode::Semantic(Eagerness::High),
                ][c.6],
                vad_reset_ms: c.7,
            };
            let Ok(vad) = Vad::new(engine, rate, fms, mode) else {
                return Ok(());
            };
            let Ok(mut t) = TurnDetector::new(vad, cfg) else {
                prop_assert!(cfg.validate().is_err());
                return Ok(());
            };
            deep();
            let mut events = Vec::new();
            let mut pushed = 0u64;
            for (level, n) in bursts {
                // Loud bursts and silences, pushed in two uneven pieces.
                let x: Vec<i16> = (0..n)
                    .map(|i| if i % 7 < 3 { level } else { level / 3 })
                    .collect();
                let cut = n / 3;
                t.push(&x[..cut], &mut events).unwrap();
                t.push(&x[cut..], &mut events).unwrap();
                pushed += n as u64;
            }
            // Events alternate, starting with a start, and their times do not go backwards.
            let mut last = 0;
            for (i, e) in events.iter().enumerate() {
                match *e {
                    TurnEvent::SpeechStarted { audio_start_ms } => {
                        prop_assert_eq!(i % 2, 0);
                        prop_assert!(audio_start_ms >= last);
                        last = audio_start_ms;
                    }
                    TurnEvent::SpeechStopped {
                        audio_end_ms,
                        emitted_at_ms,
                    } => {
                        prop_assert_eq!(i % 2, 1);
                        prop_assert!(audio_end_ms >= last && emitted_at_ms >= audio_end_ms);
                        last = audio_end_ms;
                    }
                }
            }
            prop_assert!(t.position_ms() <= pushed * 1000 / u64::from(rate));
            t.reset().unwrap();
            prop_assert_eq!(t.position_ms(), 0);
            Ok(())
        },
    );
}

#[derive(Debug, Clone)]
enum JOp {
    Push(Vec<i16>, f64),
    PushBytes(Vec<u8>, f64),
    Pop(f64),
    MarkEnd,
    Clear,
}

/// A time step: mostly forward by a few ms, sometimes anything.
fn dt() -> impl Strategy<Value = f64> {
    prop_oneof![
        20 => 0.0f64..40.0,
        2 => 0.0f64..2000.0,
        1 => any::<f64>(),
        1 => Just(f64::NAN),
        1 => Just(1e18),
        1 => Just(-50.0),
    ]
}

fn jop() -> impl Strategy<Value = JOp> {
    prop_oneof![
        4 => (proptest::collection::vec(any::<i16>(), 0..3000), dt()).prop_map(|(x, t)| JOp::Push(x, t)),
        1 => (proptest::collection::vec(any::<u8>(), 0..3001), dt()).prop_map(|(x, t)| JOp::PushBytes(x, t)),
        8 => dt().prop_map(JOp::Pop),
        1 => Just(JOp::MarkEnd),
        1 => Just(JOp::Clear),
    ]
}

#[test]
fn fuzz_jitter_buffer() {
    let cfg = (
        prop_oneof![4 => rate(), 1 => any::<u32>()],
        prop_oneof![4 => proptest::sample::select(vec![10u32, 20, 5]), 1 => any::<u32>()],
        prop_oneof![4 => 0u32..500, 1 => any::<u32>()],
        any::<bool>(),
        prop_oneof![4 => 100u32..5000, 1 => any::<u32>()],
    );
    let s = (cfg, proptest::collection::vec(jop(), 0..200));
    run(
        "jitter buffer",
        2,
        s,
        |((sr, fms, pre, adaptive, max), ops)| {
            let cfg = JitterConfig {
                sample_rate: sr,
                frame_ms: fms,
                prebuffer_ms: pre,
                adaptive,
                max_ms: max,
                min_start_ms: None,
            };
            let Ok(mut jb) = JitterBuffer::new(cfg) else {
                return Ok(());
            };
            deep();
            let frame = jb.frame_samples();
            let mut now = 0.0f64;
            let mut pushed = 0u64;
            let mut out = vec![0i16; frame];
            let mut nonzero_out = 0u64;
            let mut last: Option<f64> = None;
            // A time that is fine: finite, within the bound, not backwards.
            let valid = |t: f64, last: Option<f64>| {
                t.is_finite() && t.abs() <= 1e13 && last.is_none_or(|l| t >= l)
            };
            for op in ops {
                let (r, t) = match op {
                    JOp::Push(x, d) => {
                        let t = now + d;
                        let r = jb.push(&x, t);
                        if r.is_ok() {
                            pushed += x.len() as u64;
                        }
                        (r, t)
                    }
                    JOp::PushBytes(x, d) => {
                        let t = now + d;
                        let r = jb.push_bytes(&x, t);
                        if r.is_ok() {
                            pushed += x.len() as u64 / 2;
                        }
                        if x.len() % 2 == 1 {
                            prop_assert!(r.is_err());
                            continue;
                        }
                        (r, t)
                    }
                    JOp::Pop(d) => {
                        let t = now + d;
                        let r = jb.pop(t, &mut out);
                        if r.is_ok() && !adaptive {
                            nonzero_out += out.iter().filter(|&&s| s != 0).count() as u64;
                        }
                        (r, t)
                    }
                    JOp::MarkEnd => {
                        jb.mark_end();
                        continue;
                    }
                    JOp::Clear => {
                        jb.clear();
                        continue;
                    }
                };
                // A refused time changes nothing: the buffer stays usable at the old clock.
                prop_assert_eq!(r.is_ok(), valid(t, last), "t={} last={:?}", t, last);
                if r.is_ok() {
                    now = t;
                    last = Some(t);
                }
                let st = jb.stats();
                let ms_pushed = pushed as f64 * 1000.0 / f64::from(sr);
                // Never plays, queues or drops more than was pushed.
                prop_assert!(st.played_ms <= ms_pushed + 1e-6, "{:?}", st);
                prop_assert!(
                    st.buffered_ms + st.dropped_ms <= ms_pushed + 1e-6,
                    "{:?}",
                    st
                );
                // The ring holds max_ms rounded up to a whole sample.
                prop_assert!(st.buffered_ms <= f64::from(max) + 1000.0 / f64::from(sr));
                prop_assert!(st.target_ms.is_finite() && st.delay_ms.is_finite());
            }
            // Fixed mode plays the input exactly: no more non-silent samples than were pushed.
            prop_assert!(nonzero_out <= pushed);
            // The buffer still works after whatever happened.
            prop_assert!(jb.pop(now, &mut out).is_ok());
            Ok(())
        },
    );
}

#[test]
fn fuzz_input_pipeline() {
    let cfg = (
        prop_oneof![4 => rate(), 1 => any::<u32>()],
        any::<bool>(),
        proptest::sample::select(vec![Format::Pcm16, Format::Ulaw, Format::Alaw]),
        vad_cfg(),
        any::<bool>(),
        prop_oneof![4 => 0u32..5000, 1 => any::<u32>()],
    );
    let msg = prop_oneof![
        3 => proptest::collection::vec(any::<i16>(), 0..2000).prop_map(|x| (true, x
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect::<Vec<u8>>())),
        1 => b64ish().prop_map(|t| (false, t)),
        1 => proptest::collection::vec(any::<u8>(), 0..3000).prop_map(|t| (false, t)),
    ];
    let s = (
        cfg,
        proptest::collection::vec(msg, 0..20),
        proptest::collection::vec((any::<u64>(), any::<u64>()), 1..6),
    );
    run(
        "input pipeline",
        4,
        s,
        |((in_rate, b64e, format, v, turns, max_ms), msgs, spans)| {
            let cfg = InputConfig {
                in_rate,
                encoding: if b64e {
                    Encoding::Base64
                } else {
                    Encoding::Raw
                },
                format,
                vad_rate: v.1,
                engine: v.0.to_string(),
                mode: v.3,
                frame_ms: v.2,
                quality: Quality::Analysis,
                turn: TurnConfig::default(),
                detect_turns: turns,
                max_buffer_ms: max_ms,
            };
            let Ok(mut p) = InputPipeline::new(cfg) else {
                return Ok(());
            };
            deep();
            let mut events = Vec::new();
            for (encode_it, raw) in msgs {
                let m = if encode_it && b64e { encode(&raw) } else { raw };
                let before = p.position_ms();
                let n_before = p.buffered().1.len();
                match p.push(&m, &mut events) {
                    Ok(()) => {}
                    // A refused message is dropped whole.
                    Err(_) => {
                        prop_assert_eq!(p.position_ms(), before);
                        prop_assert!(p.buffered().1.len() <= n_before);
                    }
                }
                prop_assert!(p.buffered_ms() <= u64::from(max_ms) + 1);
            }
            for (a, b) in spans {
                let got = p.audio(a, b).len();
                prop_assert!(got <= p.buffered().1.len());
                let all = p.audio(0, u64::MAX).len();
                prop_assert_eq!(all, p.buffered().1.len());
                p.discard_until(a % (p.position_ms() + 2));
            }
            p.reset().unwrap();
            Ok(())
        },
    );
}

#[test]
fn fuzz_output_pipeline() {
    let s = (
        rate(),
        rate(),
        any::<bool>(),
        proptest::sample::select(vec![Format::Pcm16, Format::Ulaw, Format::Alaw]),
        quality(),
        proptest::collection::vec(any::<i16>(), 0..4000),
        proptest::collection::vec(0usize..1500, 1..8),
    );
    run(
        "output pipeline",
        4,
        s,
        |(a, b, b64e, format, q, x, cuts)| {
            deep();
            let enc = if b64e {
                Encoding::Base64
            } else {
                Encoding::Raw
            };
            let mut p = OutputPipeline::new(a, b, enc, format, q).unwrap();
            let mut samples = 0usize;
            let emit = |p: &mut OutputPipeline, n: usize| -> Result<(), TestCaseError> {
                let len = p.encoded_len(n);
                let mut out = vec![MaybeUninit::new(0u8); len];
                p.encode_into(&mut out).unwrap();
                if b64e {
                    let t: Vec<u8> = out.iter().map(|c| unsafe { c.assume_init() }).collect();
                    prop_assert_eq!(b64::decoded_len(&t).unwrap(), n * format.width());
                }
                Ok(())
            };
            for (lo, hi) in chunks(x.len(), &cuts) {
                let n = p.process(&x[lo..hi]).unwrap();
                samples += n;
                emit(&mut p, n)?;
            }
            let n = p.flush().unwrap();
            samples += n;
            emit(&mut p, n)?;
            let d = rs::Design::shared(a, b, q).unwrap();
            prop_assert_eq!(samples as u64, d.total_outputs(x.len() as u64));
            Ok(())
        },
    );
}
