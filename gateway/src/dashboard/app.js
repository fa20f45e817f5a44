// DIVS gateway operator dashboard: a small single-page app over the gateway's JSON API (/api/*).
// No framework, no build step, nothing from a CDN. Every value from the API goes into the page
// as text (never parsed as HTML); the operator's bearer token lives in sessionStorage (this tab).
'use strict';

const TOKEN_KEY = 'divs.gateway.token';
const main = document.getElementById('main');
/** The overview's refresh timer (charts update in place while the overview is shown). */
let refreshTimer = null;

// ------------------------------------------------------------------ DOM helpers

/** h('a', { href: '#/' }, 'text', child…): an element with attributes and text/element children. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
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
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

const fmtTime = (ms) => (ms ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) + ' UTC' : '—');
const fmtNum = (n) => Number(n).toLocaleString('en-US');
function fmtMs(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  return `${(ms / 60_000).toFixed(1)} min`;
}
const shortHex = (x, n = 12) => h('code', { title: x }, x && x.length > n ? x.slice(0, n) + '…' : x || '—');
const badge = (text, cls) => h('span', { class: `badge ${cls || ''}` }, text);
const check = (ok, yes, no) => (ok ? h('span', { class: 'check ok' }, '✓ ', yes) : h('span', { class: 'check bad' }, '✗ ', no));
const identityText = (id) => (id ? [id.imei && `IMEI ${id.imei}`, id.iccid && `ICCID ${id.iccid}`, id.eid && `EID ${id.eid}`, id.msisdn].filter(Boolean).join(' · ') : '—');

function kv(rows) {
  return h('table', { class: 'kv' }, h('tbody', {}, rows.filter(Boolean).map(([k, v, field]) => h('tr', {}, h('th', {}, k), h('td', field ? { 'data-field': field } : {}, v)))));
}

function table(head, rows, attrs) {
  return h(
    'div',
    { class: 'scroll' },
    h(
      'table',
      attrs || {},
      h('thead', {}, h('tr', {}, head.map((c) => (typeof c === 'string' ? h('th', {}, c) : h('th', { class: c.cls }, c.text))))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: head.length, class: 'empty' }, 'nothing yet'))),
    ),
  );
}

function page(title, sub, crumbs, ...body) {
  main.replaceChildren(h('div', { class: 'head' }, h('div', {}, crumbs ? h('div', { class: 'crumbs' }, crumbs) : null, h('h1', {}, title), sub ? h('div', { class: 'sub' }, sub) : null)), ...body);
}

const stat = (label, value, id, note) => h('div', { class: 'stat', 'data-testid': id }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value), note ? h('div', { class: 'note' }, note) : null);

/** Valid / invalid / unverified as one horizontal meter (widths through CSSOM: the CSP forbids style attributes). */
function meter(r) {
  const total = Math.max(1, r.recordCount);
  const part = (cls, n) => {
    const el = h('span', { class: cls });
    el.style.width = `${(100 * n) / total}%`;
    return el;
  };
  return h(
    'div',
    { class: 'meter', title: `${r.validCount} valid, ${r.invalidCount} invalid, ${r.unverifiedCount} unverified of ${r.recordCount}` },
    part('valid', r.validCount),
    part('invalid', r.invalidCount),
    part('unverified', r.unverifiedCount),
  );
}

// ------------------------------------------------------------------ API access

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) throw new ApiError(401, 'UNAUTHENTICATED', 'sign in first');
  const res = await fetch(path, { headers: { authorization: `Bearer ${token}`, accept: 'application/json' } });
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (!res.ok) throw new ApiError(res.status, body?.error?.code || `HTTP_${res.status}`, body?.error?.message || res.statusText);
  return body;
}

// ------------------------------------------------------------------ charts (inline SVG)

/** Round axis ticks (steps of 1, 2 or 5 × 10^k) from 0 to at least `max`. */
function ticks(max) {
  const raw = Math.max(1, max) / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = Math.max(1, [1, 2, 5, 10].map((m) => m * mag).find((x) => x >= raw));
  const out = [];
  for (let v = 0; v < max + step; v += step) out.push(v);
  if (out[out.length - 1] < max) out.push(out[out.length - 1] + step);
  return out;
}

