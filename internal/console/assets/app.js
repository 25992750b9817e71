// Dialtone console: the page's own script (no libraries). It keeps the
// credential in this tab's sessionStorage only, reads each view's updates
// from /ui/api/stream (Server-Sent Events read through fetch, so the
// credential travels in a header, never in a URL), and draws charts as
// inline SVG.
'use strict';

const state = { cred: sessionStorage.getItem('dialtone.cred') || '', me: null, ctrl: null, tenants: new Set() };
const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'text') e.textContent = v;
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
}
const svgEl = (tag, attrs) => {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
};

function headers(extra) {
  const h = Object.assign({ 'X-Dialtone-Console': '1' }, extra || {});
  if (state.cred) h.Authorization = state.cred;
  return h;
}

async function api(path, opts) {
  opts = opts || {};
  const resp = await fetch('api/' + path, { method: opts.method || 'GET', headers: headers(opts.body ? { 'Content-Type': 'application/json' } : null), body: opts.body, cache: 'no-store' });
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  if (resp.status === 401) { showLogin('Your credentials were refused: ' + ((data && data.error) || resp.status)); throw new Error('unauthenticated'); }
  if (!resp.ok) throw new Error((data && data.error) || ('HTTP ' + resp.status));
  return data;
}

const has = (role) => state.me && state.me.roles && state.me.roles.includes(role);
const allTenants = () => state.me && state.me.tenants && state.me.tenants.includes('*');

// ---- login ----
function showLogin(msg) {
  stopStream();
  $('nav').hidden = true; $('view').hidden = true; $('login').hidden = false;
  $('login-error').textContent = msg || '';
  $('who').textContent = '';
}

$('login-method').addEventListener('change', () => {
  const bearer = $('login-method').value === 'bearer';
  document.querySelectorAll('#login .basic').forEach((e) => { e.hidden = bearer; });
  document.querySelectorAll('#login .bearer').forEach((e) => { e.hidden = !bearer; });
});

$('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  if ($('login-method').value === 'bearer') state.cred = 'Bearer ' + $('login-token').value.trim();
  else state.cred = 'Basic ' + btoa(unescape(encodeURIComponent($('login-user').value + ':' + $('login-password').value)));
  $('login-password').value = ''; $('login-token').value = '';
  await start();
});

function logout() {
  state.cred = ''; state.me = null;
  sessionStorage.removeItem('dialtone.cred');
  showLogin('Signed out.');
}

async function start() {
  try {
    state.me = await api('whoami');
  } catch (e) {
    if (e.message !== 'unauthenticated') showLogin('Cannot reach the node: ' + e.message);
    else if (!state.cred) showLogin('');
    return;
  }
  if (state.cred) sessionStorage.setItem('dialtone.cred', state.cred);
  $('login').hidden = true; $('nav').hidden = false; $('view').hidden = false;
  const who = $('who'); who.replaceChildren(el('span', { id: 'who-name', text: state.me.name + ' (' + state.me.roles.join(', ') + '; tenants ' + state.me.tenants.join(', ') + ')' }));
  if (state.me.auth_mode !== 'none') who.append(el('button', { id: 'logout', on: { click: logout } }, 'Sign out'));
  route();
}

// ---- routing and streams ----
window.addEventListener('hashchange', () => { if (state.me) route(); });

function route() {
  const parts = (location.hash || '#dialer').slice(1).split('/').map(decodeURIComponent);
  const view = parts[0] || 'dialer';
  document.querySelectorAll('nav a').forEach((a) => a.classList.toggle('active', a.dataset.view === view || (view === 'request' && a.dataset.view === 'requests')));
  stopStream();
  const root = $('view');
  root.replaceChildren();
  root.dataset.view = view;
  if (view === 'requests') return requestsView(root, parts[1] || '', parts[2] || '');
  if (view === 'request') return requestPage(root, parts[1], parts[2]);
  const renderers = { cluster: renderCluster, dialer: renderDialer, ports: renderPorts, settings: renderSettings };
  if (!renderers[view]) { root.append(el('p', { class: 'error', text: 'No such view: ' + view })); return; }
  root.append(el('p', { class: 'status', id: 'loading', text: 'Loading…' }));
  streamView(view, renderers[view]);
}

