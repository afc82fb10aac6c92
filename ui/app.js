// Warren's management UI: a single page that talks to the HTTP API with
// the logged-in user's credentials (HTTP Basic, kept for the browser tab
// only). Every name shown comes from peers, so text is always set with
// textContent, never parsed as HTML.
'use strict';

const S = {
  auth: sessionStorage.getItem('warren.auth'),
  user: null,
  renderGen: 0, // counts renders; a stale one neither swaps its page in nor keeps its timer
  samples: [],
  pageSize: 100,
};
const SAMPLE_MS = 5000;
const KEEP_SAMPLES = 120; // ten minutes of 5 s samples
const enc = encodeURIComponent;

// ---- small helpers -------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'className') el.className = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function flash(msg, isError) {
  const d = h('div', { className: isError ? 'error' : '' }, msg);
  document.getElementById('flash').append(d);
  setTimeout(() => d.remove(), isError ? 8000 : 3000);
}

function num(n) {
  if (n === undefined || n === null) return '';
  return Number(n).toLocaleString('en-US');
}

function rate(obj, key) {
  const d = obj && obj[key + '_details'];
  return d && typeof d.rate === 'number' ? d.rate.toFixed(1) + '/s' : '0.0/s';
}

function tagList(u) {
  if (!u) return [];
  return Array.isArray(u.tags) ? u.tags : String(u.tags || '').split(/[ ,]+/).filter(Boolean);
}

function hasTag(t) {
  const tags = tagList(S.user);
  return tags.includes('administrator') || tags.includes(t) ||
    (t === 'policymaker' && tags.includes('administrator'));
}

class ApiError extends Error {
  constructor(status, reason) { super(reason); this.status = status; }
}

async function api(method, path, body) {
  // X-Requested-With: no Basic challenge on a 401 (no browser dialog).
  const opts = { method, headers: { Authorization: 'Basic ' + S.auth, 'X-Requested-With': 'XMLHttpRequest' } };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
  if (r.status === 401 && path === '/api/whoami') throw new ApiError(401, 'Login failed');
  if (r.status === 401) { logout(); throw new ApiError(401, 'Not logged in'); }
  if (!r.ok) {
    const reason = data && typeof data === 'object' ? (data.reason || data.error) : text;
    throw new ApiError(r.status, `${r.status}: ${typeof reason === 'string' ? reason : JSON.stringify(reason)}`);
  }
  return data;
}

// Run an action, report its outcome, then redraw the page.
async function act(what, fn) {
  try {
    await fn();
    flash(what);
    render();
  } catch (e) {
    flash(e.message, true);
  }
}

function table(columns, rows, empty) {
  if (!rows.length) return h('p', {}, empty || 'None.');
  return h('table', {},
    h('thead', {}, h('tr', {}, columns.map(c => h('th', { className: c.num ? 'num' : '' }, c.title)))),
    h('tbody', {}, rows.map(r => h('tr', {}, columns.map(c => {
      const v = c.get(r);
      return h('td', { className: c.num ? 'num' : '' }, v instanceof Node ? v : (v === undefined ? '' : String(v)));
    })))));
}

function field(label, input) { return h('label', {}, label, input); }

function vhostSelect(vhosts, name) {
  return h('select', { name: name || 'vhost' }, vhosts.map(v => h('option', { value: v.name }, v.name)));
}

function formData(form) {
  const d = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    d[el.name] = el.type === 'checkbox' ? el.checked : el.value;
  }
  return d;
}

// An inline form: on submit, its named fields go to `handler` (which may
// return a promise); a thrown error or rejection (bad JSON in a field, a
// refused request) is shown, never left on the console.
function inlineForm(id, handler, ...fields) {
  const form = h('form', { className: 'inline', id, onsubmit: e => {
    e.preventDefault();
    Promise.resolve().then(() => handler(formData(form))).catch(err => flash(err.message, true));
  } }, ...fields);
  return form;
}

