// One adapter per dialect: it opens the dialect's WebSocket the way that API's browser
// clients authenticate, speaks its messages, and turns what the server says into the
// page's events (emit): ready, speech_started, speech_stopped, response_started, audio
// {pcm, rate}, audio_done, interrupted, user_transcript {text}, agent_transcript {text,
// mode: delta | replace | final}, notice {message}, closed {code, reason}. Every wire
// message goes to log(direction, type, object) with audio payloads shortened.
import { b64ToPcm, parseWav, pcmToB64, resampleLinear } from './wav.js';

/** A copy of a wire object fit for the event log: long base64 strings become a note. */
function redact(obj) {
  const out = {};
  for (const [k, v] of Object.entries(obj)) {
    if (typeof v === 'string' && v.length > 256 && /^[A-Za-z0-9+/=]+$/.test(v)) {
      out[k] = `<${Math.floor((v.length * 3) / 4)} bytes base64>`;
    } else if (k === 'token' || k === 'access_token' || k === 'agent_c_token') {
      out[k] = '<redacted>';
    } else if (v && typeof v === 'object' && !Array.isArray(v)) {
      out[k] = redact(v);
    } else {
      out[k] = v;
    }
  }
  return out;
}

class Base {
  constructor(env) {
    this.env = env; // {http, ws, key, agent, voice, org, service, username, password, emit, log}
    this.ws = null;
    this.ready = false;
  }

  emit(kind, data = {}) {
    this.env.emit({ kind, ...data });
  }

  open(url, protocols) {
    return new Promise((resolve, reject) => {
      const ws = protocols && protocols.length ? new WebSocket(url, protocols) : new WebSocket(url);
      ws.binaryType = 'arraybuffer';
      this.ws = ws;
      let opened = false;
      ws.onopen = () => { opened = true; resolve(); };
      ws.onerror = () => { if (!opened) reject(new Error(`could not connect to ${url.split('?')[0]}`)); };
      ws.onclose = (e) => {
        this.ready = false;
        this.emit('closed', { code: e.code, reason: e.reason });
        if (!opened) reject(new Error(`connection refused (close code ${e.code})`));
      };
      ws.onmessage = (e) => {
        if (typeof e.data === 'string') {
          let m;
          try { m = JSON.parse(e.data); } catch { m = { type: '(not JSON)', text: e.data.slice(0, 200) }; }
          this.env.log('server', m.type || '(no type)', redact(m));
          this.onMessage(m);
        } else {
          this.env.log('server', 'binary', { bytes: e.data.byteLength });
          this.onBinary(e.data);
        }
      };
    });
  }

  send(obj) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    this.env.log('client', obj.type, redact(obj));
    this.ws.send(JSON.stringify(obj));
  }

  onBinary() {}

  setReady() {
    if (!this.ready) {
      this.ready = true;
      this.emit('ready');
    }
  }

  sendText() { this.emit('notice', { message: 'this dialect takes no text here' }); }

  interrupt() {}

  close() {
    if (this.ws) this.ws.close(1000);
  }
}

