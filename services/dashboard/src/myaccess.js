// @ts-check
// "My access", for every signed-in caller: who it is (principal,
// organisation, role, the key in use and when it expires), the grants its
// organisation holds with their terms, status and current use, and its own
// read log page by page: what a licensee's contract allows and what it read,
// without asking the data's owner.

import { ApiProblem, getJson, query } from './api.js';
import { h, field, table } from './dom.js';
import { isoSeconds as iso } from './format.js';
import { action, formatNumber, formatTime, t } from './i18n.js';

/** @typedef {import('./main.js').View} View */
/** @typedef {import('./main.js').Me} Me */
/** @typedef {import('./types/api').components['schemas']['MyGrant']} MyGrant */
/** @typedef {import('./types/api').components['schemas']['MyGrants']} MyGrants */
/** @typedef {import('./types/api').components['schemas']['ReadsPage']} ReadsPage */

/** A key this close to its expiry is pointed out. */
const EXPIRY_WARNING_MS = 14 * 864e5;

/** @param {unknown} e */
function problemText(e) {
  return e instanceof ApiProblem ? `${e.status}: ${e.detail}` : e instanceof Error ? e.message : String(e);
}

/** @param {string | null | undefined} role */
function roleText(role) {
  switch (role) {
    case 'admin': return t('roleAdmin');
    case 'data_owner': return t('roleDataOwner');
    case 'reader': return t('roleReader');
    case 'publisher': return t('rolePublisher');
    default: return role || t('none');
  }
}

/** @param {string} how */
function signedInWith(how) {
  return how === 'api_key' ? t('viaKey') : how === 'oidc' ? t('viaOidc') : how === 'operator_token' ? t('viaOperator') : how;
}

/** @param {MyGrant['status']} status */
function statusText(status) {
  return status === 'active' ? t('grantActive') : status === 'not_yet_valid' ? t('grantNotYetValid') : status === 'expired' ? t('grantExpired') : t('grantRevoked');
}

/** @param {Me} me */
function whoAmI(me) {
  const key = me.key;
  const expiresSoon = key ? new Date(key.expires_at).getTime() - Date.now() < EXPIRY_WARNING_MS : false;
  return h(
    'dl',
    { class: 'facts', id: 'me' },
    h('dt', {}, t('principal')), h('dd', { id: 'me-name' }, me.name),
    h('dt', {}, t('organisation')), h('dd', { id: 'me-org' }, me.operator ? t('operator') : me.organisation?.name ?? t('none')),
    h('dt', {}, t('role')), h('dd', { id: 'me-role' }, me.operator ? t('operatorRole') : roleText(me.role)),
    h('dt', {}, t('signedInWithLabel')), h('dd', {}, signedInWith(me.signed_in_with)),
    key ? [
      h('dt', {}, t('keyLookup')), h('dd', {}, h('code', {}, key.lookup)),
      h('dt', {}, t('keyCreated')), h('dd', {}, formatTime(key.created_at)),
      h('dt', {}, t('keyExpires')),
      h('dd', { id: 'me-key-expires', class: expiresSoon ? 'error' : undefined }, formatTime(key.expires_at), expiresSoon ? ` · ${t('keyExpiresSoon')}` : ''),
    ] : [],
  );
}

/** @param {MyGrant} g */
function resolutionText(g) {
  return g.min_interval_mins == null ? t('raw') : `${t('aggregates')} ≥ ${formatNumber(g.min_interval_mins)} min`;
}

/** @param {MyGrant[]} grants */
function grantsTable(grants) {
  return table(
    `${grants.length} ${t('grants')}`,
    [t('dataset'), t('grantor'), t('purpose'), t('contract'), t('resolution'), t('historyDays'), t('validity'), t('status'), t('ratePerMinute'), t('use')],
    grants.map((g) =>
      h(
        'tr',
        { dataset: { grant: g.id, status: g.status } },
        [
          g.dataset_title,
          g.owner_name,
          g.purpose,
          g.contract_ref,
          resolutionText(g),
          g.history_days == null ? t('unlimited') : formatNumber(g.history_days),
          `${formatTime(g.valid_from)} – ${formatTime(g.valid_until)}`,
          statusText(g.status),
          formatNumber(g.rate_per_minute),
          h(
            'span',
            { class: 'use' },
            `${formatNumber(g.use.reads_last_day)} ${t('readsDay')} (${formatNumber(g.use.rows_last_day)} ${t('rows')}), `
              + `${formatNumber(g.use.reads_last_30_days)} ${t('reads30Days')}, ${formatNumber(g.use.refused_last_30_days)} ${t('refused30Days')}, `
              + `${formatNumber(g.use.reads_available_now)} ${t('availableNow')}`,
          ),
        ].map((c) => h('td', {}, c)),
      ),
    ),
    { id: 'my-grants' },
  );
}

