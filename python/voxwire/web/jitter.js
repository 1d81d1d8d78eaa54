// The page's jitter buffer: a JavaScript port of the rules of voxwire.JitterBuffer
// (rust/voxwire-core/src/jitter.rs, docs/design/jitter.md). It runs in the playback
// AudioWorklet: push() as answer audio arrives, pop() one frame per render quantum group.
//
// Ported: the state machine (idle, buffering, playing, underrun), the arrival-gap estimator
// (95th percentile over 256 gaps, blended with a prior over the first 32), the target
// (percentile x 1.25 + a frame, at most prebuffer_ms), the start rule (prebuffer_ms queued,
// or the evidence conditions: the queue lasts until the next regular push, holds the
// target, covers the start-up lateness of the last 32 streams, min_start_ms (a calm
// session's floor: 1.1 x the target) and a second arrival; a rejoin after a start-up stall
// needs what the stall lasted, at most prebuffer_ms), stream boundaries (a stream queued
// behind one still playing), mark_end(), clear() (barge-in: returns the ms of the stream
// played) and the counters.
// Not ported (see docs/design/browser.md): the time-scale modification (expansion and
// acceleration by pitch periods) and the pitch-period concealment; an underrun here plays
// silence after a 5 ms fade (in the fixed mode, at once, as the core does).

export const RATES = [8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000];

const WINDOW = 256;
const QUANTILE = 0.95;
const MARGIN = 1.25;
const PRIOR_MS = 100.0;
const STALL_Q = 0.9;
const STALL_K = 1.5;
const LATE_HORIZON_MS = 1000.0;
const LATE_MARGIN = 1.2;
const LATE_ADD_MS = 20.0;
const CALM_GAPS = 128;
const CALM_MARGIN = 1.1;
const STREAMS = 32;

class Estimator {
  constructor(prior, worstPrior) {
    this.win = new Float64Array(WINDOW);
    this.n = 0;
    this.next = 0;
    this.prior = prior;
    this.needed = prior;
    this.worstPrior = worstPrior;
    this.worst = worstPrior;
    this.stalls = 0;
  }

  observe(gap) {
    this.win[this.next] = Math.max(gap, 0);
    this.next = (this.next + 1) % WINDOW;
    this.n = Math.min(this.n + 1, WINDOW);
    const v = Array.from(this.win.subarray(0, this.n)).sort((a, b) => a - b);
    const k = Math.min(Math.max(Math.ceil(QUANTILE * this.n), 1), this.n) - 1;
    const q = v[k];
    const kk = Math.min(Math.max(Math.ceil(STALL_Q * this.n), 1), this.n) - 1;
    const lim = v[kk] * STALL_K;
    let worst = 0;
    let stalls = 0;
    for (const g of v) {
      if (g <= lim) worst = Math.max(worst, g);
      else stalls += 1;
    }
    this.stalls = stalls;
    const w = Math.min(this.n / 32, 1);
    this.needed = w * q + (1 - w) * this.prior;
    this.worst = w * worst + (1 - w) * Math.max(this.worstPrior, worst);
  }
}

/** A ring of int16 samples. */
class Ring {
  constructor(cap) {
    this.buf = new Int16Array(cap);
    this.head = 0;
    this.len = 0;
  }

  push(x) {
    const cap = this.buf.length;
    const n = Math.min(x.length, cap - this.len);
    let w = (this.head + this.len) % cap;
    for (let i = 0; i < n; i++) {
      this.buf[w] = x[i];
      w = w + 1 === cap ? 0 : w + 1;
    }
    this.len += n;
    return n;
  }

  get(i) {
    return this.buf[(this.head + i) % this.buf.length];
  }

  skip(n) {
    n = Math.min(n, this.len);
    this.head = (this.head + n) % this.buf.length;
    this.len -= n;
  }

  clear() {
    this.head = 0;
    this.len = 0;
  }
}

export class JitterBuffer {
  /**
   * @param {{sampleRate?: number, frameMs?: number, prebufferMs?: number,
   *          adaptive?: boolean, maxMs?: number, minStartMs?: number|null}} cfg
   */
  constructor(cfg = {}) {
    const c = {
      sampleRate: 24000, frameMs: 10, prebufferMs: 250, adaptive: true, maxMs: 60000,
      minStartMs: null, ...cfg,
    };
    if (!RATES.includes(c.sampleRate)) throw new RangeError(`unsupported sample rate ${c.sampleRate}`);
    if ((c.frameMs * c.sampleRate) % 1000 !== 0) throw new RangeError('frame_ms gives no whole frame');
    if (c.prebufferMs > c.maxMs) throw new RangeError('prebuffer_ms exceeds max_ms');
    this.cfg = c;
    this.rate = c.sampleRate;
    this.frame = (c.frameMs * c.sampleRate) / 1000;
    this.ring = new Ring(Math.ceil((c.maxMs * c.sampleRate) / 1000));
    this.state = 'idle';
    this.open = false;
    this.ended = false;
    this.boundary = null;
    this.lastNow = null;
    this.t0 = 0;
    this.openT0 = 0;
    this.lastArrival = 0;
    this.openPushed = 0;
    this.streamPlayed = 0;
    this.tmax = Math.round((c.sampleRate * 15) / 1000); // the pitch search's longest period
    this.fade = Math.round((c.sampleRate * 5) / 1000);
    this.last = 0; // the last sample out (faded out on an underrun)
    this.fadeLeft = 0;
    this.est = new Estimator(Math.min(PRIOR_MS, c.prebufferMs), c.prebufferMs);
    this.lates = new Float64Array(STREAMS);
    this.latesN = 0;
    this.latesNext = 0;
    this.openFirst = 0;
    this.openLate = 0;
    this.openFullAt = null;
    this.hole = 0; // the gap that caused the current underrun (negative until known)
    this.fixedPlayed = 0; // the fixed client on the open stream, shadowed (ms played)
    this.fixedPlaying = false;
    this.s = { played: 0, output: 0, concealed: 0, underruns: 0, streams: 0, latePushes: 0,
      dropped: 0, cleared: 0, maxBuffered: 0 };
  }

