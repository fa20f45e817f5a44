// DIVS gateway operator dashboard: a small single-page app over the gateway's JSON API (/api/*).
// No framework, no build step, nothing from a CDN. Every value from the API goes into the page
// as text (never parsed as HTML); the operator's bearer token lives in sessionStorage (this tab).
// The shared parts (DOM, formatting, charts, sign-in, routing) come from the kit (/kit/kit.js).
import { api, badge, check, crumbs, fmtMs, fmtNum, fmtTime, h, kv, legend, page, s, shortHex, startDashboard, stat, table as kitTable, valueChart } from '/kit/kit.js';

/** The overview's refresh timer (charts update in place while the overview is shown). */
let refreshTimer = null;

const identityText = (id) => (id ? [id.imei && `IMEI ${id.imei}`, id.iccid && `ICCID ${id.iccid}`, id.eid && `EID ${id.eid}`, id.msisdn].filter(Boolean).join(' · ') : '—');
/** Tables of this dashboard say so when they are empty. */
const table = (head, rows, attrs) => kitTable(head, rows, attrs, 'nothing yet');

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

// ------------------------------------------------------------------ charts (inline SVG)

/** Records acknowledged per second (stored, duplicate, rejected), stacked, oldest left. */
function ingestChart(series) {
  const W = 560, H = 220, L = 44, R = 10, T = 12, B = 28;
  const n = series.stored.length;
  const totals = series.stored.map((v, i) => v + series.duplicate[i] + series.rejected[i]);
  const { svg, y, baseline } = valueChart({ W, H, L, R, T, B, top: Math.max(1, ...totals), label: 'Records acknowledged per second' });
  const step = (W - L - R) / Math.max(1, n);
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
    baseline(),
    s('text', { x: L, y: H - 10, 'text-anchor': 'start' }, `−${mins} min`),
    s('text', { x: W - R, y: H - 10, 'text-anchor': 'end' }, 'now'),
  );
  return h(
    'div',
    { class: 'chart', 'data-testid': 'chart-ingest', 'data-total': totals.reduce((a, b) => a + b, 0) },
    svg,
    legend(['stored', 'duplicate', 'rejected'].map((k) => [k, k])),
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
    legend(['valid', 'invalid', 'unverified'].map((k) => [k, k])),
  );
}

/** Latest finished jobs: time waiting (queue, approval) and running, stacked, coloured by final state. */
function jobChart(jobs) {
  // full card width: a wider canvas keeps text at the size of the other charts
  const W = 1100, H = 220, L = 52, R = 10, T = 12, B = 28;
  const totals = jobs.map((j) => (j.waitMs + j.runMs) / 1000);
  const { svg, y, baseline } = valueChart({ W, H, L, R, T, B, top: Math.max(1, ...totals), label: 'Job durations', fmt: (v) => `${fmtNum(v)} s` });
  const step = (W - L - R) / Math.max(jobs.length, 20);
  const bw = Math.max(3, Math.min(30, step * 0.7));
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
  svg.append(baseline());
  return h('div', { class: 'chart', 'data-testid': 'chart-jobs' }, svg, legend([['wait', 'waiting (approval, queue)'], ['run', 'verifying and running']]));
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
      stat('Records stored', fmtNum(o.store.records), 'stat-records', { note: `${fmtNum(o.store.channels)} channel(s)` }),
      stat('UEs', fmtNum(o.store.ues), 'stat-ues'),
      stat('Datasets', fmtNum(o.datasets), 'stat-datasets'),
      stat('Ingested since start', fmtNum(t.ingest.stored), 'stat-ingested', { note: `${fmtNum(t.ingest.duplicate)} duplicate · ${fmtNum(t.ingest.rejected)} rejected` }),
      stat('Verified since start', fmtNum(t.verification.records), 'stat-verified', { note: `${fmtNum(t.verification.runs)} run(s) · ${fmtNum(t.verification.valid)} valid` }),
      stat('Jobs', o.jobs.enabled ? `${fmtNum(o.jobs.running)} running` : 'disabled', 'stat-jobs', { note: o.jobs.enabled ? `${fmtNum(o.jobs.queued)} queued · ${fmtNum(o.jobs.pendingApproval)} awaiting approval` : null }),
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
    crumbs(['#/', 'Overview'], 'Datasets'),
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
    crumbs(['#/', 'Overview'], ['#/datasets', 'Datasets'], d.id),
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
  page('Verification reports', 'Signed reports this gateway issued, newest first', crumbs(['#/', 'Overview'], 'Reports'), h('div', { class: 'card' }, table(['Dataset', ...REPORT_HEAD], reportRows(r.reports).map((row, i) => (row.prepend(h('td', {}, h('a', { href: `#/datasets/${encodeURIComponent(r.reports[i].datasetId)}` }, r.reports[i].datasetId))), row)))));
}

const cpRow = (c) => h('tr', { 'data-testid': 'checkpoint-row' }, h('td', {}, h('code', {}, c.origin)), h('td', { class: 'num' }, fmtNum(c.size)), h('td', {}, shortHex(c.rootHash, 24)), h('td', {}, c.signer));

async function reportPage(id) {
  const r = await api(`/api/reports/${encodeURIComponent(id)}`);
  const sig = r.signatureCheck;
  page(
    `Verification report #${r.id}`,
    h('span', {}, `dataset ${r.datasetId} · `, r.complete ? badge('complete', 'ok') : badge('incomplete', 'warn'), ' ', sig.verified ? badge('signature verified', 'ok') : badge('signature does not verify', 'bad')),
    crumbs(['#/', 'Overview'], [`#/datasets/${encodeURIComponent(r.datasetId)}`, `Dataset ${r.datasetId}`], `Report #${r.id}`),
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
    crumbs(['#/', 'Overview'], 'Jobs'),
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
    crumbs(['#/', 'Overview'], ['#/jobs', 'Jobs'], `${j.jobId.slice(0, 8)}…`),
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

// ------------------------------------------------------------------ start

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

startDashboard({
  tokenKey: 'divs.gateway.token',
  chrome: ['nav', 'who'],
  login: {
    placeholder: 'operator bearer token',
    intro: ['The gateway dashboard is for its operators: use a token of ', h('code', {}, 'jobs.admins'), ' or ', h('code', {}, 'dashboard.operators'), ' in the gateway configuration.'],
    probe: '/api/overview',
    refused: 'This token is not accepted by the gateway.',
  },
  routes: [
    ['/', overview],
    ['/datasets', datasetsPage],
    [/^\/datasets\/([^/]+)$/, datasetPage],
    ['/reports', reportsPage],
    [/^\/reports\/(\d+)$/, reportPage],
    ['/jobs', jobsPage],
    [/^\/jobs\/([^/]+)$/, jobPage],
  ],
  // the overview's charts stop following the gateway once another page (or the sign-in) shows
  beforeRoute: () => {
    clearInterval(refreshTimer);
    refreshTimer = null;
  },
  afterRoute: loadGatewayId,
  onSignOut: () => {
    gatewayId = '';
  },
});