function axes(svg, marks, y, L, R, W, fmt) {
  for (const v of marks) svg.append(s('line', { class: 'grid-line', x1: L, x2: W - R, y1: y(v), y2: y(v) }), s('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, fmt(v)));
}

/** Records acknowledged per second (stored, duplicate, rejected), stacked, oldest left. */
function ingestChart(series) {
  const W = 560, H = 220, L = 44, R = 10, T = 12, B = 28;
  const n = series.stored.length;
  const totals = series.stored.map((v, i) => v + series.duplicate[i] + series.rejected[i]);
  const marks = ticks(Math.max(1, ...totals));
  const max = marks[marks.length - 1];
  const step = (W - L - R) / Math.max(1, n);
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'Records acknowledged per second' });
  axes(svg, marks, y, L, R, W, fmtNum);
  for (let i = 0; i < n; i++) {
    if (totals[i] === 0) continue;
    const x = L + i * step;
    let base = 0;
    const g = s('g', { 'data-second': series.startMs + i * series.stepMs });
    for (const k of ['stored', 'duplicate', 'rejected']) {
      const v = series[k][i];
      if (!v) continue;
      g.append(s('rect', { x, y: y(base + v), width: Math.max(1, step * 0.9), height: y(base) - y(base + v), class: k }));
      base += v;
    }
    g.append(s('title', {}, `${fmtTime(series.startMs + i * series.stepMs)}: ${series.stored[i]} stored, ${series.duplicate[i]} duplicate, ${series.rejected[i]} rejected`));
    svg.append(g);
  }
  const mins = Math.round((n * series.stepMs) / 60_000);
  svg.append(
    s('line', { class: 'axis', x1: L, x2: W - R, y1: y(0), y2: y(0) }),
    s('text', { x: L, y: H - 10, 'text-anchor': 'start' }, `−${mins} min`),
    s('text', { x: W - R, y: H - 10, 'text-anchor': 'end' }, 'now'),
  );
  return h(
    'div',
    { class: 'chart', 'data-testid': 'chart-ingest', 'data-total': totals.reduce((a, b) => a + b, 0) },
    svg,
    h('div', { class: 'legend' }, ['stored', 'duplicate', 'rejected'].map((k) => h('span', {}, h('i', { class: k }), k))),
  );
}

/** Verification outcomes by reason (latest report of each dataset), horizontal bars. */
function outcomeChart(outcomes) {
  const rows = outcomes.length;
  const W = 560, L = 200, R = 60, T = 8, rowH = 26;
  const H = Math.max(60, T * 2 + rows * rowH);
  const max = Math.max(1, ...outcomes.map((o) => o.count));
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'Verification outcomes by reason' });
  if (rows === 0) svg.append(s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty-note' }, 'no verification report yet'));
  outcomes.forEach((o, i) => {
    const y = T + i * rowH;
    const w = ((W - L - R) * o.count) / max;
    svg.append(
      s(
        'g',
        { 'data-reason': o.reason, 'data-count': o.count },
        s('text', { x: L - 8, y: y + 16, 'text-anchor': 'end' }, o.reason),
        s('rect', { x: L, y: y + 4, width: Math.max(2, w), height: rowH - 8, rx: 3, class: `bar-${o.result}` }),
        s('text', { x: L + Math.max(2, w) + 6, y: y + 16 }, fmtNum(o.count)),
        s('title', {}, `${o.reason} (${o.result}): ${o.count} records`),
      ),
    );
  });
  return h(
    'div',
    { class: 'chart', 'data-testid': 'chart-outcomes' },
    svg,
    h('div', { class: 'legend' }, ['valid', 'invalid', 'unverified'].map((k) => h('span', {}, h('i', { class: k }), k))),
  );
}

