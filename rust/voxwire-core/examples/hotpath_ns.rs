//! Times the per-message hot paths in pure Rust (no Python): ns per 20 ms message.
//!
//! Usage: hotpath_ns [REPS]
use std::time::Instant;
use voxwire_core::pipeline::{Encoding, Format, InputConfig, InputPipeline, OutputPipeline};
use voxwire_core::resample::{conv_i16, emit_i16, Quality, Resampler};

fn signal(n: usize, rate: u32) -> Vec<i16> {
    let mut s = 12345u32;
    (0..n)
        .map(|i| {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let t = i as f32 / rate as f32;
            let on = (t % 2.0) < 1.0;
            let v = if on {
                (t * 2.0 * std::f32::consts::PI * 150.0).sin() * 4000.0
            } else {
                0.0
            };
            (v + ((s >> 16) as i16 / 800) as f32) as i16
        })
        .collect()
}

fn b64(x: &[i16]) -> Vec<u8> {
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut out = vec![0u8; voxwire_core::b64::encoded_len(bytes.len())];
    voxwire_core::b64::encode_into(&bytes, &mut out).unwrap();
    out
}

fn time(name: &str, reps: usize, mut f: impl FnMut()) {
    if let Ok(only) = std::env::var("ONLY") {
        if !name.contains(&only) {
            return;
        }
    }
    let mut best = f64::MAX;
    for _ in 0..7 {
        let t = Instant::now();
        for _ in 0..reps {
            f();
        }
        best = best.min(t.elapsed().as_nanos() as f64 / reps as f64);
    }
    println!("{name:48} {best:8.0} ns");
}

fn main() {
    let reps: usize = std::env::args()
        .nth(1)
        .map_or(20000, |s| s.parse().unwrap());
    let x24 = signal(24000 * 20, 24000);
    let msgs: Vec<Vec<u8>> = x24.chunks(480).map(b64).collect();
    for (engine, frame_ms) in [
        ("silero", 10),
        ("spectral", 10),
        ("webrtc", 10),
        ("webrtc", 20),
        ("energy", 10),
    ] {
        let mut p = InputPipeline::new(InputConfig {
            engine: engine.into(),
            frame_ms,
            ..Default::default()
        })
        .unwrap();
        let mut ev = Vec::new();
        let mut i = 0;
        time(
            &format!("InputPipeline push ({engine}, {frame_ms} ms)"),
            reps,
            || {
                ev.clear();
                p.push(&msgs[i % msgs.len()], &mut ev).unwrap();
                i += 1;
            },
        );
    }
    let mut dec = vec![0u8; 960];
    let mut i = 0;
    time("base64 decode 1280 chars", reps, || {
        voxwire_core::b64::decode_into(&msgs[i % msgs.len()], &mut dec).unwrap();
        i += 1;
    });
    let raw: Vec<u8> = x24[..480].iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut text = vec![0u8; 1280];
    time("base64 encode 960 bytes", reps, || {
        voxwire_core::b64::encode_into(std::hint::black_box(&raw), &mut text).unwrap();
    });
    let big: Vec<u8> = x24.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut big_text = vec![0u8; voxwire_core::b64::encoded_len(big.len())];
    time("base64 encode 960000 bytes (us)", reps / 1000 + 1, || {
        voxwire_core::b64::encode_into(std::hint::black_box(&big), &mut big_text).unwrap();
    });
    time("base64-simd encode 960 bytes (peer)", reps, || {
        use base64_simd::AsOut;
        let _ =
            base64_simd::STANDARD.encode(std::hint::black_box(&raw), text.as_mut_slice().as_out());
    });
    time(
        "base64-simd encode 960000 bytes (peer)",
        reps / 1000 + 1,
        || {
            use base64_simd::AsOut;
            let _ = base64_simd::STANDARD
                .encode(std::hint::black_box(&big), big_text.as_mut_slice().as_out());
        },
    );
    let mut r = Resampler::new(24000, 16000, Quality::Analysis).unwrap();
    let mut out = vec![0i16; 1024];
    let mut i = 0;
    time("Resampler 24k->16k vad preset, 480 in", reps, || {
        let c = &x24[(i % 1000) * 480..][..480];
        r.process_with(c, conv_i16, &mut out, emit_i16).unwrap();
        i += 1;
    });
    let mut r = Resampler::new(24000, 16000, Quality::High).unwrap();
    time("Resampler 24k->16k hq, 480 in", reps, || {
        let c = &x24[(i % 1000) * 480..][..480];
        r.process_with(c, conv_i16, &mut out, emit_i16).unwrap();
        i += 1;
    });
    let x16 = signal(16000 * 20, 16000);
    let mut r = Resampler::new(16000, 24000, Quality::High).unwrap();
    time("Resampler 16k->24k hq, 320 in", reps, || {
        let c = &x16[(i % 1000) * 320..][..320];
        r.process_with(c, conv_i16, &mut out, emit_i16).unwrap();
        i += 1;
    });
    // Two minutes at once on one thread, as `voxwire.resample(x, a, b, threads=1)`.
    let x16_2min = signal(16000 * 120, 16000);
    let x24_2min = signal(24000 * 120, 24000);
    let x44_2min = signal(44100 * 120, 44100);
    for (a, b, x) in [
        (24000u32, 16000u32, &x24_2min),
        (16000, 24000, &x16_2min),
        (44100, 16000, &x44_2min),
    ] {
        let d = voxwire_core::resample::Design::shared(a, b, Quality::High).unwrap();
        let mut y = vec![0i16; d.total_outputs(x.len() as u64) as usize];
        time(
            &format!("resample {}->{} hq, 2 min one shot", a, b),
            reps / 2000 + 1,
            || {
                voxwire_core::resample::one_shot_with(&d, x, conv_i16, &mut y, emit_i16, 1)
                    .unwrap();
            },
        );
    }
    let mut o =
        OutputPipeline::new(16000, 24000, Encoding::Base64, Format::Pcm16, Quality::High).unwrap();
    let mut enc = vec![std::mem::MaybeUninit::<u8>::uninit(); 4096];
    time("OutputPipeline 16k->24k b64, 320 in", reps, || {
        let c = &x16[(i % 1000) * 320..][..320];
        let n = o.process(c).unwrap();
        let m = o.encoded_len(n);
        o.encode_into(&mut enc[..m]).unwrap();
        i += 1;
    });
    for ms in [10usize, 20] {
        let mut w = voxwire_core::vad::webrtc::WebRtcVad::new(3).unwrap();
        let len = 16 * ms;
        time(&format!("webrtc VAD {ms} ms frame at 16 kHz"), reps, || {
            let c = &x16[(i % 1000) * len..][..len];
            std::hint::black_box(w.process(16000, c).unwrap());
            i += 1;
        });
    }
    let mut v = voxwire_core::vad::Vad::new("spectral", 16000, 10, 3).unwrap();
    time("spectral VAD 10 ms frame", reps, || {
        let c = &x16[(i % 2000) * 160..][..160];
        std::hint::black_box(v.probability(c).unwrap());
        i += 1;
    });
}