function stopStream() { if (state.ctrl) { state.ctrl.abort(); state.ctrl = null; } }

// streamView reads the view's event stream; where it cannot (a proxy that
// buffers), it polls api/snapshot once a second instead.
async function streamView(view, render) {
  const ctrl = new AbortController(); state.ctrl = ctrl;
  let failures = 0, polls = 0;
  const show = (snap) => { if (!ctrl.signal.aborted) { fresh(snap); render($('view'), snap); } };
  while (!ctrl.signal.aborted) {
    try {
      if (failures >= 2) {
        show(await api('snapshot?view=' + view));
        if (++polls % 30 === 0) failures = 0; // try the stream again now and then
      } else {
        const resp = await fetch('api/stream?view=' + view, { headers: headers(), signal: ctrl.signal, cache: 'no-store' });
        if (resp.status === 401) { showLogin('Your credentials were refused.'); return; }
        if (!resp.ok || !resp.body) throw new Error('HTTP ' + resp.status);
        const reader = resp.body.getReader(); const dec = new TextDecoder(); let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i); buf = buf.slice(i + 2);
            const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
            if (data) { failures = 0; show(JSON.parse(data)); }
          }
        }
      }
    } catch (e) {
      if (ctrl.signal.aborted || e.message === 'unauthenticated') return;
      failures++;
      $('status').textContent = 'Updates interrupted (' + e.message + '); retrying…';
    }
    await sleep(1000);
  }
}

function fresh(snap) {
  const n = snap.node; const f = $('fresh');
  $('status').textContent = snap.errors ? Object.entries(snap.errors).map(([k, v]) => k + ': ' + v).join(' · ') : '';
  if (!n) { f.textContent = 'node status unavailable'; f.classList.add('stale'); return; }
  const contact = n.state === 'Leader' ? 'leader' : (n.last_contact_ms < 0 ? 'no contact with a leader' : 'last contact ' + n.last_contact_ms + ' ms ago');
  f.textContent = 'node ' + n.node_id + ' (' + n.state + ') · applied ' + n.applied_index + ' · ' + contact + ' · ' + new Date(snap.served_at_ms).toLocaleTimeString();
  f.classList.toggle('stale', n.state !== 'Leader' && (n.last_contact_ms < 0 || n.last_contact_ms > 2000));
}

// ---- small pieces ----
const fig = (k, v, cls) => el('div', { class: 'fig ' + (cls || '') }, el('span', { class: 'k', text: k }), el('span', { class: 'v', text: v }));
const fmt = (x, d) => (x === undefined || x === null) ? '–' : (typeof x === 'number' && !Number.isInteger(x) ? x.toFixed(d === undefined ? 1 : d) : String(x));
const ago = (ms) => ms ? Math.max(0, Math.round((Date.now() - ms) / 1000)) + ' s ago' : '–';
function table(cols, rows, attrs) {
  return el('table', attrs || {}, el('thead', {}, el('tr', {}, cols.map((c) => el('th', { text: c })))),
    el('tbody', {}, rows));
}
function tr(cells, attrs) { return el('tr', attrs || {}, cells.map((c) => c instanceof Node ? el('td', {}, c) : el('td', { text: fmt(c) }))); }

