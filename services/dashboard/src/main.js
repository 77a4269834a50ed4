// @ts-check
// The dashboard: sign-in with an API key (kept in memory only), the map and
// list of things with their latest values (updated live), a datastream's
// chart with its data quality, the data owner's views, onboarding for an
// organisation's admins, alerts and their rules, the caller's own access and
// the public transparency report. Routes are URL fragments (#/map, #/list,
// #/datastream/7, #/owner, #/onboarding, #/alerts, #/access, #/transparency),
// so the API keeps every other path.

import 'leaflet/dist/leaflet.css';
import 'uplot/dist/uPlot.min.css';
import './style.css';

import { ApiProblem, getJson, setCredential, signedIn, stream } from './api.js';
import { h } from './dom.js';
import { language, setLanguage, t, translate } from './i18n.js';
import { renderList, renderMap } from './things.js';
import { renderDatastream } from './datastream.js';
import { renderOwner } from './owner.js';
import { mayOnboard, renderOnboarding } from './onboarding.js';
import { renderMyAccess } from './myaccess.js';
import { renderAlerts } from './alerts.js';
import { renderTransparency } from './transparency.js';
import { finishSignIn, startSignIn } from './oidc.js';
import { organisations } from './labels.js';

/** @typedef {import('./types/api').components['schemas']['LiveDatastream']} LiveDatastream */
/** @typedef {import('./types/api').components['schemas']['LiveSnapshot']} LiveSnapshot */
/**
 * A `latest` event of the live stream: new latest values, and datastreams whose values
 * the caller may no longer read. The OpenAPI document names it (LiveUpdate) in the
 * description of /v1/live but has no schema for stream events, so it is written here.
 * `snapshot` (the dashboard's own mark, not the API's) says a new snapshot replaced
 * every datastream: the views select again what they show.
 * @typedef {{ values: { datastream_id: number, time: string, value: number }[], withdrawn: number[], snapshot?: boolean }} LiveUpdate
 */
/** @typedef {import('./types/api').components['schemas']['Dataset']} Dataset */
/** @typedef {import('./types/api').components['schemas']['DatasetList']} DatasetList */
/** @typedef {(update: LiveUpdate) => void} LiveListener */
/** @typedef {import('./labels.js').Organisation} Organisation */
/** @typedef {import('./types/api').components['schemas']['Me']} Me */

/**
 * What the signed-in (or anonymous) caller may see, shared by the views.
 * @typedef {object} State
 * @property {Map<number, LiveDatastream>} streams by id
 * @property {Map<number, Dataset>} datasets by id
 * @property {import('./labels.js').Organisations} orgs every organisation, to show names for ids and slugs
 * @property {boolean} ownsData
 * @property {Me | null} me the signed-in caller, null for the public
 * @property {string} onboardingOrg the organisation the operator onboards
 * @property {AbortController | null} live of the live stream
 * @property {Set<LiveListener>} listeners called on live updates
 * @property {{ search: string, theme: string, org: string, classification: string }} filters
 * @property {Map<number, { badge: import('./quality.js').Badge | null, at: number }>} quality the datastreams' quality badges (null: none to be had), with when they were asked
 * @property {{ since: number, orgs: number, streams: number }} qualityBudget quality requests made since `since`
 * @property {'key' | 'oidc' | null} method while signed in
 * @property {boolean} oidcOffered
 */

/**
 * What a view gets: the state, the element to fill, live updates and the message line.
 * A view returns what to do on leaving it, or null.
 * @typedef {object} View
 * @property {State} state
 * @property {HTMLElement} main
 * @property {(fn: LiveListener) => () => void} onLive
 * @property {(text: string) => void} showMessage
 */

/** @type {State} */
export const state = {
  streams: new Map(),
  datasets: new Map(),
  orgs: organisations([]),
  ownsData: false,
  me: null,
  onboardingOrg: '',
  live: null,
  listeners: new Set(),
  filters: { search: '', theme: '', org: '', classification: '' },
  quality: new Map(),
  qualityBudget: { since: 0, orgs: 0, streams: 0 },
  method: null,
  oidcOffered: false,
};