/** @param {View} view */
export async function renderMyAccess({ state, main }) {
  main.append(h('h2', {}, t('myAccess')));
  /** @type {Me} */
  const me = state.me || (await getJson('/v1/me'));
  main.append(h('section', { 'aria-labelledby': 'h-me' }, h('h3', { id: 'h-me' }, t('whoAmI')), whoAmI(me)));

  const grantsBox = h('div', { class: 'scroll' });
  main.append(h('section', { 'aria-labelledby': 'h-my-grants' }, h('h3', { id: 'h-my-grants' }, t('myGrants')), h('p', {}, t('myGrantsIntro')), grantsBox));
  try {
    /** @type {MyGrants} */
    const list = await getJson('/v1/me/grants');
    grantsBox.replaceChildren(list.grants.length ? grantsTable(list.grants) : h('p', {}, t('noGrants')));
  } catch (e) {
    grantsBox.replaceChildren(h('p', { class: 'error', role: 'alert' }, problemText(e)));
  }

  // The read log, page by page (oldest first, as the API gives it).
  const body = h('tbody');
  const count = h('p', { class: 'count', 'aria-live': 'polite' });
  const more = h('button', { type: 'button', id: 'my-reads-more', hidden: true }, t('more'));
  const fromInput = h('input', { type: 'date', id: 'my-reads-from', value: new Date(Date.now() - 30 * 864e5).toISOString().slice(0, 10) });
  const readsError = h('div', {});
  /** @type {string | null | undefined} */
  let cursor = null;
  let shown = 0;

  /** @param {boolean} fresh */
  async function loadReads(fresh) {
    if (fresh) {
      body.replaceChildren();
      cursor = null;
      shown = 0;
    }
    readsError.replaceChildren();
    try {
      const from = fromInput.value ? iso(new Date(`${fromInput.value}T00:00:00`).getTime()) : undefined;
      /** @type {ReadsPage} */
      const page = await getJson(`/v1/me/reads${query({ from, limit: 200, cursor })}`);
      body.append(
        ...page.records.map((r) =>
          h(
            'tr',
            { dataset: { action: r.action, allowed: String(r.allowed) } },
            [
              formatTime(r.at),
              r.principal_name,
              h('span', { title: r.action }, action(r.action)),
              r.dataset_id == null ? t('none') : state.datasets.get(r.dataset_id)?.title ?? r.dataset_id,
              r.allowed ? t('allowed') : t('deniedShort'),
              r.reason,
              r.rows_returned,
            ].map((c) => h('td', {}, c)),
          ),
        ),
      );
      shown += page.records.length;
      cursor = page.next_cursor;
      more.hidden = !cursor;
      count.textContent = `${shown} ${t('readRecords')}`;
    } catch (e) {
      readsError.replaceChildren(h('p', { class: 'error', role: 'alert' }, problemText(e)));
    }
  }
  more.addEventListener('click', () => loadReads(false));
  const head = [t('time'), t('principal'), t('action'), t('dataset'), t('decision'), t('reason'), t('rows')];
  main.append(
    h(
      'section',
      { 'aria-labelledby': 'h-my-reads' },
      h('h3', { id: 'h-my-reads' }, t('myReads')),
      h(
        'form',
        { class: 'filters', onsubmit: (/** @type {SubmitEvent} */ e) => { e.preventDefault(); loadReads(true); } },
        field(t('from'), fromInput),
        h('button', { type: 'submit' }, t('show')),
      ),
      count,
      readsError,
      h('div', { class: 'scroll' }, h('table', { id: 'my-reads' }, h('thead', {}, h('tr', {}, head.map((c) => h('th', { scope: 'col' }, c)))), body)),
      more,
    ),
  );
  await loadReads(true);
  return null;
}
