// The page: pick a dialect, an agent and a voice, connect, speak, hear the answer.
// Everything it knows of the server comes from /ui/config.json; the API key lives only in
// this page's memory (the input field), never in storage. State, counters and the event log
// are on window.voxwire (tests read them there). See docs/design/browser.md.
import { ADAPTERS } from './dialects.js';
import { resampleLinear, wavBlob } from './wav.js';

const $ = (id) => document.getElementById(id);
const MAX_EVENTS = 20000; // kept for the download
const MAX_ROWS = 400; // shown
const MAX_REC_S = 1800; // seconds of audio kept per channel for the download
const VOICED_DB = -45; // a 20 ms chunk louder than this is speech, for the local end of speech

const vx = {
  config: null,
  state: 'idle', // idle, connecting, connected
  dialect: null,
  counters: {
    played_samples: 0, underruns: 0, speech_started: 0, speech_stopped: 0, responses: 0,
    audio_chunks_in: 0, audio_samples_in: 0, chunks_sent: 0, barge_ins: 0, notices: 0,
  },
  jitter: null, // the playback worklet's last stats
  events: [],
  turns: [],
  transcript: [],
  error: null,
  connect: (opts) => connect(opts),
  disconnect: () => disconnect('client'),
  interrupt: () => bargeIn(true),
  sendText: (text) => sendText(text),
  buildDownloads: () => buildDownloads(),
  downloadSession: () => downloadSession(),
  /** The audio contexts' states and rates (null when not connected). */
  audioState: () => (audio ? {
    play: { state: audio.playCtx.state, rate: audio.playCtx.sampleRate, time: audio.playCtx.currentTime },
    capture: audio.capCtx ? { state: audio.capCtx.state, rate: audio.capCtx.sampleRate, time: audio.capCtx.currentTime } : null,
  } : null),
};
window.voxwire = vx;

// Where the server is: the page's files are under <root>/ui/, so the server's routes are
// under <root> (the origin, or the prefix an ASGI app is mounted at).
const ROOT = new URL('..', import.meta.url).href.replace(/\/$/, '');
const UI = (name) => new URL(`./${name}`, import.meta.url).href;

let t0 = performance.now();
let adapter = null;
let audio = null; // {playCtx, playNode, capCtx, capNode, stream}
let batch = []; // 20 ms chunks waiting to make one message
let rec = { user: [], userRate: 24000, userLen: 0, agent: [], agentLen: 0, agentRate: 24000 };
let answerActive = false; // answer audio queued or sounding
let serverSpeech = false;
let lastVoicedAt = null; // performance.now() at the end of the last voiced mic chunk
let turn = null;
let agentLine = null;

// -- the event log -------------------------------------------------------------------------

function isAudio(type) {
  return /_buffer\.append|audio\.delta|^binary$|new-audio-message|new-message/.test(type);
}

function log(dir, type, data) {
  const e = { t: Math.round(performance.now() - t0), dir, type, data };
  vx.events.push(e);
  if (vx.events.length > MAX_EVENTS) vx.events.splice(0, vx.events.length - MAX_EVENTS);
  if (shown(e)) appendRow(e);
}

function shown(e) {
  if (e.dir === 'client' && !$('show-client').checked) return false;
  if (e.dir === 'server' && !$('show-server').checked) return false;
  if (isAudio(e.type) && !$('show-audio').checked) return false;
  const f = $('filter').value.trim().toLowerCase();
  if (f && !(`${e.type} ${JSON.stringify(e.data)}`).toLowerCase().includes(f)) return false;
  return true;
}

function appendRow(e) {
  const ol = $('events');
  const li = document.createElement('li');
  li.className = e.dir;
  const t = document.createElement('span');
  t.className = 't';
  t.textContent = `${(e.t / 1000).toFixed(3)}`;
  const d = document.createElement('span');
  d.className = 'dir';
  d.textContent = `${e.dir === 'client' ? '\u2192' : e.dir === 'server' ? '\u2190' : '\u2022'} ${e.type} `;
  const body = document.createElement('span');
  body.textContent = e.data ? JSON.stringify(e.data).slice(0, 300) : '';
  li.append(t, d, body);
  const stick = ol.scrollTop + ol.clientHeight >= ol.scrollHeight - 4;
  ol.append(li);
  while (ol.childElementCount > MAX_ROWS) ol.firstElementChild.remove();
  if (stick) ol.scrollTop = ol.scrollHeight;
}

