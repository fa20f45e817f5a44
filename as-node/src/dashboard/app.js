// DIVS AS node dashboard: a small single-page app over the node's JSON API (/api/*).
// No framework and no build step. Every value from the API is put into the page as text
// (never parsed as HTML); the bearer token lives in sessionStorage for this tab only.
// The shared parts (DOM, formatting, charts, sign-in, routing) come from the kit (/kit/kit.js).
import { api, badge, check, crumbs, fmtNum, fmtTime, h, kv, legend, page, s, shortHex, startDashboard, stat, table, valueChart } from '/kit/kit.js';

const txLink = (id) => h('a', { href: `#/tx/${id}`, 'data-tx-link': id }, `#${id}`);
const blockLink = (height) => h('a', { href: `#/block/${height}` }, `#${height}`);

function ueHref(id) {
  if (!id) return '#/';
  if (id.imei) return `#/ue?imei=${encodeURIComponent(id.imei)}`;
  if (id.msisdn) return `#/ue?msisdn=${encodeURIComponent(id.msisdn)}`;
  if (id.iccid) return `#/ue?iccid=${encodeURIComponent(id.iccid)}`;
  return `#/ue?eid=${encodeURIComponent(id.eid)}`;
}
const identityText = (id) => (id ? [id.imei && `IMEI ${id.imei}`, id.msisdn && id.msisdn].filter(Boolean).join(' · ') : '—');
/** A pager button: a link, or greyed out text where there is nothing to go to. */
const pageLink = (href, text) => (href !== null ? h('a', { href }, text) : h('span', {}, text));

// ------------------------------------------------------------------ charts

/** Stacked bars of registrations and updates per block. */
function endorsementChart(blocks) {
  const W = 560, H = 220, L = 40, R = 10, T = 12, B = 28;
  const { svg, y, baseline } = valueChart({ W, H, L, R, T, B, top: Math.max(1, ...blocks.map((b) => b.registrations + b.updates + b.other)), label: 'Endorsements per block' });
  const step = (W - L - R) / Math.max(blocks.length, 1);
  const bw = Math.max(2, Math.min(28, step * 0.7));
  blocks.forEach((b, i) => {
    const x = L + i * step + (step - bw) / 2;
    const g = s('g', {});
    const link = s('a', { href: `#/block/${b.height}` }, g);
    const regTop = y(b.registrations);
    g.append(
      s('rect', { x, y: regTop, width: bw, height: y(0) - regTop, class: 'bar-reg', rx: 2 }),
      s('rect', { x, y: y(b.registrations + b.updates), width: bw, height: regTop - y(b.registrations + b.updates), class: 'bar-upd', rx: 2 }),
      s('title', {}, `block #${b.height}: ${b.registrations} registrations, ${b.updates} updates`),
    );
    svg.append(link);
    if (blocks.length <= 16 || i % Math.ceil(blocks.length / 12) === 0) svg.append(s('text', { x: x + bw / 2, y: H - 10, 'text-anchor': 'middle' }, `#${b.height}`));
  });
  svg.append(baseline());
  return h('div', { class: 'chart', 'data-testid': 'chart-endorsements' }, svg, legend([['reg', 'registrations'], ['upd', 'updates']]));
}

/** Ledger size (transactions) after each block, as an area. */
function sizeChart(blocks) {
  const W = 560, H = 220, L = 48, R = 10, T = 12, B = 28;
  const { svg, y, baseline } = valueChart({ W, H, L, R, T, B, top: Math.max(1, ...blocks.map((b) => b.treeSize)), label: 'Ledger size' });
  const n = Math.max(blocks.length - 1, 1);
  const x = (i) => L + ((W - L - R) * i) / n;
  if (blocks.length > 0) {
    const pts = blocks.map((b, i) => `${x(i)},${y(b.treeSize)}`).join(' ');
    svg.append(
      s('polygon', { points: `${x(0)},${y(0)} ${pts} ${x(blocks.length - 1)},${y(0)}`, class: 'area' }),
      s('polyline', { points: pts, class: 'line' }),
    );
    blocks.forEach((b, i) => svg.append(s('circle', { cx: x(i), cy: y(b.treeSize), r: 3, class: 'dot' }, s('title', {}, `after block #${b.height}: ${b.treeSize} transactions`))));
    const first = blocks[0], last = blocks[blocks.length - 1];
    svg.append(s('text', { x: x(0), y: H - 10, 'text-anchor': 'start' }, `#${first.height}`), s('text', { x: x(blocks.length - 1), y: H - 10, 'text-anchor': 'end' }, `#${last.height}`));
  }
  svg.append(baseline());
  return h('div', { class: 'chart', 'data-testid': 'chart-size' }, svg);
}

