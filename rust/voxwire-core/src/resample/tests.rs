//! Tests of the resampler as a whole: lengths, streaming against one-shot, the filter
//! against a direct convolution, threads.

use super::oneshot::MIN_PART;
use super::*;

fn tone(n: usize, rate: u32, f: f64, amp: f64) -> Vec<f32> {
    (0..n)
        .map(|i| (amp * (2.0 * std::f64::consts::PI * f * i as f64 / rate as f64).sin()) as f32)
        .collect()
}

/// RMS of the middle half of `y`.
fn mid_rms(y: &[f32]) -> f64 {
    let m = &y[y.len() / 4..3 * y.len() / 4];
    (m.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / m.len() as f64).sqrt()
}

#[test]
fn analysis_preset_keeps_the_lower_half_band_clean() {
    let d = Design::new(48000, 16000, Quality::Analysis).unwrap();
    let hq = Design::new(48000, 16000, Quality::High).unwrap();
    assert!(d.k * 6 <= hq.k, "{} taps against {}", d.k, hq.k);
    // 3 kHz passes at unit gain; 13 kHz would alias onto 3 kHz and is >= 75 dB down.
    let pass = resample_f32(
        &tone(48000, 48000, 3000.0, 1.0),
        48000,
        16000,
        Quality::Analysis,
    )
    .unwrap();
    assert!((mid_rms(&pass) * 2f64.sqrt() - 1.0).abs() < 1e-3);
    let alias = resample_f32(
        &tone(48000, 48000, 13000.0, 1.0),
        48000,
        16000,
        Quality::Analysis,
    )
    .unwrap();
    assert!(
        mid_rms(&alias) < 10f64.powf(-75.0 / 20.0),
        "{}",
        mid_rms(&alias)
    );
}

#[test]
fn split_one_shot_is_bit_identical_to_one_thread() {
    let mut seed = 7u32;
    let x: Vec<i16> = (0..3 * MIN_PART + 5)
        .map(|_| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 16) as i16
        })
        .collect();
    for (a, b) in [(24000, 16000), (16000, 24000), (44100, 16000)] {
        for q in [Quality::High, Quality::LowLatency] {
            let d = Design::shared(a, b, q).unwrap();
            for n in [x.len(), 2 * MIN_PART - 1, 1000] {
                let x = &x[..n];
                let total = d.total_outputs(n as u64) as usize;
                let mut one = vec![0i16; total];
                let got = one_shot_with(&d, x, conv_i16, &mut one, emit_i16, 1).unwrap();
                assert_eq!(got, total);
                // One stream, chunked: the reference.
                let mut r = Resampler::with_design(d.clone());
                let mut streamed = vec![0i16; total];
                let mut done = 0;
                for c in x.chunks(4801) {
                    let k = r.pending_outputs(c.len());
                    r.process_with(c, conv_i16, &mut streamed[done..done + k], emit_i16)
                        .unwrap();
                    done += k;
                }
                r.flush_with(&mut streamed[done..], emit_i16).unwrap();
                assert_eq!(one, streamed, "{a}->{b} {q:?} n={n}");
                for threads in [2, 3] {
                    let mut par = vec![0i16; total];
                    one_shot_with(&d, x, conv_i16, &mut par, emit_i16, threads).unwrap();
                    assert_eq!(par, one, "{a}->{b} {q:?} n={n} threads={threads}");
                }
            }
        }
    }
}

#[test]
fn other_rates_stream_like_one_shot_and_keep_a_tone() {
    // Rates outside RATES (12 kHz, 96 kHz, 37.8 kHz, 192 kHz) through both kernels.
    for (a, b) in [
        (12000, 24000),
        (24000, 12000),
        (96000, 24000),
        (37800, 16000),
        (192000, 8000),
        (12000, 44100),
    ] {
        let x = tone(a as usize / 2, a, 440.0, 0.5);
        let once = resample_f32(&x, a, b, Quality::High).unwrap();
        let d = Design::new(a, b, Quality::High).unwrap();
        assert_eq!(
            once.len() as u64,
            d.total_outputs(x.len() as u64),
            "{a}->{b}"
        );
        let mut r = Resampler::new(a, b, Quality::High).unwrap();
        let mut got = Vec::new();
        for c in x.chunks(333) {
            let mut o = vec![0f32; r.pending_outputs(c.len())];
            r.process_with(c, conv_f32, &mut o, emit_f32).unwrap();
            got.extend(o);
        }
        let mut t = vec![0f32; r.flush_outputs()];
        r.flush_with(&mut t, emit_f32).unwrap();
        got.extend(t);
        assert_eq!(got, once, "{a}->{b}");
        // The middle of the output is the same 440 Hz tone at the new rate.
        let want = tone(once.len(), b, 440.0, 0.5);
        let (lo, hi) = (once.len() / 4, once.len() * 3 / 4);
        let err = once[lo..hi]
            .iter()
            .zip(&want[lo..hi])
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        assert!(err < 5e-3, "{a}->{b}: {err}");
    }
    for (a, b) in [
        (12345, 16000),
        (999, 8000),
        (16000, 400_000),
        (44056, 24000),
    ] {
        assert!(Design::new(a, b, Quality::High).is_err(), "{a}->{b}");
    }
}

#[test]
fn lengths_are_rounded_like_python() {
    for &a in &RATES {
        for &b in &RATES {
            let d = Design::new(a, b, Quality::High).unwrap();
            for n in [0u64, 1, 2, 3, 7, 160, 441, 1000] {
                let exact = n as f64 * b as f64 / a as f64;
                let mut want = exact.round();
                if (exact - exact.floor() - 0.5).abs() < 1e-12 {
                    want = 2.0 * (exact / 2.0).round(); // ties to even
                }
                assert_eq!(d.total_outputs(n), want as u64, "{a}->{b} n={n}");
            }
        }
    }
}