function rerender() {
  $('events').replaceChildren();
  for (const e of vx.events.filter(shown).slice(-MAX_ROWS)) appendRow(e);
}

// -- the page --------------------------------------------------------------------------------

function option(sel, value, label) {
  const o = document.createElement('option');
  o.value = value;
  o.textContent = label;
  sel.append(o);
}

function setError(msg) {
  vx.error = msg || null;
  $('error').textContent = msg || '';
  if (msg) log('page', 'error', { message: msg });
}

function setStatus(state, text) {
  vx.state = state;
  const s = $('status');
  s.className = `status ${state}`;
  s.textContent = text || state;
  const on = state !== 'idle';
  $('connect').textContent = on ? 'Disconnect' : 'Connect';
  $('connect').classList.toggle('primary', !on);
  for (const id of ['dialect', 'agent', 'voice', 'key', 'org', 'service', 'username', 'password']) {
    $(id).disabled = on || (id === 'agent' && $('dialect').value === 'openai');
  }
  $('interrupt').disabled = state !== 'connected';
  $('send').disabled = state !== 'connected';
  const Cls = ADAPTERS[$('dialect').value];
  $('mute').disabled = state !== 'connected' || Boolean(Cls && Cls.textOnly);
}

function describe() {
  const name = $('dialect').value;
  const d = vx.config.dialects.find((x) => x.name === name);
  const Cls = ADAPTERS[name];
  $('org-row').hidden = name !== 'amigo';
  $('login-row').hidden = name !== 'rtguide';
  $('key-row').hidden = !vx.config.auth_required || name === 'rtguide';
  $('agent').disabled = name === 'openai';
  let mic;
  if (Cls.textOnly) mic = 'text only (answers spoken through its TTS route)';
  else if (d.in_rate) mic = `microphone resampled to ${d.in_rate / 1000} kHz in the worklet`;
  else mic = 'microphone sent at its own rate';
  const agent = name === 'openai' ? '; the agent is the server\'s (--agent)' : '';
  $('dialect-note').textContent = `${d.label}: ${d.path}; auth: ${d.auth}; ${mic}`
    + `${Cls.textOnly ? '' : `, ${Cls.chunkMs} ms messages`}; answer audio ${d.out_rate ? `${d.out_rate / 1000} kHz` : 'from TTS'}${agent}.`;
}

async function init() {
  const r = await fetch(UI('config.json'), { cache: 'no-store' });
  const cfg = await r.json();
  vx.config = cfg;
  $('version').textContent = `v${cfg.version}`;
  for (const d of cfg.dialects) if (ADAPTERS[d.name]) option($('dialect'), d.name, d.label);
  for (const a of cfg.agents) option($('agent'), a.id, a.name === a.id ? a.id : `${a.name} (${a.id})`);
  $('agent').value = cfg.default_agent;
  for (const v of cfg.voices.filter((x) => x.audio)) {
    option($('voice'), v.id, v.description ? `${v.id} - ${v.description}` : v.id);
  }
  if (cfg.voices.some((v) => v.id === cfg.default_voice && v.audio)) $('voice').value = cfg.default_voice;
  if (cfg.orgs.length) {
    $('org').value = cfg.orgs[0].id;
    if (cfg.orgs[0].services.length) $('service').value = cfg.orgs[0].services[0];
  }
  $('dialect').onchange = () => { describe(); setStatus('idle', 'disconnected'); };
  $('connect').onclick = () => (vx.state === 'idle' ? connect() : disconnect('client'));
  $('interrupt').onclick = () => bargeIn(true);
  $('mute').onclick = () => {
    const on = $('mute').textContent === 'Mute mic';
    $('mute').textContent = on ? 'Unmute mic' : 'Mute mic';
    if (audio && audio.capNode) audio.capNode.port.postMessage({ type: 'mute', on });
  };
  $('download').onclick = () => downloadSession();
  $('text-form').onsubmit = (e) => {
    e.preventDefault();
    const text = $('text').value.trim();
    if (text) sendText(text);
    $('text').value = '';
  };
  for (const id of ['filter', 'show-client', 'show-server', 'show-audio']) $(id).oninput = rerender;
  describe();
  setStatus('idle', 'disconnected');
  document.body.dataset.ready = '1';
}

