// @ts-check
// The data owner's views: their datasets with the grants on them, the audit
// log of their datasets (filters: dataset, range, denied only) and the dead
// letters of their organisation's streams with reasons.

import { ApiProblem, getJson, query } from './api.js';
import { h, field, table } from './dom.js';
import { isoSeconds as iso } from './format.js';
import { action, formatTime, license, t, theme } from './i18n.js';
import { orgLabel } from './labels.js';

/** @typedef {import('./types/api').components['schemas']['Dataset']} Dataset */
/** @typedef {import('./types/api').components['schemas']['OwnedGrants']} OwnedGrants */
/** @typedef {import('./types/api').components['schemas']['GrantTerms']} GrantTerms */
/** @typedef {import('./types/api').components['schemas']['AuditPage']} AuditPage */
/** @typedef {import('./types/api').components['schemas']['DeadLetterPage']} DeadLetterPage */

/** @param {unknown} e */
function problemText(e) {
  return e instanceof ApiProblem ? `${e.status}: ${e.detail}` : e instanceof Error ? e.message : String(e);
}

/** @param {import('./main.js').View} view */
export async function renderOwner({ state, main }) {
  main.append(h('h2', {}, t('owner')));
  // The datasets this caller manages, with their grants: one request for all of them
  // (refused for whoever manages none).
  /** @type {{ ds: Dataset, grants: GrantTerms[] }[]} */
  const owned = [];
  /** @type {OwnedGrants | null} */
  const all = await getJson('/v1/grants').catch(() => null);
  if (all) {
    /** @type {Map<number, GrantTerms[]>} */
    const byDataset = new Map();
    for (const g of all.grants) {
      const list = byDataset.get(g.dataset_id);
      if (list) list.push(g);
      else byDataset.set(g.dataset_id, [g]);
    }
    const mine = state.me?.organisation?.slug;
    for (const ds of state.datasets.values()) {
      if (state.me?.operator || ds.owner === mine) owned.push({ ds, grants: byDataset.get(ds.id) ?? [] });
    }
  }
  const grantsSection = h('section', { 'aria-labelledby': 'h-grants' }, h('h3', { id: 'h-grants' }, `${t('dataset')} & ${t('grants')}`));
  if (!owned.length) grantsSection.append(h('p', {}, t('noOwnedDatasets')));
  for (const { ds, grants } of owned) {
    grantsSection.append(
      h('h4', {}, `${ds.title} (${ds.slug}) · `, h('span', { class: `badge ${ds.classification}` }, ds.classification), ` · ${theme(ds.theme)} · `, license(ds.license)),
      table(
        `${t('grants')}: ${grants.length}`,
        [t('grantee'), t('purpose'), t('contract'), t('minInterval'), t('history'), t('validUntil')],
        grants.map((g) => [orgLabel(state.orgs, g.grantee_org_id), g.purpose, g.contract_ref, g.min_interval_mins ?? t('raw'), g.history_days ?? t('none'), formatTime(g.valid_until)]),
        { class: 'grants' },
      ),
    );
  }

  // Audit log with filters.
  const auditBox = h('div', { class: 'scroll' });
  const dsSelect = h('select', { id: 'audit-dataset' }, h('option', { value: '' }, t('all')), owned.map(({ ds }) => h('option', { value: ds.id }, ds.title)));
  const fromInput = h('input', { type: 'date', id: 'audit-from', value: new Date(Date.now() - 7 * 864e5).toISOString().slice(0, 10) });
  const deniedOnly = h('input', { type: 'checkbox', id: 'audit-denied' });
  async function loadAudit() {
    auditBox.replaceChildren(h('p', {}, t('loading')));
    try {
      const from = fromInput.value ? iso(new Date(`${fromInput.value}T00:00:00`).getTime()) : undefined;
      /** @type {AuditPage} */
      const page = await getJson(`/v1/audit${query({ dataset: dsSelect.value, from, limit: 1000 })}`);
      const records = page.records.filter((r) => !deniedOnly.checked || !r.allowed).reverse();
      auditBox.replaceChildren(
        table(
          `${records.length} ${t('audit')}`,
          [t('time'), t('principal'), t('action'), t('dataset'), t('decision'), t('reason'), t('rows')],
          records.map((r) => [formatTime(r.at), r.principal_name, h('span', { title: r.action }, action(r.action)), r.dataset_id == null ? t('none') : state.datasets.get(r.dataset_id)?.title ?? r.dataset_id, r.allowed ? t('allowed') : t('deniedShort'), r.reason, r.rows_returned]),
          { id: 'audit' },
        ),
      );
    } catch (e) {
      auditBox.replaceChildren(h('p', { class: 'error', role: 'alert' }, problemText(e)));
    }
  }
  const auditSection = h(
    'section',
    { 'aria-labelledby': 'h-audit' },
    h('h3', { id: 'h-audit' }, t('audit')),
    h(
      'form',
      { class: 'filters', onsubmit: (/** @type {SubmitEvent} */ e) => { e.preventDefault(); loadAudit(); } },
      field(t('dataset'), dsSelect),
      field(t('from'), fromInput),
      h('div', { class: 'field check' }, deniedOnly, h('label', { for: 'audit-denied' }, t('onlyDenied'))),
      h('button', { type: 'submit' }, t('filter')),
    ),
    auditBox,
  );

  // Dead letters of the caller's organisation.
  const deadBox = h('div', { class: 'scroll' });
  const deadSection = h('section', { 'aria-labelledby': 'h-dead' }, h('h3', { id: 'h-dead' }, t('deadLetters')), deadBox);
  main.append(grantsSection, auditSection, deadSection);
  if (owned.length) await loadAudit();
  else auditBox.replaceChildren(h('p', {}, t('noOwnedDatasets')));
  try {
    /** @type {DeadLetterPage} */
    const page = await getJson(`/v1/dead-letters${query({ from: iso(Date.now() - 7 * 864e5), limit: 500 })}`);
    deadBox.replaceChildren(
      table(
        `${page.dead_letters.length} ${t('deadLetters')}`,
        [t('received'), t('door'), t('topic'), 'Code', t('reason'), t('payload')],
        page.dead_letters
          .reverse()
          .map((d) => [formatTime(d.received_at), d.door ?? '–', d.mqtt_topic, d.reason_code, d.reason, h('code', {}, (d.payload_text ?? d.payload_base64).slice(0, 200))]),
        { id: 'dead-letters' },
      ),
    );
  } catch (e) {
    deadBox.replaceChildren(h('p', { class: 'error', role: 'alert' }, problemText(e)));
  }
  return null;
}