// ------------------------------------------------------------------ pages

function blockRows(blocks) {
  return blocks.map((b) =>
    h(
      'tr',
      { 'data-testid': 'block-row', 'data-height': b.height },
      h('td', {}, blockLink(b.height)),
      h('td', {}, fmtTime(b.timestampMs)),
      h('td', { class: 'num' }, fmtNum(b.txCount)),
      h('td', { class: 'num' }, fmtNum(b.registrations)),
      h('td', { class: 'num' }, fmtNum(b.updates)),
      h('td', {}, shortHex(b.hash, 16)),
      h('td', {}, b.proposer || '—'),
    ),
  );
}
const BLOCK_HEAD = ['Block', 'Time', { text: 'Txs', cls: 'num' }, { text: 'Registrations', cls: 'num' }, { text: 'Updates', cls: 'num' }, 'Hash', 'Proposer'];

async function overview() {
  const [ledger, recent] = await Promise.all([api('/api/ledger'), api('/api/blocks?limit=40')]);
  const cp = ledger.checkpoint;
  const own = cp.signatures.find((x) => x.role === 'signer');
  const cos = cp.signatures.filter((x) => x.role === 'cosigner');
  const blocks = recent.blocks;
  page(
    'Ledger overview',
    h('span', {}, 'Ledger ', h('code', {}, ledger.ledgerId), ' served by ', h('b', {}, ledger.asName), ' at ', h('code', {}, ledger.entryAddress.asUrls.join(', '))),
    null,
    h(
      'div',
      { class: 'stats' },
      stat('Blocks', fmtNum(ledger.height), 'stat-height'),
      stat('Transactions', fmtNum(ledger.size), 'stat-size'),
      stat('Registered UEs', fmtNum(ledger.registeredUes), 'stat-ues'),
      stat('Checkpoint', h('span', {}, `size ${fmtNum(cp.size)} `, own ? check(own.verified, 'signed', 'bad signature') : badge('unsigned', 'bad'), cos.length ? h('span', { class: 'muted' }, ` · ${cos.length} cosignature(s)`) : null), 'stat-checkpoint', { small: true }),
    ),
    h(
      'div',
      { class: 'grid two' },
      h('div', { class: 'card' }, h('h2', {}, 'Endorsements per block'), endorsementChart(blocks)),
      h('div', { class: 'card' }, h('h2', {}, 'Ledger size (transactions)'), sizeChart(blocks)),
    ),
    h(
      'div',
      { class: 'card' },
      h('h2', {}, 'Recent blocks'),
      table(BLOCK_HEAD, blockRows(blocks.slice(-10).reverse()), { 'data-testid': 'recent-blocks' }),
      h('div', { class: 'pager' }, h('a', { href: '#/blocks' }, 'All blocks →')),
    ),
    h('div', { class: 'card' }, h('h2', {}, 'Roots'), kv([['Merkle root (RFC 9162)', h('code', {}, ledger.rootHash)], ['State root (latest versions)', h('code', {}, ledger.stateRoot)]])),
  );
}