function parseJsonField(text, what) {
  if (!text || !text.trim()) return {};
  try { return JSON.parse(text); } catch (e) { throw new Error(`${what} is not JSON: ${e.message}`); }
}

// A paged listing of an API collection: `page`, `page_size`, `name` with
// `use_regex`, as the API pages for 10,000 objects and more.
async function pagedList(title, path, columns, state) {
  const params = new URLSearchParams({ page: state.page || 1, page_size: S.pageSize });
  if (state.filter) { params.set('name', state.filter); params.set('use_regex', 'true'); }
  const data = await api('GET', `${path}?${params}`);
  const items = Array.isArray(data) ? data : data.items;
  const pageCount = Array.isArray(data) ? 1 : data.page_count;
  const filter = h('input', { placeholder: 'filter (regex)', value: state.filter || '', name: 'filter' });
  const pager = h('div', { className: 'pager' },
    h('form', { onsubmit: e => { e.preventDefault(); state.filter = filter.value; state.page = 1; render(); } },
      filter, ' ', h('button', { type: 'submit' }, 'Filter')),
    h('button', { disabled: (state.page || 1) <= 1, onclick: () => { state.page = (state.page || 1) - 1; render(); } }, '‹ prev'),
    h('span', {}, `page ${state.page || 1} of ${Math.max(pageCount || 1, 1)}`,
      Array.isArray(data) ? '' : ` (${num(data.filtered_count)} of ${num(data.total_count)})`),
    h('button', { disabled: (state.page || 1) >= (pageCount || 1), onclick: () => { state.page = (state.page || 1) + 1; render(); } }, 'next ›'));
  return [h('h1', {}, title), pager, table(columns, items)];
}

const listState = { connections: {}, channels: {}, exchanges: {}, queues: {} };

// ---- pages ---------------------------------------------------------------

function chart(title, series, width) {
  const el = h('div', { className: 'chart' });
  const opts = {
    title, width: width || 560, height: 220,
    series: [{}].concat(series.map((s, i) => ({ label: s, stroke: ['#2b7bd8', '#e0802a', '#3aa55d', '#a04ad0'][i], width: 2 }))),
    axes: [{}, { size: 70 }],
    // The last ten minutes, whatever the number of samples so far.
    scales: { x: { time: true, range: (u, min, max) => [Math.max(max, Date.now() / 1000) - KEEP_SAMPLES * SAMPLE_MS / 1000, Math.max(max, Date.now() / 1000)] } },
  };
  const data = [S.samples.map(s => s.t)].concat(series.map((_, i) => S.samples.map(s => s.v[title][i])));
  const plot = new uPlot(opts, data, el);
  return { el, update: () => plot.setData([S.samples.map(s => s.t)].concat(series.map((_, i) => S.samples.map(s => s.v[title][i])))) };
}

function sample(o) {
  const ms = o.message_stats || {};
  const r = k => (ms[k + '_details'] && ms[k + '_details'].rate) || 0;
  const q = o.queue_totals || {};
  S.samples.push({
    t: Date.now() / 1000,
    v: {
      'Message rates (msg/s)': [r('publish'), r('deliver_get'), r('ack')],
      'Queued messages': [q.messages_ready || 0, q.messages_unacknowledged || 0],
    },
  });
  if (S.samples.length > KEEP_SAMPLES) S.samples.shift();
}

