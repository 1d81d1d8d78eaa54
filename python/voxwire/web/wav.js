// PCM helpers: base64 <-> PCM16, WAV files in and out, a plain resampler for downloads.

/** Int16Array of little-endian PCM16 from base64 text. */
export function b64ToPcm(b64) {
  const bin = atob(b64);
  const n = bin.length >> 1;
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) {
    const v = bin.charCodeAt(2 * i) | (bin.charCodeAt(2 * i + 1) << 8);
    out[i] = v >= 0x8000 ? v - 0x10000 : v;
  }
  return out;
}

/** Base64 text of an Int16Array as little-endian PCM16. */
export function pcmToB64(pcm) {
  const bytes = new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength);
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/** Linear-interpolation resampling of an Int16Array (for downloads, not the wire). */
export function resampleLinear(pcm, from, to) {
  if (from === to || pcm.length === 0) return pcm;
  const n = Math.floor((pcm.length * to) / from);
  const out = new Int16Array(n);
  const step = from / to;
  for (let i = 0; i < n; i++) {
    const t = i * step;
    const j = Math.floor(t);
    const f = t - j;
    const a = pcm[j];
    const b = j + 1 < pcm.length ? pcm[j + 1] : a;
    out[i] = Math.round(a + (b - a) * f);
  }
  return out;
}

/** A WAV file (Blob) of PCM16 channels (Int16Arrays, padded to the longest) at rate. */
export function wavBlob(channels, rate) {
  const nch = channels.length;
  const frames = Math.max(0, ...channels.map((c) => c.length));
  const data = frames * nch * 2;
  const buf = new ArrayBuffer(44 + data);
  const v = new DataView(buf);
  const str = (o, s) => { for (let i = 0; i < s.length; i++) v.setUint8(o + i, s.charCodeAt(i)); };
  str(0, 'RIFF'); v.setUint32(4, 36 + data, true); str(8, 'WAVE');
  str(12, 'fmt '); v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, nch, true);
  v.setUint32(24, rate, true); v.setUint32(28, rate * nch * 2, true);
  v.setUint16(32, nch * 2, true); v.setUint16(34, 16, true);
  str(36, 'data'); v.setUint32(40, data, true);
  let o = 44;
  for (let i = 0; i < frames; i++) {
    for (let c = 0; c < nch; c++) {
      v.setInt16(o, i < channels[c].length ? channels[c][i] : 0, true);
      o += 2;
    }
  }
  return new Blob([buf], { type: 'audio/wav' });
}

/** The first channel of a PCM16 WAV file (ArrayBuffer) and its rate. */
export function parseWav(ab) {
  const v = new DataView(ab);
  const tag = (o) => String.fromCharCode(v.getUint8(o), v.getUint8(o + 1), v.getUint8(o + 2), v.getUint8(o + 3));
  if (tag(0) !== 'RIFF' || tag(8) !== 'WAVE') throw new Error('not a WAV file');
  let o = 12;
  let rate = 0;
  let nch = 1;
  while (o + 8 <= ab.byteLength) {
    const id = tag(o);
    let size = v.getUint32(o + 4, true);
    if (id === 'fmt ') {
      nch = v.getUint16(o + 10, true);
      rate = v.getUint32(o + 12, true);
      if (v.getUint16(o + 22, true) !== 16) throw new Error('not PCM16');
    } else if (id === 'data') {
      size = Math.min(size, ab.byteLength - o - 8);
      const n = Math.floor(size / (2 * nch));
      const out = new Int16Array(n);
      for (let i = 0; i < n; i++) out[i] = v.getInt16(o + 8 + i * 2 * nch, true);
      return { pcm: out, rate };
    }
    o += 8 + size + (size & 1);
  }
  throw new Error('WAV file without data');
}