/**
 * An element of index.html.
 * @param {string} id
 */
function byId(id) {
  return /** @type {HTMLElement} */ (document.getElementById(id));
}

const main = byId('main');
const message = byId('message');

/** @param {string} text */
export function showMessage(text) {
  message.textContent = text || '';
  message.hidden = !text;
}

/** @param {LiveListener} fn */
function onLive(fn) {
  state.listeners.add(fn);
  return () => {
    state.listeners.delete(fn);
  };
}

/** @param {boolean} connected */
function setLive(connected) {
  const el = byId('live-status');
  el.textContent = connected ? `● ${t('liveOn')}` : `○ ${t('liveOff')}`;
  el.dataset.connected = connected ? 'true' : 'false';
}

/** @param {LiveSnapshot} snapshot */
function applySnapshot(snapshot) {
  state.streams = new Map(snapshot.datastreams.map((d) => [d.id, d]));
}

/** @param {LiveUpdate} update */
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

/**
 * Opens the live stream and keeps it open (reconnecting with back-off) until aborted.
 * Resolves with the stream's first snapshot, so that the views start from it: one
 * snapshot of the registry per sign-in, not a JSON one and then the stream's (with a
 * town's registry each is megabytes). Rejects when the stream fails before it (a
 * refused key: the sign-in fails); resolves at once when aborted meanwhile.
 * @param {AbortController} controller
 * @returns {Promise<void>}
 */
function openLive(controller) {
  return new Promise((resolve, reject) => {
    runLive(controller, resolve, reject);
  });
}

/**
 * @param {AbortController} controller
 * @param {() => void} opened called on the first snapshot
 * @param {(e: unknown) => void} failed called when the stream fails before it
 */
async function runLive(controller, opened, failed) {
  let first = true;
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
            if (first) {
              first = false;
              opened();
            }
            for (const fn of state.listeners) fn({ values: [], withdrawn: [], snapshot: true });
          } else if (name === 'latest') {
            applyUpdate(JSON.parse(data));
          }
        },
        controller.signal,
      );
    } catch (e) {
      if (controller.signal.aborted) break;
      if (first) {
        setLive(false);
        failed(e);
        return;
      }
      if (e instanceof ApiProblem && (e.status === 401 || e.status === 403)) {
        setLive(false);
        return;
      }
    }
    if (controller.signal.aborted) break;
    setLive(false);
    if (first) {
      failed(new Error('the live stream ended before its snapshot'));
      return;
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 30000);
  }
  if (first) opened();
}

/**
 * Every organisation's id, slug and name (public): names instead of ids and slugs. Without
 * them (an API that does not offer the list) the views show ids and slugs.
 * @returns {Promise<Organisation[]>}
 */
async function loadOrganisations() {
  try {
    /** @type {import('./types/api').components['schemas']['OrganisationNames']} */
    const list = await getJson('/v1/organisations');
    return list.organisations;
  } catch {
    return [];
  }
}

/** (Re)opens the live stream and loads what this caller may see. */
async function load() {
  state.live?.abort();
  const live = new AbortController();
  state.live = live;
  /** @type {[void, DatasetList, Organisation[]]} */
  const [, datasets, orgs] = await Promise.all([openLive(live), getJson('/v1/datasets'), loadOrganisations()]).catch((e) => {
    live.abort();
    throw e;
  });
  state.datasets = new Map(datasets.datasets.map((d) => [d.id, d]));
  state.orgs = organisations(orgs);
  state.ownsData = false;
  state.quality = new Map();
  state.qualityBudget = { since: 0, orgs: 0, streams: 0 };
  state.me = signedIn() ? await getJson('/v1/me').catch(() => null) : null;
  if (signedIn()) {
    try {
      await getJson('/v1/audit?limit=1');
      state.ownsData = true;
    } catch {
      state.ownsData = false;
    }
  }
  byId('nav-owner').hidden = !signedIn();
  byId('nav-onboarding').hidden = !mayOnboard(state);
  byId('nav-access').hidden = !signedIn();
  byId('nav-alerts').hidden = !signedIn();
}

