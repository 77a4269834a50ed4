// @ts-check
// Onboarding, for an organisation's admins and data owners (the operator
// picks the organisation): its things with their device type, last reading
// and count of rejected messages; registering a thing from a device type;
// importing a CSV or JSON file of things (a dry run shows what would change,
// then the user runs it; a rejected file lists every bad line); and replaying
// rejected messages after the registry was fixed. All through the API.

import { ApiProblem, getJson, query, send } from './api.js';
import { h, field, table } from './dom.js';
import { isoSeconds as iso } from './format.js';
import { formatNumber, formatTime, t, unit } from './i18n.js';
import { orgLabel } from './labels.js';

/** @typedef {import('./main.js').View} View */
/** @typedef {import('./main.js').State} State */
/** @typedef {import('./types/api').components['schemas']['DeviceType']} DeviceType */
/** @typedef {import('./types/api').components['schemas']['DeviceTypes']} DeviceTypes */
/** @typedef {import('./types/api').components['schemas']['ThingSummary']} ThingSummary */
/** @typedef {import('./types/api').components['schemas']['Things']} Things */
/** @typedef {import('./types/api').components['schemas']['ImportReport']} ImportReport */
/** @typedef {import('./types/api').components['schemas']['ReplayReport']} ReplayReport */
/** @typedef {import('./types/api').components['schemas']['ReplayResult']} ReplayResult */
/** @typedef {import('./types/api').components['schemas']['DeadLetterPage']} DeadLetterPage */
/** A bad line of a rejected import (the 422 problem's `errors`). @typedef {import('./types/api').components['schemas']['RowError']} ImportError */

/** @param {unknown} e */
function problemText(e) {
  return e instanceof ApiProblem ? `${e.status}: ${e.detail}` : e instanceof Error ? e.message : String(e);
}

/** @param {unknown} e */
function errorBox(e) {
  return h('p', { class: 'error', role: 'alert' }, problemText(e));
}

/**
 * A number input for a coordinate or a bound; empty means "not given".
 * @param {string} id
 * @param {string} step
 */
function numberInput(id, step) {
  return h('input', { type: 'number', id, step, inputmode: 'decimal' });
}

/** @param {HTMLInputElement} input */
function numberOrNull(input) {
  return input.value.trim() === '' ? null : Number(input.value);
}

/**
 * Whether the caller onboards things: an organisation's admins and data owners, and the operator.
 * @param {State} state
 */
export function mayOnboard(state) {
  const me = state.me;
  return !!me && (me.operator || me.role === 'admin' || me.role === 'data_owner');
}

/** @param {View} view */
export async function renderOnboarding({ state, main }) {
  main.append(h('h2', {}, t('onboarding')));
  const me = state.me;
  if (!me || !mayOnboard(state)) {
    main.append(h('p', {}, t('onboardingNotAllowed')));
    return null;
  }
  main.append(h('p', {}, t('onboardingIntro')));
  const body = h('div', {});
  if (me.operator) {
    const orgs = [...state.orgs.bySlug.values()].sort((a, b) => a.name.localeCompare(b.name));
    const picker = h(
      'select',
      { id: 'onboarding-org' },
      h('option', { value: '' }, t('chooseOrg')),
      orgs.map((o) => h('option', { value: o.slug, selected: o.slug === state.onboardingOrg }, o.name)),
    );
    picker.addEventListener('change', () => {
      state.onboardingOrg = picker.value;
      show(picker.value);
    });
    main.append(h('form', { class: 'filters', onsubmit: (/** @type {SubmitEvent} */ e) => e.preventDefault() }, field(t('organisation'), picker)));
  }
  main.append(body);

  /** @param {string} org */
  async function show(org) {
    body.replaceChildren();
    if (!org) return;
    body.dataset.org = org;
    await renderOrganisation(state, body, org);
  }
  await show(me.operator ? state.onboardingOrg : me.organisation?.slug || '');
  return null;
}

/**
 * The onboarding of one organisation: things, registration, import, replay.
 * @param {State} state
 * @param {HTMLElement} body
 * @param {string} org
 */