// chart draws series [{name, points: [[t, v], ...]}] over the last 15
// minutes as an inline SVG line chart.
function chart(series, title, id) {
  const W = 1000, H = 200, L = 44, R = 10, T = 12, B = 22;
  // The last 15 minutes, or less while the history is shorter (at least
  // one minute), so that a fresh console shows a readable chart.
  const now = Date.now() / 1000;
  let first = now - 60, max = 1;
  for (const s of series) for (const [t, v] of s.points) { max = Math.max(max, v); first = Math.min(first, t); }
  const t0 = Math.max(now - 900, first), span = now - t0;
  max = Math.ceil(max * 1.1);
  const x = (t) => L + (W - L - R) * Math.max(0, t - t0) / span;
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const svg = svgEl('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title });
  if (id) svg.setAttribute('id', id);
  svg.append(svgEl('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }), svgEl('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }));
  const lab = (tx, ty, s, anchor) => { const t = svgEl('text', { x: tx, y: ty, 'text-anchor': anchor || 'start' }); t.textContent = s; return t; };
  svg.append(lab(L - 4, T + 8, String(max), 'end'), lab(L - 4, H - B, '0', 'end'), lab(L, H - 4, span >= 90 ? '−' + Math.round(span / 60) + ' min' : '−' + Math.round(span) + ' s'), lab(W - R, H - 4, 'now', 'end'));
  series.forEach((s, i) => {
    const pts = s.points.filter(([t]) => t >= t0).map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    const last = s.points.length ? s.points[s.points.length - 1][1] : 0;
    const pl = svgEl('polyline', { class: 's' + i, points: pts, 'data-series': s.name, 'data-count': String(s.points.length), 'data-last': String(last) });
    svg.append(pl);
  });
  return el('div', {}, el('h3', { text: title }), svg, el('div', { class: 'legend' }, series.map((s, i) => el('span', { class: 'l' + i, text: s.name }))));
}

// ---- views ----
function renderCluster(root, snap) {
  const n = snap.node || {}; const members = ((snap.members || {}).members) || [];
  const gossip = {}; for (const m of members) gossip[m.id] = m;
  const rows = (n.servers || []).map((s) => tr([
    s.id, s.suffrage, s.leader ? el('span', { class: 'leader-mark', text: 'leader' }) : '',
    gossip[s.id] ? gossip[s.id].status : 'not in gossip', s.raft_address, gossip[s.id] ? gossip[s.id].http_address : '',
  ], { class: 'node-row', 'data-node': s.id }));
  for (const m of members) if (!(n.servers || []).some((s) => s.id === m.id)) rows.push(tr([m.id, 'not in Raft', '', m.status, m.raft_address, m.http_address], { class: 'node-row', 'data-node': m.id }));
  const tl = (snap.timeline || []).slice().reverse().map((c) => tr([new Date(c.t).toLocaleTimeString(), c.leader || '(none)', c.term]));
  root.replaceChildren(el('h2', { text: 'Cluster' }),
    el('div', { class: 'card' }, el('div', { class: 'figs' },
      fig('leader', n.leader_id || 'none', 'f-leader'), fig('term', n.term), fig('commit index', n.commit_index), fig('applied index', n.applied_index),
      fig('last contact', n.state === 'Leader' ? 'leader' : fmt(n.last_contact_ms) + ' ms'), fig('records', n.records), fig('this node', n.node_id + ' · ' + n.state))),
    el('div', { class: 'card' }, el('h3', { text: 'Nodes' }), table(['node', 'suffrage', '', 'gossip', 'raft', 'http'], rows, { id: 'nodes' })),
    el('div', { class: 'card' }, el('h3', { text: 'Leader changes seen by this node' }), table(['time', 'leader', 'term'], tl, { id: 'timeline' })));
  const leaderEl = root.querySelector('.f-leader .v'); if (leaderEl) leaderEl.id = 'cluster-leader';
}

function outcomeBar(outcomes) {
  const entries = Object.entries(outcomes || {}).sort();
  const total = entries.reduce((a, [, v]) => a + Number(v), 0);
  if (!total) return el('p', { class: 'status', text: 'No attempt has ended yet.' });
  const bar = el('div', { class: 'bar' });
  entries.forEach(([, v], i) => { const b = el('i', { class: 'o' + (i % 6) }); b.style.width = (100 * Number(v) / total) + '%'; bar.append(b); });
  return el('div', {}, bar, el('div', { class: 'legend' }, entries.map(([k, v], i) => el('span', { class: 'lo' + (i % 6), text: k.replace('OUTCOME_', '').toLowerCase() + ' ' + v }))));
}