async function pageOverview(main) {
  const o = await api('GET', '/api/overview');
  if (!S.samples.length || Date.now() / 1000 - S.samples[S.samples.length - 1].t > 2) sample(o);
  const ot = o.object_totals || {}, qt = o.queue_totals || {}, ms = o.message_stats || {};
  const card = (k, v) => h('div', { className: 'card' }, h('div', { className: 'v' }, v), h('div', { className: 'k' }, k));
  const rates = chart('Message rates (msg/s)', ['publish', 'deliver/get', 'ack']);
  const queued = chart('Queued messages', ['ready', 'unacked']);
  main.append(
    h('h1', {}, 'Overview'),
    h('p', {}, `Node ${o.node || ''} · ${o.product_name || 'Warren'} ${o.product_version || ''} · cluster ${o.cluster_name || ''}`),
    h('div', { className: 'cards', id: 'totals' },
      card('Connections', num(ot.connections)), card('Channels', num(ot.channels)),
      card('Exchanges', num(ot.exchanges)), card('Queues', num(ot.queues)), card('Consumers', num(ot.consumers)),
      card('Ready', num(qt.messages_ready)), card('Unacked', num(qt.messages_unacknowledged)),
      card('Publish', rate(ms, 'publish')), card('Deliver/get', rate(ms, 'deliver_get'))),
    h('div', { className: 'charts' }, rates.el, queued.el),
    h('h2', {}, 'Listeners'),
    table([
      { title: 'Protocol', get: l => l.protocol }, { title: 'Address', get: l => l.ip_address },
      { title: 'Port', get: l => l.port, num: true }], o.listeners || []));
  // The timer belongs to this render: it stops itself once another render has begun.
  const gen = S.renderGen;
  const timer = setInterval(async () => {
    if (gen !== S.renderGen) return clearInterval(timer);
    try { sample(await api('GET', '/api/overview')); rates.update(); queued.update(); } catch (_) { /* next tick */ }
  }, SAMPLE_MS);
}

async function pageConnections(main) {
  const admin = hasTag('administrator');
  main.append(...await pagedList('Connections', '/api/connections', [
    { title: 'Name', get: c => c.name }, { title: 'User', get: c => c.user }, { title: 'Vhost', get: c => c.vhost },
    { title: 'State', get: c => c.state }, { title: 'TLS', get: c => c.ssl ? c.ssl_protocol : '–' },
    { title: 'Auth', get: c => c.auth_mechanism }, { title: 'Channels', get: c => c.channels, num: true },
    { title: 'From client', get: c => rate(c, 'recv_oct').replace('/s', ' B/s'), num: true },
    { title: 'To client', get: c => rate(c, 'send_oct').replace('/s', ' B/s'), num: true },
    { title: '', get: c => admin ? h('button', { className: 'danger', onclick: () => {
      if (confirm(`Close connection ${c.name}?`)) act('Connection closed', () => api('DELETE', `/api/connections/${enc(c.name)}`));
    } }, 'Close') : '' },
  ], listState.connections));
}

async function pageChannels(main) {
  main.append(...await pagedList('Channels', '/api/channels', [
    { title: 'Channel', get: c => c.name }, { title: 'User', get: c => c.user }, { title: 'Vhost', get: c => c.vhost },
    { title: 'Mode', get: c => [c.confirm ? 'confirm' : '', c.transactional ? 'tx' : ''].filter(Boolean).join(' ') },
    { title: 'Prefetch', get: c => c.prefetch_count, num: true }, { title: 'Consumers', get: c => c.consumer_count, num: true },
    { title: 'Unacked', get: c => c.messages_unacknowledged, num: true },
  ], listState.channels));
}