// -- connecting ------------------------------------------------------------------------------

async function connect(opts = {}) {
  for (const [k, v] of Object.entries(opts)) if ($(k)) $(k).value = v;
  if (opts.dialect) describe();
  if (vx.state !== 'idle') return;
  setError('');
  const name = $('dialect').value;
  const Cls = ADAPTERS[name];
  const d = vx.config.dialects.find((x) => x.name === name);
  const key = $('key').value.trim();
  if (vx.config.auth_required && !key && name !== 'rtguide') {
    setError('This server needs an API key.');
    return;
  }
  if (name === 'rtguide' && !$('username').value) {
    setError('rtguide needs a user name and password (voxwire users add).');
    return;
  }
  resetSession();
  setStatus('connecting', 'connecting\u2026');
  const voice = $('voice').value;
  const env = {
    http: ROOT,
    ws: ROOT.replace(/^http/, 'ws'),
    key,
    agent: $('agent').value,
    voice,
    voiceAudio: vx.config.voices.some((v) => v.id === voice && v.audio),
    org: $('org').value || 'default',
    service: $('service').value || 'default',
    username: $('username').value,
    password: $('password').value,
    emit: onEvent,
    log,
  };
  vx.dialect = name;
  log('page', 'connect', { dialect: name, agent: env.agent, voice, path: d.path });
  try {
    await startAudio(Cls, d);
    adapter = new Cls(env);
    await adapter.connect();
  } catch (e) {
    setError(e.message || String(e));
    await stopAudio();
    adapter = null;
    setStatus('idle', 'disconnected');
  }
}

function resetSession() {
  t0 = performance.now();
  vx.events = [];
  vx.turns = [];
  vx.transcript = [];
  for (const k of Object.keys(vx.counters)) vx.counters[k] = 0;
  vx.jitter = null;
  $('events').replaceChildren();
  $('transcript').replaceChildren();
  $('turns').tBodies[0].replaceChildren();
  rec = { user: [], userRate: 24000, userLen: 0, agent: [], agentLen: 0, agentRate: 24000 };
  batch = [];
  turn = null;
  agentLine = null;
  answerActive = false;
  serverSpeech = false;
  lastVoicedAt = null;
  showFigures();
}

async function startAudio(Cls, d) {
  const outRate = d.out_rate || 24000;
  const playCtx = new AudioContext({ sampleRate: outRate, latencyHint: 'interactive' });
  await playCtx.audioWorklet.addModule(UI('playback-worklet.js'));
  const playNode = new AudioWorkletNode(playCtx, 'voxwire-playback', {
    numberOfInputs: 0, outputChannelCount: [1], processorOptions: { prebufferMs: 250 },
  });
  playNode.connect(playCtx.destination);
  playNode.port.onmessage = (e) => onPlayback(e.data);
  playNode.onprocessorerror = () => setError('The playback worklet failed.');
  await playCtx.resume();
  audio = { playCtx, playNode };
  rec.agentRate = outRate;
  if (Cls.textOnly) return;
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false, autoGainControl: false },
  });
  const capCtx = new AudioContext({ latencyHint: 'interactive' });
  await capCtx.audioWorklet.addModule(UI('capture-worklet.js'));
  const inRate = Cls.inRate || capCtx.sampleRate;
  const capNode = new AudioWorkletNode(capCtx, 'voxwire-capture', {
    numberOfOutputs: 1, outputChannelCount: [1], processorOptions: { outRate: inRate },
  });
  const sink = capCtx.createGain();
  sink.gain.value = 0;
  capCtx.createMediaStreamSource(stream).connect(capNode);
  capNode.connect(sink).connect(capCtx.destination);
  capNode.port.onmessage = (e) => onChunk(e.data, inRate, Cls.chunkMs);
  capNode.onprocessorerror = () => setError('The capture worklet failed.');
  await capCtx.resume();
  rec.userRate = inRate;
  Object.assign(audio, { capCtx, capNode, stream });
  log('page', 'audio', { mic_rate: capCtx.sampleRate, wire_in_rate: inRate, out_rate: outRate });
}

