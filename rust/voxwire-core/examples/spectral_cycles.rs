//! Drives the spectral VAD over 16 kHz mono PCM16 WAV files (e.g. ../shared/data/vad-dev)
//! in 10 ms frames: prints a hash of every frame's probability bits and high-band energy
//! (to check that a change leaves the results identical) and the best ns per frame.
//!
//! Usage: spectral_cycles REPS FILE.wav...
use std::time::Instant;
use voxwire_core::vad::spectral::SpectralVad;

fn read_wav(path: &str) -> Vec<i16> {
    let b = std::fs::read(path).expect("readable WAV");
    // Find the "data" chunk of a canonical RIFF file.
    let mut i = 12;
    while i + 8 <= b.len() {
        let len = u32::from_le_bytes(b[i + 4..i + 8].try_into().unwrap()) as usize;
        if &b[i..i + 4] == b"data" {
            return b[i + 8..(i + 8 + len).min(b.len())]
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
        }
        i += 8 + len + (len & 1);
    }
    panic!("{path}: no data chunk");
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let reps: usize = a[1].parse().unwrap();
    let clips: Vec<Vec<i16>> = a[2..].iter().map(|p| read_wav(p)).collect();
    let (mut hash, mut frames) = (0u64, 0usize);
    for x in &clips {
        let mut v = SpectralVad::new(16000, 160);
        for f in x.chunks_exact(160) {
            let p = v.probability(f);
            let h = v.high_band_energy();
            hash = (hash.rotate_left(7) ^ u64::from(p.to_bits())).wrapping_mul(0x100000001b3);
            hash = (hash.rotate_left(7) ^ u64::from(h.to_bits())).wrapping_mul(0x100000001b3);
            frames += 1;
        }
    }
    let mut best = f64::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        let mut n = 0;
        for x in &clips {
            let mut v = SpectralVad::new(16000, 160);
            for f in x.chunks_exact(160) {
                std::hint::black_box(v.probability(f));
                n += 1;
            }
        }
        best = best.min(t.elapsed().as_nanos() as f64 / n as f64);
    }
    println!("{frames} frames, hash {hash:016x}, best {best:.1} ns per frame");
}
