// The dashboard: sign-in with an API key (kept in memory only), the map and
// list of things with their latest values (updated live), a datastream's
// chart, the data owner's views and the public transparency report.
// Routes are URL fragments (#/map, #/list, #/datastream/7, #/owner,
// #/transparency), so the API keeps every other path.

import 'leaflet/dist/leaflet.css';
import 'uplot/dist/uPlot.min.css';
import './style.css';

import { ApiProblem, getJson, setCredential, signedIn, stream } from './api.js';
import { h } from './dom.js';
import { language, setLanguage, t, translate } from './i18n.js';
import { renderList, renderMap } from './things.js';
import { renderDatastream } from './datastream.js';
import { renderOwner } from './owner.js';
import { renderTransparency } from './transparency.js';
import { finishSignIn, startSignIn } from './oidc.js';

/** What the signed-in (or anonymous) caller may see, shared by the views. */
export const state = {
  streams: new Map(), // id → LiveDatastream
  datasets: new Map(), // id → Dataset
  ownsData: false,
  live: null, // AbortController of the live stream
  listeners: new Set(), // called on live updates
  filters: { search: '', theme: '', org: '', classification: '' },
  method: null, // 'key' or 'oidc' while signed in
  oidcOffered: false,
};

const main = document.getElementById('main');
const message = document.getElementById('message');

export function showMessage(text) {
  message.textContent = text || '';
  message.hidden = !text;
}

function onLive(fn) {
  state.listeners.add(fn);
  return () => state.listeners.delete(fn);
}

function setLive(connected) {
  const el = document.getElementById('live-status');
  el.textContent = connected ? `● ${t('liveOn')}` : `○ ${t('liveOff')}`;
  el.dataset.connected = connected ? 'true' : 'false';
}

function applySnapshot(snapshot) {
  state.streams = new Map(snapshot.datastreams.map((d) => [d.id, d]));
}

function applyUpdate(update) {
  for (const v of update.values) {
    const d = state.streams.get(v.datastream_id);
    if (d) {
      d.latest_time = v.time;
      d.latest_value = v.value;
    }
  }
  for (const id of update.withdrawn) {
    const d = state.streams.get(id);
    if (d) {
      d.latest_time = null;
      d.latest_value = null;
    }
  }
  for (const fn of state.listeners) fn(update);
}

/** Keeps the live stream open (reconnecting with back-off) until aborted. */
async function runLive(controller) {
  let delay = 1000;
  while (!controller.signal.aborted) {
    try {
      await stream(
        '/v1/live',
        (name, data) => {
          if (name === 'snapshot') {
            applySnapshot(JSON.parse(data));
            setLive(true);
            delay = 1000;
            for (const fn of state.listeners) fn({ values: [], withdrawn: [] });
          } else if (name === 'latest') {
            applyUpdate(JSON.parse(data));
          }
        },
        controller.signal,
      );
    } catch (e) {
      if (controller.signal.aborted) return;
      if (e instanceof ApiProblem && (e.status === 401 || e.status === 403)) {
        setLive(false);
        return;
      }
    }
    if (controller.signal.aborted) return;
    setLive(false);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 30000);
  }
}

/** Loads what this caller may see, then (re)opens the live stream. */
async function load() {
  state.live?.abort();
  const [snapshot, datasets] = await Promise.all([getJson('/v1/live'), getJson('/v1/datasets')]);
  applySnapshot(snapshot);
  state.datasets = new Map(datasets.datasets.map((d) => [d.id, d]));
  state.ownsData = false;
  if (signedIn()) {
    try {
      await getJson('/v1/audit?limit=1');
      state.ownsData = true;
    } catch {
      state.ownsData = false;
    }
  }
  document.getElementById('nav-owner').hidden = !signedIn();
  state.live = new AbortController();
  runLive(state.live);
}

function renderSession() {
  document.getElementById('signin').hidden = signedIn();
  document.getElementById('signin-oidc').hidden = signedIn() || !state.oidcOffered;
  document.getElementById('session').hidden = !signedIn();
  document.getElementById('who').textContent = signedIn() ? t(state.method === 'oidc' ? 'signedInOidc' : 'signedInAs') : '';
  document.body.dataset.session = signedIn() ? state.method || 'key' : 'public';
}

let cleanup = null;

async function route(event) {
  cleanup?.();
  cleanup = null;
  const hash = location.hash || '#/map';
  const [, view, arg] = hash.split('/');
  for (const a of document.querySelectorAll('nav.tabs a')) {
    const current = a.getAttribute('href') === `#/${view}`;
    if (current) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  main.replaceChildren();
  main.dataset.view = view;
  const ctx = { state, main, onLive, showMessage };
  try {
    if (view === 'list') cleanup = renderList(ctx);
    else if (view === 'datastream') cleanup = await renderDatastream(ctx, Number(arg));
    else if (view === 'owner') cleanup = await renderOwner(ctx);
    else if (view === 'transparency') cleanup = await renderTransparency(ctx);
    else cleanup = renderMap(ctx);
  } catch (e) {
    main.append(h('p', { class: 'error', role: 'alert' }, e.detail || e.message));
  }
  // After navigation, keyboard and screen reader users start at the new view.
  if (event?.type === 'hashchange') main.focus();
}

async function signIn(key, method = 'key') {
  showMessage('');
  setCredential(key);
  state.method = key ? method : null;
  try {
    await load();
  } catch (e) {
    setCredential(null);
    state.method = null;
    showMessage(`${t('signInFailed')}: ${e.detail || e.message}`);
    await load().catch(() => {});
  }
  renderSession();
  await route();
}

/** Offers single sign-on where the API names an issuer, and completes a return from it. */
async function initOidc() {
  const config = await fetch('/config.json', { credentials: 'omit' })
    .then((r) => (r.ok ? r.json() : {}))
    .catch(() => ({}));
  if (!config.oidc) return false;
  const button = document.getElementById('signin-oidc');
  state.oidcOffered = true;
  button.hidden = signedIn();
  button.addEventListener('click', () => startSignIn(config.oidc).catch((e) => showMessage(`${t('signInFailed')}: ${e.message}`)));
  try {
    const token = await finishSignIn(config.oidc);
    if (!token) return false;
    await signIn(token, 'oidc');
    return true;
  } catch (e) {
    showMessage(`${t('signInFailed')}: ${e.message}`);
    return false;
  }
}

function init() {
  setLanguage(language());
  translate();
  const lang = document.getElementById('lang');
  const setLangButton = () => {
    lang.textContent = language() === 'de' ? 'EN' : 'DE';
    lang.setAttribute('aria-label', language() === 'de' ? 'Switch to English' : 'Auf Deutsch umschalten');
  };
  setLangButton();
  lang.addEventListener('click', () => {
    setLanguage(language() === 'de' ? 'en' : 'de');
    setLangButton();
    translate();
    renderSession();
    setLive(document.getElementById('live-status').dataset.connected === 'true');
    route();
  });
  document.getElementById('signin').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = document.getElementById('key');
    const key = input.value;
    input.value = '';
    if (key.trim()) signIn(key);
  });
  document.getElementById('signout').addEventListener('click', () => {
    setCredential(null);
    showMessage('');
    signIn(null);
    location.hash = '#/map';
  });
  window.addEventListener('hashchange', route);
  renderSession();
  initOidc().then((done) => {
    if (!done) {
      load()
        .catch((e) => showMessage(e.detail || e.message))
        .then(route);
    }
  });
}

init();
