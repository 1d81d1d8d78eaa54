// Playback: the answer's PCM16 through the page's jitter buffer (jitter.js), in an
// AudioWorklet of a context running at the wire's output rate (the browser resamples to the
// device). Messages in: push {pcm: Int16Array}, end, clear, record {on}. Messages out:
// stats (every 100 ms), playing / idle (a stream starts or stops sounding), cleared
// {played_ms}, audio {pcm} (what was played, for the session's WAV, when recording).
import { JitterBuffer } from './jitter.js';

class Playback extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = options.processorOptions || {};
    this.jb = new JitterBuffer({ sampleRate: sampleRate, frameMs: 10,
      prebufferMs: o.prebufferMs ?? 250 });
    this.frame = new Int16Array(this.jb.frame);
    this.pos = this.frame.length; // read position in this.frame (empty)
    this.wasState = 'idle';
    this.statsEvery = Math.round(sampleRate / 10);
    this.sinceStats = 0;
    this.recording = true;
    this.rec = new Int16Array(Math.round(sampleRate / 5));
    this.recLen = 0;
    this.port.onmessage = (e) => this.onMessage(e.data);
  }

  now() {
    return currentTime * 1000;
  }

  onMessage(m) {
    if (m.type === 'push') {
      this.jb.push(m.pcm, this.now());
    } else if (m.type === 'end') {
      this.jb.markEnd();
    } else if (m.type === 'clear') {
      // Barge-in: what is queued goes at once, and the frame in progress fades out.
      const played = this.jb.clear();
      for (let i = this.pos; i < this.frame.length; i++) this.frame[i] = 0;
      this.port.postMessage({ type: 'cleared', played_ms: played, id: m.id, manual: m.manual });
      this.postStats();
    } else if (m.type === 'record') {
      this.recording = m.on;
    }
  }

  postStats() {
    this.port.postMessage({ type: 'stats', stats: this.jb.stats(), t: this.now() });
  }

  flushRecording() {
    if (this.recLen === 0) return;
    const pcm = this.rec.slice(0, this.recLen);
    this.port.postMessage({ type: 'audio', pcm }, [pcm.buffer]);
    this.recLen = 0;
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    for (let i = 0; i < out.length; i++) {
      if (this.pos >= this.frame.length) {
        this.jb.pop(this.now(), this.frame);
        this.pos = 0;
        const st = this.jb.state;
        if (st !== this.wasState) {
          if (st === 'playing') this.port.postMessage({ type: 'playing', t: this.now() });
          if (st === 'idle' && this.wasState !== 'buffering') {
            this.port.postMessage({ type: 'idle', t: this.now() });
          }
          if (st === 'underrun') this.port.postMessage({ type: 'underrun', t: this.now() });
          this.wasState = st;
        }
      }
      const s = this.frame[this.pos++];
      out[i] = s / 32768;
      if (this.recording) {
        this.rec[this.recLen++] = s;
        if (this.recLen === this.rec.length) this.flushRecording();
      }
    }
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    this.sinceStats += out.length;
    if (this.sinceStats >= this.statsEvery) {
      this.sinceStats = 0;
      this.postStats();
    }
    return true;
  }
}

registerProcessor('voxwire-playback', Playback);