async function renderOrganisation(state, body, org) {
  const thingsBox = h('div', { class: 'scroll', id: 'things-box' });
  /** @type {ThingSummary[]} */
  let things = [];
  /** @type {DeviceType[]} */
  let types = [];
  const replay = replaySection(org, () => things, reloadThings);

  async function reloadThings() {
    try {
      /** @type {Things} */
      const list = await getJson(`/v1/admin/things${query({ org })}`);
      things = list.things.sort((a, b) => a.slug.localeCompare(b.slug));
      thingsBox.replaceChildren(thingsTable(things, types));
    } catch (e) {
      thingsBox.replaceChildren(errorBox(e));
    }
    replay.refreshThings();
  }

  try {
    /** @type {DeviceTypes} */
    const list = await getJson(`/v1/admin/device-types${query({ org })}`);
    types = list.device_types.filter((d) => d.org === org);
  } catch (e) {
    body.append(errorBox(e));
  }
  body.append(
    h('section', { 'aria-labelledby': 'h-things' }, h('h3', { id: 'h-things' }, `${t('things')} · ${orgLabel(state.orgs, org)}`), thingsBox),
    registerSection(org, types, reloadThings),
    importSection(org, reloadThings),
    replay.section,
  );
  await reloadThings();
}

/**
 * The things with their device type by name.
 * @param {ThingSummary[]} things
 * @param {DeviceType[]} types
 */
function thingsTable(things, types) {
  const typeName = new Map(types.map((d) => [d.slug, d.name]));
  return table(
    `${things.length} ${t('things')}`,
    [t('slug'), t('name'), t('deviceType'), t('datastreams'), t('lastReading'), t('rejectedCount')],
    things.map((x) =>
      h(
        'tr',
        { dataset: { slug: x.slug, deadLetters: x.dead_letters, type: x.type ?? '' } },
        h('td', {}, x.slug),
        h('td', {}, x.name),
        h('td', {}, x.type ? typeName.get(x.type) ?? x.type : t('noType')),
        h('td', { class: 'num' }, formatNumber(x.datastreams)),
        h('td', {}, formatTime(x.last_reading_at)),
        h('td', { class: 'num dead-letters' }, formatNumber(x.dead_letters)),
      ),
    ),
    { id: 'onboarding-things' },
  );
}

/**
 * A device type's properties: name, unit as people write it, plausible range.
 * @param {DeviceType | undefined} type
 */
function typeProperties(type) {
  if (!type) return h('p', {}, t('noType'));
  const range = (/** @type {number | null | undefined} */ min, /** @type {number | null | undefined} */ max) =>
    min == null && max == null ? t('none') : `${formatNumber(min)} … ${formatNumber(max)}`;
  return table(
    `${type.name}: ${t('properties')}`,
    [t('name'), t('unit'), t('plausibleRange')],
    type.properties.map((p) => [`${p.name} (${p.property})`, unit(p.unit), range(p.min, p.max)]),
    { id: 'type-properties' },
  );
}

/**
 * Registering one thing from a device type.
 * @param {string} org
 * @param {DeviceType[]} types
 * @param {() => Promise<void>} reload
 */
function registerSection(org, types, reload) {
  const type = h(
    'select',
    { id: 'register-type' },
    h('option', { value: '' }, t('noType')),
    types.map((d) => h('option', { value: d.slug }, `${d.name} (${d.slug})`)),
  );
  const slug = h('input', { id: 'register-slug', required: true, pattern: '[a-z0-9][a-z0-9_\\-]*', maxlength: 64, autocomplete: 'off' });
  const name = h('input', { id: 'register-name', required: true, autocomplete: 'off' });
  const latitude = numberInput('register-latitude', 'any');
  const longitude = numberInput('register-longitude', 'any');
  const external = h('input', { id: 'register-external-id', autocomplete: 'off' });
  const properties = h('div', { class: 'scroll' });
  const status = h('div', { 'aria-live': 'polite', id: 'register-status' });
  const showType = () => properties.replaceChildren(typeProperties(types.find((d) => d.slug === type.value)));
  type.addEventListener('change', showType);
  showType();
  const form = h(
    'form',
    {
      class: 'filters',
      id: 'register-form',
      onsubmit: async (/** @type {SubmitEvent} */ e) => {
        e.preventDefault();
        status.replaceChildren(h('p', {}, t('loading')));
        try {
          const created = await send('POST', '/v1/admin/things', {
            org,
            slug: slug.value.trim(),
            name: name.value.trim(),
            latitude: numberOrNull(latitude),
            longitude: numberOrNull(longitude),
            external_id: external.value.trim() || null,
            type: type.value || null,
          });
          status.replaceChildren(h('p', { class: 'ok' }, `${t('registered')}: ${created.name} (${created.slug})`));
          for (const input of [slug, name, latitude, longitude, external]) input.value = '';
          await reload();
        } catch (err) {
          status.replaceChildren(errorBox(err));
        }
      },
    },
    field(t('deviceType'), type),
    field(t('slug'), slug),
    field(t('name'), name),
    field(t('latitude'), latitude),
    field(t('longitude'), longitude),
    field(t('externalId'), external),
    h('button', { type: 'submit' }, t('register')),
  );
  return h('section', { 'aria-labelledby': 'h-register' }, h('h3', { id: 'h-register' }, t('registerThing')), form, properties, status);
}

