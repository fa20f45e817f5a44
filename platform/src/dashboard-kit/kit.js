// DIVS dashboard kit: what the AS node's and the gateway's operator dashboards share, as one
// ES module served at /kit/kit.js (platform/src/http.ts `serveDashboard`). No framework, no
// build step, nothing from a CDN. Every value from an API goes into the page as text (never
// parsed as HTML); the bearer token lives in sessionStorage (this tab only).
//
// An app imports what it needs and hands its pages to startDashboard():
//   import { h, page, api, startDashboard } from '/kit/kit.js';
//   startDashboard({ tokenKey: 'divs.x.token', chrome: ['nav', 'who'], login: {…}, routes: [['/', overview]] });

// ------------------------------------------------------------------ DOM helpers

/** h('a', { href: '#/' }, 'text', child…): an element with attributes and text/element children. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';
/** s('rect', { x: 1 }, child…): an SVG element (attributes and children as text or nodes). */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

// ------------------------------------------------------------------ formatting

/** Milliseconds since the epoch as `YYYY-MM-DD hh:mm:ss UTC` ('—' for 0 or none). */
export const fmtTime = (ms) => (ms ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) + ' UTC' : '—');
export const fmtNum = (n) => Number(n).toLocaleString('en-US');
/** A duration in ms, s or min, whichever reads best. */
export function fmtMs(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  return `${(ms / 60_000).toFixed(1)} min`;
}
/** A hash shortened for tables; the full value in the tooltip. */
export const shortHex = (x, n = 12) => h('code', { title: x }, x && x.length > n ? x.slice(0, n) + '…' : x || '—');
export const badge = (text, cls) => h('span', { class: `badge ${cls || ''}` }, text);
/** ✓ yes / ✗ no, coloured. */
export const check = (ok, yes = 'valid', no = 'INVALID') => (ok ? h('span', { class: 'check ok' }, '✓ ', yes) : h('span', { class: 'check bad' }, '✗ ', no));

// ------------------------------------------------------------------ layout

/** A key/value table; rows are [label, value, data-field?] (falsy rows are left out). */
export function kv(rows) {
  return h('table', { class: 'kv' }, h('tbody', {}, rows.filter(Boolean).map(([k, v, field]) => h('tr', {}, h('th', {}, k), h('td', field ? { 'data-field': field } : {}, v)))));
}

/**
 * A scrollable table; a head cell is a string or { text, cls }. With `empty`, a table without
 * rows shows that note in one row.
 */
export function table(head, rows, attrs, empty) {
  const body = rows.length || !empty ? rows : h('tr', {}, h('td', { colspan: head.length, class: 'empty' }, empty));
  return h(
    'div',
    { class: 'scroll' },
    h(
      'table',
      attrs || {},
      h('thead', {}, h('tr', {}, head.map((c) => (typeof c === 'string' ? h('th', {}, c) : h('th', { class: c.cls }, c.text))))),
      h('tbody', {}, body),
    ),
  );
}

/** Replaces the page: heading (title, subtitle, breadcrumbs) and body. */
export function page(title, sub, crumbs, ...body) {
  document.getElementById('main').replaceChildren(h('div', { class: 'head' }, h('div', {}, crumbs ? h('div', { class: 'crumbs' }, crumbs) : null, h('h1', {}, title), sub ? h('div', { class: 'sub' }, sub) : null)), ...body);
}

/** Breadcrumbs: crumbs(['#/', 'Overview'], ['#/blocks', 'Blocks'], '#7') -> "Overview / Blocks / #7" with links. */
export function crumbs(...parts) {
  return h(
    'span',
    {},
    parts.flatMap((p, i) => [i > 0 ? ' / ' : null, Array.isArray(p) ? h('a', { href: p[0] }, p[1]) : p]),
  );
}

/** A figure tile of the overview; `opts.small` for a long value, `opts.note` for a line under it. */
export function stat(label, value, id, opts = {}) {
  return h('div', { class: 'stat', 'data-testid': id }, h('div', { class: 'label' }, label), h('div', { class: opts.small ? 'value small' : 'value' }, value), opts.note ? h('div', { class: 'note' }, opts.note) : null);
}

// ------------------------------------------------------------------ charts (inline SVG)

/** Round axis ticks (steps of 1, 2 or 5 × 10^k) from 0 to at least `max`. */
export function ticks(max) {
  const raw = Math.max(1, max) / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = Math.max(1, [1, 2, 5, 10].map((m) => m * mag).find((x) => x >= raw));
  const out = [];
  for (let v = 0; v < max + step; v += step) out.push(v);
  if (out[out.length - 1] < max) out.push(out[out.length - 1] + step);
  return out;
}

/**
 * An SVG canvas W×H with a value axis from 0 to a round number ≥ `top`, inside margins L R T B:
 * grid lines and their labels (`fmt`) are drawn; `y(v)` maps a value to its height and
 * `baseline()` is the axis line at 0 (append it last, over the marks).
 */