async function blocksPage(params) {
  const limit = 25;
  const from = params.get('from');
  const r = await api(`/api/blocks?limit=${limit}${from !== null ? `&from=${encodeURIComponent(from)}` : ''}`);
  const older = r.from > 0 ? Math.max(0, r.from - limit) : null;
  const newer = r.from + limit < r.height ? r.from + limit : null;
  page(
    'Blocks',
    `${fmtNum(r.height)} blocks; showing #${r.from}–#${r.from + r.blocks.length - 1}`,
    crumbs(['#/', 'Overview'], 'Blocks'),
    h(
      'div',
      { class: 'card' },
      table(BLOCK_HEAD, blockRows([...r.blocks].reverse()), { 'data-testid': 'blocks' }),
      h(
        'div',
        { class: 'pager' },
        pageLink(newer !== null ? `#/blocks?from=${newer}` : null, '← Newer'),
        pageLink(older !== null ? `#/blocks?from=${older}` : null, 'Older →'),
      ),
    ),
  );
}

async function blockPage(height, params) {
  const limit = 100;
  const offset = Number(params.get('offset') || 0);
  const [b, info] = await Promise.all([api(`/api/blocks/${encodeURIComponent(height)}?offset=${offset}&limit=${limit}`), api('/api/blocks?limit=1')]);
  const rows = b.txs.map((t) =>
    h(
      'tr',
      { 'data-testid': 'tx-row', 'data-tx': t.txId },
      h('td', {}, txLink(t.txId)),
      h('td', {}, t.type === 'ENDORSEMENT' ? badge(t.version > 1 ? t.reason : 'REGISTRATION', t.version > 1 ? 'warn' : '') : badge(t.type, 'grey')),
      h('td', { class: 'num' }, t.version ?? '—'),
      h('td', {}, t.identity ? h('a', { href: ueHref(t.identity) }, identityText(t.identity)) : '—'),
      h('td', {}, t.state ? badge(t.state, t.state) : '—'),
      h('td', {}, shortHex(t.leafHash)),
    ),
  );
  page(
    `Block #${b.height}`,
    `${fmtNum(b.txCount)} transactions · ${fmtTime(b.timestampMs)}`,
    crumbs(['#/', 'Overview'], ['#/blocks', 'Blocks'], `#${b.height}`),
    h(
      'div',
      { class: 'chain' },
      b.height > 0 ? h('a', { href: `#/block/${b.height - 1}` }, `← block #${b.height - 1}`) : null,
      h('span', { class: 'here' }, `block #${b.height}`),
      b.height + 1 < info.height ? h('a', { href: `#/block/${b.height + 1}` }, `block #${b.height + 1} →`) : null,
    ),
    h(
      'div',
      { class: 'card' },
      h('h2', {}, 'Header'),
      kv([
        ['Height', b.height, 'height'],
        ['Block hash', h('code', {}, b.hash)],
        ['Previous block hash', h('code', {}, b.previousHash || '—')],
        ['Transactions', `${fmtNum(b.txCount)} (tx #${b.firstTxId}–#${b.firstTxId + b.txCount - 1})`],
        ['Tree size after block', fmtNum(b.treeSize)],
        ['Merkle root (tx_root)', h('code', {}, b.txRoot)],
        ['State root', h('code', {}, b.stateRoot)],
        ['Time', fmtTime(b.timestampMs)],
        ['Proposer', b.proposer || '—'],
      ]),
    ),
    h(
      'div',
      { class: 'card' },
      h('h2', {}, 'Transactions'),
      table(['Tx', 'Kind', { text: 'Version', cls: 'num' }, 'UE', 'Contract', 'Leaf hash'], rows, { 'data-testid': 'block-txs' }),
      h(
        'div',
        { class: 'pager' },
        pageLink(offset > 0 ? `#/block/${b.height}?offset=${Math.max(0, offset - limit)}` : null, '← Previous'),
        pageLink(offset + limit < b.txCount ? `#/block/${b.height}?offset=${offset + limit}` : null, 'Next →'),
      ),
    ),
  );
}