#[test]
fn streaming_equals_one_shot_for_any_chunking() {
    let x = tone(5000, 24000, 1234.5, 0.5);
    for (a, b) in [
        (24000, 16000),
        (16000, 24000),
        (44100, 16000),
        (8000, 48000),
    ] {
        for q in [Quality::High, Quality::LowLatency, Quality::Analysis] {
            let once = resample_f32(&x, a, b, q).unwrap();
            assert_eq!(
                once.len() as u64,
                Design::new(a, b, q).unwrap().total_outputs(5000)
            );
            for chunk in [1usize, 7, 160, 481, 5000] {
                let mut r = Resampler::new(a, b, q).unwrap();
                let mut got = Vec::new();
                for c in x.chunks(chunk) {
                    let mut o = vec![0f32; r.pending_outputs(c.len())];
                    r.process_with(c, conv_f32, &mut o, emit_f32).unwrap();
                    got.extend(o);
                }
                let mut t = vec![0f32; r.flush_outputs()];
                r.flush_with(&mut t, emit_f32).unwrap();
                got.extend(t);
                assert_eq!(got, once, "{a}->{b} {q:?} chunk {chunk}");
            }
        }
    }
}

#[test]
fn every_pair_streams_like_one_shot_and_matches_a_direct_convolution() {
    // Every supported pair (row and tile kernels, every column and residue count), a
    // chunking that lands anywhere in a row, against the filter applied the slow way.
    let x = tone(2000, 48000, 1234.5, 0.5);
    for &a in &RATES {
        for &b in &RATES {
            let d = Design::new(a, b, Quality::High).unwrap();
            let once = resample_f32(&x, a, b, Quality::High).unwrap();
            let mut r = Resampler::new(a, b, Quality::High).unwrap();
            let mut got = Vec::new();
            for c in x.chunks(37) {
                let mut o = vec![0f32; r.pending_outputs(c.len())];
                r.process_with(c, conv_f32, &mut o, emit_f32).unwrap();
                got.extend(o);
            }
            let mut t = vec![0f32; r.flush_outputs()];
            r.flush_with(&mut t, emit_f32).unwrap();
            got.extend(t);
            assert_eq!(got, once, "{a}->{b}");
            let phases: Vec<Vec<f32>> = (0..d.l).map(|p| d.phase_coefs(p)).collect();
            for (j, &y) in once.iter().enumerate().step_by(7) {
                let (p, e) = d.locate(j as u64);
                let mut want = 0f64;
                for (t, &c) in phases[p].iter().enumerate() {
                    let i = e as i64 - (d.k as i64 - 1) + t as i64;
                    if (0..x.len() as i64).contains(&i) {
                        want += c as f64 * x[i as usize] as f64;
                    }
                }
                assert!((y as f64 - want).abs() < 1e-5, "{a}->{b} {j}");
            }
        }
    }
}

#[test]
fn dc_gain_is_one_and_output_is_aligned() {
    for (a, b) in [
        (24000, 16000),
        (16000, 24000),
        (8000, 16000),
        (44100, 16000),
    ] {
        let x = vec![0.25f32; 20000];
        let y = resample_f32(&x, a, b, Quality::High).unwrap();
        let mid = y.len() / 2;
        assert!((y[mid] - 0.25).abs() < 1e-4, "{a}->{b}: {}", y[mid]);
    }
    // Alignment: a tone resampled keeps its phase (compare against the exact tone).
    let x = tone(24000, 24000, 440.0, 0.5);
    let y = resample_f32(&x, 24000, 16000, Quality::High).unwrap();
    let want = tone(16000, 16000, 440.0, 0.5);
    let err = (2000..14000)
        .map(|i| (y[i] - want[i]).abs())
        .fold(0f32, f32::max);
    assert!(err < 1e-3, "max error {err}");
}

#[test]
fn bad_arguments() {
    assert!(Design::new(12345, 16000, Quality::High).is_err());
    assert!(Quality::parse("best").is_err());
    assert_eq!(first_non_finite(&[0.0, 1.0, f32::NAN]), Some(2));
    assert_eq!(first_non_finite(&[0.0, f32::INFINITY]), Some(1));
    assert_eq!(first_non_finite(&[0.0, 1.0]), None);
}

#[test]
fn outputs_match_a_direct_convolution() {
    // Every output against the filter applied the slow way (f64), for pairs whose
    // banks, columns and phases differ.
    let x = tone(3000, 48000, 1234.5, 0.5);
    for (a, b) in [
        (24000, 16000),
        (16000, 24000),
        (44100, 16000),
        (8000, 11025),
    ] {
        for q in [Quality::High, Quality::LowLatency, Quality::Analysis] {
            let d = Design::new(a, b, q).unwrap();
            let y = resample_f32(&x, a, b, q).unwrap();
            let phases: Vec<Vec<f32>> = (0..d.l).map(|p| d.phase_coefs(p)).collect();
            for (j, &got) in y.iter().enumerate() {
                let (p, e) = d.locate(j as u64);
                let mut want = 0f64;
                for (t, &c) in phases[p].iter().enumerate() {
                    let i = e as i64 - (d.k as i64 - 1) + t as i64;
                    if (0..x.len() as i64).contains(&i) {
                        want += c as f64 * x[i as usize] as f64;
                    }
                }
                assert!((got as f64 - want).abs() < 1e-5, "{a}->{b} {q:?} {j}");
            }
        }
    }
}
