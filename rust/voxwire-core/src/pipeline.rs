//! Fused pipelines: one call per WebSocket message.
//!
//! - [`InputPipeline`]: decode (base64 or raw; PCM16, mu-law or A-law) -> resample to the
//!   VAD rate -> frame -> VAD -> turn events, keeping the decoded audio since the last commit
//!   at the input rate (what an OpenAI-style `input_audio_buffer` holds).
//! - [`OutputPipeline`]: resample -> encode (PCM16, mu-law or A-law; base64 or raw).
//!
//! Every buffer lives in the pipeline and grows to the largest message seen, so steady-state
//! pushes allocate nothing.

use crate::b64;
use crate::error::{Error, Result};
use crate::g711;
use crate::pcm;
use crate::resample::{self, Quality, Resampler};
use crate::vad::turn::{TurnConfig, TurnDetector, TurnEvent};
use crate::vad::Vad;

/// How audio is carried in a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Base64 text (JSON APIs).
    Base64,
    /// The bytes themselves (binary frames).
    Raw,
}

impl Encoding {
    /// Parses `"base64"` or `"raw"`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "base64" => Ok(Encoding::Base64),
            "raw" => Ok(Encoding::Raw),
            _ => Err(Error::InvalidArgument(format!(
                "unknown encoding {name:?}: use \"base64\" or \"raw\""
            ))),
        }
    }
}

/// The sample format of the audio bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Little-endian signed 16-bit PCM.
    Pcm16,
    /// G.711 mu-law, one byte per sample.
    Ulaw,
    /// G.711 A-law, one byte per sample.
    Alaw,
}

impl Format {
    /// Parses `"pcm16"`, `"g711_ulaw"` or `"g711_alaw"`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "pcm16" => Ok(Format::Pcm16),
            "g711_ulaw" => Ok(Format::Ulaw),
            "g711_alaw" => Ok(Format::Alaw),
            _ => Err(Error::InvalidArgument(format!(
                "unknown format {name:?}: use \"pcm16\", \"g711_ulaw\" or \"g711_alaw\""
            ))),
        }
    }

    /// Bytes per sample.
    pub fn width(self) -> usize {
        match self {
            Format::Pcm16 => 2,
            Format::Ulaw | Format::Alaw => 1,
        }
    }
}

/// Decodes one message's audio into `pcm` (cleared first), using `bytes` as scratch.
fn decode_message(
    enc: Encoding,
    fmt: Format,
    msg: &[u8],
    bytes: &mut Vec<u8>,
    pcm: &mut Vec<i16>,
) -> Result<()> {
    let raw: &[u8] = match enc {
        Encoding::Raw => msg,
        Encoding::Base64 => {
            let n = b64::decoded_len(msg)?;
            bytes.resize(n, 0);
            b64::decode_into(msg, bytes)?;
            bytes
        }
    };
    pcm.clear();
    match fmt {
        Format::Pcm16 => {
            if !raw.len().is_multiple_of(2) {
                return Err(Error::OddLength { len: raw.len() });
            }
            pcm.resize(raw.len() / 2, 0);
            pcm::le_bytes_to_i16(raw, pcm);
        }
        Format::Ulaw => {
            pcm.resize(raw.len(), 0);
            g711::ulaw_decode(raw, pcm);
        }
        Format::Alaw => {
            pcm.resize(raw.len(), 0);
            g711::alaw_decode(raw, pcm);
        }
    }
    Ok(())
}

/// Configuration of an [`InputPipeline`].
#[derive(Debug, Clone)]
pub struct InputConfig {
    /// Rate of the incoming audio.
    pub in_rate: u32,
    /// How the audio is carried.
    pub encoding: Encoding,
    /// Its sample format.
    pub format: Format,
    /// Rate the VAD runs at (and the utterance is kept at, if asked for).
    pub vad_rate: u32,
    /// VAD engine name ("spectral", "silero", "webrtc" or "energy") and WebRTC mode.
    pub engine: String,
    pub mode: i64,
    /// VAD frame length.
    pub frame_ms: u32,
    /// Resampler preset (input rate to VAD rate). The VAD-rate audio only feeds the VAD
    /// (the input is kept as it came), so the default is the cheap analysis preset.
    pub quality: Quality,
    /// Turn detection parameters.
    pub turn: TurnConfig,
    /// Whether turns are detected (false: manual commits only; the VAD does not run).
    pub detect_turns: bool,
    /// Most input audio kept uncommitted, in ms (at most
    /// [`crate::limits::MAX_INPUT_BUFFER_MS`]); a push beyond it is refused.
    pub max_buffer_ms: u32,
}

