//! Drives the resampler for `perf stat -e cycles,instructions`: cycles per output is the
//! count divided by the outputs this prints (run once with 0 reps to subtract the setup).
//!
//! Usage: resample_cycles IN OUT (bulk|stream|vad) REPS
use voxwire_core::resample::{conv_i16, emit_i16, Quality, Resampler};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (fin, fout): (u32, u32) = (a[1].parse().unwrap(), a[2].parse().unwrap());
    let mode = a[3].as_str();
    let reps: usize = a[4].parse().unwrap();
    let q = if mode == "vad" {
        Quality::Analysis
    } else {
        Quality::High
    };
    // 2 minutes of noise-like int16 (an LCG), like the benches.
    let n = fin as usize * 120;
    let mut s = 12345u32;
    let x: Vec<i16> = (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
            ((s >> 16) as i16) / 8
        })
        .collect();
    let mut r = Resampler::new(fin, fout, q).unwrap();
    let mut out = vec![0i16; n * fout as usize / fin as usize + 64];
    let mut outputs = 0usize;
    let chunk = if mode == "bulk" { n } else { fin as usize / 50 };
    let mut check = 0i64;
    for _ in 0..reps {
        for c in x.chunks(chunk) {
            let k = r.process_with(c, conv_i16, &mut out, emit_i16).unwrap();
            outputs += k;
            check += out[..k].iter().map(|&v| v as i64).sum::<i64>();
        }
        if mode == "bulk" {
            let k = r.flush_with(&mut out, emit_i16).unwrap();
            outputs += k;
        }
    }
    println!("{outputs} outputs (check {check})");
}