async function stopAudio() {
  if (!audio) return;
  const a = audio;
  audio = null;
  if (a.stream) for (const tr of a.stream.getTracks()) tr.stop();
  for (const ctx of [a.capCtx, a.playCtx]) if (ctx) await ctx.close().catch(() => {});
}

async function disconnect(why) {
  if (vx.state === 'idle') return;
  log('page', 'disconnect', { by: why });
  const a = adapter;
  adapter = null;
  if (a && why === 'client') a.close();
  await stopAudio();
  setStatus('idle', 'disconnected');
}

// -- audio in --------------------------------------------------------------------------------

function onChunk(m, rate, chunkMs) {
  const now = performance.now();
  const level = Math.max(0, Math.min(1, (m.rms + 70) / 70));
  $('mic-level').style.width = `${(level * 100).toFixed(0)}%`;
  $('mic-db').textContent = `${m.rms.toFixed(0)} dB`;
  if (m.rms > VOICED_DB) lastVoicedAt = now;
  if (!adapter || !adapter.ready) return;
  if (rec.userLen < MAX_REC_S * rate) {
    rec.user.push(m.pcm);
    rec.userLen += m.pcm.length;
  }
  batch.push(m.pcm);
  if (batch.length * 20 < chunkMs) return;
  const n = batch.reduce((s, x) => s + x.length, 0);
  const pcm = new Int16Array(n);
  let o = 0;
  for (const x of batch) { pcm.set(x, o); o += x.length; }
  batch = [];
  adapter.sendAudio(pcm, rate);
  vx.counters.chunks_sent += 1;
}

// -- audio out -------------------------------------------------------------------------------

function onPlayback(m) {
  const now = performance.now();
  if (m.type === 'stats') {
    vx.jitter = m.stats;
    vx.counters.played_samples = m.stats.played_samples;
    vx.counters.underruns = m.stats.underruns;
    if (turn) {
      turn.max_buffer_ms = Math.max(turn.max_buffer_ms || 0, m.stats.buffered_ms);
      turn.underruns = vx.counters.underruns - turn.underruns_before;
      renderTurn(turn);
    }
    showFigures();
  } else if (m.type === 'playing') {
    if (turn && turn.first_audio_at === null) {
      turn.first_audio_at = now;
      renderTurn(turn);
    }
    log('page', 'playing', {});
  } else if (m.type === 'idle') {
    answerActive = false;
    log('page', 'played', {});
  } else if (m.type === 'underrun') {
    log('page', 'underrun', {});
  } else if (m.type === 'cleared') {
    log('page', 'cleared', { played_ms: m.played_ms });
    if (m.id === 'barge-in' && adapter) adapter.interrupt(m.played_ms, { manual: m.manual });
  } else if (m.type === 'audio') {
    if (rec.agentLen < MAX_REC_S * rec.agentRate && vx.state === 'connected') {
      rec.agent.push(m.pcm);
      rec.agentLen += m.pcm.length;
    }
  }
}

function showFigures() {
  const s = vx.jitter;
  const buf = s ? s.buffered_ms : 0;
  $('jb-level').style.width = `${Math.min(100, buf / 10).toFixed(0)}%`;
  $('jb-ms').textContent = `${buf.toFixed(0)} ms`;
  $('f-played').textContent = `${s ? (s.played_ms / 1000).toFixed(1) : '0.0'} s`;
  $('f-underruns').textContent = `${vx.counters.underruns}`;
  $('f-target').textContent = s ? `${s.target_ms.toFixed(0)} ms` : '-';
  $('f-bargeins').textContent = `${vx.counters.barge_ins}`;
}