export function valueChart({ W, H, L, R, T, B, top, label, fmt = fmtNum }) {
  const marks = ticks(top);
  const max = marks[marks.length - 1];
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label });
  for (const v of marks) svg.append(s('line', { class: 'grid-line', x1: L, x2: W - R, y1: y(v), y2: y(v) }), s('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, fmt(v)));
  return { svg, y, baseline: () => s('line', { class: 'axis', x1: L, x2: W - R, y1: y(0), y2: y(0) }) };
}

/** A chart's legend: [[class, text], …] as coloured marks. */
export const legend = (items) => h('div', { class: 'legend' }, items.map(([cls, text]) => h('span', {}, h('i', { class: cls }), text)));

// ------------------------------------------------------------------ API access and sign-in

/** A refused API call: HTTP status and the DIVS error code of the answer. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** What startDashboard() was given. */
let app = null;

const token = () => sessionStorage.getItem(app.tokenKey);
const denied = (e) => e instanceof ApiError && (e.status === 401 || e.status === 403);

/** GET a JSON API path with the session's bearer token; ApiError with the answer's code otherwise. */
export async function api(path) {
  const bearer = token();
  if (!bearer) throw new ApiError(401, 'UNAUTHENTICATED', 'sign in first');
  const res = await fetch(path, { headers: { authorization: `Bearer ${bearer}`, accept: 'application/json' } });
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (!res.ok) throw new ApiError(res.status, body?.error?.code || `HTTP_${res.status}`, body?.error?.message || res.statusText);
  return body;
}

const showChrome = (shown) => {
  for (const id of app.chrome) document.getElementById(id).hidden = !shown;
};

/** The sign-in form: the token is tried on `login.probe` and kept only when accepted. */
function loginPage(message) {
  const l = app.login;
  showChrome(false);
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true, placeholder: l.placeholder });
  const form = h(
    'form',
    { class: 'card login', id: 'login-form' },
    h('h1', {}, 'Sign in'),
    h('p', {}, ...l.intro),
    message ? h('div', { class: 'error', role: 'alert' }, message) : null,
    h('label', { for: 'token' }, 'Token'),
    input,
    h('button', { type: 'submit' }, 'Sign in'),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(app.tokenKey, input.value.trim());
    try {
      await api(l.probe);
      l.onSignedIn?.();
      // a changed hash routes through hashchange; an unchanged one needs an explicit route
      if (location.hash === '' || location.hash === '#/') route();
      else location.hash = '#/';
    } catch (e) {
      sessionStorage.removeItem(app.tokenKey);
      loginPage(denied(e) ? l.refused : `Sign-in failed: ${e.message}`);
    }
  });
  document.getElementById('main').replaceChildren(form);
  input.focus();
}

// ------------------------------------------------------------------ routing

/** Shows the page of the current `#/path?query`, or the sign-in form without a token. */
async function route() {
  app.beforeRoute?.();
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, query] = raw.split('?');
  const params = new URLSearchParams(query || '');
  if (!token()) return loginPage();
  showChrome(true);
  for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('active', (path === '/' && a.dataset.nav === 'overview') || path.startsWith(`/${a.dataset.nav}`));
  try {
    const hit = matchRoute(path === '' ? '/' : path);
    if (hit) await hit.show(...hit.args, params);
    else page('Not found', `No page ${path}`, h('a', { href: '#/' }, 'Overview'));
    window.scrollTo(0, 0);
    app.afterRoute?.();
  } catch (e) {
    if (denied(e)) {
      sessionStorage.removeItem(app.tokenKey);
      return loginPage('Your session is no longer accepted; sign in again.');
    }
    page(e instanceof ApiError && e.status === 404 ? 'Not found' : 'Something went wrong', null, h('a', { href: '#/' }, 'Overview'), h('div', { class: 'error', role: 'alert', 'data-testid': 'error' }, `${e.code || 'ERROR'}: ${e.message}`));
  }
}

/** The first route whose path (a string, or a RegExp whose groups become arguments) matches. */
function matchRoute(path) {
  for (const [pattern, show] of app.routes) {
    if (typeof pattern === 'string') {
      if (pattern === path) return { show, args: [] };
      continue;
    }
    const m = pattern.exec(path);
    if (m) return { show, args: m.slice(1).map(decodeURIComponent) };
  }
  return null;
}

/**
 * Starts a dashboard:
 * - `tokenKey`: the sessionStorage key of the bearer token;
 * - `chrome`: IDs of the header parts shown only when signed in;
 * - `login`: { placeholder, intro: [text or nodes], probe: API path, refused: message, onSignedIn? };
 * - `routes`: [[path or RegExp, show(…groups, params)], …] (the first match wins);
 * - `beforeRoute`, `afterRoute`: hooks around every page; `onSignOut`: after the token is dropped.
 * Returns `route`, to show the current page again.
 */
export function startDashboard(options) {
  app = options;
  document.getElementById('logout').addEventListener('click', () => {
    app.beforeRoute?.();
    sessionStorage.removeItem(app.tokenKey);
    app.onSignOut?.();
    location.hash = '#/';
    loginPage('Signed out.');
  });
  window.addEventListener('hashchange', route);
  route();
  return route;
}
