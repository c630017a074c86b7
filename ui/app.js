// callproof's replay page: sign-in state, record search, and the record view with its
// waveform, consent markers, playback and export behind a reason, and legal holds.
//
// Every element is built with createElement and every text from a record goes in
// through textContent: nothing is parsed as HTML (the page's policy forbids it).
'use strict';

(() => {
  const ID_RE = /^[0-9a-f]{32}$/;
  const FILTERS = ['account_id', 'confirmation_number', 'kind', 'outcome', 'agent_id', 'from', 'to', 'held'];
  const PAGE_SIZE = '50';
  const KINDS = ['termination', 'contact', 'billing', 'security', 'plan', 'communication', 'access'];
  const OUTCOMES = {
    confirmed: 'Confirmed',
    declined: 'Declined',
    no_answer: 'No answer',
    transferred_to_agent: 'Transferred to agent',
    abandoned: 'Abandoned',
    locked: 'Locked',
    disputed: 'Disputed',
  };
  const REASON_HINT = 'Reasons are kept for the retention of the audit log, with your name and the time.';

  const state = {
    session: null,
    search: null, // {filters, phone, cursors: [], cursor}
    lastSearchUrl: '/ui/',
    view: 0, // bumped at every render, so late answers of an older view are dropped
    searchSeq: 0, // bumped at every search, so a slow answer never replaces a newer one
    cleanup: [],
  };

  // ---- DOM helpers -------------------------------------------------------

  /** An element with attributes (strings) and children (nodes or text). */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith('on') && typeof value === 'function') {
        el.addEventListener(name.slice(2), value);
      } else if (value === true) {
        el.setAttribute(name, '');
      } else {
        el.setAttribute(name, String(value));
      }
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  const $ = (id) => document.getElementById(id);
  let uid = 0;
  const nextId = (prefix) => `${prefix}-${++uid}`;

  /** A message in the live region; `quiet` ones are only read out, not shown. */
  function say(text, kind, quiet) {
    const box = $('status');
    box.replaceChildren();
    if (text) box.append(h('p', { class: quiet ? 'sr-only' : kind || 'note' }, text));
  }

  // ---- formatting --------------------------------------------------------

  function fmtTime(iso) {
    if (typeof iso !== 'string' || !iso) return '—';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC').replace(/Z$/, ' UTC');
  }

  function fmtOffset(secs) {
    const s = Math.max(0, Number(secs) || 0);
    const m = Math.floor(s / 60);
    const rest = (s - m * 60).toFixed(2).padStart(5, '0');
    return `${m}:${rest}`;
  }

  const text = (v) => (v === null || v === undefined || v === '' ? '—' : String(v));
  const outcomeText = (o) => (o && OUTCOMES[o]) || text(o);

  // ---- the API -----------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message, body) {
      super(message);
      this.status = status;
      this.body = body;
    }
  }

  function errorText(json, body, status) {
    if (json && typeof json.error === 'string') {
      let msg = json.error;
      if (json.fields && typeof json.fields === 'object') {
        msg += ': ' + Object.entries(json.fields).map(([k, v]) => `${k}: ${v}`).join('; ');
      }
      return msg;
    }
    return `callproof answered HTTP ${status}` + (body && body.length < 200 ? `: ${body}` : '');
  }

  /**
   * One request to callproof as the signed-in page: the session cookie, the
   * page's own header, JSON bodies. `reason` also goes in X-Callproof-Reason
   * when it is plain ASCII (a header cannot carry other text).
   */
  async function api(method, path, opts = {}) {
    const headers = { 'X-Callproof-UI': '1', Accept: 'application/json' };
    const init = { method, headers, credentials: 'same-origin', cache: 'no-store', redirect: 'error' };
    if (method !== 'GET') {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(opts.body || {});
    }
    if (opts.reason && /^[\x20-\x7e]+$/.test(opts.reason)) headers['X-Callproof-Reason'] = opts.reason;
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, `callproof could not be reached (${e.message}); check the connection and try again`);
    }
    const bytes = await resp.arrayBuffer();
    const body = new TextDecoder().decode(bytes);
    let json = null;
    try {
      json = JSON.parse(body);
    } catch (_) {
      json = null;
    }
    if (resp.status === 401 && !opts.signInCheck) {
      sessionEnded();
    }
    if (!resp.ok) throw new ApiError(resp.status, errorText(json, body, resp.status), json);
    return { status: resp.status, json, body, bytes, headers: resp.headers };
  }

  /** A URL the server answered, accepted only on this page's own origin. */
  function sameOrigin(url) {
    let u;
    try {
      u = new URL(url, location.href);
    } catch (_) {
      return null;
    }
    return u.origin === location.origin ? u.href : null;
  }

  // ---- session -----------------------------------------------------------

  function showSignIn(note) {
    state.session = null;
    $('sign-in-next').value = deepLink();
    $('who').hidden = true;
    $('view').replaceChildren();
    $('sign-in').hidden = false;
    if (note) $('sign-in-note').textContent = note;
    document.title = 'Sign in — callproof';
    $('key').focus();
  }

  function sessionEnded() {
    if (!state.session) return;
    say('');
    showSignIn('Your session has ended. Sign in again with your API key to go on.');
  }

  /** The page to go on to after signing in: this one, when it is a record or a search. */
  function deepLink() {
    const here = location.pathname + location.search;
    return /^\/ui\/(records\/[0-9a-f]{32}|\?[^#]*)$/.test(here) ? here : '/ui/';
  }

  /**
   * Signs in with the form's key: posted as the form would be (so the key is
   * never in an address), but the answer read here, so a refused key is
   * said on the form rather than as a bare error page.
   */
  async function signIn(e) {
    e.preventDefault();
    const form = e.currentTarget;
    const problem = $('sign-in-problem');
    const button = $('sign-in-button');
    problem.hidden = true;
    if (!$('key').value.trim()) {
      problem.textContent = 'Enter a compliance or admin API key.';
      problem.hidden = false;
      $('key').focus();
      return;
    }
    const next = $('sign-in-next').value || '/ui/';
    button.disabled = true;
    let resp;
    try {
      resp = await fetch(form.action, {
        method: 'POST',
        body: new URLSearchParams(new FormData(form)),
        credentials: 'same-origin',
        cache: 'no-store',
        redirect: 'manual',
      });
    } catch (err) {
      resp = null;
      problem.textContent = `callproof could not be reached (${err.message}); try again.`;
    }
    button.disabled = false;
    if (resp && (resp.type === 'opaqueredirect' || resp.ok)) {
      $('key').value = '';
      location.assign(next);
      return;
    }
    if (resp) {
      const body = await resp.text();
      let json = null;
      try {
        json = JSON.parse(body);
      } catch (_) {
        json = null;
      }
      problem.textContent = `Not signed in: ${errorText(json, body, resp.status)}`;
    }
    problem.hidden = false;
    $('key').select();
  }

  /**
   * Signs out with a request from this page, which carries its Origin (a
   * plain form post under this page's no-referrer policy sends `Origin:
   * null`, which callproof refuses); says so when the sign-out was not written.
   */
  async function signOut(e) {
    e.preventDefault();
    let resp;
    try {
      resp = await fetch('/ui/session/signout', {
        method: 'POST',
        headers: { 'X-Callproof-UI': '1' },
        credentials: 'same-origin',
        cache: 'no-store',
        redirect: 'manual',
      });
    } catch (err) {
      say(`You are still signed in: callproof could not be reached (${err.message}). Try again.`, 'problem');
      return;
    }
    if (resp.type === 'opaqueredirect' || resp.ok) {
      location.assign('/ui/');
      return;
    }
    const body = await resp.text();
    let json = null;
    try {
      json = JSON.parse(body);
    } catch (_) {
      json = null;
    }
    say(`You are still signed in: ${errorText(json, body, resp.status)}`, 'problem');
  }

  function showWho(s) {
    const role = typeof s.role === 'string' ? s.role : 'unknown role';
    const name = typeof s.name === 'string' ? s.name : 'unnamed key';
    let line = `Signed in as ${name} (${role})`;
    if (s.expires_at) line += `, until ${fmtTime(s.expires_at)} at the latest`;
    $('who-text').textContent = line;
    $('who').hidden = false;
  }

  // ---- routing -----------------------------------------------------------

  function route() {
    const m = /^\/ui\/records\/([^/]+)\/?$/.exec(location.pathname);
    if (m) {
      let id = m[1];
      try {
        id = decodeURIComponent(id);
      } catch (_) {
        /* keep it as it is; it fails the id check */
      }
      return { view: 'record', id };
    }
    return { view: 'search', params: new URLSearchParams(location.search) };
  }

  /** True for a link that makes audited calls as soon as it is shown. */
  function isDeepLink(r) {
    return r.view === 'record' || r.params.has('limit') || FILTERS.some((f) => r.params.get(f));
  }

  function go(url) {
    history.pushState(null, '', url);
    render(route());
  }

  /** A link that changes the view in place (a new tab loads the page anew). */
  function link(href, attrs, ...children) {
    const a = h('a', { href, ...attrs }, ...children);
    a.addEventListener('click', (e) => {
      if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
      e.preventDefault();
      go(href);
    });
    return a;
  }

  function newView(title) {
    state.view += 1;
    for (const f of state.cleanup.splice(0)) f();
    document.title = `${title} — callproof`;
    $('sign-in').hidden = true;
    const v = $('view');
    v.replaceChildren();
    return state.view;
  }

  function focusHeading() {
    const h1 = $('view').querySelector('h1');
    if (h1) {
      h1.setAttribute('tabindex', '-1');
      h1.focus({ preventScroll: false });
    }
  }

  function render(r, first) {
    say('');
    if (first && isDeepLink(r)) {
      showContinue(r);
    } else if (r.view === 'record') {
      renderRecord(r.id);
    } else {
      renderSearch(r.params);
    }
  }

  /** A page opened by a link from elsewhere asks before its first audited call. */
  function showContinue(r) {
    newView('Open link');
    const what =
      r.view === 'record'
        ? ID_RE.test(r.id)
          ? h('p', {}, 'The record ', h('code', {}, r.id), '.')
          : h('p', { class: 'problem' }, 'This link does not name a record.')
        : h(
            'ul',
            {},
            FILTERS.filter((f) => r.params.get(f)).map((f) => h('li', {}, `${labelOf(f)}: `, h('code', {}, r.params.get(f)))),
            FILTERS.some((f) => r.params.get(f)) ? null : h('li', {}, 'All records, newest first')
          );
    const cont = h('button', { type: 'button', onclick: () => render(r, false) }, 'Continue');
    $('view').append(
      h('h1', {}, r.view === 'record' ? 'Open this record?' : 'Run this search?'),
      h('p', {}, 'This page was opened from a link. Opening it reads evidence, and every read is kept in the audit log under your name.'),
      what,
      h('div', { class: 'buttons' }, cont, link('/ui/', {}, 'Go to an empty search instead'))
    );
    cont.focus();
  }

  // ---- search ------------------------------------------------------------

  function labelOf(f) {
    return (
      {
        account_id: 'Account',
        confirmation_number: 'Confirmation number',
        kind: 'Kind',
        outcome: 'Outcome',
        agent_id: 'Agent',
        from: 'Requested from',
        to: 'Requested to',
        held: 'Legal hold',
        phone: 'Customer phone',
      }[f] || f
    );
  }

  function field(name, label, control, hint) {
    const id = control.id || nextId(name);
    control.id = id;
    const parts = [h('label', { for: id }, label), control];
    if (hint) {
      const hid = nextId('hint');
      control.setAttribute('aria-describedby', hid);
      parts.push(h('p', { class: 'hint', id: hid }, hint));
    }
    return h('div', { class: 'field' }, parts);
  }

  function select(name, options, value) {
    const s = h('select', { name });
    for (const [v, label] of options) {
      const o = h('option', { value: v }, label);
      if (v === value) o.selected = true;
      s.append(o);
    }
    return s;
  }

  function renderSearch(params) {
    const token = newView('Search records');
    const val = (f) => params.get(f) || '';
    const phoneKept = state.search && state.search.url === location.pathname + location.search ? state.search.phone : '';
    const phone = h('input', { name: 'phone', type: 'tel', autocomplete: 'off', inputmode: 'tel', spellcheck: 'false' });
    phone.value = phoneKept || '';
    const form = h(
      'form',
      { class: 'search', 'aria-labelledby': 'search-title', novalidate: true },
      h(
        'div',
        { class: 'filters' },
        field('account_id', 'Account', h('input', { name: 'account_id', value: val('account_id'), autocomplete: 'off' })),
        field('phone', 'Customer phone', phone, 'Full number, e.g. +15551230001. Sent in the request body, never in the address.'),
        field('confirmation_number', 'Confirmation number', h('input', { name: 'confirmation_number', value: val('confirmation_number'), autocomplete: 'off', placeholder: '1234-5678-90' })),
        field('from', 'Requested from (UTC date)', h('input', { name: 'from', type: 'date', value: val('from') })),
        field('to', 'Requested to (UTC date, inclusive)', h('input', { name: 'to', type: 'date', value: val('to') })),
        field('kind', 'Kind of change', select('kind', [['', 'Any kind'], ...KINDS.map((k) => [k, k[0].toUpperCase() + k.slice(1)])], val('kind'))),
        field('outcome', 'Outcome', select('outcome', [['', 'Any outcome'], ...Object.entries(OUTCOMES)], val('outcome'))),
        field('agent_id', 'Agent', h('input', { name: 'agent_id', value: val('agent_id'), autocomplete: 'off' })),
        field('held', 'Legal hold', select('held', [['', 'Held or not'], ['true', 'Held only'], ['false', 'Not held only']], val('held')))
      ),
      h('div', { class: 'buttons' }, h('button', { type: 'submit' }, 'Search'), h('button', { type: 'reset', class: 'secondary' }, 'Clear'))
    );
    const results = h('section', { 'aria-labelledby': 'results-title', id: 'results' });
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const filters = {};
      for (const f of FILTERS) {
        const v = form.elements[f].value.trim();
        if (v) filters[f] = v;
      }
      const q = new URLSearchParams(filters);
      q.set('limit', PAGE_SIZE);
      const url = `/ui/?${q}`;
      if (location.pathname + location.search !== url) history.pushState(null, '', url);
      state.lastSearchUrl = url;
      state.search = { filters, phone: phone.value.trim(), cursors: [], cursor: null, url };
      runSearch(token, results);
    });
    form.addEventListener('reset', () => {
      // Reset restores the values the page was drawn with; clear them all.
      setTimeout(() => {
        for (const el of form.elements) if (el.name) el.value = '';
      });
    });
    $('view').append(
      h('h1', { id: 'search-title' }, 'Search records'),
      h('p', { class: 'muted' }, 'Every search is kept in the audit log. Give any filters, or none for the newest records.'),
      form,
      results
    );
    if (isDeepLink({ view: 'search', params })) {
      const filters = {};
      for (const f of FILTERS) if (params.get(f)) filters[f] = params.get(f);
      const url = location.pathname + location.search;
      state.lastSearchUrl = url;
      state.search = { filters, phone: phoneKept || '', cursors: [], cursor: null, url };
      runSearch(token, results);
      if (!form.contains(document.activeElement)) focusHeading();
    } else {
      form.elements.account_id.focus();
    }
  }

  async function runSearch(token, results, moveFocus) {
    const s = state.search;
    // Only the newest search of this view may draw its answer.
    const mine = ++state.searchSeq;
    const stale = () => token !== state.view || mine !== state.searchSeq;
    results.replaceChildren(h('p', { class: 'muted' }, 'Searching…'));
    results.setAttribute('aria-busy', 'true');
    let answer;
    try {
      if (s.phone) {
        const body = { ...s.filters, phone: s.phone, limit: PAGE_SIZE };
        if (s.cursor) body.cursor = s.cursor;
        answer = (await api('POST', '/v1/records/search', { body })).json;
      } else {
        const q = new URLSearchParams(s.filters);
        q.set('limit', PAGE_SIZE);
        if (s.cursor) q.set('cursor', s.cursor);
        answer = (await api('GET', `/v1/records?${q}`)).json;
      }
    } catch (e) {
      if (stale()) return;
      results.removeAttribute('aria-busy');
      results.replaceChildren(h('h2', { id: 'results-title' }, 'Results'), h('p', { class: 'problem' }, `The search failed: ${e.message}`));
      return;
    }
    if (stale()) return;
    results.removeAttribute('aria-busy');
    showResults(token, results, answer || {}, moveFocus);
  }

  function sealText(v) {
    if (v && typeof v === 'object' && 'seal' in v) return `seal ${v.seal}`;
    return `seal ${text(v)}`;
  }

  function showResults(token, results, answer, moveFocus) {
    const s = state.search;
    const records = Array.isArray(answer.records) ? answer.records : [];
    const heading = h('h2', { id: 'results-title', tabindex: '-1' }, 'Results');
    results.replaceChildren(heading);
    if ('index_seal' in answer && 'head' in answer && JSON.stringify(answer.index_seal) !== JSON.stringify(answer.head)) {
      results.append(
        h(
          'p',
          { class: 'banner', role: 'alert' },
          `Search may be behind: the search index has read up to ${sealText(answer.index_seal)}, and the newest is ${sealText(answer.head)}. Records written since may be missing from these results; a record page always reads the record itself.`
        )
      );
    }
    const page = s.cursors.length + 1;
    const summary = records.length
      ? `${records.length} record${records.length === 1 ? '' : 's'} on page ${page}${answer.next_cursor ? ', more on the next page' : ''}.`
      : page === 1
        ? 'No record matches these filters.'
        : 'No more records.';
    results.append(h('p', {}, summary));
    say(summary, 'okay', true);
    if (records.length) {
      const rows = records.map((r) => {
        const id = typeof r.record_id === 'string' ? r.record_id : '';
        if ('state' in r && r.state !== 'ok') return stateRow(id, r.state);
        const number = text(r.confirmation_number);
        const first = ID_RE.test(id) ? link(`/ui/records/${id}`, {}, number === '—' ? id : number) : number;
        return h(
          'tr',
          {},
          h('th', { scope: 'row' }, first),
          h('td', {}, fmtTime(r.requested_at)),
          h('td', {}, text(r.account_id)),
          h('td', {}, text(r.kind)),
          h('td', {}, outcomeText(r.outcome)),
          h('td', {}, statusTag(r.status)),
          h('td', { class: 'mono' }, text(r.customer_phone_masked)),
          h('td', {}, r.has_audio === true ? 'Yes' : r.has_audio === false ? 'No' : '—')
        );
      });
      results.append(
        h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            {},
            h('caption', {}, 'Newest request first. Fields are read from the stored records.'),
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                ['Confirmation number', 'Requested', 'Account', 'Kind', 'Outcome', 'Record', 'Customer phone', 'Audio'].map((t) =>
                  h('th', { scope: 'col' }, t)
                )
              )
            ),
            h('tbody', {}, rows)
          )
        )
      );
    }
    const pager = h('nav', { class: 'pager', 'aria-label': 'Result pages' });
    if (s.cursors.length) {
      pager.append(
        h(
          'button',
          {
            type: 'button',
            class: 'secondary',
            onclick: () => {
              s.cursor = s.cursors.pop();
              runSearch(token, results, true);
            },
          },
          'Previous page'
        )
      );
    }
    if (typeof answer.next_cursor === 'string' && answer.next_cursor) {
      pager.append(
        h(
          'button',
          {
            type: 'button',
            onclick: () => {
              s.cursors.push(s.cursor);
              s.cursor = answer.next_cursor;
              runSearch(token, results, true);
            },
          },
          'Next page'
        )
      );
    }
    if (pager.childNodes.length) results.append(pager);
    if (moveFocus) heading.focus();
  }

  function statusTag(status) {
    const cls = { complete: 'ok', incomplete: 'warn', missing: 'bad', 'missing from the store': 'bad', 'evidence problem': 'bad', evidence_problem: 'bad', purged: 'warn' }[status] || '';
    return h('span', { class: `tag ${cls}`.trim() }, text(status));
  }

  /** What a result the search index knows but the store does not hold as indexed is. */
  const STATES = {
    missing: ['missing from the store', 'The search index holds this record, but the store no longer does: run callproof records verify.'],
    evidence_problem: ['evidence problem', 'The stored record is not the one that was indexed: run callproof records verify.'],
    purged: ['purged', 'Deleted under the retention policy; only the fact of its purge is kept.'],
  };

  /** A result row named by its state (purged, missing, evidence problem), never an empty row. */
  function stateRow(id, st) {
    const [label, why] = STATES[st] || [`not shown (${text(st)})`, 'callproof did not show this record: run callproof records verify.'];
    const name = id || '—';
    // A purged record has no page to open; the others' pages say what is found.
    const first = st !== 'purged' && ID_RE.test(id) ? link(`/ui/records/${id}`, {}, name) : name;
    return h(
      'tr',
      { class: 'state' },
      h('th', { scope: 'row', class: 'mono' }, first),
      h('td', { colspan: '4' }, why),
      h('td', {}, statusTag(label)),
      h('td', {}, '—'),
      h('td', {}, '—')
    );
  }

  // ---- the record --------------------------------------------------------

  function section(title, ...children) {
    const id = nextId('sec');
    return h('section', { 'aria-labelledby': id }, h('h2', { id }, title), ...children);
  }

  function facts(pairs) {
    return h(
      'dl',
      { class: 'facts' },
      pairs.filter(Boolean).flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v instanceof Node ? v : text(v))])
    );
  }

  async function sha256Hex(bytes) {
    if (!(window.crypto && crypto.subtle)) return null;
    const d = await crypto.subtle.digest('SHA-256', bytes);
    return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, '0')).join('');
  }

  async function renderRecord(id) {
    const token = newView('Record');
    const back = link(state.lastSearchUrl, {}, '← Back to search');
    $('view').append(h('p', {}, back));
    if (!ID_RE.test(id)) {
      $('view').append(h('h1', {}, 'Record'), h('p', { class: 'problem' }, 'This address does not name a record (a record id is 32 hexadecimal digits).'));
      focusHeading();
      return;
    }
    const loading = h('p', { class: 'muted' }, 'Reading the record…');
    $('view').append(h('h1', {}, 'Record'), loading);
    let answer;
    try {
      answer = await api('GET', `/v1/records/${id}`);
    } catch (e) {
      if (token !== state.view) return;
      const box = h('p', { class: 'problem' }, e.status === 404 ? 'No record with this id is stored.' : `The record could not be read: ${e.message}`);
      loading.replaceWith(box);
      focusHeading();
      if (e.status === 404) explainMissing(token, id, box);
      return;
    }
    if (token !== state.view) return;
    const r = answer.json;
    if (!r || typeof r !== 'object') {
      loading.replaceWith(h('p', { class: 'problem' }, 'The record is not JSON: its stored bytes may be damaged. Check it with `callproof records verify`.'));
      return;
    }
    const c = r.confirmation || {};
    const number = typeof c.confirmation_number === 'string' && /^[0-9-]{1,40}$/.test(c.confirmation_number) ? c.confirmation_number : null;
    document.title = `Record ${number || id.slice(0, 8)} — callproof`;
    const view = $('view');
    view.replaceChildren(
      h('p', {}, back),
      h('h1', {}, `Record ${number || id}`),
      facts([
        ['Record id', h('code', {}, id)],
        ['Version', `${text(r.version)}${r.supersedes ? ` (supersedes version ${r.supersedes})` : ''}`],
        ['Record', statusTag(r.status)],
        r.incomplete_reason ? ['Why incomplete', r.incomplete_reason] : null,
        ['Written', fmtTime(r.created_at)],
        ['Retained until', r.retention ? fmtTime(r.retention.retain_until) : '—'],
      ])
    );
    const verification = section('Verification', h('p', { class: 'muted' }, 'Checking…'));
    view.append(verification);
    view.append(changeSection(r), outcomeSection(r), callSection(r));
    const recording = recordingSection(token, id, r);
    view.append(recording.el);
    const holds = section('Legal hold', h('p', { class: 'muted' }, 'Reading the hold state…'));
    view.append(holds, exportSection(id));
    focusHeading();
    verify(token, id, answer, verification);
    recording.load();
    loadHolds(token, id, holds);
  }

  /** Says why a record cannot be read when verification knows (purged, or gone from the store). */
  async function explainMissing(token, id, box) {
    let report;
    try {
      report = (await api('GET', `/v1/records/${id}/verify`)).json;
    } catch (_) {
      return;
    }
    if (token !== state.view || !report) return;
    const problems = Array.isArray(report.findings) ? report.findings.filter((f) => f.severity === 'problem') : [];
    if (report.record_state === 'purged') {
      box.className = 'note';
      box.textContent = 'This record was purged at the end of its retention; a sealed tombstone records the purge.';
    } else if (problems.length) {
      box.textContent = 'Evidence problem: this record was sealed, but its stored objects are missing or changed.';
      box.after(h('ul', {}, problems.map((f) => h('li', {}, h('code', {}, text(f.object)), ': ', text(f.detail)))));
    }
  }

  function changeSection(r) {
    const c = r.confirmation || {};
    const change = Array.isArray(c.change) ? c.change : [];
    const rows = change.map((ch) =>
      h('tr', {}, h('th', { scope: 'row' }, text(ch.label)), h('td', { class: 'mono' }, text(ch.field)), h('td', { class: 'mono' }, text(ch.before)), h('td', { class: 'mono' }, text(ch.after)))
    );
    const heard = Array.isArray(r.consent_events) && r.consent_events[0] && r.consent_events[0].question;
    return section(
      'The change',
      facts([
        ['Confirmation number', c.confirmation_number],
        ['Kind', c.kind],
        ['Account', c.account_id],
        ['Agent', c.agent_id],
        ['Customer', c.customer_name],
        ['Customer phone', h('span', { class: 'mono' }, text(c.customer_phone_masked))],
        ['Requested', fmtTime(c.requested_at)],
        ['Language', c.locale],
      ]),
      h('h3', {}, 'As recorded (sensitive values masked)'),
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          {},
          h('thead', {}, h('tr', {}, ['What', 'Field', 'Before', 'After'].map((t) => h('th', { scope: 'col' }, t)))),
          h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: '4' }, 'No change is listed.')))
        )
      ),
      heard ? [h('h3', {}, 'What the caller heard first'), h('p', { class: 'question' }, heard)] : null
    );
  }

  function outcomeSection(r) {
    const o = r.outcome || {};
    return section('Outcome', facts([['Outcome', outcomeText(o.status)], ['At', fmtTime(o.at)]]));
  }

  function callSection(r) {
    const call = r.call;
    if (!call) return section('Call', h('p', {}, 'No call is recorded.'));
    return section(
      'Call',
      facts([
        ['Provider', call.provider],
        ['Call id', h('code', {}, text(call.call_sid))],
        ['From', h('span', { class: 'mono' }, text(call.from_masked))],
        ['Started', fmtTime(call.started_at)],
        ['Ended', fmtTime(call.ended_at)],
      ])
    );
  }

  // ---- verification ------------------------------------------------------

  async function verify(token, id, answer, box) {
    const title = box.querySelector('h2');
    const out = [];
    let report = null;
    let failure = null;
    try {
      report = (await api('GET', `/v1/records/${id}/verify`)).json;
    } catch (e) {
      failure = e;
    }
    if (token !== state.view) return;
    if (report && (report.status === 'ok' || report.status === 'problems')) {
      const findings = Array.isArray(report.findings) ? report.findings : [];
      const problems = findings.filter((f) => f.severity === 'problem');
      const states = findings.filter((f) => f.severity !== 'problem');
      const checked = report.checked || {};
      const head = report.head || {};
      if (report.status === 'ok') {
        out.push(
          h(
            'p',
            { class: 'okay' },
            h('strong', {}, 'Verified. '),
            `Signatures, the seal chain and the audio check out (${text(checked.record_versions)} record version(s), ${text(checked.audio)} audio object(s), ${text(checked.objects)} object(s), ${text(checked.seals)} seal(s)). Newest seal: ${text(head.seal)}${head.at ? ` at ${fmtTime(head.at)}` : ''}.`
          )
        );
      } else {
        out.push(h('p', { class: 'problem', role: 'alert' }, h('strong', {}, 'Evidence problem. '), `${problems.length} problem(s) found: this record's evidence was changed, deleted or forged.`));
        out.push(h('ul', {}, problems.map((f) => h('li', {}, h('code', {}, text(f.object)), ': ', text(f.detail)))));
      }
      if (states.length) {
        out.push(h('h3', {}, 'Notes'), h('ul', {}, states.map((f) => h('li', {}, h('code', {}, text(f.object)), ': ', text(f.detail)))));
      }
      if (report.completeness) out.push(h('p', { class: 'muted' }, report.completeness));
    } else {
      // Verification is unavailable: at least check the bytes against the digest sent with them.
      const why = failure ? failure.message : 'the answer was not a verification report';
      const given = answer.headers.get('x-content-sha256');
      let digest = null;
      try {
        digest = await sha256Hex(answer.bytes);
      } catch (_) {
        digest = null;
      }
      if (token !== state.view) return;
      out.push(h('p', { class: 'note' }, `Full verification is unavailable (${why}).`));
      if (!digest) {
        out.push(h('p', { class: 'note' }, 'This browser cannot compute SHA-256 here (the page is not on HTTPS), so the record was not checked.'));
      } else if (given && given.toLowerCase() === digest) {
        out.push(h('p', { class: 'okay' }, 'The record as received matches the SHA-256 digest callproof sent with it: ', h('code', {}, digest), '. This checks the transfer only, not the signature or the seal chain.'));
      } else {
        out.push(h('p', { class: 'problem', role: 'alert' }, `The record as received does not match the digest callproof sent (${given ? given : 'none sent'}); its SHA-256 is `, h('code', {}, digest), '.'));
      }
    }
    box.replaceChildren(title, ...out);
  }

  // ---- recording: waveform, consent markers, playback --------------------

  function reasonForm(opts) {
    const input = h('input', { name: 'reason', type: 'text', autocomplete: 'off', required: true, maxlength: '500', spellcheck: 'true' });
    const message = h('p', { class: 'hint', role: 'status' });
    const button = h('button', { type: 'submit' }, opts.button);
    const form = h(
      'form',
      { class: 'reason-form', novalidate: true },
      opts.intro ? h('p', {}, opts.intro) : null,
      field('reason', opts.label, input, REASON_HINT),
      h('div', { class: 'buttons' }, button),
      message
    );
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const reason = input.value.trim();
      if (!reason) {
        message.textContent = 'Give a reason first.';
        message.className = 'problem';
        input.setAttribute('aria-invalid', 'true');
        input.focus();
        return;
      }
      if (/[\u0000-\u001f\u007f]/.test(reason)) {
        message.textContent = 'Write the reason on one line.';
        message.className = 'problem';
        input.focus();
        return;
      }
      input.removeAttribute('aria-invalid');
      button.disabled = true;
      message.className = 'hint';
      message.textContent = opts.busy;
      try {
        const done = await opts.submit(reason);
        input.value = '';
        message.className = done && done.kind ? done.kind : 'hint';
        message.textContent = done && done.text ? done.text : '';
      } catch (err) {
        message.className = 'problem';
        message.textContent = `${opts.failed}: ${err.message}`;
        input.focus();
      } finally {
        button.disabled = false;
      }
    });
    return { form, input, message };
  }

  function eventLabel(e) {
    const label = { affirm: 'Confirmed', deny: 'Declined', dispute: 'Said it was not their request', repeat: 'Asked to repeat', agent: 'Asked for an agent' }[e.label] || text(e.label);
    let how = '';
    if (e.input_type === 'dtmf' && e.digits) how = `pressed ${e.digits}`;
    else if (e.input_type === 'speech' && e.transcript) how = `said “${e.transcript}”`;
    else if (e.input_type) how = e.input_type;
    return { label, how };
  }

  function recordingSection(token, id, r) {
    const events = Array.isArray(r.consent_events) ? r.consent_events : [];
    const audioMeta = r.recording && Array.isArray(r.recording.audio) ? r.recording.audio.find((a) => a && a.role === 'archival') : null;
    const playable = Boolean(r.recording && r.recording.decode && r.recording.decode.ok && audioMeta);
    const el = section('Recording and consent');
    const recDuration = audioMeta && Number(audioMeta.duration_secs) > 0 ? Number(audioMeta.duration_secs) : null;

    const table = h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        {},
        h('caption', {}, 'Each answer the caller gave, with its time in the recording.'),
        h('thead', {}, h('tr', {}, ['#', 'Answer', 'How', 'Confidence', 'At', 'In the recording'].map((t) => h('th', { scope: 'col' }, t)))),
        h(
          'tbody',
          {},
          events.length
            ? events.map((e, i) => {
                const { label, how } = eventLabel(e);
                return h(
                  'tr',
                  {},
                  h('td', {}, String(i + 1)),
                  h('th', { scope: 'row' }, label),
                  h('td', {}, text(how)),
                  h('td', {}, typeof e.confidence === 'number' ? e.confidence.toFixed(2) : '—'),
                  h('td', {}, fmtTime(e.at)),
                  h('td', {}, typeof e.offset_secs === 'number' ? fmtOffset(e.offset_secs) : '—')
                );
              })
            : h('tr', {}, h('td', { colspan: '6' }, 'No consent event is recorded.'))
        )
      )
    );

    if (!playable) {
      const why = !r.recording ? 'No recording is stored for this record.' : r.recording.decode && r.recording.decode.error ? `The recording did not decode: ${r.recording.decode.error}` : 'The recording cannot be played.';
      el.append(h('p', { class: 'note' }, why), table);
      return { el, load: () => {} };
    }

    const timeline = h('div', { class: 'timeline' });
    const waveNote = h('p', { class: 'muted' }, 'Loading the waveform…');
    const audio = h('audio', { controls: true, preload: 'none', 'aria-label': 'Recording' });
    audio.hidden = true;
    const player = { grant: null, pending: null, loading: false };
    const markerButtons = [];
    const markers = h('ol', { class: 'markers', 'aria-label': 'Consent events in the recording' });
    events.forEach((e, i) => {
      if (typeof e.offset_secs !== 'number' || !Number.isFinite(e.offset_secs)) return;
      const { label, how } = eventLabel(e);
      const b = h(
        'button',
        { type: 'button', 'data-offset-secs': String(e.offset_secs), 'aria-pressed': 'false' },
        h('span', { class: 'num', 'aria-hidden': 'true' }, String(i + 1)),
        `${label}${how ? ` (${how})` : ''} at ${fmtOffset(e.offset_secs)}`
      );
      b.setAttribute('aria-label', `Play from consent event ${i + 1}: ${label}${how ? `, ${how}` : ''}, at ${fmtOffset(e.offset_secs)}`);
      b.addEventListener('click', () => seekTo(e.offset_secs, b));
      markerButtons.push(b);
      markers.append(h('li', {}, b));
    });

    let asking = null;
    const reason = reasonForm({
      label: 'Reason for listening',
      button: 'Play recording',
      busy: 'Asking callproof for playback…',
      failed: 'Playback was refused',
      intro: 'Say why you are listening before the recording plays. Each playback is kept in the audit log.',
      submit: async (why) => {
        await grant(why);
        return { text: '' };
      },
    });
    const grantNote = h('p', { class: 'hint', role: 'status' });

    function granted() {
      return player.grant && Date.now() < player.grant.expiresAt - 1000;
    }

    function askReason(message) {
      reason.form.hidden = false;
      if (player.grant && !granted()) grantNote.textContent = '';
      if (message) {
        reason.message.className = 'note';
        reason.message.textContent = message;
      }
      asking = true;
      reason.input.focus();
    }

    async function grant(why) {
      const answer = (await api('POST', `/v1/records/${id}/playback`, { body: { reason: why } })).json || {};
      const url = sameOrigin(answer.url);
      if (!url) throw new Error('callproof answered no usable playback address');
      const expiresAt = Date.parse(answer.expires_at);
      player.grant = { url, expiresAt: Number.isNaN(expiresAt) ? Date.now() + 60000 : expiresAt };
      if (token !== state.view) return;
      const start = player.pending !== null ? player.pending : audio.getAttribute('src') ? audio.currentTime : 0;
      player.loading = true;
      audio.src = url;
      audio.preload = 'auto';
      try {
        await new Promise((resolve, reject) => {
          const ok = () => {
            audio.removeEventListener('error', bad);
            resolve();
          };
          const bad = () => {
            audio.removeEventListener('loadedmetadata', ok);
            reject(new Error('the recording could not be loaded; try again'));
          };
          audio.addEventListener('loadedmetadata', ok, { once: true });
          audio.addEventListener('error', bad, { once: true });
          audio.load();
        });
      } finally {
        player.loading = false;
      }
      if (token !== state.view) return;
      player.pending = null;
      asking = null;
      audio.hidden = false;
      reason.form.hidden = true;
      grantNote.textContent = `Playback allowed until ${fmtTime(new Date(player.grant.expiresAt).toISOString())}; after that, the reason is asked again.`;
      audio.currentTime = start;
      audio.play().catch(() => {
        /* the browser wants a press of the player's own play button */
      });
      audio.focus();
    }

    function seekTo(offset, button) {
      for (const b of markerButtons) b.setAttribute('aria-pressed', b === button ? 'true' : 'false');
      if (!granted()) {
        player.pending = offset;
        askReason(
          player.grant
            ? `The playback permission has expired. Give the reason again to play from ${fmtOffset(offset)}.`
            : `Give the reason for listening; the recording will then play from ${fmtOffset(offset)}.`
        );
        return;
      }
      audio.currentTime = offset;
      audio.play().catch(() => {});
    }

    audio.addEventListener('play', () => {
      if (!granted()) {
        audio.pause();
        player.pending = audio.currentTime;
        askReason('The playback permission has expired. Give the reason again to go on listening.');
      }
    });
    audio.addEventListener('error', () => {
      if (!player.grant || player.loading || asking) return;
      player.pending = audio.currentTime || 0;
      askReason(
        granted()
          ? 'The recording stopped loading (the session may have ended). Give the reason again to go on listening.'
          : 'The playback permission has expired. Give the reason again to go on listening.'
      );
    });

    // Waveform drawing.
    let wave = null;
    const canvases = [];
    function draw() {
      const duration = (wave && Number(wave.duration_secs)) || recDuration || 0;
      const channels = wave && Array.isArray(wave.channels) && wave.channels.length ? wave.channels : null;
      const ratio = window.devicePixelRatio || 1;
      canvases.forEach((canvas, ci) => {
        const w = Math.max(1, Math.round(canvas.clientWidth * ratio));
        const hgt = Math.max(1, Math.round(canvas.clientHeight * ratio));
        if (canvas.width !== w) canvas.width = w;
        if (canvas.height !== hgt) canvas.height = hgt;
        const g = canvas.getContext('2d');
        if (!g) return;
        g.clearRect(0, 0, w, hgt);
        const mid = hgt / 2;
        g.fillStyle = '#8a939c';
        g.fillRect(0, mid, w, Math.max(1, ratio));
        const peaks = channels ? channels[ci] : null;
        if (Array.isArray(peaks) && peaks.length) {
          g.fillStyle = '#2c5d8f';
          for (let x = 0; x < w; x++) {
            const a = Math.floor((x / w) * peaks.length);
            const b = Math.max(a + 1, Math.floor(((x + 1) / w) * peaks.length));
            let p = 0;
            for (let k = a; k < b && k < peaks.length; k++) p = Math.max(p, Math.abs(Number(peaks[k]) || 0));
            const bar = Math.min(1, p) * (mid - 2 * ratio);
            g.fillRect(x, mid - bar, 1, bar * 2 || 1);
          }
        }
        if (duration > 0) {
          g.font = `${Math.round(12 * ratio)}px sans-serif`;
          events.forEach((e, i) => {
            if (typeof e.offset_secs !== 'number') return;
            const x = Math.min(w - 1, Math.max(0, (e.offset_secs / duration) * w));
            g.fillStyle = '#b34700';
            g.fillRect(x - ratio, 0, 2 * ratio, hgt);
            g.fillText(String(i + 1), Math.min(w - 14 * ratio, x + 3 * ratio), 13 * ratio + (i % 3) * 13 * ratio);
          });
          if (!audio.hidden && Number.isFinite(audio.currentTime)) {
            const x = Math.min(w - 1, (audio.currentTime / duration) * w);
            g.fillStyle = '#1b1b1b';
            g.fillRect(x, 0, Math.max(1, ratio), hgt);
          }
        }
      });
    }
    audio.addEventListener('timeupdate', draw);
    audio.addEventListener('seeked', draw);

    function buildCanvases(count) {
      timeline.replaceChildren();
      canvases.length = 0;
      const duration = (wave && Number(wave.duration_secs)) || recDuration;
      for (let i = 0; i < count; i++) {
        const cid = nextId('chan');
        if (count > 1) timeline.append(h('p', { class: 'channel-label', id: cid }, `Channel ${i + 1} of ${count}`));
        const canvas = h('canvas', {
          class: 'wave',
          role: 'img',
          'aria-label': `Waveform${count > 1 ? ` of channel ${i + 1} of ${count}` : ''}, ${duration ? fmtOffset(duration) : 'unknown length'}, with ${markerButtons.length} consent event(s) marked`,
        });
        canvases.push(canvas);
        timeline.append(canvas);
      }
      draw();
    }

    if (typeof ResizeObserver === 'function') {
      const ro = new ResizeObserver(() => draw());
      ro.observe(timeline);
      state.cleanup.push(() => ro.disconnect());
    }
    state.cleanup.push(() => {
      audio.pause();
      audio.removeAttribute('src');
    });

    el.append(
      h('p', {}, `Length ${recDuration ? fmtOffset(recDuration) : 'unknown'}, ${audioMeta.channels === 2 ? 'two channels' : audioMeta.channels === 1 ? 'one channel' : `${text(audioMeta.channels)} channels`}. Choose a consent event to play the recording from that answer.`),
      timeline,
      waveNote,
      markers,
      reason.form,
      audio,
      grantNote,
      h('h3', {}, 'Consent events'),
      table
    );

    async function load() {
      buildCanvases(Number(audioMeta.channels) === 2 ? 2 : 1);
      try {
        const w = (await api('GET', `/v1/records/${id}/waveform`)).json;
        if (token !== state.view) return;
        if (!w || !Array.isArray(w.channels)) throw new Error('the answer holds no channels');
        wave = w;
        waveNote.remove();
        buildCanvases(Math.max(1, Math.min(8, w.channels.length)));
      } catch (e) {
        if (token !== state.view) return;
        waveNote.textContent = `The waveform is unavailable (${e.message}); the consent events are marked on an empty timeline.`;
        waveNote.className = 'note';
      }
    }
    return { el, load };
  }

  // ---- legal hold --------------------------------------------------------

  async function loadHolds(token, id, box) {
    const title = box.querySelector('h2');
    let answer = null;
    try {
      answer = (await api('GET', `/v1/records/${id}/hold`)).json;
    } catch (e) {
      if (token !== state.view) return;
      box.replaceChildren(title, h('p', { class: 'note' }, `The hold state could not be read: ${e.message}`));
      return;
    }
    if (token !== state.view) return;
    showHolds(token, id, box, answer || {});
  }

  function showHolds(token, id, box, hs) {
    const title = box.querySelector('h2');
    const out = [];
    const cur = hs.current;
    if (hs.held) {
      out.push(
        h(
          'p',
          { class: 'note' },
          h('strong', {}, 'Held: '),
          'this record may not be purged.',
          cur && cur.state === 'held' ? ` Held by ${text(cur.actor && cur.actor.name)} (${text(cur.actor && cur.actor.role)}) at ${fmtTime(cur.at)}: “${text(cur.reason)}”.` : ''
        )
      );
    } else {
      out.push(h('p', {}, hs.state === 'released' ? 'Not held: the last hold was released.' : 'Not held.'));
    }
    const problems = Array.isArray(hs.problems) ? hs.problems : [];
    if (problems.length) {
      out.push(h('p', { class: 'problem' }, 'Some hold facts do not count (so the record counts as held):'), h('ul', {}, problems.map((p) => h('li', {}, text(p)))));
    }
    const factsList = Array.isArray(hs.facts) ? hs.facts : [];
    if (factsList.length) {
      out.push(
        h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            {},
            h('caption', {}, 'Every hold and release, oldest first.'),
            h('thead', {}, h('tr', {}, ['#', 'Change', 'By', 'At', 'Reason'].map((t) => h('th', { scope: 'col' }, t)))),
            h(
              'tbody',
              {},
              factsList.map((f) =>
                h('tr', {}, h('td', {}, text(f.n)), h('td', {}, f.state === 'held' ? 'Held' : f.state === 'released' ? 'Released' : text(f.state)), h('td', {}, `${text(f.actor && f.actor.name)} (${text(f.actor && f.actor.role)})`), h('td', {}, fmtTime(f.at)), h('td', {}, text(f.reason)))
              )
            )
          )
        )
      );
    }
    if (state.session && state.session.role === 'admin') {
      const release = Boolean(hs.held && hs.state === 'held');
      const form = reasonForm({
        label: release ? 'Reason for releasing the hold' : 'Reason for the hold',
        button: release ? 'Release legal hold' : 'Place legal hold',
        busy: release ? 'Releasing…' : 'Placing the hold…',
        failed: release ? 'The hold was not released' : 'The hold was not placed',
        submit: async (why) => {
          const answer = (await api(release ? 'DELETE' : 'PUT', `/v1/records/${id}/hold`, { reason: why, body: { reason: why } })).json;
          if (token !== state.view) return null;
          showHolds(token, id, box, answer || {});
          say(release ? 'The legal hold was released.' : 'The record is now on legal hold.', 'okay');
          return null;
        },
      });
      out.push(form.form);
    }
    box.replaceChildren(title, ...out);
  }

  // ---- export ------------------------------------------------------------

  function exportSection(id) {
    const link = h('p', {});
    const form = reasonForm({
      label: 'Reason for exporting',
      button: 'Export evidence bundle (zip)',
      busy: 'Asking callproof for the export…',
      failed: 'The export was refused',
      intro: 'The evidence bundle holds the record, its signatures, the seals that list it and the audio, with instructions to check it offline.',
      submit: async (why) => {
        const answer = (await api('POST', `/v1/records/${id}/export-grant`, { body: { reason: why } })).json || {};
        const url = sameOrigin(answer.url);
        if (!url) throw new Error('callproof answered no usable download address');
        const a = h('a', { href: url, download: `${id}.zip` }, 'Download the evidence bundle again');
        document.body.append(a);
        a.click();
        a.remove();
        link.replaceChildren(
          'If the download did not start, use this link',
          answer.expires_at ? ` (it works until ${fmtTime(answer.expires_at)})` : '',
          ': ',
          h('a', { href: url, download: `${id}.zip` }, `${id}.zip`)
        );
        return { kind: 'okay', text: 'The export was granted and the download of the zip has started.' };
      },
    });
    return section('Export', form.form, link);
  }

  // ---- start -------------------------------------------------------------

  async function start() {
    let session;
    try {
      session = (await api('GET', '/ui/session', { signInCheck: true })).json;
    } catch (e) {
      if (e.status === 401 || e.status === 403) {
        showSignIn();
      } else {
        say(`callproof could not tell whether you are signed in: ${e.message}`, 'problem');
      }
      return;
    }
    state.session = session || {};
    showWho(state.session);
    render(route(), true);
  }

  window.addEventListener('popstate', () => {
    if (state.session) render(route(), false);
  });
  $('home-link').addEventListener('click', (e) => {
    if (!state.session || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    go('/ui/');
  });
  $('sign-in-form').addEventListener('submit', signIn);
  $('sign-out-form').addEventListener('submit', signOut);
  start();
})();