/** Stop the answer at once; manual: the Interrupt button (also cancels on the server). */
function bargeIn(manual) {
  if (!audio) return;
  if (!manual && !answerActive) return;
  vx.counters.barge_ins += 1;
  answerActive = false;
  log('page', 'barge_in', { manual });
  // The worklet answers "cleared" with the ms played; the adapter then truncates.
  audio.playNode.port.postMessage({ type: 'clear', id: 'barge-in', manual });
  showFigures();
}

// -- events from the dialect -----------------------------------------------------------------

function newTurn(kind) {
  turn = {
    n: vx.turns.length + 1, kind, speech_started_at: null, speech_stopped_at: null,
    end_of_speech_at: null, response_at: null, first_audio_at: null, answer_samples: 0,
    max_buffer_ms: 0, underruns_before: vx.counters.underruns, underruns: 0,
  };
  vx.turns.push(turn);
  renderTurn(turn);
  return turn;
}

function onEvent(ev) {
  const now = performance.now();
  switch (ev.kind) {
    case 'ready':
      setStatus('connected', `connected: ${vx.dialect}`);
      log('page', 'ready', {});
      break;
    case 'speech_started':
      vx.counters.speech_started += 1;
      serverSpeech = true;
      $('vad-level').classList.add('speech');
      $('vad-level').style.width = '100%';
      $('vad-state').textContent = 'speech';
      bargeIn(false);
      newTurn('user').speech_started_at = now;
      break;
    case 'speech_stopped': {
      vx.counters.speech_stopped += 1;
      serverSpeech = false;
      $('vad-level').classList.remove('speech');
      $('vad-level').style.width = '0%';
      $('vad-state').textContent = 'silence';
      const t = turn && turn.kind === 'user' && turn.speech_stopped_at === null ? turn : newTurn('user');
      t.speech_stopped_at = now;
      t.end_of_speech_at = lastVoicedAt;
      renderTurn(t);
      break;
    }
    case 'response_started':
      vx.counters.responses += 1;
      if (!turn || turn.response_at !== null) {
        // A dialect without speech events (atoms): recent local speech makes it a user turn.
        const spoke = lastVoicedAt !== null && now - lastVoicedAt < 3000;
        newTurn(spoke ? 'user' : vx.turns.length ? 'agent' : 'greeting');
        if (spoke) turn.end_of_speech_at = lastVoicedAt;
      }
      turn.response_at = now;
      renderTurn(turn);
      break;
    case 'audio':
      if (!audio) break;
      vx.counters.audio_chunks_in += 1;
      vx.counters.audio_samples_in += ev.pcm.length;
      if (!turn) newTurn('greeting');
      turn.answer_samples += ev.pcm.length;
      answerActive = true;
      audio.playNode.port.postMessage({ type: 'push', pcm: ev.pcm }, [ev.pcm.buffer]);
      break;
    case 'audio_done':
      if (audio) audio.playNode.port.postMessage({ type: 'end' });
      if (turn) { turn.underruns = vx.counters.underruns - turn.underruns_before; renderTurn(turn); }
      break;
    case 'interrupted':
      log('page', 'server_interrupted', {});
      if (audio && answerActive) {
        answerActive = false;
        vx.counters.barge_ins += 1;
        audio.playNode.port.postMessage({ type: 'clear', id: 'server' });
      }
      break;
    case 'user_transcript':
      addLine('user', ev.text);
      break;
    case 'agent_transcript':
      agentText(ev.text, ev.mode);
      break;
    case 'notice':
      vx.counters.notices += 1;
      log('page', 'notice', { message: ev.message });
      break;
    case 'closed':
      log('page', 'closed', { code: ev.code, reason: ev.reason });
      if (vx.state === 'connecting') break; // connect() reports it
      if (adapter) {
        if (ev.code !== 1000) setError(`The server closed the connection (${ev.code}${ev.reason ? `: ${ev.reason}` : ''}).`);
        disconnect('server');
      }
      break;
    default:
      break;
  }
}

function addLine(who, text) {
  const div = document.createElement('div');
  div.className = `line ${who}`;
  const b = document.createElement('b');
  b.textContent = who === 'user' ? 'You' : 'Agent';
  const s = document.createElement('span');
  s.textContent = text;
  div.append(b, s);
  $('transcript').append(div);
  $('transcript').scrollTop = $('transcript').scrollHeight;
  const entry = { role: who, text, t: Math.round(performance.now() - t0) };
  vx.transcript.push(entry);
  return { span: s, entry };
}

