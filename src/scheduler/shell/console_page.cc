#include "scheduler/shell/console_page.h"

namespace etcd_mesos::scheduler::shell {

// The console's style and script, inlined in the page: nothing is fetched from anywhere else, so
// it works on an isolated network. The script polls /console.json (only what is new since its
// last poll) and redraws in place; every text from the server goes in through textContent.
std::string_view ConsoleStyle() {
  return R"CSS(
body { font-family: system-ui, sans-serif; margin: 0 auto; padding: 1em; max-width: 80em;
       color: #1a1a1a; background: #fff; line-height: 1.35; }
h1 { font-size: 1.5em; margin: 0.2em 0; } h2 { font-size: 1.15em; margin: 1.2em 0 0.4em; }
table { border-collapse: collapse; margin-bottom: 1em; width: 100%; }
td, th { border: 1px solid #bbb; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
.scroll { overflow-x: auto; }
.banner { padding: 0.6em 0.8em; border-radius: 4px; border: 2px solid; font-weight: bold; }
.ok { background: #dff0d8; border-color: #3c763d; } .bad { background: #f2dede; border-color: #a94442; }
.warn { background: #fcf8e3; border-color: #8a6d3b; } .error { background: #f2dede; }
.muted { color: #555; font-size: 0.9em; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; border: 1px solid #ccc; padding: 0.4em; flex: 1 1 18em; }
figcaption { font-size: 0.9em; } svg { width: 100%; height: 80px; display: block; }
.actions button, dialog button { margin: 0.2em 0.4em 0.2em 0; padding: 0.4em 0.8em; font-size: 1em; }
button.danger { border: 2px solid #a94442; }
:focus-visible { outline: 3px solid #1c5fb0; outline-offset: 2px; }
#answer { white-space: pre-wrap; }
dialog { max-width: 36em; } dialog p { margin: 0.4em 0; }
.filters label { margin-right: 1em; }
@media (max-width: 40em) { td, th { padding: 0.2em 0.3em; font-size: 0.9em; } }
)CSS";
}

std::string_view ConsoleScript() {
  return R"JS(
'use strict';
const state = { notes: [], samples: [], lastNote: 0, lastSample: 0, data: null, failingSince: null,
                kinds: new Set(), polls: 0 };
const MAX_NOTES = 2000, MAX_SAMPLES = 1440;
const $ = (id) => document.getElementById(id);
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v; else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}
function clock(ms) { return new Date(ms).toLocaleTimeString(); }
function stamp(ms) { const d = new Date(ms); return d.toLocaleDateString() + ' ' + d.toLocaleTimeString(); }
function ago(ms) {
  let s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return s + ' s';
  if (s < 5400) return Math.round(s / 60) + ' min';
  return (s / 3600).toFixed(1) + ' h';
}
function bytes(n) {
  if (n == null || n === 0) return '-';
  return n < 1048576 ? (n / 1024).toFixed(0) + ' KiB' : (n / 1048576).toFixed(1) + ' MiB';
}
function pct(x) { return x == null ? '-' : (100 * x).toFixed(0) + '%'; }
// A certificate's expiry (Unix seconds) as a date with the whole days left.
function expiry(unixS, nowMs) {
  const days = (1000 * unixS - nowMs) / 86400000;
  return stamp(1000 * unixS) + (days < 0 ? ' (EXPIRED)' : ' (' + Math.floor(days) + ' days left)');
}

async function poll() {
  try {
    const r = await fetch('/console.json?notes_after=' + state.lastNote + '&samples_after=' +
                          state.lastSample, { cache: 'no-store' });
    if (!r.ok) throw new Error('HTTP ' + r.status);
    const d = await r.json();
    for (const n of d.notes.items) { state.notes.push(n); state.kinds.add(n.kind || 'other'); }
    if (d.notes.last < state.lastNote) state.notes = d.notes.items;  // a restarted scheduler
    state.lastNote = d.notes.last;
    state.notes = state.notes.slice(-MAX_NOTES);
    for (const s of d.history.samples) state.samples.push(s);
    if (state.samples.length) state.lastSample = state.samples[state.samples.length - 1][0];
    state.samples = state.samples.slice(-MAX_SAMPLES);
    state.data = d; state.failingSince = null; state.polls++;
    render();
  } catch (e) {
    if (state.failingSince == null) state.failingSince = Date.now();
    $('refreshed').textContent = 'The scheduler is not answering since ' +
        clock(state.failingSince) + ' (' + e.message + '); showing the last data.';
    $('refreshed').className = 'banner bad';
  }
}

function render() {
  const d = state.data;
  $('snapshot').hidden = true; $('live').hidden = false;
  document.title = (d.health.healthy ? 'healthy' : 'NOT HEALTHY') + ' - etcd-mesos: ' + d.framework;
  $('title').textContent = 'etcd-mesos: ' + d.framework;
  renderBanner(d);
  $('refreshed').className = 'muted';
  $('refreshed').textContent = 'Refreshed ' + clock(d.now_ms) + ', every 2 s.';
  renderSummary(d); renderTls(d); renderMembers(d); renderCharts(); renderTimeline();
  renderBackups(d);
  renderCounters(d);
}

function renderBanner(d) {
  const h = d.health, b = $('banner');
  let cls = 'ok', text;
  const since = h.since_ms ? ' (for ' + ago(d.now_ms - h.since_ms) + ', since ' +
                clock(h.since_ms) + ')' : '';
  if (h.total_loss) {
    cls = 'bad';
    text = 'TOTAL CLUSTER LOSS: no member is left. Restore from a backup, or start a fresh, ' +
           'empty cluster.';
  } else if (h.livelock) {
    cls = 'bad';
    text = 'LIVELOCK: a majority of members is lost; ' + (h.reseeding ? 'reseeding now: ' :
           'the cluster takes no writes: ') + h.reason + since;
  } else if (h.healthy && d.healthy_voters < d.target_size) {
    cls = 'warn';
    text = 'HEALING: ' + d.healthy_voters + ' of ' + d.target_size + ' members are healthy ' +
           'voters; the scheduler is replacing the rest. ' + h.reason + since;
  } else if (h.healthy) {
    text = 'HEALTHY: ' + h.reason + since;
  } else {
    cls = 'bad'; text = 'NOT HEALTHY: ' + h.reason + since;
  }
  b.className = 'banner ' + cls; b.textContent = text;
  const notes = [];
  if (d.standby) notes.push('STANDBY: this instance does not act; ' + (d.leader_url ?
      'the leader is ' + d.leader_url : 'no leader is elected yet') +
      '. It shows the state the leader last stored; commands go to the leader.');
  if (d.holding) notes.push('HOLDING: this leader lost ZooKeeper; every action waits until it ' +
      'is back within the session.');
  if (!h.connected) notes.push('DISCONNECTED from the Mesos master: no launches or changes.');
  const mt = d.maintenance;
  if (mt.nospace_alarm) notes.push('DISK FULL (NOSPACE): a database reached the quota and etcd ' +
      'refuses every write; the scheduler compacts, defragments and disarms the alarm.');
  if (mt.corrupt_alarm) notes.push('CORRUPT: etcd found members whose data differ; see the ' +
      'guide, "A member is corrupt".');
  if (mt.running) notes.push('Maintenance: ' + mt.running + '.');
  if (mt.last_error) notes.push('Last maintenance error: ' + mt.last_error);
  const ro = d.rollout;
  if (ro && ro.state === 'stopped') notes.push('ROLLOUT STOPPED: ' + ro.reason + '. See the ' +
      'guide, "A rollout stopped"; resume it once the cause is fixed.');
  if (ro && ro.state === 'running') notes.push('Rollout to ' + ro.target + ': ' +
      (ro.step || ro.reason || 'starting') + ' (' + ro.pending.length + ' of ' + ro.total +
      ' members left).');
  $('notices').replaceChildren(...notes.map((t) => el('p', { class: 'banner warn', text: t })));
}

function renderSummary(d) {
  const parts = [
    'generation ' + d.generation, 'size asked ' + d.target_size,
    'healthy voters ' + d.healthy_voters + ' of ' + d.target_size,
    'leader ' + (d.leader || 'none'), 'leader changes ' + d.leader_changes,
    'reconciliation ' + (d.health.reconciling ? 'in progress' : 'settled'),
  ];
  const s = $('summary');
  s.replaceChildren(parts.join(' \u00b7 '));
  if (d.master_url) {
    s.append(' \u00b7 master ', el('a', { href: d.master_url, text: d.master_url }));
  }
}

// The cluster's TLS line: the mode and the first certificate to expire, as a warning once it is
// within the renewal window (the scheduler is then replacing that member).
function renderTls(d) {
  const t = d.tls, p = $('tls');
  let text = 'TLS: ' + t.mode, cls = 'muted';
  if (t.earliest != null) {
    text += ' \u00b7 first certificate to expire: ' + t.earliest_member + '\'s, ' +
            expiry(t.earliest, d.now_ms);
    if (1000 * t.earliest - d.now_ms < 1000 * t.renew_before_s) {
      cls = 'banner warn';
      text += ', within the renewal window (' + Math.round(t.renew_before_s / 86400) +
              ' days): the scheduler replaces that member with fresh certificates';
    }
  } else if (t.members_tls) {
    text += ' \u00b7 no certificate expiry on record yet';
  }
  p.textContent = text; p.className = cls;
}

function memberHistory(name) {
  const mine = state.notes.filter((n) => n.member === name).slice(-20).reverse();
  const det = el('details', {}, el('summary', { text: mine.length + ' events' }));
  const ul = el('ul');
  for (const n of mine) ul.append(el('li', { text: clock(n.t_ms) + ' ' + n.message }));
  det.append(ul);
  return det;
}

function renderMembers(d) {
  const body = $('members');
  const rows = d.members.map((m) => {
    let lag = m.lag == null ? '-' : String(m.lag);
    const lagCell = el('td', {}, lag);
    if (m.catch_up != null) {
      lagCell.append(' ', el('progress', { max: '100', value: String(Math.round(100 * m.catch_up)),
                                           'aria-label': m.name + ' catch-up' }),
                     ' ' + pct(m.catch_up) + ' caught up');
    }
    const health = m.healthy ? 'healthy' : (m.reachable ? 'answers, not healthy' : 'not answering');
    const sandbox = m.sandbox_url ? el('a', { href: m.sandbox_url, text: 'sandbox' }) : '-';
    const cert = el('td', { text: m.cert_not_after == null ? '-' :
                            expiry(m.cert_not_after, d.now_ms) +
                            (m.cert_renew_due ? ', renewal due' : '') });
    if (m.cert_renew_due) cert.className = 'warn';
    return el('tr', { class: m.healthy ? 'ok' : 'bad' },
      el('th', { scope: 'row', text: m.name }), el('td', { text: m.role }),
      el('td', { text: health }), el('td', { text: m.task_state }),
      el('td', { text: m.host }), el('td', { text: String(m.raft_index) }), lagCell,
      el('td', { text: bytes(m.db_size) + (m.fragmented == null ? '' :
                       ', ' + pct(m.fragmented) + ' free') +
                       (m.alarms.length ? ', ALARM ' + m.alarms.join(' ') : '') }),
      el('td', { text: m.member_id || '-' }), cert, el('td', {}, sandbox),
      el('td', {}, memberHistory(m.name)));
  });
  if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: '12', text: 'no members' })));
  body.replaceChildren(...rows);
}

// One small line chart: `values` against time, on its own scale; gaps where a value is null.
function chart(id, label, values, unit, floorMax) {
  const fig = $(id), svg = fig.querySelector('svg'), cap = fig.querySelector('figcaption');
  const W = 300, H = 80, ts = state.samples.map((s) => s[0]);
  const known = values.filter((v) => v != null);
  const last = known.length ? known[known.length - 1] : null;
  cap.textContent = label + ': ' + (last == null ? 'no data yet' :
      (Number.isInteger(last) ? last : last.toFixed(2)) + unit) +
      (ts.length ? ' (last ' + ago(ts[ts.length - 1] - ts[0]) + ')' : '');
  svg.replaceChildren();
  svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
  svg.setAttribute('aria-label', cap.textContent);
  svg.setAttribute('preserveAspectRatio', 'none');
  if (ts.length < 2) return;
  const t0 = ts[0], span = Math.max(1, ts[ts.length - 1] - t0);
  const max = Math.max(floorMax, ...known) || 1;
  let d = '', pen = false;
  values.forEach((v, i) => {
    if (v == null) { pen = false; return; }
    const x = (W * (ts[i] - t0) / span).toFixed(1), y = (H - 4 - (H - 8) * v / max).toFixed(1);
    d += (pen ? 'L' : 'M') + x + ' ' + y + ' '; pen = true;
  });
  const ns = 'http://www.w3.org/2000/svg';
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', d); path.setAttribute('fill', 'none');
  path.setAttribute('stroke', '#1c5fb0'); path.setAttribute('stroke-width', '2');
  path.setAttribute('vector-effect', 'non-scaling-stroke');
  svg.append(path);
  fig.querySelector('.scale').textContent = 'scale 0 to ' +
      (Number.isInteger(max) ? max : max.toFixed(2)) + unit;
}

function renderCharts() {
  const col = (i) => state.samples.map((s) => s[i]);
  const target = state.samples.length ? state.samples[state.samples.length - 1][2] : 1;
  chart('chart-voters', 'Healthy voters', col(1), '', target);
  chart('chart-leader', 'Leader changes', col(3), '', 1);
  chart('chart-fsync', 'Leader disk write latency (WAL fsync, mean)', col(5), ' ms', 1);
  chart('chart-db', 'Largest database', col(4).map((v) => v == null ? null : v / 1048576),
        ' MiB', 1);
}

function renderTimeline() {
  const kind = $('filter-kind'), text = $('filter-text').value.toLowerCase();
  const chosen = kind.value;
  const kinds = ['all', ...[...state.kinds].sort()];
  if (kind.options.length !== kinds.length) {
    kind.replaceChildren(...kinds.map((k) => el('option', { value: k, text: k })));
    kind.value = kinds.includes(chosen) ? chosen : 'all';
  }
  const shown = state.notes.filter((n) => (kind.value === 'all' || (n.kind || 'other') ===
      kind.value) && (!text || n.message.toLowerCase().includes(text) ||
      (n.member || '').toLowerCase().includes(text))).slice(-300).reverse();
  $('timeline').replaceChildren(...shown.map((n) => el('tr', { class: n.level },
      el('td', { text: stamp(n.t_ms) }), el('td', { text: n.level }),
      el('td', { text: n.kind || 'other' }), el('td', { text: n.member || '' }),
      el('td', { text: n.message }))));
  $('timeline-count').textContent = shown.length + ' of ' + state.notes.length + ' events shown';
}

function renderBackups(d) {
  const b = d.backups;
  let text;
  if (!b.enabled) text = 'Backups are OFF (no --backup-dir).';
  else if (!b.newest) text = 'No backup yet; ' + b.failed + ' failed.';
  else text = 'Newest backup ' + b.newest.name + ', ' + ago(1000 * b.newest.age_s) + ' old (' +
              bytes(b.newest.size) + ', revision ' + b.newest.revision + '); ' + b.taken +
              ' taken, ' + b.failed + ' failed.';
  if (b.running) text += ' Running now: ' + b.running + '.';
  if (b.last_error) text += ' Last error: ' + b.last_error;
  $('backups').textContent = text;
  $('backups').className = b.enabled && b.newest && !b.last_error ? 'banner ok' : 'banner warn';
}

function renderCounters(d) {
  const c = d.counters, names = Object.keys(c);
  $('counters-head').replaceChildren(...names.map((k) => el('th', { scope: 'col', text: k })));
  $('counters-row').replaceChildren(...names.map((k) => el('td', { text: String(c[k]) })));
}

// ---- Actions: each behind a confirmation that says what it does and what may be lost. ----
const ACTIONS = {
  defrag: { title: 'Defragment', path: () => '/defrag',
    text: () => 'Defragments every member one at a time, followers first and the leader last, ' +
                'only while the cluster is healthy. Each member stops serving while its own ' +
                'database is rewritten (seconds per GiB). Nothing is lost.' },
  restart: { title: 'Rolling restart', path: () => '/rollout/restart',
    text: () => 'Replaces every member once, followers first and the leader last (leadership ' +
                'is moved away first); each successor is added and promoted before its member ' +
                'is removed. Each successor copies the whole database. Nothing is lost.' },
  resume: { title: 'Resume the rollout', path: () => '/rollout/resume',
    text: () => 'Goes on with a rollout that stopped at a failure, from where it stopped. Fix ' +
                'the cause first (the notice says it). Nothing is lost.' },
  backup: { title: 'Back up now', path: () => '/backup',
    text: () => 'Takes a snapshot of the cluster from a healthy member into the backup ' +
                'directory. Nothing is lost; writes go on.' },
  reseed: { title: 'Reseed', path: () => '/reseed',
    text: () => 'Restarts the cluster from its most up-to-date surviving member, for when a ' +
                'majority is lost for good. Writes that member had not received are LOST (the ' +
                'timeline says how many revisions). The scheduler refuses it while a quorum ' +
                'may still come back.' },
  fresh: { title: 'Start fresh', path: () => '/start-fresh',
    text: () => 'Starts a new, EMPTY cluster: EVERY KEY IS LOST. Only after total loss; the ' +
                'scheduler refuses it otherwise. Restore a backup instead if you have one.' },
  restore: { title: 'Restore a backup', path: () => '/restore?name=' +
                encodeURIComponent($('restore-name').value),
    text: () => 'Replaces the cluster with backup ' + $('restore-name').value + ': every ' +
                'write after that backup\'s revision is LOST, and the members are replaced.' },
  resize: { title: 'Resize', path: () => '/cluster-size?n=' +
                encodeURIComponent($('resize-n').value),
    text: () => 'Changes the cluster size to ' + $('resize-n').value + ' members, one member ' +
                'at a time (new members join as learners; the leader is never removed). ' +
                'Nothing is lost.' },
};
let pending = null;
function ask(name) {
  pending = name;
  const a = ACTIONS[name];
  $('confirm-title').textContent = a.title + '?';
  $('confirm-text').textContent = a.text();
  $('confirm').showModal();
}
async function send() {
  const a = ACTIONS[pending];
  $('confirm').close();
  const token = $('token').value;
  const headers = token ? { Authorization: 'Bearer ' + token } : {};
  $('answer').textContent = a.title + ': sending...';
  try {
    const r = await fetch(a.path(), { method: 'POST', headers });
    const body = await r.text();
    $('answer').textContent = a.title + ': HTTP ' + r.status + ' ' + body;
    $('answer').className = r.ok ? 'banner ok' : 'banner bad';
  } catch (e) {
    $('answer').textContent = a.title + ': not sent (' + e.message + ')';
    $('answer').className = 'banner bad';
  }
  poll();
}
async function loadBackups() {
  try {
    const list = await (await fetch('/backups', { cache: 'no-store' })).json();
    const sel = $('restore-name');
    sel.replaceChildren(...list.slice().reverse().map((b) => el('option', { value: b.name,
        text: b.name + ' (revision ' + b.revision + ', ' + b.time + ')' })));
    $('ask-restore').disabled = list.length === 0;
  } catch (e) { /* the list is retried with the next look */ }
}

function start() {
  const token = $('token');
  token.value = sessionStorage.getItem('etcd-mesos-token') || '';
  token.addEventListener('change', () => sessionStorage.setItem('etcd-mesos-token', token.value));
  for (const name of Object.keys(ACTIONS)) {
    $('ask-' + name).addEventListener('click', () => ask(name));
  }
  $('confirm-yes').addEventListener('click', send);
  $('confirm-no').addEventListener('click', () => $('confirm').close());
  $('filter-kind').addEventListener('change', renderTimeline);
  $('filter-text').addEventListener('input', renderTimeline);
  loadBackups();
  setInterval(loadBackups, 30000);
  poll();
  setInterval(poll, 2000);
}
start();
)JS";
}

std::string_view ConsoleBody() {
  return R"HTML(
<div id="live" hidden>
<header>
<h1 id="title">etcd-mesos</h1>
<p id="banner" class="banner" role="status" aria-live="polite"></p>
<div id="notices"></div>
<p id="refreshed" class="muted"></p>
<p id="summary"></p>
<p id="tls" class="muted"></p>
</header>
<main>
<section aria-labelledby="h-actions">
<h2 id="h-actions">What you can do</h2>
<p class="actions">
<label for="token">Admin token</label> <input id="token" type="password" autocomplete="off"
  size="24"> <span class="muted">(kept in this tab only)</span><br>
<button id="ask-backup" type="button">Back up now</button>
<button id="ask-defrag" type="button">Defragment&hellip;</button>
<button id="ask-restart" type="button">Rolling restart&hellip;</button>
<button id="ask-resume" type="button">Resume rollout&hellip;</button>
<button id="ask-reseed" type="button" class="danger">Reseed&hellip;</button>
<button id="ask-fresh" type="button" class="danger">Start fresh&hellip;</button>
<label for="restore-name">Backup</label> <select id="restore-name"></select>
<button id="ask-restore" type="button" class="danger" disabled>Restore&hellip;</button>
<label for="resize-n">Members</label> <input id="resize-n" type="number" min="1" max="99"
  step="2" value="3" size="3">
<button id="ask-resize" type="button">Resize&hellip;</button>
</p>
<p id="answer" role="status" aria-live="polite"></p>
</section>
<section aria-labelledby="h-members">
<h2 id="h-members">Members</h2>
<div class="scroll"><table>
<caption class="muted">Role, health and progress of every member, from the latest probes</caption>
<thead><tr><th scope="col">name</th><th scope="col">role</th><th scope="col">health</th>
<th scope="col">task</th><th scope="col">host</th><th scope="col">raft index</th>
<th scope="col">lag behind leader</th><th scope="col">database</th><th scope="col">member id</th>
<th scope="col">certificates expire</th><th scope="col">sandbox</th><th scope="col">history</th></tr></thead>
<tbody id="members"></tbody></table></div>
</section>
<section aria-labelledby="h-charts">
<h2 id="h-charts">Last hours</h2>
<div class="charts">
<figure id="chart-voters"><svg role="img"></svg><figcaption></figcaption>
<span class="scale muted"></span></figure>
<figure id="chart-leader"><svg role="img"></svg><figcaption></figcaption>
<span class="scale muted"></span></figure>
<figure id="chart-fsync"><svg role="img"></svg><figcaption></figcaption>
<span class="scale muted"></span></figure>
<figure id="chart-db"><svg role="img"></svg><figcaption></figcaption>
<span class="scale muted"></span></figure>
</div>
</section>
<section aria-labelledby="h-backups">
<h2 id="h-backups">Backups</h2>
<p id="backups" class="banner"></p>
</section>
<section aria-labelledby="h-timeline">
<h2 id="h-timeline">Timeline</h2>
<p class="filters"><label for="filter-kind">Kind</label> <select id="filter-kind"></select>
<label for="filter-text">Search</label> <input id="filter-text" type="search" size="20">
<span id="timeline-count" class="muted"></span></p>
<div class="scroll"><table>
<caption class="muted">Decisions and incidents, newest first, with their reasons</caption>
<thead><tr><th scope="col">time</th><th scope="col">level</th><th scope="col">kind</th>
<th scope="col">member</th><th scope="col">what happened and why</th></tr></thead>
<tbody id="timeline"></tbody></table></div>
</section>
<section aria-labelledby="h-counters">
<h2 id="h-counters">Counters</h2>
<div class="scroll"><table><thead><tr id="counters-head"></tr></thead>
<tbody><tr id="counters-row"></tr></tbody></table></div>
</section>
<p><a href="/stats">/stats</a> <a href="/members">/members</a> <a href="/healthz">/healthz</a>
<a href="/metrics">/metrics</a> <a href="/endpoints">/endpoints</a> <a href="/backups">/backups</a>
<a href="/console.json">/console.json</a></p>
</main>
</div>
<dialog id="confirm" aria-labelledby="confirm-title">
<h2 id="confirm-title"></h2>
<p id="confirm-text"></p>
<button id="confirm-yes" type="button" class="danger">Yes, do it</button>
<button id="confirm-no" type="button">Cancel</button>
</dialog>
)HTML";
}

}  // namespace etcd_mesos::scheduler::shell