async function pageExchanges(main) {
  const vhosts = await api('GET', '/api/vhosts');
  main.append(...await pagedList('Exchanges', '/api/exchanges', [
    { title: 'Vhost', get: x => x.vhost },
    { title: 'Name', get: x => h('a', { href: `#/exchange/${enc(x.vhost)}/${enc(x.name || 'amq.default')}` }, x.name || '(AMQP default)') },
    { title: 'Type', get: x => x.type },
    { title: 'Features', get: x => [x.durable ? 'D' : '', x.auto_delete ? 'AD' : '', x.internal ? 'I' : ''].filter(Boolean).join(' ') },
    { title: 'In', get: x => rate(x.message_stats, 'publish_in'), num: true },
    { title: 'Out', get: x => rate(x.message_stats, 'publish_out'), num: true },
  ], listState.exchanges));
  const form = inlineForm('add-exchange', d => {
    act(`Exchange ${d.name} declared`, () => api('PUT', `/api/exchanges/${enc(d.vhost)}/${enc(d.name)}`,
      { type: d.type, durable: d.durable, auto_delete: d.auto_delete, internal: d.internal, arguments: parseJsonField(d.arguments, 'Arguments') }));
  },
  field('Vhost', vhostSelect(vhosts)), field('Name', h('input', { name: 'name', required: true })),
  field('Type', h('select', { name: 'type' }, ['direct', 'fanout', 'topic', 'headers'].map(t => h('option', {}, t)))),
  field('Durable', h('input', { type: 'checkbox', name: 'durable', checked: true })),
  field('Auto-delete', h('input', { type: 'checkbox', name: 'auto_delete' })),
  field('Internal', h('input', { type: 'checkbox', name: 'internal' })),
  field('Arguments (JSON)', h('input', { name: 'arguments', placeholder: '{}' })),
  h('button', { type: 'submit' }, 'Add exchange'));
  main.append(h('h2', {}, 'Add a new exchange'), form);
}

function publishForm(vhost, exchange, fixedKey) {
  const form = inlineForm('publish', d => {
    const props = parseJsonField(d.properties, 'Properties');
    if (d.persistent) props.delivery_mode = 2;
    act('Message published', async () => {
      const r = await api('POST', `/api/exchanges/${enc(vhost)}/${enc(exchange || 'amq.default')}/publish`,
        { routing_key: fixedKey !== undefined ? fixedKey : d.routing_key, payload: d.payload, payload_encoding: 'string', properties: props });
      if (!r.routed) throw new Error('Message published, but not routed');
    });
  },
  fixedKey !== undefined ? null : field('Routing key', h('input', { name: 'routing_key' })),
  field('Persistent', h('input', { type: 'checkbox', name: 'persistent' })),
  field('Properties (JSON)', h('input', { name: 'properties', placeholder: '{"headers": {}}' })),
  field('Payload', h('textarea', { name: 'payload' })),
  h('button', { type: 'submit' }, 'Publish message'));
  return form;
}

async function pageExchange(main, vhost, name) {
  const x = await api('GET', `/api/exchanges/${enc(vhost)}/${enc(name)}`);
  const bindings = await api('GET', `/api/exchanges/${enc(vhost)}/${enc(name)}/bindings/source`);
  main.append(h('h1', {}, `Exchange ${x.name || '(AMQP default)'}`),
    table([{ title: 'Vhost', get: () => x.vhost }, { title: 'Type', get: () => x.type },
      { title: 'Durable', get: () => String(x.durable) }, { title: 'Arguments', get: () => JSON.stringify(x.arguments || {}) }], [x]),
    h('h2', {}, 'Bindings from this exchange'),
    table([{ title: 'To', get: b => `${b.destination_type} ${b.destination}` }, { title: 'Routing key', get: b => b.routing_key },
      { title: 'Arguments', get: b => JSON.stringify(b.arguments || {}) }], bindings),
    h('h2', {}, 'Publish message'), publishForm(vhost, name === 'amq.default' ? '' : name));
  if (name !== 'amq.default' && !name.startsWith('amq.')) {
    main.append(h('h2', {}, 'Delete'), h('button', { className: 'danger', id: 'delete-exchange', onclick: () => {
      if (confirm(`Delete exchange ${name}?`)) act('Exchange deleted', async () => {
        await api('DELETE', `/api/exchanges/${enc(vhost)}/${enc(name)}`); location.hash = '#/exchanges';
      });
    } }, 'Delete this exchange'));
  }
}