async function postJSON(url, body, headers = {}) {
  const r = await fetch(url, {
    method: 'POST', headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  let data = null;
  try { data = await r.json(); } catch { data = null; }
  if (!r.ok) {
    const why = data && (data.detail || (data.errors && data.errors[0]) || (data.error && data.error.message));
    throw new Error(`${url.replace(/^.*\/\/[^/]+/, '')}: HTTP ${r.status}${why ? `: ${why}` : ''}`);
  }
  return data;
}

// -- OpenAI Realtime (GA shape) -----------------------------------------------------------

class OpenAI extends Base {
  static inRate = 24000;
  static outRate = 24000;
  static chunkMs = 20;

  async connect() {
    const { env } = this;
    const protocols = ['realtime'];
    if (env.key) protocols.push(`openai-insecure-api-key.${env.key}`);
    this.item = null; // the answer item whose audio plays
    this.responding = false;
    await this.open(`${env.ws}/v1/realtime`, protocols);
    this.send({
      type: 'session.update',
      session: {
        type: 'realtime',
        output_modalities: ['audio'],
        audio: {
          input: {
            format: { type: 'audio/pcm', rate: 24000 },
            turn_detection: { type: 'server_vad' },
            transcription: { model: 'pocketsphinx' },
          },
          output: { format: { type: 'audio/pcm', rate: 24000 }, voice: env.voice },
        },
      },
    });
  }

  onMessage(m) {
    switch (m.type) {
      case 'session.created': break;
      case 'session.updated': this.setReady(); break;
      case 'input_audio_buffer.speech_started': this.emit('speech_started'); break;
      case 'input_audio_buffer.speech_stopped': this.emit('speech_stopped'); break;
      case 'response.created': this.responding = true; this.emit('response_started'); break;
      case 'response.output_audio.delta':
        this.item = m.item_id;
        this.emit('audio', { pcm: b64ToPcm(m.delta), rate: 24000 });
        break;
      case 'response.output_audio.done': this.emit('audio_done'); break;
      case 'response.output_audio_transcript.delta':
        this.emit('agent_transcript', { text: m.delta, mode: 'delta' }); break;
      case 'response.output_audio_transcript.done':
        this.emit('agent_transcript', { text: m.transcript, mode: 'final' }); break;
      case 'conversation.item.input_audio_transcription.completed':
        this.emit('user_transcript', { text: m.transcript }); break;
      case 'response.done':
        this.responding = false;
        if (m.response && m.response.status === 'cancelled') this.emit('interrupted');
        break;
      case 'error': this.emit('notice', { message: (m.error && m.error.message) || 'error' }); break;
      default: break;
    }
  }

  sendAudio(pcm) {
    if (this.ready) this.send({ type: 'input_audio_buffer.append', audio: pcmToB64(pcm) });
  }

  sendText(text) {
    this.send({
      type: 'conversation.item.create',
      item: { type: 'message', role: 'user', content: [{ type: 'input_text', text }] },
    });
    this.send({ type: 'response.create' });
  }

  /** Barge-in: cancel a running answer (manual only) and cut the item to what was heard. */
  interrupt(playedMs, { manual = false } = {}) {
    if (manual && this.responding) this.send({ type: 'response.cancel' });
    if (this.item !== null) {
      this.send({ type: 'conversation.item.truncate', item_id: this.item, content_index: 0,
        audio_end_ms: Math.max(0, Math.floor(playedMs)) });
      this.item = null;
    }
  }
}

// -- Amigo converse_realtime --------------------------------------------------------------

class Amigo extends Base {
  static inRate = null; // any rate 8-48 kHz: the microphone's own
  static outRate = 24000;
  static chunkMs = 60; // the server allows 1200 messages a minute

  async connect() {
    const { env } = this;
    const protocols = env.key ? [`bearer.authorization.amigo.ai.${env.key}`] : [];
    this.sentConfig = false;
    this.inInteraction = null;
    const q = 'response_format=voice&audio_format=pcm';
    await this.open(`${env.ws}/v1/${encodeURIComponent(env.org)}/conversation/converse_realtime?${q}`,
      protocols);
    this.send({ type: 'client.start-conversation', service_id: env.service,
      service_version_set_name: 'release' });
  }

  onMessage(m) {
    switch (m.type) {
      case 'server.conversation-created':
        this.send({ type: 'client.switch-vad-mode', vad_mode_on: true }); break;
      case 'server.vad-mode-switched': if (m.current_vad_mode_on) this.setReady(); break;
      case 'server.vad-speech-started': this.emit('speech_started'); break;
      case 'server.vad-speech-ended':
        this.emit('speech_stopped');
        if (m.transcript) this.emit('user_transcript', { text: m.transcript });
        break;
      case 'server.new-message':
        if (this.inInteraction !== m.interaction_id) {
          this.inInteraction = m.interaction_id;
          this.emit('response_started');
        }
        if (m.message) this.emit('audio', { pcm: b64ToPcm(m.message), rate: 24000 });
        if (m.stop) this.emit('audio_done');
        break;
      case 'server.interaction-complete':
        this.inInteraction = null;
        if (m.full_message) this.emit('agent_transcript', { text: m.full_message, mode: 'final' });
        break;
      case 'server.error': this.emit('notice', { message: m.error_description || 'error' }); break;
      default: break;
    }
  }

  sendAudio(pcm, rate) {
    if (!this.ready) return;
    const msg = { type: 'client.new-audio-message', audio: pcmToB64(pcm) };
    if (!this.sentConfig) {
      msg.audio_config = { format: 'pcm', sample_rate: rate, sample_width: 2, n_channels: 1 };
      this.sentConfig = true;
    }
    this.send(msg);
  }

  sendText(text) {
    this.send({ type: 'client.new-text-message', text, message_type: 'user-message' });
  }

  close() {
    this.send({ type: 'client.close-connection' });
    super.close();
  }
}

// -- Atoms webcall -----------------------------------------------------------------------

class Atoms extends Base {
  static inRate = 24000;
  static outRate = 24000;
  static chunkMs = 20;

  async connect() {
    const { env } = this;
    const headers = env.key ? { Authorization: `Bearer ${env.key}` } : {};
    const body = { agent_id: env.agent, mode: 'webcall' };
    this.env.log('client', 'register-call', body);
    const r = await postJSON(`${env.http}/atoms/v1/conversation/register-call`, body, headers);
    const token = r.data.access_token;
    await this.open(`${env.ws}/atoms/v1/agent/connect?token=${encodeURIComponent(token)}`);
  }

  onMessage(m) {
    switch (m.type) {
      case 'session.created': this.setReady(); break;
      case 'agent_start_talking': this.emit('response_started'); break;
      case 'output_audio.delta': this.emit('audio', { pcm: b64ToPcm(m.audio), rate: 24000 }); break;
      case 'agent_stop_talking': this.emit('audio_done'); break;
      case 'interruption': this.emit('interrupted'); break;
      case 'transcript.delta':
        if (m.role === 'assistant') this.emit('agent_transcript', { text: m.text, mode: 'replace' });
        break;
      case 'transcript':
        if (m.role === 'user') this.emit('user_transcript', { text: m.text });
        else this.emit('agent_transcript', { text: m.text, mode: 'final' });
        break;
      case 'error': this.emit('notice', { message: `${m.code}: ${m.message}` }); break;
      default: break;
    }
  }

  sendAudio(pcm) {
    if (this.ready) this.send({ type: 'input_audio_buffer.append', audio: pcmToB64(pcm) });
  }

  sendText(text) { this.send({ type: 'input_text.send', text }); }

  close() {
    this.send({ type: 'session.close' });
    super.close();
  }
}

// -- rtguide (Agent C) -------------------------------------------------------------------

class Rtguide extends Base {
  static inRate = 16000;
  static outRate = 24000;
  static chunkMs = 20;

  async connect() {
    const { env } = this;
    this.env.log('client', 'login', { username: env.username });
    const r = await postJSON(`${env.http}/api/rt/login`,
      { username: env.username, password: env.password });
    const q = new URLSearchParams({ token: r.agent_c_token, agent_key: env.agent,
      input_sample_rate: '16000' });
    this.voiceSet = false;
    await this.open(`${env.ws}/api/rt/ws?${q}`);
  }

  onMessage(m) {
    switch (m.type) {
      case 'user_turn_start':
        if (!this.voiceSet) {
          this.voiceSet = true;
          this.send({ type: 'set_agent_voice', voice_id: this.env.voice });
        }
        break;
      case 'agent_voice_changed': this.setReady(); break;
      case 'user_turn_end':
        // An audio turn's end (the server's VAD); a typed one's is not speech.
        if (this.textPending) this.textPending = false;
        else if (this.ready) this.emit('speech_stopped');
        break;
      case 'interaction': if (m.started) this.emit('response_started'); break;
      case 'text_delta':
        if (m.role === 'assistant') this.emit('agent_transcript', { text: m.content, mode: 'delta' });
        break;
      case 'completion':
        if (m.running === false) {
          this.emit('audio_done');
          if (m.stop_reason === 'cancelled') this.emit('interrupted');
        }
        break;
      case 'system_message':
        if (m.severity === 'error') this.emit('notice', { message: m.content || m.message || 'error' });
        break;
      case 'error': this.emit('notice', { message: m.message || 'error' }); break;
      default: break;
    }
  }

  onBinary(data) {
    this.emit('audio', { pcm: new Int16Array(data.slice(0, data.byteLength & ~1)), rate: 24000 });
  }

  sendAudio(pcm) {
    if (this.ready && this.ws.readyState === WebSocket.OPEN) this.ws.send(pcm.buffer.slice(0));
  }

  sendText(text) {
    this.textPending = true;
    this.send({ type: 'text_input', text });
  }

  interrupt(playedMs, { manual = false } = {}) {
    if (manual) this.send({ type: 'client_wants_cancel' });
  }
}

// -- chatstream (text chat; speech through its TTS route) ------------------------------

class Chatstream extends Base {
  static inRate = null;
  static outRate = 24000;
  static chunkMs = 20;
  static textOnly = true;

  async connect() {
    this.conversation = null;
    this.turn = null;
    this.tts = Promise.resolve();
    await this.open(`${this.env.ws}/v1/chat/stream`);
    // With no credential on the server any non-empty token is taken.
    this.send({ type: 'authorize', token: this.env.key || 'browser' });
  }

  onMessage(m) {
    switch (m.type) {
      case 'ping': this.send({ type: 'pong' }); break;
      case 'authorize_success': this.setReady(); break;
      case 'authorize_error': this.emit('notice', { message: m.error }); break;
      case 'stream_start':
        this.turn = m.turn_id;
        this.conversation = m.conversation_id;
        this.emit('response_started');
        break;
      case 'stream_token': this.emit('agent_transcript', { text: m.chunk, mode: 'delta' }); break;
      case 'tts_ready_chunk': this.speak(m.chunk); break;
      case 'stream_end': {
        const turn = m.turn_id;
        this.emit('agent_transcript', { text: m.content, mode: 'final' });
        this.tts = this.tts.then(() => { if (this.turn === turn) this.emit('audio_done'); });
        break;
      }
      case 'error': this.emit('notice', { message: m.error || 'error' }); break;
      default: break;
    }
  }

  speak(text) {
    const turn = this.turn;
    const headers = { 'Content-Type': 'application/json' };
    if (this.env.key) headers.Authorization = `Bearer ${this.env.key}`;
    const body = { text, output_format: 'bytes' };
    if (this.env.voiceAudio) body.reference_id = this.env.voice;
    const req = fetch(`${this.env.http}/v1/tts/synthesize`, {
      method: 'POST', headers, body: JSON.stringify(body),
    }).then((r) => (r.ok ? r.arrayBuffer() : Promise.reject(new Error(`TTS: HTTP ${r.status}`))));
    this.tts = this.tts.then(() => req).then((ab) => {
      if (this.turn !== turn) return;
      const { pcm, rate } = parseWav(ab);
      this.emit('audio', { pcm: resampleLinear(pcm, rate, 24000), rate: 24000 });
    }).catch((e) => this.emit('notice', { message: e.message }));
  }

  sendText(text) {
    const msg = { type: 'chat_message', content: text, agent_id: this.env.agent, user_id: 'browser' };
    if (this.conversation) msg.conversation_id = this.conversation;
    this.send(msg);
  }

  interrupt(playedMs, { manual = false } = {}) {
    if (manual && this.turn) this.send({ type: 'interrupt_stream', turn_id: this.turn });
    this.turn = null;
  }
}

export const ADAPTERS = { openai: OpenAI, amigo: Amigo, atoms: Atoms, rtguide: Rtguide,
  chatstream: Chatstream };