impl Default for InputConfig {
    fn default() -> Self {
        Self {
            in_rate: 24000,
            encoding: Encoding::Base64,
            format: Format::Pcm16,
            vad_rate: 16000,
            // Chosen on evaluation sets no engine was tuned on (benches/vad_eval.py).
            engine: "silero".into(),
            mode: 3,
            frame_ms: 10,
            quality: Quality::Analysis,
            turn: TurnConfig::default(),
            detect_turns: true,
            max_buffer_ms: 15 * 60 * 1000,
        }
    }
}

/// Decode -> resample -> frame -> VAD -> turn events, one call per message.
#[derive(Debug, Clone)]
pub struct InputPipeline {
    cfg: InputConfig,
    bytes: Vec<u8>,
    pcm: Vec<i16>,
    resampler: Option<Resampler>,
    vad_pcm: Vec<i16>,
    turn: TurnDetector,
    /// Input-rate audio from input sample `buf_start` on, not yet committed or dropped.
    buf: Vec<i16>,
    buf_start: u64,
    max_buf: usize,
    /// Input samples received.
    received: u64,
    level_db: f32,
}

impl InputPipeline {
    /// A pipeline; checks the configuration.
    pub fn new(cfg: InputConfig) -> Result<Self> {
        if !resample::RATES.contains(&cfg.in_rate) {
            return Err(Error::InvalidArgument(format!(
                "unsupported input rate {} Hz: use one of {:?}",
                cfg.in_rate,
                resample::RATES
            )));
        }
        crate::limits::check_range(
            cfg.max_buffer_ms,
            0,
            crate::limits::MAX_INPUT_BUFFER_MS,
            "max_buffer_ms",
            " ms",
        )?;
        let vad = Vad::new(&cfg.engine, cfg.vad_rate, cfg.frame_ms, cfg.mode)?;
        let turn = TurnDetector::new(vad, cfg.turn)?;
        let resampler = if cfg.in_rate == cfg.vad_rate {
            None
        } else {
            Some(Resampler::new(cfg.in_rate, cfg.vad_rate, cfg.quality)?)
        };
        let max_buf = (cfg.max_buffer_ms as u64 * cfg.in_rate as u64 / 1000) as usize;
        Ok(Self {
            bytes: Vec::new(),
            pcm: Vec::new(),
            resampler,
            vad_pcm: Vec::new(),
            turn,
            buf: Vec::new(),
            buf_start: 0,
            max_buf,
            received: 0,
            level_db: -120.0,
            cfg,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &InputConfig {
        &self.cfg
    }

    /// Pushes one message's audio; appends the turn events it causes to `events`. Bad input
    /// (base64, odd PCM16 length, a full buffer) is refused whole: nothing of it is kept.
    pub fn push(&mut self, msg: &[u8], events: &mut Vec<TurnEvent>) -> Result<()> {
        decode_message(
            self.cfg.encoding,
            self.cfg.format,
            msg,
            &mut self.bytes,
            &mut self.pcm,
        )?;
        self.push_decoded(events)
    }

    /// Pushes int16 samples at the input rate (already decoded).
    pub fn push_samples(&mut self, x: &[i16], events: &mut Vec<TurnEvent>) -> Result<()> {
        self.pcm.clear();
        self.pcm.extend_from_slice(x);
        self.push_decoded(events)
    }

    fn push_decoded(&mut self, events: &mut Vec<TurnEvent>) -> Result<()> {
        let n = self.pcm.len();
        // Trim before this push, not after it: a turn that ended in the last push stays
        // readable until now.
        if self.cfg.detect_turns {
            self.trim();
        }
        if self.buf.len() + n > self.max_buf {
            return Err(Error::BufferFull {
                max_ms: self.cfg.max_buffer_ms,
            });
        }
        self.level_db = crate::vad::energy::EnergyVad::level_db(&self.pcm);
        self.buf.extend_from_slice(&self.pcm);
        self.received += n as u64;
        if self.cfg.detect_turns {
            match &mut self.resampler {
                None => self.turn.push(&self.pcm, events)?,
                Some(r) => {
                    let m = r.pending_outputs(n);
                    self.vad_pcm.resize(m, 0);
                    r.process_with(
                        &self.pcm,
                        resample::conv_i16,
                        &mut self.vad_pcm,
                        resample::emit_i16,
                    )?;
                    self.turn.push(&self.vad_pcm, events)?;
                }
            }
        }
        Ok(())
    }

    /// While no turn is in progress, drops buffered audio older than a turn that starts now
    /// could reach back to (the prefix padding, the start rule's run and onset chain: see
    /// [`TurnDetector::max_lookback_ms`]; plus the resampler's lag), so the buffer stays
    /// bounded between turns. A finished turn's audio is readable until the next push.
    fn trim(&mut self) {
        if self.turn.speaking() {
            return;
        }
        let rate = self.cfg.in_rate as u64;
        let keep = (self.turn.max_lookback_ms() + 100) * rate / 1000;
        // Drop in batches (amortised memmove).
        if self.buf.len() as u64 > 2 * keep + rate / 2 {
            let drop = self.buf.len() - keep as usize;
            self.buf.drain(..drop);
            self.buf_start += drop as u64;
        }
    }

    /// The input sample at `ms` on the timeline (saturating: any `ms` is accepted).
    fn ms_to_sample(&self, ms: u64) -> u64 {
        (u128::from(ms) * u128::from(self.cfg.in_rate) / 1000).min(u128::from(u64::MAX)) as u64
    }

    /// Input audio (at the input rate) on the timeline from `start_ms` to `end_ms`, as far as
    /// it is still buffered: both ends are clamped to the buffered span, so any values are
    /// accepted (an empty slice when the span and the buffer do not overlap, or when
    /// `end_ms <= start_ms`). Nothing is dropped.
    pub fn audio(&self, start_ms: u64, end_ms: u64) -> &[i16] {
        let end = self.buf_start + self.buf.len() as u64;
        let a = self.ms_to_sample(start_ms).clamp(self.buf_start, end);
        let b = self.ms_to_sample(end_ms).clamp(a, end);
        &self.buf[(a - self.buf_start) as usize..(b - self.buf_start) as usize]
    }

    /// Drops buffered audio before `ms` on the timeline (after a commit up to there).
    pub fn discard_until(&mut self, ms: u64) {
        let s = self
            .ms_to_sample(ms)
            .clamp(self.buf_start, self.buf_start + self.buf.len() as u64);
        let drop = (s - self.buf_start) as usize;
        self.buf.drain(..drop);
        self.buf_start = s;
    }

    /// Everything buffered (manual commit): start of it on the timeline and the samples.
    pub fn buffered(&self) -> (u64, &[i16]) {
        (self.buf_start * 1000 / self.cfg.in_rate as u64, &self.buf)
    }

    /// Drops everything buffered (input_audio_buffer.clear / commit of the whole buffer).
    pub fn clear_buffer(&mut self) {
        self.buf_start += self.buf.len() as u64;
        self.buf.clear();
    }

    /// Milliseconds of input buffered.
    pub fn buffered_ms(&self) -> u64 {
        self.buf.len() as u64 * 1000 / self.cfg.in_rate as u64
    }

    /// Milliseconds of input received (the timeline's end).
    pub fn position_ms(&self) -> u64 {
        self.received * 1000 / self.cfg.in_rate as u64
    }

    /// RMS level of the last message, in dBFS (-120 for silence or an empty message).
    pub fn level_db(&self) -> f32 {
        self.level_db
    }

    /// Whether a turn is in progress.
    pub fn speaking(&self) -> bool {
        self.turn.speaking()
    }

    /// The semantic end rule's text hint (see [`TurnDetector::set_text_hint`]).
    pub fn set_text_hint(&mut self, complete: Option<bool>) {
        self.turn.set_text_hint(complete)
    }

    /// The semantic end rule's estimate (see [`TurnDetector::end_estimate`]).
    pub fn end_estimate(&self) -> Option<(u64, f32, u32)> {
        self.turn.end_estimate()
    }

    /// The VAD-rate utterance of the last finished turn (prefix padding included).
    pub fn last_utterance(&self) -> &[i16] {
        self.turn.last_utterance()
    }

    /// Forgets everything: timeline, buffer, VAD and resampler state.
    pub fn reset(&mut self) -> Result<()> {
        self.turn.reset()?;
        if let Some(r) = &mut self.resampler {
            r.reset();
        }
        self.buf.clear();
        self.buf_start = 0;
        self.received = 0;
        self.level_db = -120.0;
        Ok(())
    }
}

/// Resample -> encode, one call per chunk of agent audio.
#[derive(Debug, Clone)]
pub struct OutputPipeline {
    encoding: Encoding,
    format: Format,
    in_rate: u32,
    out_rate: u32,
    resampler: Option<Resampler>,
    pcm: Vec<i16>,
    bytes: Vec<u8>,
}

impl OutputPipeline {
    /// A pipeline from `in_rate` int16 audio to `out_rate` audio in `format`, `encoding`.
    pub fn new(
        in_rate: u32,
        out_rate: u32,
        encoding: Encoding,
        format: Format,
        quality: Quality,
    ) -> Result<Self> {
        let resampler = if in_rate == out_rate {
            if !resample::RATES.contains(&in_rate) {
                return Err(Error::InvalidArgument(format!(
                    "unsupported rate {in_rate} Hz: use one of {:?}",
                    resample::RATES
                )));
            }
            None
        } else {
            Some(Resampler::new(in_rate, out_rate, quality)?)
        };
        Ok(Self {
            encoding,
            format,
            in_rate,
            out_rate,
            resampler,
            pcm: Vec::new(),
            bytes: Vec::new(),
        })
    }

    /// Input and output rates.
    pub fn rates(&self) -> (u32, u32) {
        (self.in_rate, self.out_rate)
    }

    /// The encoding and format of the output.
    pub fn encoding(&self) -> (Encoding, Format) {
        (self.encoding, self.format)
    }

    /// Length of the encoded output of `samples` output samples.
    pub fn encoded_len(&self, samples: usize) -> usize {
        let raw = samples * self.format.width();
        match self.encoding {
            Encoding::Raw => raw,
            Encoding::Base64 => b64::encoded_len(raw),
        }
    }

    /// Resamples `x` into the pipeline's sample buffer; returns how many samples are ready.
    pub fn process(&mut self, x: &[i16]) -> Result<usize> {
        match &mut self.resampler {
            None => {
                self.pcm.clear();
                self.pcm.extend_from_slice(x);
            }
            Some(r) => {
                let m = r.pending_outputs(x.len());
                self.pcm.resize(m, 0);
                r.process_with(x, resample::conv_i16, &mut self.pcm, resample::emit_i16)?;
            }
        }
        Ok(self.pcm.len())
    }

    /// Ends the stream: the resampler's tail into the sample buffer (and resets it).
    pub fn flush(&mut self) -> Result<usize> {
        match &mut self.resampler {
            None => self.pcm.clear(),
            Some(r) => {
                let m = r.flush_outputs();
                self.pcm.resize(m, 0);
                r.flush_with(&mut self.pcm, resample::emit_i16)?;
            }
        }
        Ok(self.pcm.len())
    }

    /// Encodes the samples made by the last `process` or `flush` into `out`, which must be
    /// `encoded_len(ready)` long.
    pub fn encode_into(&mut self, out: &mut [std::mem::MaybeUninit<u8>]) -> Result<()> {
        let n = self.pcm.len();
        if out.len() != self.encoded_len(n) {
            return Err(Error::InvalidArgument(format!(
                "output holds {} bytes, the encoding needs {}",
                out.len(),
                self.encoded_len(n)
            )));
        }
        let raw: &[u8] = match self.format {
            Format::Pcm16 => {
                if cfg!(target_endian = "little") {
                    // SAFETY: i16 has no padding; little-endian memory is the wire format.
                    unsafe { std::slice::from_raw_parts(self.pcm.as_ptr().cast::<u8>(), 2 * n) }
                } else {
                    self.bytes.clear();
                    self.bytes
                        .extend(self.pcm.iter().flat_map(|s| s.to_le_bytes()));
                    &self.bytes
                }
            }
            Format::Ulaw | Format::Alaw => {
                self.bytes.resize(n, 0);
                if self.format == Format::Ulaw {
                    g711::ulaw_encode(&self.pcm, &mut self.bytes);
                } else {
                    g711::alaw_encode(&self.pcm, &mut self.bytes);
                }
                &self.bytes
            }
        };
        match self.encoding {
            Encoding::Base64 => b64::encode_uninit(raw, out),
            Encoding::Raw => {
                for (o, &b) in out.iter_mut().zip(raw) {
                    o.write(b);
                }
                Ok(())
            }
        }
    }

    /// The samples made by the last `process` or `flush`.
    pub fn samples(&self) -> &[i16] {
        &self.pcm
    }

    /// Forgets the stream.
    pub fn reset(&mut self) {
        if let Some(r) = &mut self.resampler {
            r.reset();
        }
        self.pcm.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize, rate: u32, amp: f32) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (amp * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / rate as f32).sin()) as i16
            })
            .collect()
    }

    fn b64_of(x: &[i16]) -> Vec<u8> {
        let raw: Vec<u8> = x.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut out = vec![0u8; b64::encoded_len(raw.len())];
        b64::encode_into(&raw, &mut out).unwrap();
        out
    }

    #[test]
    fn input_pipeline_finds_a_turn_and_keeps_its_audio() {
        let mut p = InputPipeline::new(InputConfig {
            engine: "energy".into(),
            ..InputConfig::default()
        })
        .unwrap();
        let mut x = vec![0i16; 24000]; // 1 s silence
        x.extend(tone(24000, 24000, 8000.0)); // 1 s tone
        x.extend(vec![0i16; 24000]); // 1 s silence
        let mut ev = Vec::new();
        let mut kept = Vec::new();
        for c in x.chunks(480) {
            p.push(&b64_of(c), &mut ev).unwrap();
            if ev.len() == 2 && kept.is_empty() {
                // Read the turn's audio when it ends, as a session does.
                kept = p.audio(1000, 2000).to_vec();
                assert!(!p.speaking());
            }
        }
        assert!(
            matches!(ev[0], TurnEvent::SpeechStarted { audio_start_ms } if (990..=1020).contains(&audio_start_ms))
        );
        let TurnEvent::SpeechStopped { audio_end_ms, .. } = ev[1] else {
            panic!("{ev:?}")
        };
        assert!((1990..=2030).contains(&audio_end_ms), "{audio_end_ms}");
        assert_eq!(kept.len(), 24000);
        assert_eq!(kept, &x[24000..48000]);
        assert_eq!(p.position_ms(), 3000);
        // Between turns only what a turn could reach back to (the prefix padding, the start
        // rule's run and onset chain: 1010 ms here; and some slack) stays buffered: trims come
        // in batches, at twice that plus 100 ms and 500 ms.
        assert_eq!(p.turn.max_lookback_ms(), 1010);
        assert!(
            p.buffered_ms() <= 2 * 1110 + 500 + 20,
            "{}",
            p.buffered_ms()
        );
        assert_eq!(p.last_utterance().len(), 16 * (300 + 1000 + 500));
    }

    #[test]
    fn bad_messages_are_refused_whole() {
        let mut p = InputPipeline::new(InputConfig::default()).unwrap();
        let mut ev = Vec::new();
        assert!(matches!(p.push(b"AAA", &mut ev), Err(Error::Base64 { .. })));
        assert!(matches!(
            p.push(b"AA==", &mut ev),
            Err(Error::OddLength { len: 1 })
        ));
        assert_eq!(p.position_ms(), 0);
        assert_eq!(p.buffered_ms(), 0);
    }

    #[test]
    fn output_pipeline_matches_resampler_then_base64() {
        let x = tone(3200, 16000, 10000.0);
        let mut p =
            OutputPipeline::new(16000, 24000, Encoding::Base64, Format::Pcm16, Quality::High)
                .unwrap();
        let mut r = Resampler::new(16000, 24000, Quality::High).unwrap();
        for c in x.chunks(320) {
            let n = p.process(c).unwrap();
            let mut want = vec![0i16; r.pending_outputs(c.len())];
            r.process_with(c, resample::conv_i16, &mut want, resample::emit_i16)
                .unwrap();
            assert_eq!(n, want.len());
            let mut out = vec![std::mem::MaybeUninit::new(0u8); p.encoded_len(n)];
            p.encode_into(&mut out).unwrap();
            let out: Vec<u8> = out.iter().map(|b| unsafe { b.assume_init() }).collect();
            assert_eq!(out, b64_of(&want));
        }
    }
}