async function pageQueues(main) {
  const vhosts = await api('GET', '/api/vhosts');
  main.append(...await pagedList('Queues', '/api/queues', [
    { title: 'Vhost', get: q => q.vhost },
    { title: 'Name', get: q => h('a', { href: `#/queue/${enc(q.vhost)}/${enc(q.name)}` }, q.name) },
    { title: 'Type', get: q => q.type },
    { title: 'Features', get: q => [q.durable ? 'D' : '', q.auto_delete ? 'AD' : '', q.exclusive ? 'Excl' : '', q.policy ? `policy ${q.policy}` : ''].filter(Boolean).join(' ') },
    { title: 'Ready', get: q => num(q.messages_ready), num: true },
    { title: 'Unacked', get: q => num(q.messages_unacknowledged), num: true },
    { title: 'Total', get: q => num(q.messages), num: true },
    { title: 'Consumers', get: q => num(q.consumers), num: true },
    { title: 'Incoming', get: q => rate(q.message_stats, 'publish'), num: true },
    { title: 'Deliver/get', get: q => rate(q.message_stats, 'deliver_get'), num: true },
  ], listState.queues));
  const form = inlineForm('add-queue', d => {
    const args = parseJsonField(d.arguments, 'Arguments');
    if (d.type !== 'classic') args['x-queue-type'] = d.type;
    act(`Queue ${d.name} declared`, () => api('PUT', `/api/queues/${enc(d.vhost)}/${enc(d.name)}`,
      { durable: d.durable, auto_delete: d.auto_delete, arguments: args }));
  },
  field('Vhost', vhostSelect(vhosts)), field('Name', h('input', { name: 'name', required: true })),
  field('Type', h('select', { name: 'type' }, h('option', {}, 'classic'), h('option', {}, 'quorum'))),
  field('Durable', h('input', { type: 'checkbox', name: 'durable', checked: true })),
  field('Auto-delete', h('input', { type: 'checkbox', name: 'auto_delete' })),
  field('Arguments (JSON)', h('input', { name: 'arguments', placeholder: '{"x-message-ttl": 60000}' })),
  h('button', { type: 'submit' }, 'Add queue'));
  main.append(h('h2', {}, 'Add a new queue'), form);
}