function renderDialer(root, snap) {
  const d = snap.dialer; const out = [el('h2', { text: 'Dialer' })];
  if (!d) { out.push(el('p', { class: 'error', text: 'Dialer status unavailable: ' + ((snap.errors || {}).dialer || '') })); root.replaceChildren(...out); return; }
  out.push(el('p', {}, 'Engine on ', el('b', { text: d.node_id || '–' }), d.running ? ' running' : ' not running', d.global_caps ? ' · global CAPS limit ' + d.global_caps : ''));
  if (!d.tenants.length) out.push(el('p', { class: 'status', id: 'no-tenants', text: 'No tenant has requests or ports yet.' }));
  const grid = el('div', { class: 'grid' });
  for (const t of d.tenants) {
    state.tenants.add(t.tenant);
    const h = (snap.history || {})[t.tenant] || [];
    const why = (snap.why || {})[t.tenant];
    const profiles = Object.entries(t.queued_profile || {}).sort().map(([p, q]) => tr([p, q]));
    grid.append(el('div', { class: 'card tenant', 'data-tenant': t.tenant },
      el('h3', { text: 'Tenant ' + t.tenant }),
      el('p', { class: 'why' + (why ? '' : ' none'), text: why || 'dialling' }),
      el('div', { class: 'figs' },
        fig('queued', t.queued, 'f-queued'), fig('in progress', t.in_progress, 'f-in-progress'), fig('port budget', t.port_budget, 'f-budget'),
        fig('ports in use', t.ports_in_use + ' / ' + t.ports_total, 'f-ports'), fig('target CAPS', fmt(t.caps), 'f-caps'),
        fig('achieved CAPS', fmt(t.attempts_per_sec, 2), 'f-achieved'), fig('notifications pending', t.notify_pending, 'f-notify-pending'), fig('notification retries', t.notify_retries, 'f-notify-retries')),
      chart([{ name: 'target CAPS', points: h.map((p) => [p.t, p.caps]) }, { name: 'achieved CAPS', points: h.map((p) => [p.t, p.achieved]) }], 'Target vs achieved CAPS', 'caps-' + t.tenant),
      chart([{ name: 'calls in progress', points: h.map((p) => [p.t, p.in_progress]) }, { name: 'port budget', points: h.map((p) => [p.t, p.port_budget]) }, { name: 'ports in use', points: h.map((p) => [p.t, p.ports_in_use]) }], 'Calls vs port budget vs ports in use', 'ports-' + t.tenant),
      el('h3', { text: 'Outcomes' }), outcomeBar(t.outcomes),
      el('h3', { text: 'Queued by IVR profile' }), profiles.length ? table(['IVR profile', 'queued'], profiles) : el('p', { class: 'status', text: 'Nothing queued.' })));
  }
  out.push(grid);
  root.replaceChildren(...out);
}