  msOf(samples) {
    return (samples * 1000) / this.rate;
  }

  tick(now) {
    if (!Number.isFinite(now)) throw new RangeError('now_ms must be finite');
    if (this.lastNow !== null && now < this.lastNow) throw new RangeError('time went backwards');
    this.lastNow = now;
  }

  /** Queue samples (Int16Array) that arrived at now (ms). */
  push(x, now) {
    this.tick(now);
    if (x.length === 0) return;
    this.beginPush(now);
    const n = this.ring.push(x);
    if (this.openPushed === 0) this.openFirst = this.msOf(x.length);
    this.openPushed += x.length;
    if (this.openFullAt === null && this.msOf(this.openPushed) >= this.cfg.prebufferMs) {
      this.openFullAt = now;
    }
    this.s.dropped += x.length - n;
    this.s.maxBuffered = Math.max(this.s.maxBuffered, this.ring.len);
  }

  beginPush(now) {
    if (!this.open) {
      if (this.openPushed > 0) {
        this.lates[this.latesNext] = this.openLate;
        this.latesNext = (this.latesNext + 1) % STREAMS;
        this.latesN = Math.min(this.latesN + 1, STREAMS);
      }
      this.openLate = 0;
      this.openFullAt = null;
      this.fixedPlayed = 0;
      this.fixedPlaying = false;
      this.open = true;
      this.openT0 = now;
      this.openPushed = 0;
      this.s.streams += 1;
      if (this.state === 'idle' || this.ring.len === 0) {
        this.startStream(now);
        this.state = 'buffering';
      } else {
        if (this.boundary === null) this.boundary = this.ring.len;
        this.ended = false;
      }
    }
    if (this.openPushed > 0) {
      this.est.observe(now - this.lastArrival);
      const ahead = this.msOf(this.openPushed) - this.openFirst;
      if (ahead <= LATE_HORIZON_MS) {
        this.openLate = Math.max(this.openLate, now - this.openT0 - ahead);
      }
    }
    if (this.state === 'underrun' && this.hole < 0) this.hole = now - this.lastArrival;
    this.lastArrival = now;
    if (this.state === 'underrun' && this.boundary === null) this.s.latePushes += 1;
  }

  startStream(t0) {
    this.t0 = t0;
    this.streamPlayed = 0;
    this.ended = false;
    this.boundary = null;
  }

  /** The stream being pushed is complete (the answer's audio is done). */
  markEnd() {
    if (!this.open) return;
    this.open = false;
    if (this.boundary === null) this.ended = true;
  }

  /** Drop everything queued (barge-in); returns the ms of the current stream played. */
  clear() {
    const played = Math.floor((this.streamPlayed * 1000) / this.rate);
    this.s.cleared += this.ring.len;
    this.ring.clear();
    this.open = false;
    this.boundary = null;
    this.ended = false;
    this.streamPlayed = 0;
    this.fadeLeft = this.cfg.adaptive ? this.fade : 0;
    this.state = 'idle';
    return played;
  }

  targetMs() {
    if (!this.cfg.adaptive) return this.cfg.prebufferMs;
    const f = this.cfg.frameMs;
    const t = Math.min(this.est.needed * MARGIN + f, this.cfg.prebufferMs);
    return Math.min(Math.max(t, 2 * f), this.cfg.maxMs / 2);
  }

  bufferedMs() {
    return this.msOf(this.ring.len);
  }

  delayMs() {
    if (this.state === 'idle' || this.lastNow === null) return 0;
    return this.lastNow - this.t0 - this.msOf(this.streamPlayed);
  }

  stats() {
    const s = this.s;
    return {
      played_ms: this.msOf(s.played), output_ms: this.msOf(s.output),
      played_samples: s.played, buffered_ms: this.bufferedMs(),
      max_buffered_ms: this.msOf(s.maxBuffered), target_ms: this.targetMs(),
      delay_ms: this.delayMs(), underruns: s.underruns, concealed_ms: this.msOf(s.concealed),
      streams: s.streams, late_pushes: s.latePushes, dropped_ms: this.msOf(s.dropped),
      cleared_ms: this.msOf(s.cleared), state: this.state,
    };
  }