async function pageQueue(main, vhost, name) {
  const base = `/api/queues/${enc(vhost)}/${enc(name)}`;
  const q = await api('GET', base);
  const bindings = await api('GET', `${base}/bindings`);
  const consumers = (await api('GET', `/api/consumers/${enc(vhost)}`)).filter(c => c.queue && c.queue.name === name);
  const got = h('div', { id: 'got' });
  main.append(h('h1', {}, `Queue ${q.name}`),
    table([{ title: 'Vhost', get: () => q.vhost }, { title: 'Type', get: () => q.type },
      { title: 'Durable', get: () => String(q.durable) }, { title: 'Ready', get: () => num(q.messages_ready), num: true },
      { title: 'Unacked', get: () => num(q.messages_unacknowledged), num: true },
      { title: 'Consumers', get: () => num(q.consumers), num: true },
      { title: 'Policy', get: () => q.policy || '' }, { title: 'Arguments', get: () => JSON.stringify(q.arguments || {}) }], [q]),
    h('h2', {}, 'Consumers'),
    table([{ title: 'Tag', get: c => c.consumer_tag }, { title: 'Channel', get: c => c.channel_details && c.channel_details.name },
      { title: 'Ack required', get: c => String(c.ack_required) }, { title: 'Prefetch', get: c => c.prefetch_count, num: true },
      { title: 'Active', get: c => String(c.active) }], consumers, 'No consumers.'),
    h('h2', {}, 'Bindings'),
    table([{ title: 'From', get: b => b.source || '(AMQP default)' }, { title: 'Routing key', get: b => b.routing_key },
      { title: 'Arguments', get: b => JSON.stringify(b.arguments || {}) },
      { title: '', get: b => b.source ? h('button', { onclick: () => act('Unbound', () =>
        api('DELETE', `/api/bindings/${enc(vhost)}/e/${enc(b.source)}/q/${enc(name)}/${enc(b.properties_key)}`)) }, 'Unbind') : '' }],
    bindings));
  const bind = inlineForm('bind', d => {
    act('Bound', () => api('POST', `/api/bindings/${enc(vhost)}/e/${enc(d.exchange)}/q/${enc(name)}`,
      { routing_key: d.routing_key, arguments: parseJsonField(d.arguments, 'Arguments') }));
  }, field('From exchange', h('input', { name: 'exchange', required: true })),
  field('Routing key', h('input', { name: 'routing_key' })), field('Arguments (JSON)', h('input', { name: 'arguments' })),
  h('button', { type: 'submit' }, 'Bind'));
  const getForm = inlineForm('get', async d => {
    const msgs = await api('POST', `${base}/get`, { count: Number(d.count) || 1, ackmode: d.ackmode, encoding: 'auto', truncate: 50000 });
    got.replaceChildren(msgs.length ? table([
      { title: 'Routing key', get: m => m.routing_key }, { title: 'Exchange', get: m => m.exchange },
      { title: 'Redelivered', get: m => String(m.redelivered) },
      { title: 'Properties', get: m => JSON.stringify(m.properties || {}) },
      { title: 'Payload', get: m => h('pre', { className: 'payload' }, m.payload) }], msgs) : h('p', {}, 'Queue is empty.'));
  }, field('Ack mode', h('select', { name: 'ackmode' },
    h('option', { value: 'ack_requeue_true' }, 'Nack, requeue'), h('option', { value: 'ack_requeue_false' }, 'Ack, remove'))),
  field('Messages', h('input', { name: 'count', value: '1', size: 4 })), h('button', { type: 'submit' }, 'Get messages'));
  main.append(h('h2', {}, 'Add binding'), bind,
    h('h2', {}, 'Publish message'), publishForm(vhost, '', name),
    h('h2', {}, 'Get messages'), getForm, got,
    h('h2', {}, 'Purge and delete'),
    h('button', { id: 'purge', onclick: () => { if (confirm(`Purge ${name}?`)) act('Queue purged', () => api('DELETE', `${base}/contents`)); } }, 'Purge messages'), ' ',
    h('button', { className: 'danger', id: 'delete-queue', onclick: () => {
      if (confirm(`Delete queue ${name}?`)) act('Queue deleted', async () => { await api('DELETE', base); location.hash = '#/queues'; });
    } }, 'Delete queue'));
}

async function pageUsers(main) {
  const users = await api('GET', '/api/users');
  const perms = await api('GET', '/api/permissions');
  const vhosts = await api('GET', '/api/vhosts');
  main.append(h('h1', {}, 'Users'),
    table([{ title: 'Name', get: u => u.name }, { title: 'Tags', get: u => tagList(u).join(', ') },
      { title: 'Can access vhosts', get: u => perms.filter(p => p.user === u.name).map(p => p.vhost).join(', ') },
      { title: '', get: u => u.name === S.user.name ? '' : h('button', { className: 'danger', onclick: () => {
        if (confirm(`Delete user ${u.name}?`)) act('User deleted', () => api('DELETE', `/api/users/${enc(u.name)}`));
      } }, 'Delete') }], users));
  const add = inlineForm('add-user', d => {
    act(`User ${d.name} saved`, () => api('PUT', `/api/users/${enc(d.name)}`, { password: d.password, tags: d.tags }));
  }, field('Username', h('input', { name: 'name', required: true })), field('Password', h('input', { name: 'password', type: 'password' })),
  field('Tags', h('input', { name: 'tags', placeholder: 'administrator, management' })), h('button', { type: 'submit' }, 'Add user'));
  const perm = inlineForm('set-permission', d => {
    act('Permission set', () => api('PUT', `/api/permissions/${enc(d.vhost)}/${enc(d.user)}`,
      { configure: d.configure, write: d.write, read: d.read }));
  }, field('User', h('select', { name: 'user' }, users.map(u => h('option', {}, u.name)))), field('Vhost', vhostSelect(vhosts)),
  field('Configure', h('input', { name: 'configure', value: '.*' })), field('Write', h('input', { name: 'write', value: '.*' })),
  field('Read', h('input', { name: 'read', value: '.*' })), h('button', { type: 'submit' }, 'Set permission'));
  main.append(h('h2', {}, 'Add a user'), add, h('h2', {}, 'Set permissions'), perm);
}

