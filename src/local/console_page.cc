#include "local/console_page.h"

namespace etcd_mesos::local {

namespace {

// Everything rendered from data goes through textContent or setAttribute (never innerHTML), and
// links are relative to this server, except a framework's web UI when it is http(s).
constexpr std::string_view kPage = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>etcd-mesos-local console</title>
<style>
:root { --ok: #116329; --warn: #7d4e00; --bad: #a40e26; --line: #d0d7de; --soft: #f6f8fa; }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       padding: .75rem; max-width: 90rem; line-height: 1.45; color: #1f2328; background: #fff; }
h1 { font-size: 1.4rem; margin: 0 0 .25rem; }
h2 { font-size: 1.2rem; margin: 1.5rem 0 .5rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.05rem; margin: 1rem 0 .25rem; }
.line { display: flex; flex-wrap: wrap; gap: .2rem 1.2rem; margin: .25rem 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; margin: .25rem 0 1rem; }
caption { text-align: left; font-weight: 600; padding: .2rem 0; }
th, td { border: 1px solid var(--line); padding: .3rem .5rem; text-align: left;
         vertical-align: top; }
thead th { background: var(--soft); }
.id, code { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: .85em;
            overflow-wrap: anywhere; }
.buttons { display: flex; flex-wrap: wrap; gap: .3rem; }
button { font: inherit; padding: .25rem .6rem; min-height: 2.25rem; cursor: pointer; }
button:disabled { cursor: not-allowed; }
:focus-visible { outline: 3px solid #0969da; outline-offset: 2px; }
.state { font-weight: 600; }
.state-running, .task-TASK_RUNNING { color: var(--ok); }
.state-partitioned, .state-crashed, .task-TASK_STAGING, .task-TASK_STARTING,
.task-TASK_UNREACHABLE, .task-TASK_KILLING { color: var(--warn); }
.state-stopped, .task-TASK_FAILED, .task-TASK_LOST, .task-TASK_GONE, .task-TASK_ERROR,
.task-TASK_DROPPED { color: var(--bad); }
.muted { color: #59636e; }
#stale { background: #fff8c5; border: 1px solid #d4a72c; padding: .5rem; font-weight: 600; }
#route { background: #ffebe9; border: 1px solid #ff818266; padding: .5rem; }
#answer:not(:empty) { background: var(--soft); border: 1px solid var(--line); padding: .5rem; }
#answer code { white-space: pre-wrap; }
dialog { max-width: 34rem; border: 1px solid var(--line); border-radius: .4rem; }
dialog::backdrop { background: rgb(0 0 0 / .35); }
dialog h2 { margin-top: 0; border: none; }
@media (max-width: 40rem) {
  table.cards thead { position: absolute; width: 1px; height: 1px; overflow: hidden;
                      clip-path: inset(50%); }
  table.cards, table.cards caption, table.cards tbody, table.cards tr, table.cards td,
  table.cards tbody th { display: block; width: auto; }
  table.cards tr { border: 1px solid var(--line); margin-bottom: .6rem; }
  table.cards td, table.cards tbody th { border: none; border-bottom: 1px solid var(--soft); }
  table.cards td[data-label]::before, table.cards tbody th[data-label]::before {
    content: attr(data-label) ": "; font-weight: 600; }
}
</style>
</head>
<body>
<header>
<h1>etcd-mesos-local</h1>
<p class="line" id="summary">Loading the master's state&hellip;</p>
<p id="stale" role="alert" hidden></p>
<nav class="line" aria-label="Raw data">
<a href="/master/state">/master/state</a>
<a href="/faults/state">/faults/state</a>
<a href="/faults">fault injection help</a>
</nav>
</header>
<main>
<p id="route" role="alert" hidden></p>
<div id="answer" role="status" aria-live="polite" aria-atomic="true"></div>
<section aria-labelledby="frameworks-heading">
<h2 id="frameworks-heading">Frameworks</h2>
<div id="frameworks"><p>Loading&hellip;</p></div>
</section>
<section aria-labelledby="agents-heading">
<h2 id="agents-heading">Agents</h2>
<div class="scroll">
<table id="agents" class="cards">
<caption>Agents, their fault state and the faults to inject</caption>
<thead><tr>
<th scope="col">#</th><th scope="col">Agent ID</th><th scope="col">Address</th>
<th scope="col">State</th><th scope="col">Master sees it</th><th scope="col">Resources</th>
<th scope="col">Reserved</th><th scope="col">Executors</th><th scope="col">Faults</th>
</tr></thead>
<tbody id="agents-body"></tbody>
</table>
</div>
</section>
<section aria-labelledby="master-heading">
<h2 id="master-heading">Master</h2>
<p id="master-line" class="line"></p>
<div class="buttons" id="master-buttons"></div>
</section>
</main>
<dialog id="confirm" aria-labelledby="confirm-title" aria-describedby="confirm-text">
<form method="dialog">
<h2 id="confirm-title">Inject this fault?</h2>
<p id="confirm-text"></p>
<div class="buttons">
<button value="cancel" id="confirm-cancel" autofocus>Cancel</button>
<button value="confirm" id="confirm-ok">Confirm</button>
</div>
</form>
</dialog>
<script>
'use strict';
(function () {
  const POLL_MS = 2000;
  const TIMEOUT_MS = 5000;
  const $ = (id) => document.getElementById(id);

  let data = null;           // the last good poll: {state, faults, at}
  let failingSince = null;   // when polls started failing, or null
  let lastError = '';
  let pendingFault = null;   // the URL the open dialog will POST on Confirm
  let pendingKey = '';       // the data-key of the button that opened it
  let timer = null;
  let inflight = false;
  let again = false;
  let polls = 0;
  const openDetails = new Set();

  // Builds an element; attribute values and children are set as data, never parsed as HTML.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }
  const hhmmss = (d) => d.toTimeString().slice(0, 8);
  const str = (v) => (v === undefined || v === null ? '' : String(v));
  const idOf = (v) => (v && typeof v === 'object' ? str(v.value) : str(v));
  const sandboxUrl = (dir) => '/sandbox?path=' + encodeURIComponent(dir);
  const sandboxKey = (agent, framework, executor) => [agent, framework, executor].join('\u0000');

  // ---- data ----

  async function fetchJson(url) {
    const ctl = new AbortController();
    const t = setTimeout(() => ctl.abort(), TIMEOUT_MS);
    try {
      const r = await fetch(url, {cache: 'no-store', signal: ctl.signal});
      if (!r.ok) throw new Error(url + ' answered ' + r.status);
      return await r.json();
    } catch (err) {
      if (err.name === 'AbortError') throw new Error(url + ' timed out');
      throw err;
    } finally {
      clearTimeout(t);
    }
  }

  function schedule(ms) {
    clearTimeout(timer);
    timer = setTimeout(poll, ms);
  }

  async function poll() {
    if (inflight) { again = true; return; }
    inflight = true;
    clearTimeout(timer);
    try {
      const [state, faults] =
          await Promise.all([fetchJson('/master/state'), fetchJson('/faults/state')]);
      data = {state, faults, at: new Date()};
      failingSince = null;
      render();
    } catch (err) {
      if (!failingSince) failingSince = new Date();
      lastError = err && err.message ? err.message : String(err);
      renderStale();
    } finally {
      inflight = false;
      if (again) { again = false; schedule(0); } else { schedule(POLL_MS); }
    }
  }

  // Every known sandbox: agent id + framework id + executor id -> {directory, live, agent}.
  function sandboxes() {
    const m = new Map();
    for (const fw of data.state.frameworks || []) {
      for (const e of fw.executors || []) {
        if (e.directory) {
          m.set(sandboxKey(str(e.slave_id), str(fw.id), idOf(e.executor_id)),
                {directory: str(e.directory), live: false, agent: null});
        }
      }
    }
    for (const a of data.faults.agents || []) {
      for (const e of a.executors || []) {
        m.set(sandboxKey(str(a.id), str(e.framework_id), str(e.executor_id)),
              {directory: str(e.directory), live: !!e.live, agent: a});
      }
    }
    return m;
  }

  function agentsById() {
    const m = new Map();
    for (const a of data.faults.agents || []) if (a.id) m.set(str(a.id), {harness: a, master: null});
    for (const s of data.state.slaves || []) {
      const entry = m.get(str(s.id)) || {harness: null, master: null};
      entry.master = s;
      m.set(str(s.id), entry);
    }
    return m;
  }

  // ---- rendering ----

  // Replaces a container's children only when what it shows changed, so that focus, selection
  // and a half-done click survive the polls that change nothing.
  function update(container, ...children) {
    const fresh = document.createElement(container.tagName);
    fresh.append(...children);
    if (fresh.innerHTML === container.innerHTML) return;
    const key = document.activeElement && document.activeElement.dataset
                    ? document.activeElement.dataset.key : undefined;
    container.replaceChildren(...fresh.childNodes);
    if (key !== undefined) {
      for (const e of container.querySelectorAll('[data-key]')) {
        if (e.dataset.key === key) { e.focus(); break; }
      }
    }
  }

  function render() {
    polls++;
    document.body.dataset.polls = String(polls);
    renderSummary();
    renderFrameworks();
    renderAgents();
    renderMaster();
    renderStale();
    route();
  }

  function renderSummary() {
    const s = data.state;
    const f = data.faults;
    const harness = f.agents || [];
    const counts = {};
    for (const a of harness) counts[a.state] = (counts[a.state] || 0) + 1;
    const byState = Object.entries(counts).map(([k, v]) => v + ' ' + k).join(', ');
    update($('summary'),
           el('span', {}, 'Master ', el('span', {class: 'id'}, str(s.id)), ' at ',
              str(f.master && f.master.address ? f.master.address : s.hostname)),
           el('span', {}, Number(s.activated_slaves) + ' agents active, ' +
                              Number(s.unreachable_slaves) + ' unreachable'),
           el('span', {}, harness.length + ' agents in the harness' +
                              (byState ? ' (' + byState + ')' : '')),
           el('span', {}, (s.frameworks || []).length + ' frameworks'),
           el('span', {id: 'refreshed'}, 'refreshed ' + hhmmss(data.at)));
  }

  function renderStale() {
    const box = $('stale');
    if (!failingSince) {
      box.hidden = true;
      if (box.textContent) box.textContent = '';
      return;
    }
    const text = 'Master not answering since ' + hhmmss(failingSince) + ' (' + lastError + ')' +
                 (data ? '; showing the data of ' + hhmmss(data.at) : '') + '.';
    if (box.textContent !== text) box.textContent = text;
    box.hidden = false;
  }

  function faultButton(key, label, ariaLabel, url, confirmText, enabled) {
    return el('button', {type: 'button', 'data-key': key, 'data-fault': url,
                         'data-confirm': confirmText, 'aria-label': ariaLabel,
                         disabled: !enabled}, label);
  }

  function taskRow(fw, t, boxes, agents) {
    const agentId = str(t.slave_id);
    const executorId = str(t.executor_id) || str(t.id);  // command tasks: executor id = task id
    const box = boxes.get(sandboxKey(agentId, str(fw.id), executorId));
    const agent = agents.get(agentId);
    let host = agentId;
    if (agent && agent.master) host = str(agent.master.hostname);
    else if (agent && agent.harness) host = str(agent.harness.ip);
    const where = agent && agent.harness ? host + ' (agent ' + agent.harness.n + ')' : host;
    const state = str(t.state);
    const name = str(t.name) || str(t.id);
    const sandbox = box && box.directory
        ? el('a', {href: sandboxUrl(box.directory), title: box.directory,
                   'aria-label': 'Sandbox of task ' + name}, 'sandbox')
        : el('span', {class: 'muted'}, 'not known');
    let action = el('span', {class: 'muted'}, box && box.agent ? 'not running' : '');
    if (box && box.live) {
      action = faultButton('kill-' + executorId, 'Kill executor',
                           'Kill executor ' + executorId + ' of task ' + name,
                           '/faults/executors/' + encodeURIComponent(executorId) + '/kill',
                           'Kill executor ' + executorId + ' (task ' + name + ') on ' + where +
                               ': SIGKILL to its process group; its tasks fail and the ' +
                               'framework hears TASK_FAILED.',
                           true);
    }
    return el('tr', {},
              el('td', {'data-label': 'Task'}, name,
                 name !== str(t.id) ? el('div', {class: 'id'}, str(t.id)) : null),
              el('td', {'data-label': 'State', class: 'state task-' + state}, state),
              el('td', {'data-label': 'Agent'}, where),
              el('td', {'data-label': 'Sandbox'}, sandbox),
              el('td', {'data-label': 'Actions'}, action));
  }

  function tasksTable(caption, fw, tasks, boxes, agents) {
    const head = el('tr', {});
    for (const h of ['Task', 'State', 'Agent host', 'Sandbox', 'Actions']) {
      head.append(el('th', {scope: 'col'}, h));
    }
    const body = el('tbody', {});
    for (const t of tasks) body.append(taskRow(fw, t, boxes, agents));
    if (!tasks.length) {
      body.append(el('tr', {}, el('td', {colspan: 5}, 'none')));
    }
    return el('div', {class: 'scroll'},
              el('table', {class: 'cards'}, el('caption', {}, caption), el('thead', {}, head),
                 body));
  }

  function renderFrameworks() {
    const boxes = sandboxes();
    const agents = agentsById();
    const out = [];
    const frameworks = data.state.frameworks || [];
    if (!frameworks.length) out.push(el('p', {}, 'No framework is subscribed.'));
    for (const fw of frameworks) {
      const name = str(fw.name) || str(fw.id);
      const url = str(fw.webui_url);
      const webui = /^https?:\/\//i.test(url) ? el('a', {href: url}, url)
                                              : (url ? el('span', {}, url) : 'none');
      out.push(el('h3', {}, name));
      out.push(el('p', {class: 'line'},
                  el('span', {}, 'ID ', el('span', {class: 'id'}, str(fw.id))),
                  el('span', {}, fw.connected ? 'connected' : 'disconnected'),
                  el('span', {}, fw.active ? 'active' : 'inactive'),
                  el('span', {}, 'Web UI: ', webui)));
      const live = (fw.tasks || []).concat(fw.unreachable_tasks || []);
      out.push(tasksTable('Tasks of ' + name, fw, live, boxes, agents));
      const done = fw.completed_tasks || [];
      if (done.length) {
        const key = 'completed-' + str(fw.id);
        const shown = done.slice(-50);
        out.push(el('details', {'data-key': key, open: openDetails.has(key)},
                    el('summary', {}, 'Completed tasks (' + done.length + ')' +
                                          (shown.length < done.length ? ', the last 50' : '')),
                    tasksTable('Completed tasks of ' + name, fw, shown, boxes, agents)));
      }
    }
    update($('frameworks'), ...out);
  }

  const STATE_TEXT = {
    running: 'serving; the master hears it',
    partitioned: 'the master cannot hear it; it runs on',
    crashed: 'the agent process is down; its executors run on',
    stopped: 'the host is down with every executor on it',
  };

  function resourcesText(total, used) {
    const parts = [];
    for (const [k, v] of Object.entries(total || {})) {
      if (typeof v === 'number' && v === 0) continue;
      const u = used && typeof used[k] === 'number' && typeof v === 'number' ? used[k] + '/' : '';
      parts.push(k + ' ' + u + v);
    }
    return parts.join(', ');
  }

  // Dynamic reservations by role, and the persistent volumes among them (by id).
  function reservedText(seen) {
    if (!seen) return '';
    const parts = [];
    for (const [role, summary] of Object.entries(seen.reserved_resources || {})) {
      const full = (seen.reserved_resources_full || {})[role] || [];
      const volumes = full.filter((r) => r.disk && r.disk.persistence)
                          .map((r) => str(r.disk.persistence.id));
      parts.push(role + ': ' + resourcesText(summary, null) +
                 (volumes.length ? '; volumes ' + volumes.join(', ') : ''));
    }
    return parts.length ? parts.join('; ') : 'none';
  }

  function agentButtons(a) {
    const n = Number(a.n);
    const who = 'agent ' + n + ' (' + str(a.ip) + ')';
    const Who = 'Agent ' + n + ' (' + str(a.ip) + ')';
    const base = '/faults/agents/' + n + '/';
    const running = a.state === 'running' || a.state === 'partitioned';
    const b = (action, label, url, text, enabled) =>
        faultButton('agent-' + n + '-' + action, label, label + ' ' + who, url, text, enabled);
    return el('div', {class: 'buttons'},
              b('stop', 'Stop', base + 'stop',
                'Stop ' + who + ': the host dies with every executor and etcd on it.', running),
              b('crash', 'Crash', base + 'crash',
                'Crash ' + who + ': the agent process dies; its executors run on and reconnect ' +
                    'when it restarts (or stop after their recovery timeout).',
                running),
              b('restart', 'Restart', base + 'restart',
                'Restart ' + who + ' keeping its work dir: the same agent id comes back and ' +
                    'executors that still run re-subscribe.',
                true),
              b('wipe', 'Restart and wipe', base + 'restart?wipe=1',
                'Restart ' + who + ' with a wiped work dir: it comes back as a new agent (new ' +
                    'id); every executor, task and sandbox on it is lost.',
                true),
              b('partition', 'Partition', base + 'partition',
                'Partition ' + who + ' from the master: the master stops hearing from it; ' +
                    'it keeps running.',
                a.state === 'running'),
              b('heal', 'Heal', base + 'heal',
                'Heal the partition of ' + who + ': the master hears from it again.',
                a.state === 'partitioned'));
  }

  function renderAgents() {
    const masterSees = new Map();
    for (const s of data.state.slaves || []) masterSees.set(str(s.id), s);
    const rows = [];
    for (const a of data.faults.agents || []) {
      const seen = masterSees.get(str(a.id));
      const executors = a.executors || [];
      const live = executors.filter((e) => e.live).length;
      const state = str(a.state);
      rows.push(el('tr', {'data-agent': Number(a.n), 'data-state': state},
                   el('th', {scope: 'row', 'data-label': 'Agent'}, String(Number(a.n))),
                   el('td', {'data-label': 'Agent ID', class: 'id'}, str(a.id)),
                   el('td', {'data-label': 'Address'}, str(a.ip) + ':' + str(a.port)),
                   el('td', {'data-label': 'State'},
                      el('span', {class: 'state state-' + state}, state),
                      STATE_TEXT[state] ? el('div', {class: 'muted'}, STATE_TEXT[state]) : null),
                   el('td', {'data-label': 'Master sees it'}, seen ? 'active' : 'not active'),
                   el('td', {'data-label': 'Resources'},
                      resourcesText(a.resources, seen ? seen.used_resources : null)),
                   el('td', {'data-label': 'Reserved'}, reservedText(seen)),
                   el('td', {'data-label': 'Executors'},
                      live + ' running, ' + (executors.length - live) + ' done'),
                   el('td', {'data-label': 'Faults'}, agentButtons(a))));
    }
    if (!rows.length) rows.push(el('tr', {}, el('td', {colspan: 9}, 'No agents.')));
    update($('agents-body'), ...rows);
  }

  function renderMaster() {
    const s = data.state;
    const m = data.faults.master || {};
    const address = str(m.address);
    update($('master-line'),
           el('span', {}, 'ID ', el('span', {class: 'id'}, str(s.id))),
           el('span', {}, 'address ' + address),
           el('span', {}, 'version ' + str(s.version)),
           el('span', {}, m.serving === false ? 'not serving (electing)' : 'serving'));
    update($('master-buttons'),
           faultButton('master-restart', 'Restart the master', 'Restart the master',
                       '/faults/master/restart',
                       'Restart the master at ' + address + ' with no memory: schedulers lose ' +
                           'their stream and must re-subscribe with their framework id; agents ' +
                           're-register 5 s after it serves, and until then it neither offers ' +
                           'their resources nor vouches for their tasks.',
                       true));
  }

  // ---- faults ----

  document.addEventListener('click', (ev) => {
    const b = ev.target.closest ? ev.target.closest('button[data-fault]') : null;
    if (!b || b.disabled) return;
    pendingFault = b.dataset.fault;
    pendingKey = b.dataset.key;
    $('confirm-text').textContent = b.dataset.confirm;
    const d = $('confirm');
    d.returnValue = '';
    d.showModal();
  });

  $('confirm').addEventListener('close', () => {
    const url = pendingFault;
    pendingFault = null;
    // The button that opened the dialog may have been re-rendered meanwhile: focus its successor.
    for (const e of document.querySelectorAll('[data-key]')) {
      if (e.dataset.key === pendingKey && !e.disabled) { e.focus(); break; }
    }
    if ($('confirm').returnValue === 'confirm' && url) inject(url);
  });

  async function inject(url) {
    const out = $('answer');
    out.dataset.status = '';
    out.textContent = 'POST ' + url + ' \u2026';
    try {
      const r = await fetch(url, {method: 'POST', cache: 'no-store'});
      const body = (await r.text()).trim();
      out.dataset.status = String(r.status);
      out.replaceChildren(
          el('strong', {}, 'POST ' + url + ' answered ' + r.status + ' ' + str(r.statusText)),
          ' ', el('code', {}, body));
    } catch (err) {
      out.dataset.status = 'error';
      out.textContent = 'POST ' + url + ' failed: ' + (err && err.message ? err.message : err);
    }
    poll();
  }

  document.addEventListener('toggle', (ev) => {
    const d = ev.target;
    if (!d || d.tagName !== 'DETAILS' || !d.dataset.key) return;
    if (d.open) openDetails.add(d.dataset.key); else openDetails.delete(d.dataset.key);
  }, true);

  // ---- the real Mesos web UI's sandbox addresses ----

  const BROWSE_EXECUTOR =
      /^#\/agents\/([^/?]+)\/frameworks\/([^/?]+)\/executors\/([^/?]+)\/browse\/?(\?.*)?$/;
  const BROWSE_AGENT = /^#\/agents\/([^/?]+)\/browse\?(.*)$/;

  function route() {
    const box = $('route');
    const hash = location.hash;
    let m = BROWSE_EXECUTOR.exec(hash);
    const a = BROWSE_AGENT.exec(hash);
    if (!m && a) {
      const path = new URLSearchParams(a[2]).get('path');
      if (path) { location.replace(sandboxUrl(path)); return; }
    }
    if (!m) {
      box.hidden = true;
      return;
    }
    if (!data) {
      box.hidden = false;
      box.textContent = 'Looking for the sandbox\u2026';
      return;
    }
    let ids;
    try {
      ids = m.slice(1, 4).map(decodeURIComponent);
    } catch (err) {
      ids = m.slice(1, 4);
    }
    const [agent, framework, executor] = ids;
    const hit = sandboxes().get(sandboxKey(agent, framework, executor));
    if (hit && hit.directory) {
      location.replace(sandboxUrl(hit.directory));
      return;
    }
    const text = 'No such sandbox: executor ' + executor + ' of framework ' + framework +
                 ' on agent ' + agent + ' is not known to this cluster (its agent may have ' +
                 'been wiped, or the master restarted and has not heard from it yet).';
    if (box.textContent !== text) box.textContent = text;
    box.hidden = false;
  }

  window.addEventListener('hashchange', route);
  route();
  poll();
})();
</script>
</body>
</html>
)html";

}  // namespace

std::string_view LocalConsolePage() { return kPage; }

}  // namespace etcd_mesos::local