async function txPage(id) {
  const t = await api(`/api/tx/${encodeURIComponent(id)}`);
  const e = t.endorsement;
  const trail = crumbs(['#/', 'Overview'], [`#/block/${t.blockHeight}`, `Block #${t.blockHeight}`], `Tx #${t.txId}`);
  const proof = h(
    'div',
    { class: 'card' },
    h('h2', {}, 'Inclusion proof'),
    kv([
      ['Leaf hash', h('code', {}, t.leafHash)],
      ['Leaf index / tree size', `${t.inclusion.leafIndex} / ${t.inclusion.treeSize}`],
      ['Against the signed checkpoint', check(t.inclusion.verified, 'verified', 'does not verify'), 'inclusion'],
      ['Audit path', t.inclusion.hashes.length ? h('ol', { class: 'hashes' }, t.inclusion.hashes.map((x) => h('li', {}, x))) : h('span', { class: 'muted' }, '(empty: single-leaf tree)')],
      ['Checkpoint', h('pre', { class: 'note' }, t.checkpoint.note)],
    ]),
  );
  if (!e) {
    page(`Transaction #${t.txId}`, `${t.type} · block #${t.blockHeight}`, trail, proof);
    return;
  }
  const reg = e.registration;
  const st = e.accountStatus;
  const uid = reg.identity || (st && st.identity);
  page(
    `Transaction #${t.txId}`,
    h('span', {}, badge(`version ${e.version}`), ' ', badge(e.reason, e.version > 1 ? 'warn' : ''), ' ', e.isLatest ? badge('latest version', 'ok') : badge('superseded', 'grey')),
    trail,
    h(
      'div',
      { class: 'chain', 'data-testid': 'version-chain' },
      e.previous ? h('a', { href: `#/tx/${e.previous.txId}`, 'data-testid': 'previous-version' }, `← version ${e.version - 1} (tx #${e.previous.txId})`) : null,
      h('span', { class: 'here' }, `version ${e.version} (tx #${t.txId})`),
      e.next ? h('a', { href: `#/tx/${e.next.txId}`, 'data-testid': 'next-version' }, `version ${e.next.version} (tx #${e.next.txId}) →`) : null,
      h('a', { href: ueHref(uid), 'data-testid': 'ue-history-link' }, 'All versions of this UE'),
    ),
    h(
      'div',
      { class: 'grid two' },
      h(
        'div',
        { class: 'card' },
        h('h2', {}, 'UE registration parameters'),
        kv([
          ['IMEI', reg.identity?.imei ? h('a', { href: `#/ue?imei=${encodeURIComponent(reg.identity.imei)}` }, reg.identity.imei) : '—', 'imei'],
          [reg.identity?.eid ? 'EID' : 'ICCID', reg.identity ? reg.identity.iccid || reg.identity.eid : '—', 'iccid'],
          ['MSISDN', reg.identity?.msisdn || '—', 'msisdn'],
          ['Public key', h('code', {}, reg.publicKey), 'public-key'],
          ['Suite', reg.suite],
          ['Supported suites', reg.suites.join(', ')],
          ['Created at', fmtTime(reg.createdAtMs)],
          ['UE signature', h('span', {}, check(reg.signatureValid), ' ', shortHex(reg.signature, 24)), 'ue-signature'],
        ]),
      ),
      h(
        'div',
        { class: 'card' },
        h('h2', {}, 'Network account status (from the CEF)'),
        st
          ? kv([
              ['Operator', `${st.operatorName} (PLMN ${st.plmnId})`],
              ['Contract', st.contractId],
              ['State', badge(st.state, st.state), 'state'],
              ['Contract period', `${fmtTime(st.startTimeMs)} → ${st.endTimeMs ? fmtTime(st.endTimeMs) : 'open-ended'}`],
              ['Terminated at', st.terminationTimeMs ? fmtTime(st.terminationTimeMs) : '—', 'termination'],
              ['Owner', st.owner || '—'],
              ['Terminal type', st.terminalType || '—'],
              ['Geographic restrictions', st.geoRestrictions.length ? st.geoRestrictions.join(', ') : 'none'],
              ['Identity on record', identityText(st.identity)],
              ['Subscriber revision', st.revision],
            ])
          : h('p', { class: 'muted' }, 'no account status'),
      ),
    ),
    h(
      'div',
      { class: 'card' },
      h('h2', {}, 'Endorsement'),
      kv([
        ['Version', e.version, 'version'],
        ['Reason', e.reason, 'reason'],
        ['Previous version', e.previous ? h('span', {}, txLink(e.previous.txId), ' ', shortHex(e.previous.txHash, 24)) : '— (first version)', 'previous'],
        ['Endorsed by', e.asId],
        ['Endorsed at', fmtTime(e.endorsedAtMs)],
        ['Block', blockLink(t.blockHeight)],
        ['UE key (SHA-256 of public key)', h('code', {}, e.ueKey)],
        ['CEF event sequence', e.statusEventSequence || '—'],
        ['AS signature', h('span', {}, check(e.asSignatureValid), ' ', shortHex(e.asSignature, 24)), 'as-signature'],
      ]),
      e.certChain.length
        ? h(
            'div',
            {},
            h('h2', { class: 'spaced' }, 'AS certificate chain'),
            table(
              ['Subject', 'Issuer', 'Valid', 'SHA-256 fingerprint'],
              e.certChain.map((c) => h('tr', {}, h('td', {}, c.subject.replaceAll('\n', ', ')), h('td', {}, c.issuer.replaceAll('\n', ', ')), h('td', {}, `${c.validFrom} → ${c.validTo}`), h('td', {}, shortHex(c.fingerprint256, 23)))),
            ),
          )
        : null,
    ),
    proof,
  );
}