/**
 * What an import would do or did: counts and the changes line by line.
 * @param {ImportReport} report
 */
function importReport(report) {
  const counts = `${formatNumber(report.things_created)} ${t('created')}, ${formatNumber(report.things_changed)} ${t('changed')}, `
    + `${formatNumber(report.things_unchanged)} ${t('unchanged')}, ${formatNumber(report.datastreams_created)} ${t('newDatastreams')}`;
  return h(
    'div',
    { id: 'import-report', dataset: { dryRun: String(report.dry_run), created: report.things_created, changed: report.things_changed } },
    h('p', { class: report.dry_run ? 'notice' : 'ok' }, report.dry_run ? t('importPreview') : t('importDone')),
    h('p', { id: 'import-counts' }, counts),
    table(
      null,
      [t('line'), t('slug'), t('changeKind'), t('fields'), t('newDatastreams')],
      report.changes
        .filter((c) => c.action !== 'unchanged')
        .map((c) => h('tr', { dataset: { action: c.action } }, [c.line, c.slug, changeKind(c.action), c.fields.join(', '), c.datastreams.join(', ')].map((x) => h('td', {}, x)))),
      { id: 'import-diff' },
    ),
  );
}

/** @param {ImportReport['changes'][number]['action']} action */
function changeKind(action) {
  return action === 'create' ? t('changeCreate') : action === 'change' ? t('changeChange') : t('unchanged');
}

/** @param {ReplayResult | null | undefined} result */
function replayResult(result) {
  return result === 'stored' ? t('resultStored') : result === 'partial' ? t('resultPartial') : result === 'rejected' ? t('resultRejected') : t('none');
}

/**
 * Every bad line of a rejected file.
 * @param {ApiProblem} e
 */
function importErrors(e) {
  /** @type {ImportError[]} */
  const errors = Array.isArray(e.body.errors) ? e.body.errors : [];
  return h(
    'div',
    { role: 'alert' },
    h('p', { class: 'error' }, `${t('importRejected')} ${e.detail}`),
    table(
      `${errors.length} ${t('badLines')}`,
      [t('line'), t('column'), t('reason')],
      errors.map((x) => [x.line, x.column ?? t('none'), x.reason]),
      { id: 'import-errors' },
    ),
  );
}

/**
 * Uploading a CSV or JSON file of things: a dry run first, then the import on confirmation.
 * @param {string} org
 * @param {() => Promise<void>} reload
 */
function importSection(org, reload) {
  const file = h('input', { type: 'file', id: 'import-file', accept: '.csv,.json,text/csv,application/json' });
  const result = h('div', { 'aria-live': 'polite', id: 'import-result' });
  const run = h('button', { type: 'button', id: 'import-run', hidden: true }, t('runImport'));
  /** @type {{ text: string, type: string } | null} */
  let pending = null;

  /** @param {boolean} dryRun */
  async function upload(dryRun) {
    if (!pending) return;
    result.replaceChildren(h('p', {}, t('loading')));
    try {
      /** @type {ImportReport} */
      const report = await send('POST', `/v1/admin/things/import${query({ org, dry_run: String(dryRun) })}`, pending.text, pending.type);
      result.replaceChildren(importReport(report));
      run.hidden = !dryRun || report.things_created + report.things_changed === 0;
      if (!dryRun) {
        pending = null;
        await reload();
      }
    } catch (e) {
      run.hidden = true;
      result.replaceChildren(e instanceof ApiProblem && e.status === 422 ? importErrors(e) : errorBox(e));
    }
  }

  const form = h(
    'form',
    {
      class: 'filters',
      id: 'import-form',
      onsubmit: async (/** @type {SubmitEvent} */ e) => {
        e.preventDefault();
        const chosen = file.files?.[0];
        if (!chosen) return;
        const json = chosen.name.toLowerCase().endsWith('.json') || chosen.type === 'application/json';
        pending = { text: await chosen.text(), type: json ? 'application/json' : 'text/csv' };
        await upload(true);
      },
    },
    field(t('importFile'), file),
    h('button', { type: 'submit', id: 'import-dry-run' }, t('dryRun')),
  );
  run.addEventListener('click', () => upload(false));
  return h(
    'section',
    { 'aria-labelledby': 'h-import' },
    h('h3', { id: 'h-import' }, t('importTitle')),
    h('p', {}, t('importIntro')),
    form,
    result,
    run,
  );
}