// spark draws a server's ports in use over its 15 s window (of total).
function spark(series, total) {
  const W = 120, H = 24; const pts = series || [];
  const svg = svgEl('svg', { class: 'spark', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': 'ports in use over the last 15 s' });
  if (!pts.length) return svg;
  const t0 = Number(pts[0].second_unix); const span = Math.max(1, Number(pts[pts.length - 1].second_unix) - t0);
  const max = Math.max(1, total || 0, ...pts.map((p) => p.total_ports));
  svg.append(svgEl('polyline', { class: 's0', points: pts.map((p) => `${((Number(p.second_unix) - t0) / span * (W - 2) + 1).toFixed(1)},${(H - 1 - (H - 2) * p.ports_in_use / max).toFixed(1)}`).join(' ') }));
  return svg;
}

function renderPorts(root, snap) {
  const u = snap.usage || {}; const out = [el('h2', { text: 'Port usage' })];
  out.push(el('div', { class: 'card' }, el('div', { class: 'figs' }, fig('total ports', u.total_ports), fig('in use', u.ports_in_use), fig('available', u.available_ports),
    fig('entitled', u.entitled_ports), fig('servers', u.servers), fig('stale servers', u.stale_servers))));
  const trows = (u.tenants || []).map((t) => { state.tenants.add(t.tenant); return tr([t.tenant, t.total_ports, t.ports_in_use, t.available_ports, t.entitled_ports, t.servers, t.stale_servers, t.window ? fmt(t.window.avg_in_use) : '–'], { 'data-tenant': t.tenant }); });
  out.push(el('div', { class: 'card' }, el('h3', { text: 'Tenants' }), table(['tenant', 'total', 'in use', 'available', 'entitled', 'servers', 'stale', 'avg in use (15 s)'], trows, { id: 'port-tenants' })));
  const srows = (snap.servers || []).map((s) => {
    const w = s.window || {};
    return tr([s.id, s.tenant, s.address, s.total_ports, s.ports_in_use, `${w.min_in_use}/${fmt(w.avg_in_use)}/${w.max_in_use}`, spark(s.series, s.total_ports), ago(Number(s.last_report_unix_ms)),
      s.stale ? el('span', { class: 'stale-mark', text: 'STALE' }) : 'fresh', s.received_by], { 'data-server': s.id, 'data-tenant': s.tenant, class: s.stale ? 'stale' : '' });
  });
  out.push(el('div', { class: 'card' }, el('h3', { text: 'Media servers (15 s window: min/avg/max in use)' }), table(['server', 'tenant', 'address', 'total', 'in use', 'window', 'last 15 s', 'last report', 'state', 'received by'], srows, { id: 'servers' })));
  const ents = ((snap.entitlements || {}).entitlements || []).map((e) => tr([e.tenant, e.licensed_ports]));
  const alerts = ((snap.alerts || {}).alerts || []).map((a) => tr([a.threshold_id, a.tenant || '(all)', a.metric, fmt(a.value), new Date(Number(a.raised_unix_ms)).toLocaleTimeString()]));
  out.push(el('div', { class: 'grid' },
    el('div', { class: 'card' }, el('h3', { text: 'Entitlements' }), table(['tenant', 'licensed ports'], ents, { id: 'entitlements' })),
    el('div', { class: 'card' }, el('h3', { text: 'Alerts raised' }), alerts.length ? table(['threshold', 'tenant', 'metric', 'value', 'raised'], alerts, { id: 'alerts' }) : el('p', { class: 'status', text: 'No threshold is crossed.' }))));
  root.replaceChildren(...out);
}

function tenantInput(value) {
  if (!allTenants()) {
    return el('select', { id: 'req-tenant' }, state.me.tenants.map((t) => el('option', { value: t, text: t, selected: t === value })));
  }
  const list = el('datalist', { id: 'known-tenants' }, [...state.tenants].sort().map((t) => el('option', { value: t })));
  return el('span', {}, el('input', { id: 'req-tenant', list: 'known-tenants', value: value || [...state.tenants][0] || '', required: true }), list);
}

function reqRow(tenant, r) {
  const s = r.spec || {};
  return tr([el('a', { href: '#request/' + encodeURIComponent(tenant) + '/' + encodeURIComponent(r.id), text: r.id }), s.token, s.telnum, r.state, r.result, r.attempts_made, r.notification], { 'data-request': r.id });
}

async function requestsView(root, tenant, q) {
  const input = el('input', { id: 'req-q', placeholder: 'request id, token or number', value: q, size: 40 });
  const results = el('div', { id: 'req-results' });
  const form = el('form', { id: 'req-form', on: { submit: (ev) => { ev.preventDefault(); location.hash = '#requests/' + encodeURIComponent($('req-tenant').value) + '/' + encodeURIComponent(input.value.trim()); } } },
    el('label', {}, 'Tenant', tenantInput(tenant)), el('label', {}, 'Find', input), el('button', { type: 'submit', text: 'Find' }));
  root.replaceChildren(el('h2', { text: 'Requests' }), el('div', { class: 'card' }, form), results);
  tenant = tenant || $('req-tenant').value;
  if (!tenant) return;
  try {
    const res = await api('requests?tenant=' + encodeURIComponent(tenant) + '&q=' + encodeURIComponent(q));
    results.replaceChildren(el('div', { class: 'card' },
      el('p', { class: 'status', text: `${res.requests.length} found (${res.scanned} scanned${res.truncated ? ', more not shown' : ''})` }),
      table(['id', 'token', 'number', 'state', 'result', 'attempts', 'notification'], res.requests.map((r) => reqRow(tenant, r)), { id: 'req-table' })));
  } catch (e) { results.replaceChildren(el('p', { class: 'error', text: e.message })); }
}

async function requestPage(root, tenant, id) {
  root.replaceChildren(el('h2', { text: 'Request ' + id }));
  let got;
  try { got = await api('request?tenant=' + encodeURIComponent(tenant) + '&id=' + encodeURIComponent(id)); } catch (e) { root.append(el('p', { class: 'error', id: 'req-error', text: e.message })); return; }
  const r = got.request; const s = r.spec || {}; const m = got.meta || {};
  const msg = el('p', { id: 'cancel-result' });
  const actions = el('div', {});
  if (has('submit') && r.state !== 'PROCESSED') {
    actions.append(el('button', { id: 'cancel', class: 'danger', on: { click: async (ev) => {
      ev.target.disabled = true;
      try {
        const res = await api('cancel?tenant=' + encodeURIComponent(tenant) + '&id=' + encodeURIComponent(id), { method: 'POST' });
        msg.className = res.result.ok ? '' : 'error';
        msg.textContent = res.result.ok ? 'Cancelled.' : 'Not cancelled: ' + res.result.code + ' ' + res.result.reason;
        if (res.result.ok) setTimeout(() => { if (location.hash.startsWith('#request/')) route(); }, 300);
      } catch (e) { msg.className = 'error'; msg.textContent = e.message; ev.target.disabled = false; }
    } } }, 'Cancel request'));
  } else if (!has('submit')) {
    actions.append(el('p', { class: 'status', id: 'cancel-denied', text: 'Cancelling needs the submit role.' }));
  }
  const dl = (pairs) => el('dl', {}, pairs.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: fmt(v), 'data-k': k })]));
  const attempts = (r.attempts || []).map((a) => tr([a.number, a.started ? new Date(a.started).toLocaleString() : '–', a.ended ? new Date(a.ended).toLocaleString() : '–', a.outcome, a.reason, a.call_uuid]));
  root.append(
    el('div', { class: 'grid' },
      el('div', { class: 'card' }, el('h3', { text: 'State' }), dl([['tenant', r.tenant], ['state', r.state], ['result', r.result], ['reason', r.result_reason], ['status', r.status],
        ['attempts made', r.attempts_made], ['created', r.created && new Date(r.created).toLocaleString()], ['next retry', r.next_retry && new Date(r.next_retry).toLocaleString()],
        ['expires', r.expires && new Date(r.expires).toLocaleString()], ['notification', r.notification], ['served by', m.node_id + ' (applied ' + m.applied_index + ')']]), actions, msg),
      el('div', { class: 'card' }, el('h3', { text: 'Spec' }), dl([['token', s.token], ['IVR profile', s.ivr_profile], ['number', s.telnum], ['ANI', s.ani], ['notification URL', s.notification_url],
        ['max attempts', s.max_attempts], ['time to live', s.time_to_live], ['custom data', (s.custom_data || []).map((kv) => kv.key + '=' + kv.value).join(', ')]]))),
    el('div', { class: 'card' }, el('h3', { text: 'Attempts' }), table(['#', 'started', 'ended', 'outcome', 'reason', 'call'], attempts, { id: 'attempts' })));
}