async function uePage(params) {
  const q = new URLSearchParams();
  for (const k of ['imei', 'msisdn', 'iccid', 'eid']) if (params.get(k)) q.set(k, params.get(k));
  const r = await api(`/api/ue?${q}`);
  const what = [...q.entries()].map(([k, v]) => `${k.toUpperCase()} ${v}`).join(', ');
  const cards = r.ues.map((u) =>
    h(
      'div',
      { class: 'card', 'data-testid': 'ue', 'data-ue-key': u.ueKey },
      h('h2', {}, `UE ${identityText(u.identity)} `, badge(u.contractState, u.contractState), ' ', badge(`${u.versions.length} version(s)`, 'grey')),
      kv([
        ['IMEI', u.identity.imei],
        [u.identity.eid ? 'EID' : 'ICCID', u.identity.iccid || u.identity.eid],
        ['MSISDN', u.identity.msisdn],
        ['Public key', h('span', {}, h('code', {}, u.publicKey), ` (${u.suite})`)],
        ['Latest version', h('span', {}, `${u.version} · `, txLink(u.latestTxId))],
      ]),
      h('h2', { class: 'spaced' }, 'History of versions'),
      table(
        [{ text: 'Version', cls: 'num' }, 'Tx', 'Reason', 'Contract', 'Owner', 'Endorsed at', 'Block', 'Previous'],
        [...u.versions].reverse().map((v) =>
          h(
            'tr',
            { 'data-testid': 'version-row', 'data-tx': v.txId, 'data-version': v.version },
            h('td', { class: 'num' }, v.version),
            h('td', {}, txLink(v.txId)),
            h('td', {}, badge(v.reason, v.version > 1 ? 'warn' : '')),
            h('td', {}, badge(v.state, v.state)),
            h('td', {}, v.owner || '—'),
            h('td', {}, fmtTime(v.endorsedAtMs)),
            h('td', {}, blockLink(v.blockHeight)),
            h('td', {}, v.previousTxId !== null ? txLink(v.previousTxId) : '—'),
          ),
        ),
        { 'data-testid': 'versions' },
      ),
    ),
  );
  page(`UE history`, `Every endorsed version for ${what}, newest first`, crumbs(['#/', 'Overview'], 'UE'), ...cards);
}