async function pageVhosts(main) {
  const vhosts = await api('GET', '/api/vhosts');
  main.append(h('h1', {}, 'Virtual hosts'),
    table([{ title: 'Name', get: v => v.name }, { title: 'Messages', get: v => num(v.messages), num: true },
      { title: '', get: v => v.name === '/' ? '' : h('button', { className: 'danger', onclick: () => {
        if (confirm(`Delete vhost ${v.name} and everything in it?`)) act('Vhost deleted', () => api('DELETE', `/api/vhosts/${enc(v.name)}`));
      } }, 'Delete') }], vhosts));
  const add = inlineForm('add-vhost', d => {
    act(`Vhost ${d.name} added`, () => api('PUT', `/api/vhosts/${enc(d.name)}`, {}));
  }, field('Name', h('input', { name: 'name', required: true })), h('button', { type: 'submit' }, 'Add virtual host'));
  main.append(h('h2', {}, 'Add a virtual host'), add);
}

async function pagePolicies(main) {
  const policies = await api('GET', '/api/policies');
  const vhosts = await api('GET', '/api/vhosts');
  main.append(h('h1', {}, 'Policies'),
    table([{ title: 'Vhost', get: p => p.vhost }, { title: 'Name', get: p => p.name }, { title: 'Pattern', get: p => p.pattern },
      { title: 'Apply to', get: p => p['apply-to'] }, { title: 'Definition', get: p => JSON.stringify(p.definition) },
      { title: 'Priority', get: p => p.priority, num: true },
      { title: '', get: p => h('button', { className: 'danger', onclick: () => act('Policy deleted', () =>
        api('DELETE', `/api/policies/${enc(p.vhost)}/${enc(p.name)}`)) }, 'Delete') }], policies));
  const add = inlineForm('add-policy', d => {
    act(`Policy ${d.name} saved`, () => api('PUT', `/api/policies/${enc(d.vhost)}/${enc(d.name)}`, {
      pattern: d.pattern, 'apply-to': d.apply_to, priority: Number(d.priority) || 0, definition: parseJsonField(d.definition, 'Definition') }));
  }, field('Vhost', vhostSelect(vhosts)), field('Name', h('input', { name: 'name', required: true })),
  field('Pattern', h('input', { name: 'pattern', required: true, placeholder: '^orders\\.' })),
  field('Apply to', h('select', { name: 'apply_to' }, ['all', 'queues', 'exchanges'].map(a => h('option', {}, a)))),
  field('Priority', h('input', { name: 'priority', value: '0', size: 4 })),
  field('Definition (JSON)', h('input', { name: 'definition', placeholder: '{"message-ttl": 60000}', required: true })),
  h('button', { type: 'submit' }, 'Add policy'));
  main.append(h('h2', {}, 'Add or update a policy'), add);
}

async function pageDefinitions(main) {
  const file = h('input', { type: 'file', name: 'file', accept: '.json,application/json' });
  main.append(h('h1', {}, 'Definitions'),
    h('p', {}, 'Users, vhosts, permissions, exchanges, queues, bindings and policies (not messages).'),
    h('button', { id: 'export', onclick: async () => {
      try {
        const defs = await api('GET', '/api/definitions');
        const a = h('a', { href: URL.createObjectURL(new Blob([JSON.stringify(defs, null, 2)], { type: 'application/json' })), download: 'warren-definitions.json' });
        document.body.append(a); a.click(); a.remove();
      } catch (e) { flash(e.message, true); }
    } }, 'Download broker definitions'),
    h('h2', {}, 'Import'),
    inlineForm('import', async () => {
      if (!file.files.length) throw new Error('Choose a file first');
      const text = await file.files[0].text();
      await act('Definitions imported', () => api('POST', '/api/definitions', text));
    }, file, h('button', { type: 'submit' }, 'Upload broker definitions')));
}