function renderSettings(root, snap) {
  const p = snap.pacing || { entries: [] };
  if (root.querySelector('#pacing-form')) {
    // Keep the form the admin may be typing in; refresh only the table.
    const old = root.querySelector('#pacing-table'); if (old) old.replaceWith(pacingTable(p)); return;
  }
  const out = [el('h2', { text: 'Settings' }), el('div', { class: 'card' }, el('h3', { text: 'Pacing' }),
    el('p', { class: 'status', text: 'Global CAPS limit: ' + (p.global_caps || 'none') + '. Empty stored fields inherit (tenant ← global ← default).' }), pacingTable(p))];
  if (has('admin')) out.push(pacingForm(p));
  else out.push(el('p', { class: 'status', text: 'Changing pacing needs the admin role.' }));
  root.replaceChildren(...out);
}

function pacingTable(p) {
  return table(['entry', 'stored', 'CAPS', 'port load %', 'batch mode', 'batch size', 'low watermark %', 'slots', 'equal priority', 'retry', 'clean', 'retention'],
    p.entries.map((e) => { const f = e.effective || {}; if (e.tenant !== '_global') state.tenants.add(e.tenant); return tr([e.tenant, e.stored ? 'yes' : 'no', f.caps, f.port_load_factor, f.batch_size_mode, f.batch_size, f.queue_low_watermark, f.slot_calculation, f.equal_priority_new_and_old ? 'yes' : 'no', f.next_retry_interval, f.clean_interval, f.retention], { 'data-tenant': e.tenant }); }),
    { id: 'pacing-table' });
}