function renderSession() {
  byId('signin').hidden = signedIn();
  byId('signin-oidc').hidden = signedIn() || !state.oidcOffered;
  byId('session').hidden = !signedIn();
  byId('who').textContent = signedIn() ? t(state.method === 'oidc' ? 'signedInOidc' : 'signedInAs') : '';
  document.body.dataset.session = signedIn() ? state.method || 'key' : 'public';
}

/** @type {(() => void) | null} */
let cleanup = null;

/** @param {Event} [event] */
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
  /** @type {View} */
  const ctx = { state, main, onLive, showMessage };
  try {
    if (view === 'list') cleanup = renderList(ctx);
    else if (view === 'datastream') cleanup = await renderDatastream(ctx, Number(arg));
    else if (view === 'owner') cleanup = await renderOwner(ctx);
    else if (view === 'onboarding') cleanup = await renderOnboarding(ctx);
    else if (view === 'access') cleanup = await renderMyAccess(ctx);
    else if (view === 'alerts') cleanup = await renderAlerts(ctx);
    else if (view === 'transparency') cleanup = await renderTransparency(ctx);
    else cleanup = renderMap(ctx);
  } catch (e) {
    main.append(h('p', { class: 'error', role: 'alert' }, problemText(e)));
  }
  // After navigation, keyboard and screen reader users start at the new view.
  if (event?.type === 'hashchange') main.focus();
}

/**
 * What an error says: the API's reason, or the error's message.
 * @param {unknown} e
 */
function problemText(e) {
  return e instanceof ApiProblem ? e.detail || e.message : e instanceof Error ? e.message : String(e);
}

/**
 * @param {string | null} key
 * @param {'key' | 'oidc'} [method]
 */
async function signIn(key, method = 'key') {
  showMessage('');
  setCredential(key);
  state.method = key ? method : null;
  try {
    await load();
  } catch (e) {
    setCredential(null);
    state.method = null;
    showMessage(`${t('signInFailed')}: ${problemText(e)}`);
    await load().catch(() => {});
  }
  renderSession();
  await route();
}

/** Offers single sign-on where the API names an issuer, and completes a return from it. */
async function initOidc() {
  /** @type {{ oidc?: import('./oidc.js').OidcConfig }} */
  const config = await fetch('/config.json', { credentials: 'omit' })
    .then((r) => (r.ok ? r.json() : {}))
    .catch(() => ({}));
  const oidc = config.oidc;
  if (!oidc) return false;
  const button = byId('signin-oidc');
  state.oidcOffered = true;
  button.hidden = signedIn();
  button.addEventListener('click', () => startSignIn(oidc).catch((e) => showMessage(`${t('signInFailed')}: ${e.message}`)));
  try {
    const token = await finishSignIn(oidc);
    if (!token) return false;
    await signIn(token, 'oidc');
    return true;
  } catch (e) {
    showMessage(`${t('signInFailed')}: ${problemText(e)}`);
    return false;
  }
}

function init() {
  setLanguage(language());
  translate();
  const lang = byId('lang');
  const setLangButton = () => {
    lang.textContent = language() === 'de' ? 'EN' : 'DE';
    // The name starts with the visible text (WCAG 2.5.3, label in name).
    lang.setAttribute('aria-label', language() === 'de' ? 'EN: Switch to English' : 'DE: Auf Deutsch umschalten');
  };
  setLangButton();
  lang.addEventListener('click', () => {
    setLanguage(language() === 'de' ? 'en' : 'de');
    setLangButton();
    translate();
    renderSession();
    setLive(byId('live-status').dataset.connected === 'true');
    route();
  });
  byId('signin').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = /** @type {HTMLInputElement} */ (byId('key'));
    const key = input.value;
    input.value = '';
    if (key.trim()) signIn(key);
  });
  byId('signout').addEventListener('click', () => {
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
        .catch((e) => showMessage(problemText(e)))
        .then(() => route());
    }
  });
}

init();