/** Latest finished jobs: time waiting (queue, approval) and running, stacked, coloured by final state. */
function jobChart(jobs) {
  // full card width: a wider canvas keeps text at the size of the other charts
  const W = 1100, H = 220, L = 52, R = 10, T = 12, B = 28;
  const totals = jobs.map((j) => (j.waitMs + j.runMs) / 1000);
  const marks = ticks(Math.max(1, ...totals));
  const max = marks[marks.length - 1];
  const step = (W - L - R) / Math.max(jobs.length, 20);
  const bw = Math.max(3, Math.min(30, step * 0.7));
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'Job durations' });
  axes(svg, marks, y, L, R, W, (v) => `${fmtNum(v)} s`);
  if (jobs.length === 0) svg.append(s('text', { x: (W + L) / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty-note' }, 'no finished job yet'));
  jobs.forEach((j, i) => {
    const x = L + i * step + (step - bw) / 2;
    const wait = j.waitMs / 1000;
    const run = j.runMs / 1000;
    svg.append(
      s(
        'a',
        { href: `#/jobs/${encodeURIComponent(j.jobId)}` },
        s(
          'g',
          { 'data-job': j.jobId },
          s('rect', { x, y: y(wait), width: bw, height: y(0) - y(wait), class: 'wait', rx: 2 }),
          s('rect', { x, y: y(wait + run), width: bw, height: y(wait) - y(wait + run), class: `run ${j.state}`, rx: 2 }),
          s('title', {}, `job ${j.jobId} (${j.consumer}, ${j.datasetId}) ${j.state}: waited ${fmtMs(j.waitMs)}, ran ${fmtMs(j.runMs)}`),
        ),
      ),
    );
  });
  svg.append(s('line', { class: 'axis', x1: L, x2: W - R, y1: y(0), y2: y(0) }));
  return h(
    'div',
    { class: 'chart', 'data-testid': 'chart-jobs' },
    svg,
    h('div', { class: 'legend' }, h('span', {}, h('i', { class: 'wait' }), 'waiting (approval, queue)'), h('span', {}, h('i', { class: 'run' }), 'verifying and running')),
  );
}

// ------------------------------------------------------------------ pages

async function overview() {
  const [o, series] = await Promise.all([api('/api/overview'), api('/api/series?seconds=300')]);
  const t = o.totals;
  const charts = h(
    'div',
    { id: 'charts' },
    h(
      'div',
      { class: 'grid two' },
      h('div', { class: 'card' }, h('h2', {}, 'Records acknowledged per second (last 5 minutes)'), ingestChart(series.ingest)),
      h('div', { class: 'card' }, h('h2', {}, 'Verification outcomes by reason (latest report per dataset)'), outcomeChart(series.outcomes)),
    ),
    h('div', { class: 'card' }, h('h2', {}, 'Job durations (latest finished jobs)'), jobChart(series.jobDurations)),
  );
  page(
    'Gateway overview',
    h('span', {}, 'Gateway ', h('b', {}, o.gatewayId), ` · up ${fmtMs(o.uptimeSeconds * 1000)} · certificate valid to ${o.certificate ? o.certificate.validTo : '—'}`),
    null,
    h(
      'div',
      { class: 'stats' },
      stat('Records stored', fmtNum(o.store.records), 'stat-records', `${fmtNum(o.store.channels)} channel(s)`),
      stat('UEs', fmtNum(o.store.ues), 'stat-ues'),
      stat('Datasets', fmtNum(o.datasets), 'stat-datasets'),
      stat('Ingested since start', fmtNum(t.ingest.stored), 'stat-ingested', `${fmtNum(t.ingest.duplicate)} duplicate · ${fmtNum(t.ingest.rejected)} rejected`),
      stat('Verified since start', fmtNum(t.verification.records), 'stat-verified', `${fmtNum(t.verification.runs)} run(s) · ${fmtNum(t.verification.valid)} valid`),
      stat('Jobs', o.jobs.enabled ? `${fmtNum(o.jobs.running)} running` : 'disabled', 'stat-jobs', o.jobs.enabled ? `${fmtNum(o.jobs.queued)} queued · ${fmtNum(o.jobs.pendingApproval)} awaiting approval` : null),
    ),
    charts,
  );
  // charts follow the gateway while the overview is on screen
  refreshTimer = setInterval(async () => {
    if (document.hidden) return;
    try {
      const fresh = await api('/api/series?seconds=300');
      const place = document.getElementById('charts');
      if (!place) return;
      const [ing, out, jobs] = place.querySelectorAll('.chart');
      ing.replaceWith(ingestChart(fresh.ingest));
      out.replaceWith(outcomeChart(fresh.outcomes));
      jobs.replaceWith(jobChart(fresh.jobDurations));
    } catch {
      // the next route() shows errors; a missed refresh is harmless
    }
  }, 5000);
}

function reportBrief(r) {
  if (!r) return h('span', { class: 'muted' }, 'not verified yet');
  return h('span', {}, meter(r), h('span', { class: 'muted' }, `${fmtNum(r.validCount)} of ${fmtNum(r.recordCount)} valid · `), h('a', { href: `#/reports/${r.id}` }, fmtTime(r.issuedAtMs)));
}

async function datasetsPage() {
  const r = await api('/api/datasets');
  page(
    'Datasets',
    'What consumers are offered: descriptions only — the records stay on this gateway',
    h('span', {}, h('a', { href: '#/' }, 'Overview'), ' / Datasets'),
    h(
      'div',
      { class: 'card' },
      table(
        ['Dataset', 'Channel', { text: 'Records', cls: 'num' }, { text: 'UEs', cls: 'num' }, 'Signed between', 'Granted to', 'Latest verification'],
        r.datasets.map((d) =>
          h(
            'tr',
            { 'data-testid': 'dataset-row', 'data-dataset': d.id },
            h('td', {}, h('a', { href: `#/datasets/${encodeURIComponent(d.id)}`, 'data-dataset-link': d.id }, d.id), d.description ? h('div', { class: 'muted' }, d.description) : null),
            h('td', {}, h('code', {}, d.channel), d.contentTypes.length ? h('div', { class: 'muted' }, d.contentTypes.join(', ')) : null),
            h('td', { class: 'num' }, fmtNum(d.recordCount)),
            h('td', { class: 'num' }, fmtNum(d.ueCount)),
            h('td', {}, d.recordCount ? `${fmtTime(d.firstTimestampMs)} → ${fmtTime(d.lastTimestampMs)}` : '—'),
            h('td', {}, d.grants.length ? d.grants.join(', ') : h('span', { class: 'muted' }, 'nobody')),
            h('td', {}, reportBrief(d.latestReport)),
          ),
        ),
        { 'data-testid': 'datasets' },
      ),
    ),
  );
}

function reasonRows(r) {
  return [
    h('tr', { 'data-testid': 'reason-row', 'data-reason': 'VALID', 'data-count': r.validCount }, h('td', {}, badge('VALID', 'valid')), h('td', {}, 'valid'), h('td', { class: 'num' }, fmtNum(r.validCount))),
    ...r.invalid.map((x) => h('tr', { 'data-testid': 'reason-row', 'data-reason': x.reason, 'data-count': x.count }, h('td', {}, badge(x.reason, 'invalid')), h('td', {}, 'invalid'), h('td', { class: 'num' }, fmtNum(x.count)))),
    ...r.unverified.map((x) => h('tr', { 'data-testid': 'reason-row', 'data-reason': x.reason, 'data-count': x.count }, h('td', {}, badge(x.reason, 'unverified')), h('td', {}, 'could not be checked'), h('td', { class: 'num' }, fmtNum(x.count)))),
  ];
}

const REPORT_HEAD = ['Report', 'Issued', 'Source', 'Consumer', { text: 'Records', cls: 'num' }, { text: 'Valid', cls: 'num' }, 'Outcome', 'Took'];
function reportRows(list) {
  return list.map((r) =>
    h(
      'tr',
      { 'data-testid': 'report-row', 'data-report': r.id },
      h('td', {}, h('a', { href: `#/reports/${r.id}`, 'data-report-link': r.id }, `#${r.id}`)),
      h('td', {}, fmtTime(r.issuedAtMs)),
      h('td', {}, r.source === 'job' ? h('span', {}, 'job ', h('a', { href: `#/jobs/${encodeURIComponent(r.jobId)}` }, shortHex(r.jobId, 8))) : 'VerifyDataset'),
      h('td', {}, r.consumer),
      h('td', { class: 'num' }, fmtNum(r.recordCount)),
      h('td', { class: 'num' }, fmtNum(r.validCount)),
      h('td', {}, meter(r)),
      h('td', {}, fmtMs(r.durationMs)),
    ),
  );
}

async function datasetPage(id) {
  const d = await api(`/api/datasets/${encodeURIComponent(id)}`);
  const latest = d.reports[0];
  page(
    `Dataset ${d.id}`,
    d.description || null,
    h('span', {}, h('a', { href: '#/' }, 'Overview'), ' / ', h('a', { href: '#/datasets' }, 'Datasets'), ` / ${d.id}`),
    h(
      'div',
      { class: 'grid two' },
      h(
        'div',
        { class: 'card' },
        h('h2', {}, 'Description (what consumers see)'),
        kv([
          ['Dataset ID', d.id, 'dataset-id'],
          ['Channel', h('code', {}, d.channel)],
          ['Media types', d.contentTypes.length ? d.contentTypes.join(', ') : 'all'],
          ['Payload schema', d.schema || '—'],
          ['Records', fmtNum(d.recordCount), 'record-count'],
          ['UEs', fmtNum(d.ueCount), 'ue-count'],
          ['Signed between', d.recordCount ? `${fmtTime(d.firstTimestampMs)} → ${fmtTime(d.lastTimestampMs)}` : '—'],
          ['Granted to', d.grants.length ? d.grants.join(', ') : 'nobody'],
        ]),
      ),
      h(
        'div',
        { class: 'card', 'data-testid': 'latest-report' },
        h('h2', {}, 'Latest verification report'),
        latest
          ? h(
              'div',
              {},
              kv([
                ['Report', h('a', { href: `#/reports/${latest.id}`, 'data-testid': 'latest-report-link' }, `#${latest.id} · ${fmtTime(latest.issuedAtMs)}`)],
                ['Records / valid', `${fmtNum(latest.recordCount)} / ${fmtNum(latest.validCount)}`],
                ['Complete', latest.complete ? check(true, 'every record checked', '') : check(false, '', 'some records could not be checked')],
              ]),
              table(['Reason', 'Result', { text: 'Records', cls: 'num' }], reasonRows(latest), { 'data-testid': 'latest-reasons' }),
            )
          : h('p', { class: 'muted' }, 'No report yet: a consumer asks for one with VerifyDataset, and every job verifies first.'),
      ),
    ),
    h('div', { class: 'card' }, h('h2', {}, 'Verification reports'), table(REPORT_HEAD, reportRows(d.reports), { 'data-testid': 'reports' })),
    h(
      'div',
      { class: 'card' },
      h('h2', {}, `Contributing UEs${d.ueCount > d.ues.length ? ` (first ${d.ues.length} of ${fmtNum(d.ueCount)})` : ''}`),
      table(
        ['UE identity', { text: 'Records', cls: 'num' }, 'Sequence', 'Signed between'],
        d.ues.map((u) =>
          h(
            'tr',
            { 'data-testid': 'ue-row', 'data-imei': u.identity.imei },
            h('td', {}, identityText(u.identity)),
            h('td', { class: 'num' }, fmtNum(u.recordCount)),
            h('td', {}, `${u.firstSequence} – ${u.lastSequence}`),
            h('td', {}, `${fmtTime(u.firstTimestampMs)} → ${fmtTime(u.lastTimestampMs)}`),
          ),
        ),
        { 'data-testid': 'ues' },
      ),
    ),
  );
}

async function reportsPage() {
  const r = await api('/api/reports?limit=100');
  page('Verification reports', 'Signed reports this gateway issued, newest first', h('span', {}, h('a', { href: '#/' }, 'Overview'), ' / Reports'), h('div', { class: 'card' }, table(['Dataset', ...REPORT_HEAD], reportRows(r.reports).map((row, i) => (row.prepend(h('td', {}, h('a', { href: `#/datasets/${encodeURIComponent(r.reports[i].datasetId)}` }, r.reports[i].datasetId))), row)))));
}

const cpRow = (c) => h('tr', { 'data-testid': 'checkpoint-row' }, h('td', {}, h('code', {}, c.origin)), h('td', { class: 'num' }, fmtNum(c.size)), h('td', {}, shortHex(c.rootHash, 24)), h('td', {}, c.signer));

async function reportPage(id) {
  const r = await api(`/api/reports/${encodeURIComponent(id)}`);
  const sig = r.signatureCheck;
  page(
    `Verification report #${r.id}`,
    h('span', {}, `dataset ${r.datasetId} · `, r.complete ? badge('complete', 'ok') : badge('incomplete', 'warn'), ' ', sig.verified ? badge('signature verified', 'ok') : badge('signature does not verify', 'bad')),
    h('span', {}, h('a', { href: '#/' }, 'Overview'), ' / ', h('a', { href: `#/datasets/${encodeURIComponent(r.datasetId)}` }, `Dataset ${r.datasetId}`), ` / Report #${r.id}`),
    h(
      'div',
      { class: 'grid two' },
      h(
        'div',
        { class: 'card' },
        h('h2', {}, 'Report'),
        kv([
          ['Dataset', h('a', { href: `#/datasets/${encodeURIComponent(r.datasetId)}` }, r.datasetId), 'dataset'],
          ['Issued to', `${r.consumer} (${r.source === 'job' ? `job ${r.jobId}` : 'VerifyDataset'})`],
          ['Verified', `${fmtTime(r.startedAtMs)} · took ${fmtMs(r.durationMs)}`],
          ['Records', fmtNum(r.recordCount), 'records'],
          ['Valid', fmtNum(r.validCount), 'valid'],
          ['Invalid', fmtNum(r.invalidCount), 'invalid'],
          ['Unverified', fmtNum(r.unverifiedCount), 'unverified'],
          ['UEs', fmtNum(r.ueCount)],
          ['Restricted to', r.restrictedTo.length ? r.restrictedTo.map(identityText).join('; ') : 'all UEs of the dataset'],
          ['Nonce', h('code', {}, r.nonce || '—')],
        ]),
      ),
      h('div', { class: 'card' }, h('h2', {}, 'Counts per reason'), table(['Reason', 'Result', { text: 'Records', cls: 'num' }], reasonRows(r), { 'data-testid': 'reasons' })),
    ),
    h(
      'div',
      { class: 'grid two' },
      h(
        'div',
        { class: 'card' },
        h('h2', {}, 'Dataset commitment and chains'),
        kv([
          ['Commitment (RFC 9162 root over valid records)', h('code', {}, r.datasetCommitment), 'commitment'],
          ['Commitment size (leaves)', fmtNum(r.commitmentSize), 'commitment-size'],
          ['Gaps (records missing)', `${fmtNum(r.chain.gaps)} (${fmtNum(r.chain.missingRecords)})`],
          ['Forks', fmtNum(r.chain.forks)],
          ['Forks refused at ingest', fmtNum(r.chain.forksRejectedAtIngest)],
          ['Replays', fmtNum(r.chain.replays)],
          ['Reordered in transit', fmtNum(r.chain.reordered)],
        ]),
      ),
      h(
        'div',
        { class: 'card' },
        h('h2', {}, 'Gateway signature'),
        kv([
          ['Signed by', r.gatewayId],
          ['Report bytes / SHA-256', h('span', {}, `${fmtNum(r.reportBytes)} bytes · `, h('code', {}, r.reportHash))],
          ['Signature', shortHex(r.signature, 32), 'signature'],
          ['Check (chain + signature, as a consumer does it)', sig.verified ? check(true, 'verified', '') : check(false, '', `${sig.code}: ${sig.message}`), 'signature-check'],
          ['Certificate chain', h('ol', {}, r.certChain.map((c) => h('li', {}, `${c.subject} (issuer ${c.issuer}; valid to ${c.validTo})`)))],
        ]),
      ),
    ),
    h('div', { class: 'card' }, h('h2', {}, 'Checkpoints used'), table(['Origin', { text: 'Tree size', cls: 'num' }, 'Root hash', 'Signer'], r.checkpoints.map(cpRow), { 'data-testid': 'checkpoints' })),
    h(
      'div',
      { class: 'card' },
      h('h2', {}, 'Endorsements used'),
      table(
        ['Ledger', { text: 'Tx', cls: 'num' }, { text: 'Version', cls: 'num' }, { text: 'Latest', cls: 'num' }, 'UE key', { text: 'Records', cls: 'num' }, 'Outcome', 'Checkpoint'],
        r.endorsements.map((e) =>
          h(
            'tr',
            { 'data-testid': 'endorsement-row', 'data-tx': e.txId },
            h('td', {}, h('code', {}, e.ledgerId)),
            h('td', { class: 'num' }, e.txId),
            h('td', { class: 'num' }, e.version || '—'),
            h('td', { class: 'num' }, e.latestVersion ? `v${e.latestVersion} (tx ${e.latestTxId})` : '—'),
            h('td', {}, shortHex(e.ueKey, 16)),
            h('td', { class: 'num' }, fmtNum(e.recordCount)),
            h('td', {}, badge(e.outcome, e.outcome === 'OK' ? 'ok' : 'bad')),
            h('td', {}, e.checkpoint ? `${e.checkpoint.origin} @ ${fmtNum(e.checkpoint.size)}` : '—'),
          ),
        ),
        { 'data-testid': 'endorsements' },
      ),
    ),
  );
}

async function jobsPage(params) {
  const state = params.get('state') || '';
  const r = await api(`/api/jobs?limit=200${state ? `&state=${encodeURIComponent(state)}` : ''}`);
  page(
    'Jobs',
    r.enabled ? `Consumer jobs of every consumer, newest first${state ? ` (state ${state})` : ''}` : 'Jobs are disabled on this gateway',
    h('span', {}, h('a', { href: '#/' }, 'Overview'), ' / Jobs'),
    h(
      'div',
      { class: 'card' },
      table(
        ['Job', 'Consumer', 'Dataset', 'State', 'Submitted', { text: 'Duration', cls: 'num' }, { text: 'Records (valid)', cls: 'num' }, 'Code hash'],
        r.jobs.map((j) =>
          h(
            'tr',
            { 'data-testid': 'job-row', 'data-job': j.jobId, 'data-state': j.state },
            h('td', {}, h('a', { href: `#/jobs/${encodeURIComponent(j.jobId)}`, 'data-job-link': j.jobId }, shortHex(j.jobId, 8))),
            h('td', {}, j.consumer),
            h('td', {}, h('a', { href: `#/datasets/${encodeURIComponent(j.datasetId)}` }, j.datasetId)),
            h('td', {}, badge(j.state, j.state), j.errorCode ? h('div', { class: 'muted' }, j.errorCode) : null),
            h('td', {}, fmtTime(j.submittedAtMs)),
            h('td', { class: 'num' }, fmtMs(j.durationMs)),
            h('td', { class: 'num' }, j.recordsTotal ? `${fmtNum(j.recordsTotal)} (${fmtNum(j.recordsValid)})` : '—'),
            h('td', {}, shortHex(j.codeHash, 16)),
          ),
        ),
        { 'data-testid': 'jobs' },
      ),
    ),
  );
}

async function jobPage(id) {
  const j = await api(`/api/jobs/${encodeURIComponent(id)}`);
  const a = j.attestation;
  const st = a && a.statement;
  page(
    `Job ${j.jobId}`,
    h('span', {}, badge(j.state, j.state), ` · ${j.consumer} on ${j.datasetId} · ${j.detail}`),
    h('span', {}, h('a', { href: '#/' }, 'Overview'), ' / ', h('a', { href: '#/jobs' }, 'Jobs'), ` / ${j.jobId.slice(0, 8)}…`),
    h(
      'div',
      { class: 'grid two' },
      h(
        'div',
        { class: 'card' },
        h('h2', {}, 'Job'),
        kv([
          ['Job ID', h('code', {}, j.jobId), 'job-id'],
          ['State', badge(j.state, j.state), 'state'],
          ['Consumer', j.consumer, 'consumer'],
          ['Dataset', h('a', { href: `#/datasets/${encodeURIComponent(j.datasetId)}` }, j.datasetId)],
          ['Code hash (SHA-256)', h('code', {}, j.codeHash), 'job-code-hash'],
          ['Approval', j.approval || 'pending'],
          ['Submitted', fmtTime(j.submittedAtMs)],
          ['Started', fmtTime(j.startedAtMs)],
          ['Finished', fmtTime(j.finishedAtMs)],
          ['Duration (total / running)', `${fmtMs(j.durationMs)} / ${fmtMs(j.runMs)}`, 'duration'],
          ['Records (valid)', j.recordsTotal ? `${fmtNum(j.recordsTotal)} (${fmtNum(j.recordsValid)})` : '—'],
          ['Groups', `${j.groupsDone} / ${j.groupsTotal}${j.groupBy.length ? ` by ${j.groupBy.join(', ')}` : ''}`],
          ['Limits', `${j.limits.memoryMb} MB · ${fmtMs(j.limits.cpuMs)} CPU · ${fmtMs(j.limits.wallMs)} wall · ${fmtNum(j.limits.outputBytes)} B out`],
          ['Result', j.resultBytes ? h('span', {}, `${fmtNum(j.resultBytes)} bytes · `, h('code', {}, j.resultHash)) : '—', 'result'],
          j.errorCode ? ['Error', `${j.errorCode}: ${j.errorMessage}`, 'error'] : null,
          j.report ? ['Verification report', j.report.reportId ? h('a', { href: `#/reports/${j.report.reportId}` }, `#${j.report.reportId}: ${fmtNum(j.report.validCount)} of ${fmtNum(j.report.recordCount)} valid`) : `${fmtNum(j.report.validCount)} of ${fmtNum(j.report.recordCount)} valid`] : null,
        ]),
      ),
      h(
        'div',
        { class: 'card', 'data-testid': 'attestation' },
        h('h2', {}, 'Attestation (signed by the gateway)'),
        a
          ? kv([
              ['Check (chain, signature, result and report bound)', a.check.verified ? check(true, 'verified', '') : check(false, '', `${a.check.code}: ${a.check.message}`), 'attestation-check'],
              ['Result hash', h('code', {}, st.resultHash), 'result-hash'],
              ['Result size', `${fmtNum(st.resultBytes)} bytes`],
              ['Code hash', h('code', {}, st.codeHash), 'code-hash'],
              ['Params hash', h('code', {}, st.paramsHash)],
              ['Dataset commitment', h('span', {}, h('code', {}, st.datasetCommitment), ` (${fmtNum(st.commitmentSize)} records)`), 'dataset-commitment'],
              ['Report hash', h('code', {}, st.reportHash)],
              ['Input commitment', h('span', {}, h('code', {}, st.inputCommitment), ` (${fmtNum(st.inputRecords)} records of ${fmtNum(st.inputUes)} UEs)`)],
              ['Groups released / suppressed', `${st.groups} / ${st.suppressedGroups}`],
              ['Output policy', st.outputPolicy ? `≥ ${st.outputPolicy.minDistinctUes} UEs per group · ≤ ${fmtNum(st.outputPolicy.maxOutputBytes)} B · ≤ ${st.outputPolicy.maxGroups} groups` : '—'],
              ['Runner', st.runner ? h('span', {}, `${st.runner.version} (node ${st.runner.nodeVersion}, V8 ${st.runner.v8Version}, isolated-vm ${st.runner.isolatedVmVersion}) `, shortHex(st.runner.digest, 16)) : '—'],
              ['Job time / seed', `${fmtTime(st.jobTimeMs)} / ${st.seed}`],
              ['Nonce', h('code', {}, st.nonce)],
              ['Approval', st.approval],
              ['Signature', shortHex(a.signature, 32), 'attestation-signature'],
              ['Signed by', h('ol', {}, a.certChain.map((c) => h('li', {}, `${c.subject} (valid to ${c.validTo})`)))],
            ])
          : h('p', { class: 'muted' }, j.final ? 'No attestation: only a job that succeeded releases a result.' : 'The attestation is signed when the job succeeds.'),
      ),
    ),
    h('div', { class: 'card' }, h('h2', {}, 'Code'), h('pre', { class: 'code', 'data-testid': 'job-code' }, j.code), j.paramsJson && j.paramsJson !== 'null' ? h('div', {}, h('h2', { class: 'spaced' }, 'Params'), h('pre', { class: 'code' }, j.paramsJson)) : null),
  );
}

function loginPage(message) {
  for (const id of ['nav', 'who']) document.getElementById(id).hidden = true;
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true, placeholder: 'operator bearer token' });
  const form = h(
    'form',
    { class: 'card login', id: 'login-form' },
    h('h1', {}, 'Sign in'),
    h('p', {}, 'The gateway dashboard is for its operators: use a token of ', h('code', {}, 'jobs.admins'), ' or ', h('code', {}, 'dashboard.operators'), ' in the gateway configuration.'),
    message ? h('div', { class: 'error', role: 'alert' }, message) : null,
    h('label', { for: 'token' }, 'Token'),
    input,
    h('button', { type: 'submit' }, 'Sign in'),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    try {
      await api('/api/overview');
      if (location.hash === '' || location.hash === '#/') route();
      else location.hash = '#/';
    } catch (e) {
      sessionStorage.removeItem(TOKEN_KEY);
      loginPage(e.status === 401 || e.status === 403 ? 'This token is not accepted by the gateway.' : `Sign-in failed: ${e.message}`);
    }
  });
  main.replaceChildren(form);
  input.focus();
}