async function checkpointsPage() {
  const r = await api('/api/checkpoints?limit=25');
  const cp = r.latest;
  page(
    'Checkpoints',
    'The ledger head signed by this AS (C2SP signed note) and cosigned by witnesses',
    crumbs(['#/', 'Overview'], 'Checkpoints'),
    h(
      'div',
      { class: 'grid two' },
      h(
        'div',
        { class: 'card' },
        h('h2', {}, 'Latest checkpoint'),
        kv([
          ['Origin (ledger ID)', cp.origin],
          ['Tree size', fmtNum(cp.size), 'checkpoint-size'],
          ['Root hash', h('code', {}, cp.rootHash)],
          ['State root', h('code', {}, cp.stateRoot)],
          ['Block', cp.block ? h('span', {}, blockLink(cp.block.height), ' ', shortHex(cp.block.hash, 24)) : '—'],
        ]),
      ),
      h(
        'div',
        { class: 'card' },
        h('h2', {}, 'Signatures'),
        table(
          ['Signer', 'Role', 'Key ID', 'Check'],
          cp.signatures.map((x) =>
            h(
              'tr',
              { 'data-testid': 'signature-row' },
              h('td', {}, x.name),
              h('td', {}, badge(x.role, x.role === 'signer' ? '' : 'grey')),
              h('td', {}, h('code', {}, x.keyId)),
              h('td', {}, x.verified === null ? h('span', { class: 'muted' }, 'witness key not configured here') : check(x.verified, 'verified', 'does not verify')),
            ),
          ),
        ),
        h('h2', { class: 'spaced' }, 'Signed note'),
        h('pre', { class: 'note' }, cp.note),
      ),
    ),
    h(
      'div',
      { class: 'card' },
      h('h2', {}, 'Tree state at each block'),
      table(
        ['Block', { text: 'Tree size', cls: 'num' }, 'Root hash', 'State root', 'Time'],
        r.history.map((b) => h('tr', {}, h('td', {}, blockLink(b.height)), h('td', { class: 'num' }, fmtNum(b.treeSize)), h('td', {}, shortHex(b.txRoot, 20)), h('td', {}, shortHex(b.stateRoot, 20)), h('td', {}, fmtTime(b.timestampMs)))),
      ),
    ),
  );
}

// ------------------------------------------------------------------ search and start

function searchTarget(q) {
  const v = q.trim().replace(/\s+/g, '');
  if (/^\+?[0-9]+$/.test(v)) {
    if (v.startsWith('+')) return `#/ue?msisdn=${encodeURIComponent(v)}`;
    if (v.length === 15) return `#/ue?imei=${v}`;
    if (v.length === 19 || v.length === 20) return `#/ue?iccid=${v}`;
    if (v.length === 32) return `#/ue?eid=${v}`;
    if (v.length <= 12) return `#/tx/${v}`;
  }
  return null;
}

async function loadLedgerId() {
  try {
    const l = await api('/api/ledger');
    document.getElementById('ledger-id').textContent = l.ledgerId;
  } catch {
    // shown again after sign-in
  }
}

document.getElementById('search').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = document.getElementById('search-input');
  const target = searchTarget(input.value);
  if (target) {
    input.value = '';
    location.hash = target;
  } else {
    input.setCustomValidity('Enter a tx ID, a 15-digit IMEI, an MSISDN (+…), a 19–20 digit ICCID or a 32-digit EID');
    input.reportValidity();
    input.addEventListener('input', () => input.setCustomValidity(''), { once: true });
  }
});

startDashboard({
  tokenKey: 'divs.as.token',
  chrome: ['nav', 'search', 'who'],
  login: {
    placeholder: 'bearer token',
    intro: ['The ledger explorer is an operator tool. Use a consumer or admin bearer token of this AS node (e.g. the ', h('code', {}, 'consumer.token'), ' file in its data directory).'],
    probe: '/api/ledger',
    refused: 'This token is not accepted by the AS node.',
    onSignedIn: loadLedgerId,
  },
  routes: [
    ['/', overview],
    ['/blocks', blocksPage],
    [/^\/block\/(\d+)$/, blockPage],
    [/^\/tx\/(\d+)$/, txPage],
    ['/ue', uePage],
    ['/checkpoints', checkpointsPage],
  ],
});
// the ledger ID in the top bar follows every page change
window.addEventListener('hashchange', loadLedgerId);
loadLedgerId();
