// Capture: the microphone at the context's (the browser's) rate, resampled here to the
// dialect's wire rate by a windowed-sinc low-pass interpolator (or passed through when the
// dialect takes the microphone's own rate), cut into 20 ms PCM16 chunks. Messages out:
// chunk {pcm: Int16Array, rms: dBFS of the chunk}. In: mute {on}.

const TAPS = 16; // each side

class Resampler {
  constructor(inRate, outRate) {
    this.inRate = inRate;
    this.outRate = outRate;
    this.step = inRate / outRate;
    this.cut = Math.min(1, outRate / inRate) * 0.92; // of the input's Nyquist
    this.hist = new Float32Array(0); // input samples not yet used up
    this.t = TAPS; // the next output's position in hist (input samples)
  }

  kernel(x) {
    if (x === 0) return this.cut;
    const w = 0.5 + 0.5 * Math.cos((Math.PI * x) / (TAPS + 1)); // Hann
    return (Math.sin(Math.PI * this.cut * x) / (Math.PI * x)) * w;
  }

  process(input) {
    if (this.step === 1) return Float32Array.from(input);
    const buf = new Float32Array(this.hist.length + input.length);
    buf.set(this.hist);
    buf.set(input, this.hist.length);
    const out = [];
    while (this.t + TAPS < buf.length) {
      const c = Math.floor(this.t);
      const frac = this.t - c;
      let acc = 0;
      for (let k = -TAPS + 1; k <= TAPS; k++) {
        const j = c + k;
        if (j >= 0) acc += buf[j] * this.kernel(k - frac);
      }
      out.push(acc);
      this.t += this.step;
    }
    const keepFrom = Math.max(0, Math.floor(this.t) - TAPS);
    this.hist = buf.slice(keepFrom);
    this.t -= keepFrom;
    return Float32Array.from(out);
  }
}

class Capture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = options.processorOptions || {};
    this.rate = o.outRate || sampleRate;
    this.rs = new Resampler(sampleRate, this.rate);
    this.size = Math.round(this.rate / 50); // 20 ms
    this.chunk = new Int16Array(this.size);
    this.len = 0;
    this.sq = 0;
    this.muted = false;
    this.port.onmessage = (e) => {
      if (e.data.type === 'mute') this.muted = e.data.on;
    };
  }

  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (!ch) return true;
    const y = this.rs.process(ch);
    for (let i = 0; i < y.length; i++) {
      const v = this.muted ? 0 : Math.max(-1, Math.min(1, y[i]));
      const s = Math.round(v * 32767);
      this.chunk[this.len++] = s;
      this.sq += s * s;
      if (this.len === this.chunk.length) {
        const rms = Math.sqrt(this.sq / this.len) / 32768;
        const pcm = this.chunk;
        this.port.postMessage({ type: 'chunk', pcm, rms: 20 * Math.log10(rms + 1e-9),
          t: currentTime * 1000 }, [pcm.buffer]);
        this.chunk = new Int16Array(this.size);
        this.len = 0;
        this.sq = 0;
      }
    }
    return true;
  }
}

registerProcessor('voxwire-capture', Capture);