// ------------------------------------------------------------------ routing

async function route() {
  clearInterval(refreshTimer);
  refreshTimer = null;
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, query] = raw.split('?');
  const params = new URLSearchParams(query || '');
  if (!sessionStorage.getItem(TOKEN_KEY)) return loginPage();
  for (const id of ['nav', 'who']) document.getElementById(id).hidden = false;
  for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('active', (path === '/' && a.dataset.nav === 'overview') || path.startsWith(`/${a.dataset.nav}`));
  let m;
  try {
    if (path === '/' || path === '') await overview();
    else if (path === '/datasets') await datasetsPage();
    else if ((m = /^\/datasets\/([^/]+)$/.exec(path))) await datasetPage(decodeURIComponent(m[1]));
    else if (path === '/reports') await reportsPage();
    else if ((m = /^\/reports\/(\d+)$/.exec(path))) await reportPage(m[1]);
    else if (path === '/jobs') await jobsPage(params);
    else if ((m = /^\/jobs\/([^/]+)$/.exec(path))) await jobPage(decodeURIComponent(m[1]));
    else page('Not found', `No page ${path}`, h('a', { href: '#/' }, 'Overview'));
    window.scrollTo(0, 0);
    loadGatewayId();
  } catch (e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
      sessionStorage.removeItem(TOKEN_KEY);
      return loginPage('Your session is no longer accepted; sign in again.');
    }
    page(e instanceof ApiError && e.status === 404 ? 'Not found' : 'Something went wrong', null, h('a', { href: '#/' }, 'Overview'), h('div', { class: 'error', role: 'alert', 'data-testid': 'error' }, `${e.code || 'ERROR'}: ${e.message}`));
  }
}

let gatewayId = '';
async function loadGatewayId() {
  if (gatewayId) return;
  try {
    gatewayId = (await api('/api/overview')).gatewayId;
    document.getElementById('gateway-id').textContent = gatewayId;
  } catch {
    // shown after the next successful page
  }
}

document.getElementById('logout').addEventListener('click', () => {
  clearInterval(refreshTimer);
  sessionStorage.removeItem(TOKEN_KEY);
  gatewayId = '';
  location.hash = '#/';
  loginPage('Signed out.');
});
window.addEventListener('hashchange', route);
route();