function agentText(text, mode) {
  if (!agentLine && !text) return;
  if (!agentLine) agentLine = addLine('agent', '');
  if (mode === 'delta') agentLine.span.textContent += text;
  else agentLine.span.textContent = text;
  agentLine.entry.text = agentLine.span.textContent;
  if (mode === 'final') agentLine = null;
}

function ms(a, b) {
  return a !== null && b !== null && a !== undefined && b !== undefined ? `${Math.round(b - a)} ms` : '-';
}

function renderTurn(t) {
  const tbody = $('turns').tBodies[0];
  let tr = tbody.querySelector(`tr[data-n="${t.n}"]`);
  if (!tr) {
    tr = document.createElement('tr');
    tr.dataset.n = t.n;
    tbody.prepend(tr);
    while (tbody.childElementCount > 50) tbody.lastElementChild.remove();
  }
  const cells = [
    `${t.n}${t.kind === 'user' ? '' : ` (${t.kind})`}`,
    ms(t.end_of_speech_at, t.speech_stopped_at),
    ms(t.kind === 'user' ? t.end_of_speech_at : t.response_at, t.first_audio_at),
    `${(t.answer_samples / rec.agentRate).toFixed(1)} s`,
    `${Math.round(t.max_buffer_ms)} ms`,
    `${t.underruns}`,
  ];
  tr.replaceChildren(...cells.map((c) => { const td = document.createElement('td'); td.textContent = c; return td; }));
}

function sendText(text) {
  if (!adapter || !adapter.ready) return;
  bargeIn(false);
  newTurn('text');
  addLine('user', text);
  adapter.sendText(text);
}

// -- download --------------------------------------------------------------------------------

function concat(parts, len) {
  const out = new Int16Array(len);
  let o = 0;
  for (const p of parts) { out.set(p.subarray(0, Math.min(p.length, len - o)), o); o += p.length; if (o >= len) break; }
  return out;
}

/** The session as two Blobs: the event log (JSON) and the conversation audio (WAV). */
function buildDownloads() {
  const rate = rec.agentRate;
  const agentPcm = concat(rec.agent, rec.agentLen);
  const channels = [];
  if (rec.userLen) channels.push(resampleLinear(concat(rec.user, rec.userLen), rec.userRate, rate));
  channels.push(agentPcm);
  const session = {
    voxwire: vx.config ? vx.config.version : null,
    dialect: vx.dialect,
    agent: $('agent').value,
    voice: $('voice').value,
    saved_at: new Date().toISOString(),
    counters: vx.counters,
    jitter: vx.jitter,
    turns: vx.turns.map((t) => ({
      n: t.n, kind: t.kind,
      end_of_speech_to_speech_stopped_ms: t.end_of_speech_at !== null && t.speech_stopped_at !== null ? Math.round(t.speech_stopped_at - t.end_of_speech_at) : null,
      to_first_audio_ms: t.first_audio_at !== null && (t.end_of_speech_at ?? t.response_at) !== null ? Math.round(t.first_audio_at - (t.kind === 'user' ? t.end_of_speech_at : t.response_at)) : null,
      answer_ms: Math.round((t.answer_samples * 1000) / rate), max_buffer_ms: Math.round(t.max_buffer_ms),
      underruns: t.underruns,
    })),
    transcript: vx.transcript,
    audio: { rate, channels: channels.length === 2 ? ['user (as sent)', 'agent (as played)'] : ['agent (as played)'] },
    events: vx.events,
  };
  const json = new Blob([JSON.stringify(session, null, 1)], { type: 'application/json' });
  return { json, wav: wavBlob(channels, rate) };
}

function downloadSession() {
  const { json, wav } = buildDownloads();
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  for (const [blob, name] of [[json, `voxwire-session-${stamp}.json`], [wav, `voxwire-session-${stamp}.wav`]]) {
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 60000);
  }
  log('page', 'download', { json: json.size, wav: wav.size });
}

init().catch((e) => setError(`Could not load the configuration: ${e.message}`));