/**
 * Replaying an organisation's rejected messages by reason, thing and time: a preview of
 * what the filter selects, then the replay and its report.
 * @param {string} org
 * @param {() => ThingSummary[]} things
 * @param {() => Promise<void>} reload
 */
function replaySection(org, things, reload) {
  const reason = h('input', { id: 'replay-reason', list: 'replay-reasons', autocomplete: 'off' });
  const reasons = h('datalist', { id: 'replay-reasons' });
  const thing = h('select', { id: 'replay-thing' });
  const since = h('input', { type: 'date', id: 'replay-since', value: new Date(Date.now() - 30 * 864e5).toISOString().slice(0, 10) });
  const previewBox = h('div', { class: 'scroll', id: 'replay-preview-box' });
  const report = h('div', { 'aria-live': 'polite', id: 'replay-result' });
  const replayButton = h('button', { type: 'button', id: 'replay-run' }, t('replay'));

  const filter = () => ({
    org,
    reason: reason.value.trim() || undefined,
    thing: thing.value || undefined,
    from: since.value ? iso(new Date(`${since.value}T00:00:00`).getTime()) : undefined,
  });

  async function preview() {
    previewBox.replaceChildren(h('p', {}, t('loading')));
    try {
      /** @type {DeadLetterPage} */
      const page = await getJson(`/v1/dead-letters${query({ ...filter(), limit: 1000 })}`);
      const rows = page.dead_letters;
      const codes = new Set(rows.map((d) => d.replay_reason_code || d.reason_code));
      if (!reason.value) reasons.replaceChildren(...[...codes].sort().map((c) => h('option', { value: c })));
      previewBox.replaceChildren(
        table(
          `${rows.length} ${t('deadLetters')}`,
          [t('received'), t('topic'), 'Code', t('reason'), t('lastReplay')],
          rows.map((d) =>
            h(
              'tr',
              { dataset: { id: d.id, result: d.replay_result ?? '' } },
              [
                formatTime(d.received_at),
                d.mqtt_topic,
                d.replay_reason_code || d.reason_code,
                d.reason,
                d.replayed_at ? `${replayResult(d.replay_result)} (${formatTime(d.replayed_at)})` : t('none'),
              ].map((x) => h('td', {}, x)),
            ),
          ),
          { id: 'replay-preview' },
        ),
      );
    } catch (e) {
      previewBox.replaceChildren(errorBox(e));
    }
  }

  replayButton.addEventListener('click', async () => {
    report.replaceChildren(h('p', {}, t('loading')));
    replayButton.disabled = true;
    try {
      /** @type {ReplayReport} */
      const done = await send('POST', '/v1/dead-letters/replay', filter());
      report.replaceChildren(
        h(
          'dl',
          { class: 'facts', id: 'replay-report', dataset: { selected: done.selected, stored: done.stored, stillRejected: done.still_rejected } },
          h('dt', {}, t('selectedCount')), h('dd', {}, formatNumber(done.selected)),
          h('dt', {}, t('storedCount')), h('dd', {}, formatNumber(done.stored)),
          h('dt', {}, t('stillRejected')), h('dd', {}, formatNumber(done.still_rejected)),
          h('dt', {}, t('readingsStored')), h('dd', {}, formatNumber(done.readings_stored)),
        ),
      );
      await reload();
    } catch (e) {
      report.replaceChildren(errorBox(e));
    } finally {
      replayButton.disabled = false;
    }
  });

  const section = h(
    'section',
    { 'aria-labelledby': 'h-replay' },
    h('h3', { id: 'h-replay' }, t('replayTitle')),
    h('p', {}, t('replayIntro')),
    h(
      'form',
      { class: 'filters', id: 'replay-form', onsubmit: (/** @type {SubmitEvent} */ e) => { e.preventDefault(); preview(); } },
      field(t('reasonCode'), reason),
      reasons,
      field(t('thing'), thing),
      field(t('since'), since),
      h('button', { type: 'submit', id: 'replay-preview-button' }, t('preview')),
      replayButton,
    ),
    report,
    previewBox,
  );
  return {
    section,
    /** Fills the thing filter from the current things (keeping the choice) and shows the preview. */
    refreshThings() {
      const chosen = thing.value;
      thing.replaceChildren(
        h('option', { value: '' }, t('all')),
        ...things().map((x) => h('option', { value: x.slug, selected: x.slug === chosen }, `${x.name} (${x.slug})`)),
      );
      preview();
    },
  };
}
