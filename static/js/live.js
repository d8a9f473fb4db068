// One WebSocket to /api/ws per page, authenticated by the session cookie at the upgrade.
// Reconnects with backoff; `onOpen` callbacks run after every (re)connect so callers resubscribe.
import { _ } from './i18n.js';

const PING_EVERY_MS = 20000;
const PONG_TIMEOUT_MS = 8000;
const MAX_DELAY_MS = 8000;

export class LiveSocket {
  constructor() {
    this.handlers = new Map();
    this.openCallbacks = [];
    this.statusCallbacks = [];
    this.delay = 300;
    this.ws = null;
    this.state = 'connecting';
    this.indicator = document.getElementById('live-indicator');
    window.addEventListener('online', () => this.reconnectNow());
    // Signing out ends the token, and the server closes its sockets (4001) while the page is
    // already on its way to where the sign-out leads: that way wins.
    this.leaving = false;
    window.addEventListener('beforeunload', () => { this.leaving = true; });
    this.connect();
  }

  url() {
    const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${window.location.host}/api/ws`;
  }

  connect() {
    clearTimeout(this.retryTimer);
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.addEventListener('open', () => {
      if (ws !== this.ws) return;
      this.delay = 300;
      this.setState('online');
      this.startHeartbeat();
      for (const cb of this.openCallbacks) cb();
    });
    ws.addEventListener('message', (event) => {
      if (ws !== this.ws) return;
      this.lastHeard = Date.now();
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      for (const cb of this.handlers.get(frame.type) || []) cb(frame);
      for (const cb of this.handlers.get('*') || []) cb(frame);
      // Other parts of the page (the notifications menu) hear every frame without a socket of their own.
      document.dispatchEvent(new CustomEvent('live-frame', { detail: frame }));
    });
    ws.addEventListener('close', (event) => {
      if (ws !== this.ws) return;
      this.stopHeartbeat();
      this.setState('offline');
      if (event.code === 4001) {
        if (this.leaving) return;
        // The session ended (expired token): the login page will bring the user back.
        const login = document.body.dataset.loginUrl || '/login';
        window.location.assign(`${login}?next=${encodeURIComponent(window.location.pathname)}`);
        return;
      }
      const wait = this.delay + Math.random() * this.delay * 0.3;
      this.delay = Math.min(this.delay * 2, MAX_DELAY_MS);
      this.retryTimer = setTimeout(() => this.connect(), wait);
    });
  }

  reconnectNow() {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) return;
    this.delay = 300;
    if (this.ws) this.ws.close();
    this.connect();
  }

  startHeartbeat() {
    this.stopHeartbeat();
    this.lastHeard = Date.now();
    // A connection that went silent (network cut without a close) is noticed by a missing pong.
    this.heartbeat = setInterval(() => {
      if (Date.now() - this.lastHeard > PING_EVERY_MS + PONG_TIMEOUT_MS) {
        this.ws.close();
        return;
      }
      this.send({ type: 'ping' });
    }, PING_EVERY_MS);
  }

  stopHeartbeat() {
    clearInterval(this.heartbeat);
  }

  setState(state) {
    this.state = state;
    if (this.indicator) {
      this.indicator.hidden = false;
      this.indicator.dataset.state = state;
      const label = this.indicator.querySelector('.live-label');
      if (label) label.textContent = state === 'online' ? _('Live') : _('Reconnecting…');
    }
    for (const cb of this.statusCallbacks) cb(state);
  }

  get open() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  send(frame) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  on(type, callback) {
    if (!this.handlers.has(type)) this.handlers.set(type, []);
    this.handlers.get(type).push(callback);
  }

  onOpen(callback) {
    this.openCallbacks.push(callback);
    if (this.open) callback();
  }

  onStatus(callback) {
    this.statusCallbacks.push(callback);
  }
}