  /** Fill out (an Int16Array or Float32Array of one frame) with what plays at now (ms). */
  pop(now, out) {
    if (out.length !== this.frame) throw new RangeError(`pop needs ${this.frame} samples`);
    this.tick(now);
    this.shadowFixed();
    this.maybeStart(now);
    let i = 0;
    while (i < this.frame) {
      if (this.state === 'playing') {
        if (this.ring.len === 0) {
          if (this.ended) {
            this.state = 'idle';
          } else {
            this.s.underruns += 1;
            this.state = 'underrun';
            this.hole = -1;
            this.fadeLeft = this.cfg.adaptive ? this.fade : 0; // fixed mode: silence at once
          }
          continue;
        }
        const n = Math.min(this.frame - i, this.ring.len);
        for (let k = 0; k < n; k++) out[i + k] = this.ring.get(k);
        this.last = out[i + n - 1];
        this.consume(n);
        i += n;
      } else {
        // Quiet: fade the last sample out over 5 ms, then silence.
        const counting = this.state === 'underrun';
        for (; i < this.frame; i++) {
          if (this.fadeLeft > 0) {
            this.fadeLeft -= 1;
            out[i] = Math.round((this.last * this.fadeLeft) / this.fade);
          } else {
            out[i] = 0;
          }
          if (counting) this.s.concealed += 1;
        }
        this.last = 0;
        if (counting && this.ended && this.ring.len === 0) this.state = 'idle';
      }
    }
    this.s.output += this.frame;
  }

  consume(n) {
    this.ring.skip(n);
    this.s.played += n;
    this.streamPlayed += n;
    if (this.boundary !== null) {
      if (n >= this.boundary) {
        const over = n - this.boundary;
        this.boundary = null;
        this.t0 = this.openT0;
        this.streamPlayed = over;
        this.ended = !this.open;
      } else {
        this.boundary -= n;
      }
    }
  }

  // One frame of the fixed client on the open stream: it starts (and resumes after running
  // dry) once prebufferMs of the stream is queued or the stream has ended.
  shadowFixed() {
    const left = this.msOf(this.openPushed) - this.fixedPlayed;
    if (!this.fixedPlaying && left > 0 && (left >= this.cfg.prebufferMs || !this.open)) {
      this.fixedPlaying = true;
    }
    if (this.fixedPlaying) {
      const f = this.cfg.frameMs;
      this.fixedPlayed += Math.min(f, left);
      if (left < f && this.open) this.fixedPlaying = false;
    }
  }

  maybeStart(now) {
    const waiting = this.state === 'buffering' || this.state === 'underrun';
    const afterUnderrun = this.state === 'underrun';
    if (!waiting || this.ring.len === 0) return;
    let ready;
    if (this.ended) {
      ready = true;
    } else if (!this.cfg.adaptive) {
      ready = this.bufferedMs() >= this.cfg.prebufferMs;
    } else {
      const b = this.bufferedMs();
      const need = this.startNeed(now);
      const trusted = b >= this.targetMs() || need === 0;
      ready = b >= this.cfg.prebufferMs
        || (b >= Math.max(need, this.floorMs())
          && ((afterUnderrun && b >= this.rejoinNeed()) || this.boundary !== null
            || (trusted && this.lastArrival > this.openT0 && b >= this.minStartMs()
              && now - this.openT0 >= this.lateNeed())));
    }
    if (ready) this.state = 'playing';
  }

  startNeed(now) {
    if (this.openPushed === 0 || !this.open) return 0;
    const g = Math.max(this.targetMs(), this.est.worst + this.cfg.frameMs);
    return Math.max(this.lastArrival + g - now, 0);
  }

  // A rejoin within the stream's start-up, after a hole longer than any regular gap of the
  // window, also needs what the hole lasted (at most prebufferMs, the fixed client's rejoin).
  // And only while the fixed client (shadowed) is still pre-buffering: never later than it.
  rejoinNeed() {
    if (this.boundary !== null || this.hole <= this.est.worst || this.fixedPlaying) return 0;
    if (this.msOf(this.openPushed) - this.openFirst > LATE_HORIZON_MS) return 0;
    return Math.min(this.hole, this.cfg.prebufferMs);
  }

  lateNeed() {
    let m = this.latesN < 4 ? this.cfg.prebufferMs : 0;
    for (let i = 0; i < this.latesN; i++) m = Math.max(m, this.lates[i]);
    return m * LATE_MARGIN + LATE_ADD_MS - this.openFirst;
  }

  minStartMs() {
    const pre = this.cfg.prebufferMs;
    const floor = Math.min(this.cfg.minStartMs ?? pre, pre);
    if (this.est.n >= CALM_GAPS && this.est.stalls === 0) {
      return Math.min(floor, CALM_MARGIN * this.targetMs());
    }
    return floor;
  }

  floorMs() {
    return this.msOf(this.frame + 2 * this.tmax);
  }
}
