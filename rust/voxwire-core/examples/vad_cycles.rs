//! Drives the WebRTC-compatible VAD for `perf stat -e cycles:u`: cycles per frame is the
//! count divided by the frames this prints (run once with 0 reps to subtract the setup).
//!
//! Usage: vad_cycles RATE MS MODE REPS
use voxwire_core::vad::webrtc::WebRtcVad;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let rate: i64 = a[1].parse().unwrap();
    let ms: usize = a[2].parse().unwrap();
    let mode: i64 = a[3].parse().unwrap();
    let reps: usize = a[4].parse().unwrap();
    // 10 s of noise-like int16 with a level that varies (an LCG), so both models adapt.
    let n = rate as usize * 10;
    let mut s = 12345u32;
    let x: Vec<i16> = (0..n)
        .map(|i| {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let level = 1 + (i / (rate as usize / 2)) % 7;
            ((s >> 16) as i16) >> (2 * level)
        })
        .collect();
    let len = rate as usize / 1000 * ms;
    let mut v = WebRtcVad::new(mode).unwrap();
    let (mut frames, mut speech, mut hash) = (0usize, 0usize, 0u64);
    for _ in 0..reps {
        for f in x.chunks_exact(len) {
            let d = v.process(rate, f).unwrap();
            speech += d as usize;
            hash = hash.rotate_left(5) ^ (d as u64) ^ (frames as u64 & 7);
            frames += 1;
        }
    }
    println!("{frames} frames, {speech} speech, decisions {hash:016x}");
}
