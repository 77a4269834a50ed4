// @ts-check
// Alerts, for every signed-in caller: its rules with their state, firing
// first (`GET /v1/alerts`, refreshed while the view is open), each with when
// it fired and the value, its events and delivery log on demand; and the rule
// editor (create, change, delete) for the datastreams the caller may read. A
// refusal is shown in words (the policy's code through labels.js) with the
// API's reason; a new webhook's secret is shown once.

import { ApiProblem, getJson, query, send, signedIn } from './api.js';
import { h, field, table } from './dom.js';
import { formatTime, formatValue, language, t, unit as unitName } from './i18n.js';
import { denialLabel } from './labels.js';
import { KINDS, RULE_INTERVALS, conditionText, firingFirst, intervalText, ruleBody, ruleForm, statusLabel } from './rules.js';

/** @typedef {import('./main.js').View} View */
/** @typedef {import('./rules.js').Rule} Rule */
/** @typedef {import('./rules.js').RuleForm} RuleForm */
/** @typedef {import('./types/api').components['schemas']['AlertList']} AlertList */
/** @typedef {import('./types/api').components['schemas']['RuleWithSecret']} CreatedRule */
/** @typedef {import('./types/api').components['schemas']['EventList']} AlertEvents */
/** @typedef {import('./types/api').components['schemas']['DeliveryList']} Deliveries */
/** @typedef {import('./types/api').components['schemas']['DatastreamList']} DatastreamList */
/** @typedef {import('./types/api').components['schemas']['DatastreamView']} DatastreamView */

/** The alerts are asked again this often while the view is open. */
const REFRESH_MS = 5000;

/**
 * A refusal in words: the policy's reason for a 403, what to fix for a 400/422, the API's detail.
 * @param {unknown} e
 */
export function refusalText(e) {
  if (!(e instanceof ApiProblem)) return e instanceof Error ? e.message : String(e);
  const words = e.status === 403 ? denialLabel(e.body.code, language()) : '';
  const lead = e.status === 403 ? t('ruleDenied') : e.status === 400 || e.status === 422 ? t('ruleRejected') : e.status === 404 ? t('ruleNotFound') : `${e.status}`;
  return [lead, words, e.detail].filter(Boolean).join(' ');
}

/**
 * @param {string} text
 * @param {string} [id]
 */
function errorBox(text, id) {
  return h('p', { class: 'error', role: 'alert', id }, text);
}

