// The pgmaestro console page: renders the views the daemon streams (server-sent
// events) and draws the charts with uPlot. Every value is put in the page as
// text (textContent), never as HTML. No network beyond this console.
'use strict';

(() => {
  const $ = (sel) => document.querySelector(sel);
  let access = 'read';
  let actions = false;
  let view = null;
  let history = [];
  const charts = {};

  // ---- small helpers ------------------------------------------------------
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, String(v));
    }
    for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }
  const SVG = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) e.setAttribute(k, String(v));
    for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }
  function bytes(n) {
    if (n === null || n === undefined) return '–';
    if (n < 1024) return `${Math.round(n)} B`;
    if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
    if (n < 1 << 30) return `${(n / (1 << 20)).toFixed(1)} MiB`;
    return `${(n / (1 << 30)).toFixed(2)} GiB`;
  }
  function secs(n) {
    return n === null || n === undefined ? '–' : `${n < 1 ? n.toFixed(2) : n < 10 ? n.toFixed(1) : Math.round(n)} s`;
  }
  function time(iso) {
    const d = new Date(iso);
    const today = new Date().toDateString() === d.toDateString();
    return today ? d.toLocaleTimeString() : d.toLocaleString();
  }
  function took(a, b) {
    const s = (Date.parse(b) - Date.parse(a)) / 1000;
    return s < 120 ? `${s.toFixed(1)} s` : `${Math.round(s / 60)} min`;
  }
  function fill(tbody, rows) {
    tbody.replaceChildren(...rows);
  }

  // ---- the live stream ------------------------------------------------------
  function connect() {
    const es = new EventSource('/api/stream');
    const live = $('#live');
    es.addEventListener('hello', (e) => {
      const h = JSON.parse(e.data);
      access = h.access;
      actions = h.actions;
      const badge = $('#access');
      badge.textContent = access === 'operator' ? 'operator' : 'read-only';
      badge.className = `badge ${access}`;
      $('#operator-backup').hidden = !actions;
    });
    es.addEventListener('history', (e) => {
      history = JSON.parse(e.data);
      drawCharts();
    });
    es.addEventListener('view', (e) => {
      view = JSON.parse(e.data);
      const last = history[history.length - 1];
      if (!last || view.sample.t > last.t) history.push(view.sample);
      const oldest = view.sample.t - 3600;
      while (history.length > 0 && history[0].t < oldest) history.shift();
      live.dataset.state = 'live';
      live.textContent = 'live';
      render(view);
      drawCharts();
    });
    es.onerror = () => {
      live.dataset.state = 'lost';
      live.textContent = `connection to the daemon lost${view ? ` (data from ${time(view.at)})` : ''}; retrying`;
      if (es.readyState === EventSource.CLOSED) {
        // the session ended (token changed) or the daemon answers no more: ask the server what it wants
        setTimeout(() => fetch('/api/view').then((r) => (r.status === 401 ? location.reload() : connect()), () => setTimeout(connect, 2000)), 2000);
      }
    };
  }

  // ---- rendering ------------------------------------------------------------
  function render(v) {
    $('#cluster').textContent = v.cluster ?? '?';
    $('#version').textContent = v.postgres_version ?? '?';
    $('#primary').textContent = v.primary ?? '?';
    $('#updated').textContent = `updated ${time(v.at)}`;
    renderProblems(v.problems);
    renderTopology(v);
    renderBackups(v.backups);
    renderEvents(v.events);
    renderSeams(v);
  }

  function renderProblems(problems) {
    const box = $('#problems');
    box.hidden = problems.length === 0;
    box.querySelector('ul').replaceChildren(...problems.map((p) => el('li', {}, p)));
  }

  function lag(n) {
    if (n.role !== 'replica') return '–';
    return `${bytes(n.lag_bytes)} / ${secs(n.lag_seconds)}`;
  }

  function renderTopology(v) {
    const order = [...v.nodes].sort((a, b) => (a.role === 'primary' ? -1 : b.role === 'primary' ? 1 : a.name.localeCompare(b.name)));
    $('#cards').replaceChildren(
      ...order.map((n) =>
        el('div', { class: `card ${n.role}`, 'data-node': n.name, 'data-role': n.role },
          el('b', {}, n.name), ' ', el('span', { class: `role ${n.role}` }, n.role),
          el('div', {}, `${n.address} · TL ${n.timeline ?? '–'}`),
          el('div', {}, n.lsn ? `LSN ${n.lsn}` : (n.error ?? 'not reachable')),
          n.role === 'replica' ? el('div', { class: 'upstream' }, `← streams from ${n.upstream ?? '?'} · lag ${lag(n)}`) : null,
        ),
      ),
    );
    fill($('#nodes tbody'), v.nodes.map((n) =>
      el('tr', { 'data-node': n.name, 'data-role': n.role },
        el('td', {}, n.name),
        el('td', {}, el('span', { class: `role ${n.role}` }, n.role), n.pending_restart && n.pending_restart.length > 0 ? ` (restart pending: ${n.pending_restart.join(', ')})` : ''),
        el('td', {}, n.address), el('td', {}, n.pid ?? '–'), el('td', {}, n.timeline ?? '–'), el('td', {}, n.lsn ?? '–'),
        el('td', {}, n.upstream ?? '–'), el('td', {}, lag(n)),
        el('td', {}, n.slot ? `${n.slot.name} (${n.slot.active ? 'active' : 'inactive'})` : '–'),
        n.error ? el('td', { class: 'error' }, n.error) : actions && n.role === 'replica' && v.nodes.some((m) => m.role === 'primary')
          ? el('td', {}, el('button', { type: 'button', class: 'operator', 'data-action': 'switchover', 'data-to': n.name, onclick: () => confirmSwitchover(n.name, v.primary) }, `switch over to ${n.name}…`))
          : el('td', {}),
      ),
    ));
    fill($('#endpoints tbody'), v.endpoints.map((e) =>
      el('tr', { 'data-endpoint': e.name }, el('td', {}, e.name), el('td', {}, e.address), el('td', {}, e.target ?? (e.waiting > 0 ? 'none (holding)' : '–')),
        el('td', {}, `${e.connections}${e.waiting ? ` (+${e.waiting} waiting)` : ''}`), el('td', {}, `${bytes(e.bytesFromClients)} / ${bytes(e.bytesToClients)}`)),
    ));
    const routed = v.endpoints.filter((e) => Object.keys(e.decisions).length > 0);
    $('#router').textContent = routed.length > 0
      ? routed.map((e) => `${e.name}: ${Object.entries(e.decisions).map(([k, n]) => `${n} to ${k}`).join(', ')}`).join('; ')
      : 'router decisions: not available (the read-only and auto endpoints are not running)';
    fill($('#slots tbody'), v.slots.map((s) => el('tr', {}, el('td', {}, s.name), el('td', {}, s.active ? 'yes' : 'no'), el('td', {}, bytes(s.retained_bytes)))));
    $('#monitor').textContent = v.monitor ? `${time(v.monitor.at)}  ${v.monitor.sentence}` : 'not available (no monitor cycle yet)';
  }

  function keyValues(obj) {
    return el('table', {}, el('tbody', {}, ...Object.entries(obj).map(([k, val]) => el('tr', {}, el('th', {}, k), el('td', {}, typeof val === 'object' ? JSON.stringify(val) : String(val))))));
  }
  function records(list) {
    const keys = [...new Set(list.flatMap((r) => Object.keys(r)))];
    return el('table', {}, el('thead', {}, el('tr', {}, ...keys.map((k) => el('th', {}, k)))),
      el('tbody', {}, ...list.map((r) => el('tr', {}, ...keys.map((k) => el('td', {}, r[k] === undefined ? '' : typeof r[k] === 'object' ? JSON.stringify(r[k]) : String(r[k])))))));
  }
  function renderSeams(v) {
    const mh = $('#multihost');
    if (!v.hosts && !v.controller && !v.dcs) mh.replaceChildren(el('p', { class: 'muted' }, 'not available: this cluster runs in single-host lab mode (one daemon, state on local disk)'));
    else mh.replaceChildren(...[v.hosts ? records(v.hosts) : null, v.controller ? keyValues(v.controller) : null, v.dcs ? keyValues(v.dcs) : null].filter(Boolean));
    $('#logical-body').replaceChildren(v.logical ? records(v.logical) : el('p', { class: 'muted' }, 'not available: no logical subscriptions or partitioned tables are configured'));
  }

  function renderEvents(events) {
    $('#events').replaceChildren(...events.map((e) => el('li', {}, el('time', { datetime: e.at }, time(e.at)), e.sentence)));
  }

  // ---- the backup timeline --------------------------------------------------
  function renderBackups(b) {
    $('#backup-error').hidden = b.ok;
    if (!b.ok) {
      $('#backup-error').textContent = b.error;
      return;
    }
    const t = b.timeline;
    drawTimeline(t);
    $('#timeline-text').textContent = asText(t);
    $('#timeline-sentence').textContent = t.sentence + (t.gapsAnalysed ? '' : '\nGaps inside the WAL archive: not analysed here (run pgmaestro backup verify).');
    const s = b.storage;
    $('#storage').textContent = `${bytes(s.total_bytes)} used (backups ${bytes(s.backups_bytes)}, WAL ${bytes(s.wal_bytes)} in ${s.wal_segments} segments, ${bytes(s.wal_bytes_per_day)}/day). ` +
      `Policy (${s.window} window, full "${b.schedule.full}", incremental "${b.schedule.incr}") projected: ${bytes(s.projected_bytes)} = ${s.projection}.`;
    fill($('#backup-list tbody'), b.backups.map((x) =>
      el('tr', { 'data-backup': x.id }, el('td', {}, x.id), el('td', {}, x.type), el('td', {}, x.parent ?? '–'), el('td', {}, x.node),
        el('td', {}, time(x.stop_time)), el('td', {}, took(x.start_time, x.stop_time)), el('td', {}, bytes(x.stored_bytes)))));
  }

  function drawTimeline(t) {
    const W = 1000, X0 = 10, X1 = 940, Y = 40, H = 24;
    const px = (x) => X0 + x * (X1 - X0);
    const root = svg('svg', { viewBox: `0 0 ${W} 110`, role: 'img', 'aria-label': t.sentence });
    root.append(svg('defs', {},
      svg('pattern', { id: 'hatch-empty', width: 6, height: 6, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)' }, svg('rect', { width: 3, height: 6, fill: '#cf222e', opacity: '.35' })),
      svg('pattern', { id: 'hatch-prehistory', width: 6, height: 6, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)' }, svg('rect', { width: 2, height: 6, fill: '#8c959f', opacity: '.35' }))));
    for (const s of t.spans) {
      const w = Math.max(px(s.x1) - px(s.x0), s.state === 'restorable' && s.x1 === s.x0 ? 2 : 0);
      root.append(svg('rect', { class: s.state, x: px(s.x0), y: Y, width: w, height: H, 'data-span': '', 'data-state': s.state, 'data-x0': s.x0, 'data-x1': s.x1 }, svg('title', {}, `${time(s.from)} – ${time(s.to)}: ${s.state}: ${s.reason}`)));
    }
    if (t.gap) {
      root.append(svg('rect', { class: `gap ${t.gap.kind}`, x: px(t.gap.x0), y: Y, width: px(t.gap.x1) - px(t.gap.x0), height: H, 'data-gap': t.gap.kind }, svg('title', {}, `${time(t.gap.from)} – ${time(t.gap.to)}, drawn shorter`)));
      root.append(svg('text', { x: px(t.gap.x0), y: Y - 6 }, `… ${t.gap.label} …`));
    }
    if (t.wal) root.append(svg('rect', { class: 'wal', x: px(t.wal.x0), y: Y + H + 4, width: Math.max(1, px(t.wal.x1) - px(t.wal.x0)), height: 4, 'data-wal': '' }, svg('title', {}, `WAL archived from ${time(t.wal.from)} to ${time(t.wal.to)}`)));
    root.append(svg('line', { class: 'window', x1: px(t.xWindowStart), x2: px(t.xWindowStart), y1: Y - 14, y2: Y + H + 14, 'data-window-start': t.xWindowStart }));
    root.append(svg('text', { x: px(t.xWindowStart) + 4, y: Y + H + 26 }, t.windowStartsAt === 'created' ? `window start: the cluster was created (${t.retention} window)` : `window start (${t.retention} ago)`));
    for (const m of t.marks) {
      const x = px(m.x);
      const title = svg('title', {}, `${m.type} backup ${m.id} from ${m.node}, consistent at ${time(m.at)}${m.parent ? `, parent ${m.parent}` : ''}, ${bytes(m.storedBytes)} stored`);
      const attrs = { 'data-mark': m.id, 'data-type': m.type, 'data-x': m.x, 'data-at': m.at };
      if (m.type === 'incr') root.append(svg('g', attrs, svg('circle', { class: 'incr', cx: x, cy: Y + H / 2, r: 6 }), title));
      else root.append(svg('g', attrs, svg('line', { class: 'full', x1: x, x2: x, y1: Y - 8, y2: Y + H + 8 }), title));
    }
    root.append(svg('path', { d: `M ${X1} ${Y + H / 2} l 14 0 m -6 -6 l 6 6 l -6 6`, stroke: '#1d2330', fill: 'none', 'stroke-width': 2 }));
    root.append(svg('text', { x: X1 + 18, y: Y + H / 2 + 4 }, 'NOW'));
    $('#timeline').replaceChildren(root);
  }

  /** The user's own drawing: |-----*-----*------*-----|-----*…----->NOW */
  function asText(t) {
    const N = 72;
    const cells = Array(N).fill(' ');
    const at = (x) => Math.min(N - 1, Math.max(0, Math.round(x * (N - 1))));
    const mark = { restorable: '-', unrestorable: '.', pending: '~' };
    for (const s of t.spans) for (let i = at(s.x0); i <= at(s.x1); i++) cells[i] = mark[s.state];
    if (t.gap) for (let i = at(t.gap.x0); i < at(t.gap.x1); i++) cells[i] = i === at((t.gap.x0 + t.gap.x1) / 2) ? '…' : t.gap.kind === 'prehistory' ? ' ' : '.';
    const taken = new Set();
    for (const m of t.marks) {
      let i = at(m.x);
      while (taken.has(i) && i < N - 1) i++; // two backups closer than a character: keep both, in order
      taken.add(i);
      cells[i] = m.type === 'incr' ? '*' : '|';
    }
    return `${cells.join('')}>NOW`;
  }

  // ---- charts (uPlot) -------------------------------------------------------
  function series(key) {
    const names = [...new Set(history.flatMap((p) => Object.keys(p[key])))].sort();
    const data = [history.map((p) => p.t), ...names.map((n) => history.map((p) => (p[key][n] ?? null)))];
    return { names, data };
  }
  const COLORS = ['#2da44e', '#bf3989', '#1f6feb', '#9a6700', '#8250df', '#cf222e'];
  function chart(id, names, data, fmt) {
    const box = document.getElementById(id);
    const key = names.join(',');
    const width = Math.max(280, box.clientWidth || 320);
    let c = charts[id];
    if (!c || c.key !== key || c.width !== width) {
      c?.plot.destroy();
      const opts = {
        width, height: 180, legend: { show: true },
        scales: { x: { time: true } },
        axes: [{}, { values: (_u, vals) => vals.map(fmt), size: 70 }],
        series: [{}, ...names.map((n, i) => ({ label: n, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false, value: (_u, v) => (v === null ? '–' : fmt(v)) }))],
      };
      c = charts[id] = { key, width, plot: new window.uPlot(opts, data, box) };
    } else c.plot.setData(data);
  }
  function drawCharts() {
    if (!window.uPlot || history.length === 0) return;
    const lb = series('lag_bytes');
    chart('chart-lag-bytes', lb.names, lb.data, bytes);
    const ls = series('lag_seconds');
    chart('chart-lag-seconds', ls.names, ls.data, secs);
    chart('chart-write', ['write rate'], [history.map((p) => p.t), history.map((p) => p.write_rate)], (v) => `${bytes(v)}/s`);
  }

  // ---- operator actions, each behind a confirmation -------------------------
  const dialog = $('#confirm');
  let pending = null;
  function ask(title, text, label, expect, run) {
    $('#confirm-title').textContent = title;
    $('#confirm-text').textContent = text;
    $('#confirm-label').textContent = label;
    $('#confirm-input').value = '';
    $('#confirm-result').textContent = '';
    $('#confirm-go').disabled = false;
    pending = { expect, run };
    dialog.showModal();
    $('#confirm-input').focus();
  }
  $('#confirm-cancel').addEventListener('click', () => dialog.close());
  $('#confirm-go').addEventListener('click', async () => {
    if (!pending) return;
    const typed = $('#confirm-input').value.trim();
    if (typed !== pending.expect) {
      $('#confirm-result').textContent = `Type ${pending.expect} to confirm.`;
      return;
    }
    $('#confirm-go').disabled = true;
    $('#confirm-result').textContent = 'working…';
    try {
      const r = await pending.run(typed);
      $('#confirm-result').textContent = r;
    } catch (err) {
      $('#confirm-result').textContent = String(err.message || err);
    }
  });
  async function post(path, body) {
    const r = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), credentials: 'same-origin' });
    const j = await r.json().catch(() => ({ error: { message: `the console answered ${r.status}` } }));
    if (j.error) throw new Error(`${j.error.message}${j.error.hint ? ` HINT: ${j.error.hint}` : ''}`);
    return j.sentence;
  }
  function confirmSwitchover(to, from) {
    ask(`Switch over to ${to}?`, `${from ?? 'The primary'} hands over to ${to} once ${to} has every commit; ${from ?? 'it'} then follows ${to} as a replica. Connections through the endpoint are dropped and reconnect to ${to}.`,
      `Type ${to} to confirm:`, to, (confirm) => post('/api/switchover', { to, confirm }));
  }
  document.addEventListener('click', (e) => {
    const b = e.target.closest('button[data-action="backup"]');
    if (!b) return;
    const type = b.dataset.type;
    ask(`Take a ${type === 'incr' ? 'incremental' : 'full'} backup now?`, 'It streams from the node backup.from names, then expires what the recovery window no longer needs. Its result appears in the event log.',
      `Type ${type} to confirm:`, type, (confirm) => post('/api/backup', { type, confirm }));
  });

  window.addEventListener('resize', () => drawCharts());
  connect();
})();