function pacingForm(p) {
  const fields = [['caps', 'CAPS', 'number'], ['port_load_factor', 'port load factor %', 'number'], ['batch_size_mode', 'batch size mode', 'text'], ['batch_size', 'batch size', 'number'],
    ['queue_low_watermark', 'low watermark %', 'number'], ['slot_calculation', 'slot calculation', 'text'], ['next_retry_interval', 'next retry interval', 'text'], ['clean_interval', 'clean interval', 'text'], ['retention', 'retention', 'text']];
  const msg = el('p', { id: 'pacing-result' });
  const tenant = el('input', { id: 'pacing-tenant', list: 'pacing-tenants', placeholder: 'tenant or _global', required: true });
  const inputs = {};
  const fill = () => {
    const e = p.entries.find((x) => x.tenant === tenant.value); const s = (e && e.settings) || {};
    for (const [k] of fields) inputs[k].value = s[k] || '';
    inputs.equal.checked = !!s.equal_priority_new_and_old;
  };
  tenant.addEventListener('change', fill);
  const form = el('form', { id: 'pacing-form', on: { submit: async (ev) => {
    ev.preventDefault();
    const body = {};
    for (const [k, , type] of fields) { const v = inputs[k].value.trim(); if (v !== '') body[k] = type === 'number' ? Number(v) : v; }
    if (inputs.equal.checked) body.equal_priority_new_and_old = true;
    try {
      const res = await api('pacing?tenant=' + encodeURIComponent(tenant.value.trim()), { method: 'PUT', body: JSON.stringify(body) });
      msg.className = ''; msg.textContent = 'Saved at index ' + res.index + '.';
    } catch (e) { msg.className = 'error'; msg.textContent = e.message; }
  } } },
  el('label', {}, 'Entry', tenant, el('datalist', { id: 'pacing-tenants' }, ['_global', ...state.tenants].map((t) => el('option', { value: t })))),
  fields.map(([k, label, type]) => { inputs[k] = el('input', { name: k, type: type === 'number' ? 'number' : 'text', step: 'any' }); return el('label', {}, label, inputs[k]); }),
  el('label', {}, 'equal priority', inputs.equal = el('input', { type: 'checkbox', name: 'equal_priority_new_and_old' })),
  el('button', { type: 'submit', text: 'Save' }), msg);
  return el('div', { class: 'card' }, el('h3', { text: 'Edit a pacing entry (fields left empty inherit)' }), form);
}

start();