/** @param {View} view */
export async function renderAlerts({ state, main, showMessage }) {
  main.append(h('h2', {}, t('alerts')));
  if (!signedIn()) {
    main.append(h('p', {}, t('alertsSignIn')));
    return null;
  }
  main.append(h('p', {}, t('alertsIntro')));
  /** @type {DatastreamView[]} */
  let readable = [];
  const editorBox = h('section', { 'aria-labelledby': 'h-rule-editor', id: 'rule-editor', hidden: true });
  const secretBox = h('div', { id: 'webhook-secret', class: 'secret', hidden: true });
  const listBox = h('div', { id: 'alerts-box' });
  const count = h('p', { class: 'count', 'aria-live': 'polite', id: 'alerts-count' });
  const newButton = h('button', { type: 'button', id: 'rule-new' }, t('ruleNew'));
  const refreshButton = h('button', { type: 'button', id: 'alerts-refresh' }, t('refresh'));
  main.append(h('div', { class: 'actions' }, newButton, refreshButton), secretBox, editorBox, count, listBox);

  /** @type {Map<number, 'events' | 'deliveries'>} rules whose events or deliveries are open */
  const open = new Map();
  /** @type {Rule[]} */
  let rules = [];
  let shown = '';
  let generation = 0;

  /** @param {number} id */
  const streamName = (id) => {
    const d = state.streams.get(id) || readable.find((r) => r.id === id);
    return d ? `${d.name} · ${('thing_name' in d && d.thing_name) || d.thing}` : `#${id}`;
  };
  /** @param {number} id */
  const streamUnit = (id) => (state.streams.get(id) || readable.find((r) => r.id === id))?.unit;

  async function reload() {
    const mine = ++generation;
    try {
      /** @type {AlertList} */
      const list = await getJson('/v1/alerts');
      if (mine !== generation) return;
      // Unchanged alerts are not drawn again: focus and open logs stay as they are.
      const text = JSON.stringify(list.alerts);
      if (text === shown) return;
      shown = text;
      rules = firingFirst(list.alerts);
      draw();
    } catch (e) {
      if (mine !== generation) return;
      listBox.replaceChildren(errorBox(refusalText(e)));
    }
  }

  function draw() {
    const firing = rules.filter((r) => r.state.status === 'firing').length;
    count.textContent = `${rules.length} ${t('rules')} · ${firing} ${t('firingCount')}`;
    if (!rules.length) {
      listBox.replaceChildren(h('p', {}, t('noRules')));
      return;
    }
    // Keyboard focus on a rule's button stays there when the list is drawn again.
    const focused = document.activeElement instanceof HTMLElement && listBox.contains(document.activeElement) ? document.activeElement : null;
    const focusRule = focused?.closest('li[data-rule]')?.getAttribute('data-rule');
    const focusClass = focused?.className;
    listBox.replaceChildren(h('ul', { class: 'alerts', id: 'alerts' }, rules.map(ruleCard)));
    if (focusRule && focusClass) /** @type {HTMLElement | null} */ (listBox.querySelector(`li[data-rule="${focusRule}"] .${focusClass.split(' ')[0]}`))?.focus();
    for (const [id, what] of open) showLog(id, what);
  }

  /** @param {Rule} rule */
  function ruleCard(rule) {
    const s = rule.state;
    const u = streamUnit(rule.datastream);
    const lang = language();
    const log = h('div', { class: 'rule-log', id: `rule-log-${rule.id}` });
    return h(
      'li',
      { class: `alert state-${s.status}`, dataset: { rule: rule.id, status: s.status } },
      h(
        'h3',
        {},
        h('span', { class: `badge status-${s.status}` }, statusLabel(s.status, lang)),
        ' ',
        rule.name,
        rule.enabled ? '' : ` (${t('ruleDisabled')})`,
      ),
      h(
        'dl',
        { class: 'facts' },
        h('dt', {}, t('datastream')), h('dd', {}, h('a', { href: `#/datastream/${rule.datastream}` }, streamName(rule.datastream))),
        h('dt', {}, t('condition')), h('dd', { class: 'condition' }, conditionText(rule, lang, unitName(u))),
        s.status === 'pending' ? [h('dt', {}, t('pendingSince')), h('dd', {}, formatTime(s.since))] : [],
        s.fired_at ? [h('dt', {}, t('firedAt')), h('dd', { class: 'fired' }, `${formatTime(s.fired_at)}${s.fired_value != null ? ` · ${formatValue(s.fired_value, u)}` : ''}`)] : [],
        s.resolved_at ? [h('dt', {}, t('resolvedAt')), h('dd', {}, `${formatTime(s.resolved_at)}${s.resolved_value != null ? ` · ${formatValue(s.resolved_value, u)}` : ''}`)] : [],
        h('dt', {}, t('lastValue')), h('dd', {}, s.last_value != null ? `${formatValue(s.last_value, u)} (${formatTime(s.last_reading_at)})` : t('none')),
        h('dt', {}, t('notifies')),
        h('dd', {}, [rule.webhook ? `${t('webhook')}: ${rule.webhook.url}` : '', ...rule.emails].filter(Boolean).join(', ') || t('none')),
      ),
      h(
        'div',
        { class: 'actions' },
        h('button', { type: 'button', class: 'rule-events', 'aria-expanded': open.get(rule.id) === 'events' ? 'true' : 'false', 'aria-controls': log.id, onclick: () => toggle(rule.id, 'events') }, t('events')),
        h('button', { type: 'button', class: 'rule-deliveries', 'aria-expanded': open.get(rule.id) === 'deliveries' ? 'true' : 'false', 'aria-controls': log.id, onclick: () => toggle(rule.id, 'deliveries') }, t('deliveries')),
        h('button', { type: 'button', class: 'rule-edit', onclick: () => edit(rule) }, t('edit')),
        h('button', { type: 'button', class: 'rule-delete', onclick: () => remove(rule) }, t('delete')),
      ),
      log,
    );
  }

  /**
   * @param {number} id
   * @param {'events' | 'deliveries'} what
   */
  function toggle(id, what) {
    if (open.get(id) === what) open.delete(id);
    else open.set(id, what);
    draw();
  }

  /**
   * Fills a rule's log with its events or its deliveries and their attempts.
   * @param {number} id
   * @param {'events' | 'deliveries'} what
   */
  async function showLog(id, what) {
    const box = document.getElementById(`rule-log-${id}`);
    if (!box) return;
    box.replaceChildren(h('p', {}, t('loading')));
    const u = streamUnit(rules.find((r) => r.id === id)?.datastream ?? 0);
    try {
      if (what === 'events') {
        /** @type {AlertEvents} */
        const page = await getJson(`/v1/alerts/rules/${id}/events${query({ limit: 50 })}`);
        box.replaceChildren(
          table(
            `${page.events.length} ${t('events')}`,
            [t('time'), t('status'), t('value'), t('recorded')],
            page.events.map((ev) =>
              h('tr', { dataset: { state: ev.state } }, [formatTime(ev.at), statusLabel(ev.state, language()), ev.value != null ? formatValue(ev.value, u) : t('none'), formatTime(ev.created_at)].map((c) => h('td', {}, c))),
            ),
            { class: 'rule-events-table' },
          ),
        );
      } else {
        /** @type {Deliveries} */
        const page = await getJson(`/v1/alerts/rules/${id}/deliveries${query({ limit: 50 })}`);
        box.replaceChildren(
          table(
            `${page.deliveries.length} ${t('deliveries')}`,
            [t('channel'), t('target'), t('status'), t('attempts')],
            page.deliveries.map((d) =>
              h(
                'tr',
                { dataset: { status: d.status, channel: d.channel } },
                [
                  d.channel === 'email' ? t('email') : t('webhook'),
                  d.target,
                  deliveryStatus(d.status),
                  h('ol', { class: 'attempts' }, d.attempts.map((a) => h('li', {}, `${formatTime(a.at)}: ${deliveryStatus(a.outcome)}${a.http_status != null ? ` (HTTP ${a.http_status})` : ''}${a.error ? ` – ${a.error}` : ''}`))),
                ].map((c) => h('td', {}, c)),
              ),
            ),
            { class: 'rule-deliveries-table' },
          ),
        );
      }
    } catch (e) {
      box.replaceChildren(errorBox(refusalText(e)));
    }
  }

  /** @param {Rule} rule */
  async function remove(rule) {
    if (!window.confirm(`${t('deleteRule')} „${rule.name}“?`)) return;
    try {
      await send('DELETE', `/v1/alerts/rules/${rule.id}`, undefined);
      showMessage('');
      open.delete(rule.id);
      await reload();
    } catch (e) {
      showMessage(refusalText(e));
    }
  }

  async function loadReadable() {
    if (readable.length) return;
    /** @type {DatastreamList} */
    const list = await getJson('/v1/datastreams');
    readable = list.datastreams.sort((a, b) => a.name.localeCompare(b.name) || a.id - b.id);
  }

  /** @param {Rule | null} rule */
  async function edit(rule) {
    secretBox.hidden = true;
    try {
      await loadReadable();
    } catch (e) {
      editorBox.hidden = false;
      editorBox.replaceChildren(errorBox(refusalText(e)));
      return;
    }
    editorBox.hidden = false;
    editorBox.replaceChildren(...editor(rule));
    /** @type {HTMLElement | null} */ (editorBox.querySelector('#rule-name'))?.focus();
  }

  /**
   * The editor's heading and form for a new rule or a change of `rule`.
   * @param {Rule | null} rule
   */
  function editor(rule) {
    /** @type {RuleForm} */
    const initial = rule ? ruleForm(rule) : {
      name: '', datastream: '', kind: 'above', threshold: '', forMinutes: '0', hysteresis: '0', aggregate: '', webhook: '', emails: '', language: language(), enabled: true,
    };
    const name = h('input', { id: 'rule-name', required: true, maxlength: 200, autocomplete: 'off', value: initial.name });
    const datastream = h(
      'select',
      { id: 'rule-datastream', required: true },
      h('option', { value: '' }, t('chooseDatastream')),
      readable.map((d) => h('option', { value: d.id, selected: String(d.id) === initial.datastream }, `${d.name} · ${d.thing} (${d.org})`)),
    );
    const kind = h('select', { id: 'rule-kind' }, KINDS.map((k) => h('option', { value: k, selected: k === initial.kind }, t(`kind_${k}`))));
    const threshold = h('input', { id: 'rule-threshold', type: 'number', step: 'any', inputmode: 'decimal', value: initial.threshold });
    const forMinutes = h('input', { id: 'rule-for', type: 'number', min: 0, step: 1, inputmode: 'numeric', value: initial.forMinutes });
    const hysteresis = h('input', { id: 'rule-hysteresis', type: 'number', min: 0, step: 'any', inputmode: 'decimal', value: initial.hysteresis });
    const aggregate = h(
      'select',
      { id: 'rule-aggregate' },
      h('option', { value: '' }, t('raw')),
      RULE_INTERVALS.map((i) => h('option', { value: i, selected: i === initial.aggregate }, `${t('averageOver')} ${intervalText(i, language())}`)),
    );
    const webhook = h('input', { id: 'rule-webhook', type: 'url', autocomplete: 'off', value: initial.webhook, placeholder: 'https://' });
    const emails = h('input', { id: 'rule-emails', type: 'text', autocomplete: 'off', value: initial.emails });
    const lang = h('select', { id: 'rule-language' }, h('option', { value: 'de', selected: initial.language === 'de' }, 'Deutsch'), h('option', { value: 'en', selected: initial.language === 'en', lang: 'en' }, 'English'));
    const enabled = h('input', { type: 'checkbox', id: 'rule-enabled' });
    enabled.checked = initial.enabled;
    const thresholdField = field(t('threshold'), threshold);
    const forField = field(t('forMinutes'), forMinutes);
    const hysteresisField = field(t('hysteresis'), hysteresis);
    const aggregateField = field(t('resolution'), aggregate);
    const status = h('div', { id: 'rule-status', 'aria-live': 'polite' });
    const adapt = () => {
      const k = kind.value;
      const silent = k === 'silent';
      thresholdField.hidden = silent;
      hysteresisField.hidden = silent;
      aggregateField.hidden = silent;
      /** @type {HTMLElement} */ (thresholdField.querySelector('label')).textContent = k === 'rate' ? t('perMinute') : t('threshold');
      /** @type {HTMLElement} */ (forField.querySelector('label')).textContent = silent ? t('silentMinutes') : t('forMinutes');
    };
    kind.addEventListener('change', adapt);
    adapt();
    const submit = async (/** @type {SubmitEvent} */ e) => {
      e.preventDefault();
      status.replaceChildren();
      const result = ruleBody({
        name: name.value, datastream: datastream.value, kind: kind.value, threshold: threshold.value, forMinutes: forMinutes.value,
        hysteresis: hysteresis.value, aggregate: aggregate.value, webhook: webhook.value, emails: emails.value, language: lang.value, enabled: enabled.checked,
      });
      if (result.error !== undefined) {
        status.replaceChildren(errorBox(t(result.error), 'rule-error'));
        return;
      }
      try {
        // A new rule with a webhook, or a rule that gets its first webhook, comes with its secret.
        /** @type {CreatedRule} */
        const saved = rule ? await send('PATCH', `/v1/alerts/rules/${rule.id}`, result.body) : await send('POST', '/v1/alerts/rules', result.body);
        showSecret(saved);
        editorBox.hidden = true;
        editorBox.replaceChildren();
        await reload();
      } catch (err) {
        status.replaceChildren(errorBox(refusalText(err), 'rule-error'));
      }
    };
    return [
      h('h3', { id: 'h-rule-editor' }, rule ? `${t('ruleEdit')}: ${rule.name}` : t('ruleNew')),
      h(
        'form',
        { class: 'rule-form', id: 'rule-form', novalidate: true, onsubmit: submit },
        h(
          'fieldset',
          {},
          h('legend', {}, t('ruleWhat')),
          field(t('name'), name),
          field(t('datastream'), datastream),
          field(t('condition'), kind),
          thresholdField,
          forField,
          hysteresisField,
          aggregateField,
        ),
        h(
          'fieldset',
          {},
          h('legend', {}, t('ruleWho')),
          field(t('webhookUrl'), webhook),
          field(t('emailsField'), emails),
          field(t('emailLanguage'), lang),
          h('div', { class: 'field check' }, enabled, h('label', { for: 'rule-enabled' }, t('ruleEnabled'))),
        ),
        status,
        h(
          'div',
          { class: 'actions' },
          h('button', { type: 'submit', id: 'rule-save' }, t('save')),
          h('button', { type: 'button', id: 'rule-cancel', onclick: () => { editorBox.hidden = true; editorBox.replaceChildren(); } }, t('cancel')),
        ),
      ),
    ];
  }

  /**
   * A new rule's webhook secret, shown this once.
   * @param {CreatedRule} created
   */
  function showSecret(created) {
    if (!created.webhook_secret) {
      secretBox.hidden = true;
      return;
    }
    secretBox.hidden = false;
    secretBox.replaceChildren(
      h('p', {}, h('strong', {}, `${t('webhookSecret')} („${created.name}“): `), h('code', { id: 'webhook-secret-value' }, created.webhook_secret)),
      h('p', {}, t('webhookSecretOnce')),
      h('button', { type: 'button', onclick: () => { secretBox.hidden = true; secretBox.replaceChildren(); } }, t('secretNoted')),
    );
  }

  newButton.addEventListener('click', () => edit(null));
  refreshButton.addEventListener('click', () => reload());
  await reload();
  const timer = setInterval(reload, REFRESH_MS);
  return () => {
    generation++;
    clearInterval(timer);
  };
}

/** @param {string} status a delivery's status or an attempt's outcome */
function deliveryStatus(status) {
  switch (status) {
    case 'pending': return t('deliveryPending');
    case 'delivered': return t('deliveryDelivered');
    case 'failed': return t('deliveryFailed');
    case 'retry': return t('deliveryRetry');
    default: return status;
  }
}