// ---- login and routing ---------------------------------------------------

function logout() {
  sessionStorage.removeItem('warren.auth');
  S.auth = null; S.user = null;
  render();
}

function loginPage(main) {
  document.getElementById('nav').hidden = true;
  document.getElementById('who').replaceChildren();
  const err = h('p', { className: 'error' });
  const form = h('form', { className: 'login', id: 'login', onsubmit: async e => {
    e.preventDefault();
    const d = formData(form);
    S.auth = btoa(unescape(encodeURIComponent(`${d.username}:${d.password}`)));
    try {
      S.user = await api('GET', '/api/whoami');
      sessionStorage.setItem('warren.auth', S.auth);
      render();
    } catch (ex) {
      S.auth = null;
      err.textContent = ex.status === 401 ? 'Login failed' : ex.message;
    }
  } }, h('h1', {}, 'Warren management'), field('Username', h('input', { name: 'username', autocomplete: 'username', required: true })),
  field('Password', h('input', { name: 'password', type: 'password', autocomplete: 'current-password' })),
  h('button', { type: 'submit' }, 'Login'), err);
  main.append(form);
}

const PAGES = {
  overview: pageOverview, connections: pageConnections, channels: pageChannels, exchanges: pageExchanges,
  queues: pageQueues, users: pageUsers, vhosts: pageVhosts, policies: pagePolicies, definitions: pageDefinitions,
};

// Each render builds the page off-screen and swaps it in whole, so the page is never
// blank while its requests are out, and of two overlapping renders (an action's redraw
// and a hash change) only the newest one lands. `#main[data-busy]` is set meanwhile.
async function render() {
  const gen = ++S.renderGen;
  const main = document.getElementById('main');
  if (!S.auth) { delete main.dataset.busy; main.replaceChildren(); return loginPage(main); }
  main.dataset.busy = '1';
  if (!S.user) {
    try { S.user = await api('GET', '/api/whoami'); } catch (_) { return logout(); }
  }
  const nav = document.getElementById('nav');
  nav.hidden = false;
  const [page, ...args] = (location.hash.replace(/^#\/?/, '') || 'overview').split('/').map(decodeURIComponent);
  for (const a of nav.querySelectorAll('a')) {
    a.hidden = a.dataset.tag ? !hasTag(a.dataset.tag) : false;
    a.classList.toggle('active', a.dataset.page === page || a.dataset.page === page + 's');
  }
  document.getElementById('who').replaceChildren(`${S.user.name} (${tagList(S.user).join(', ') || 'no tags'})`,
    h('button', { id: 'logout', onclick: logout }, 'Log out'));
  const next = document.createDocumentFragment();
  try {
    if (page === 'queue' && args.length === 2) await pageQueue(next, args[0], args[1]);
    else if (page === 'exchange' && args.length === 2) await pageExchange(next, args[0], args[1]);
    else if (PAGES[page]) {
      const tagged = nav.querySelector(`a[data-page="${page}"]`);
      if (tagged && tagged.hidden) next.append(h('p', { className: 'error' }, 'Your user tags do not allow this page.'));
      else await PAGES[page](next);
    } else next.append(h('p', {}, 'No such page.'));
  } catch (e) {
    next.append(h('p', { className: 'error' }, e.message));
  }
  if (gen !== S.renderGen) return;
  main.replaceChildren(next);
  delete main.dataset.busy;
}

window.addEventListener('hashchange', render);
render();
