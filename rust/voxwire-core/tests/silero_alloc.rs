//! The Silero engine allocates nothing per window: after the first window (weights parsed,
//! buffers in place), pushing audio through the network and through `Vad` allocates nothing.

mod common;
use common::allocations;

fn signal(n: usize) -> Vec<i16> {
    let mut r: u32 = 1;
    (0..n)
        .map(|i| {
            r = r.wrapping_mul(1664525).wrapping_add(1013904223);
            let tone = ((i as f32) * 0.06).sin() * 4000.0 * f32::from(u8::from(i % 8000 < 4000));
            (tone + ((r >> 20) as f32 - 2048.0)) as i16
        })
        .collect()
}

#[test]
fn no_allocation_per_window() {
    for (rate, frame_ms) in [(16000u32, 32u32), (8000, 32), (16000, 10), (48000, 20)] {
        let x = signal(rate as usize * 3);
        let mut vad = voxwire_core::vad::Vad::new("silero", rate, frame_ms, 0).unwrap();
        let n = vad.frame_samples();
        let mut frames = x.chunks_exact(n);
        // Warm: the first second.
        for f in frames.by_ref().take(rate as usize / n) {
            vad.probability(f).unwrap();
        }
        let before = allocations();
        let mut sum = 0.0;
        for f in frames {
            sum += vad.probability(f).unwrap();
            std::hint::black_box(vad.is_speech(f).unwrap());
        }
        assert_eq!(allocations(), before, "{rate} Hz, {frame_ms} ms frames");
        assert!(sum > 0.0);
    }
    let mut m = voxwire_core::vad::silero::SileroModel::new(16000).unwrap();
    let x: Vec<f32> = signal(32000)
        .iter()
        .map(|&v| f32::from(v) / 32768.0)
        .collect();
    m.push(&x[..512], |_| {});
    let before = allocations();
    let mut windows = 0;
    m.push(&x[512..], |_| windows += 1);
    assert_eq!(allocations(), before);
    assert_eq!(windows, 61);
}
