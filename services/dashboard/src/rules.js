// @ts-check
// Alert rules as people read and write them: a rule's condition as a
// sentence, its state's words, the order of the alerts view (firing first)
// and the editor's form values turned into the API's rule body. No DOM and
// the language passed in, so test/rules.test.js checks the wording and the
// checks on their own; alerts.js applies them.

import { formatNumber, localeOf, withUnit } from './format.js';

/** @typedef {import('./messages.js').Language} Language */
/** @typedef {import('./types/api').components['schemas']['Rule']} Rule */
/** @typedef {import('./types/api').components['schemas']['RuleState']} RuleState */
/** @typedef {import('./types/api').components['schemas']['Condition']} Condition */
/** @typedef {import('./types/api').components['schemas']['AlertStatus']} AlertStatus */

/** The condition kinds of a rule, in the editor's order. */
export const KINDS = /** @type {const} */ (['above', 'below', 'silent', 'rate']);
/** The aggregate intervals a rule may watch (the API takes 1 minute to 1 day). */
export const RULE_INTERVALS = /** @type {const} */ (['1m', '5m', '15m', '30m', '1h', '3h', '6h', '12h', '1d']);

/**
 * Firing first, then pending, then resolved, then ok.
 * @type {Record<string, number>}
 */
const STATUS_RANK = { firing: 0, pending: 1, resolved: 2, ok: 3 };

/**
 * When a rule's state last changed: its pending or firing start, its resolution, else the rule's last change.
 * @param {Pick<Rule, 'state' | 'updated_at'>} rule
 */
export function changedAt(rule) {
  const s = rule.state;
  const times = [s.since, s.fired_at, s.resolved_at].filter((x) => !!x).map((x) => Date.parse(/** @type {string} */ (x)));
  return times.length ? Math.max(...times) : Date.parse(rule.updated_at);
}

/**
 * The alerts view's order: firing, pending, resolved, ok; within each the newest change first, then by id.
 * @template {Pick<Rule, 'id' | 'state' | 'updated_at'>} R
 * @param {R[]} rules
 * @returns {R[]}
 */
export function firingFirst(rules) {
  return [...rules].sort(
    (a, b) =>
      (STATUS_RANK[a.state.status] ?? 9) - (STATUS_RANK[b.state.status] ?? 9) || changedAt(b) - changedAt(a) || a.id - b.id,
  );
}

/** @type {Record<string, { de: string, en: string }>} */
const STATUS_WORDS = {
  ok: { de: 'in Ordnung', en: 'ok' },
  pending: { de: 'Bedingung erfüllt, wartet', en: 'condition met, waiting' },
  firing: { de: 'ausgelöst', en: 'firing' },
  resolved: { de: 'entwarnt', en: 'resolved' },
};

/**
 * A rule's state in words; an unknown one as it is.
 * @param {string} status
 * @param {Language} lang
 */
export function statusLabel(status, lang) {
  return Object.hasOwn(STATUS_WORDS, status) ? STATUS_WORDS[status][lang] : status;
}

/**
 * An aggregate interval (`15m`, `1h`, `1d`, `90s`) in words.
 * @param {string} interval
 * @param {Language} lang
 */
export function intervalText(interval, lang) {
  const m = /^(\d+)([smhd])$/.exec(interval);
  if (!m) return interval;
  const n = Number(m[1]);
  /** @type {Record<string, [string, string, string, string]>} */
  const words = { s: ['Sek.', 'Sek.', 's', 's'], m: ['Min.', 'Min.', 'min', 'min'], h: ['Std.', 'Std.', 'hour', 'hours'], d: ['Tag', 'Tage', 'day', 'days'] };
  const [deOne, deMany, enOne, enMany] = words[m[2]];
  return lang === 'de' ? `${n} ${n === 1 ? deOne : deMany}` : `${n} ${n === 1 ? enOne : enMany}`;
}

/**
 * Minutes in words (`90` → `90 Min.` / `90 min`).
 * @param {number} minutes
 * @param {Language} lang
 */
function minutesText(minutes, lang) {
  return `${formatNumber(minutes, localeOf(lang), '0')} ${lang === 'de' ? 'Min.' : 'min'}`;
}

/**
 * A rule's condition as a sentence: what it watches, how long, when it clears.
 * @param {Pick<Rule, 'condition' | 'for_minutes' | 'hysteresis' | 'aggregate'>} rule
 * @param {Language} lang
 * @param {string} [unit] the datastream's unit as people write it
 */
export function conditionText(rule, lang, unit = '') {
  const locale = localeOf(lang);
  const num = (/** @type {number} */ v) => withUnit(formatNumber(v, locale, '—'), unit);
  const de = lang === 'de';
  const c = rule.condition;
  if (c.kind === 'silent') {
    return de ? `kein Messwert seit ${minutesText(rule.for_minutes, lang)}` : `no reading for ${minutesText(rule.for_minutes, lang)}`;
  }
  const subject = rule.aggregate
    ? de ? `Mittel über ${intervalText(rule.aggregate, lang)}` : `${intervalText(rule.aggregate, lang)} average`
    : de ? 'Wert' : 'value';
  const perMinute = de ? '/Min.' : '/min';
  /** @type {string} */
  let text;
  /** @type {number | null} */
  let clears = null;
  if (c.kind === 'above') {
    text = de ? `${subject} über ${num(c.threshold)}` : `${subject} above ${num(c.threshold)}`;
    if (rule.hysteresis > 0) clears = c.threshold - rule.hysteresis;
  } else if (c.kind === 'below') {
    text = de ? `${subject} unter ${num(c.threshold)}` : `${subject} below ${num(c.threshold)}`;
    if (rule.hysteresis > 0) clears = c.threshold + rule.hysteresis;
  } else {
    const rate = `${num(c.per_minute)}${perMinute}`.replace(` ${perMinute}`, perMinute);
    text = de ? `${subject} ändert sich um mehr als ${rate}` : `${subject} changes by more than ${rate}`;
    if (rule.hysteresis > 0) clears = c.per_minute - rule.hysteresis;
  }
  if (rule.for_minutes > 0) text += de ? ` für mindestens ${minutesText(rule.for_minutes, lang)}` : ` for at least ${minutesText(rule.for_minutes, lang)}`;
  if (clears !== null) {
    const below = c.kind !== 'below';
    const at = c.kind === 'rate' ? `${num(clears)}${perMinute}`.replace(` ${perMinute}`, perMinute) : num(clears);
    text += de ? `; Entwarnung ${below ? 'unter' : 'über'} ${at}` : `; clears ${below ? 'below' : 'above'} ${at}`;
  }
  return text;
}

/**
 * What the rule editor holds: the form's text as entered.
 * @typedef {object} RuleForm
 * @property {string} name
 * @property {string} datastream
 * @property {string} kind above, below, silent or rate
 * @property {string} threshold above/below: the threshold; rate: the change per minute
 * @property {string} forMinutes
 * @property {string} hysteresis
 * @property {string} aggregate '' for raw readings, else an interval
 * @property {string} webhook
 * @property {string} emails separated by commas, semicolons, spaces or lines
 * @property {string} language
 * @property {boolean} enabled
 */

/** @typedef {import('./types/api').components['schemas']['NewRule']} NewRule */

/**
 * A number typed into a field: empty is none, a comma is a decimal mark.
 * @param {string} text
 */
function parseNumber(text) {
  const t = text.trim().replace(',', '.');
  return t === '' ? null : Number(t);
}

/**
 * The editor's form as the API's rule body, or the key of the message that says what to fix
 * first. The API checks everything again; this catches what can be said before asking.
 * @param {RuleForm} form
 * @returns {{ body: NewRule, error?: undefined } | { body?: undefined, error: string }}
 */
export function ruleBody(form) {
  const name = form.name.trim();
  if (!name) return { error: 'ruleNeedsName' };
  const datastream = Number(form.datastream);
  if (!Number.isInteger(datastream) || datastream <= 0) return { error: 'ruleNeedsDatastream' };
  const forMinutes = parseNumber(form.forMinutes) ?? 0;
  if (!Number.isInteger(forMinutes) || forMinutes < 0) return { error: 'ruleBadMinutes' };
  const silent = form.kind === 'silent';
  if (silent && forMinutes < 1) return { error: 'ruleSilentMinutes' };
  const hysteresis = silent ? 0 : parseNumber(form.hysteresis) ?? 0;
  if (!Number.isFinite(hysteresis) || hysteresis < 0) return { error: 'ruleBadHysteresis' };
  /** @type {Condition} */
  let condition;
  if (silent) condition = { kind: 'silent' };
  else {
    const value = parseNumber(form.threshold);
    if (value === null || !Number.isFinite(value)) return { error: form.kind === 'rate' ? 'ruleNeedsRate' : 'ruleNeedsThreshold' };
    if (form.kind === 'above' || form.kind === 'below') condition = { kind: form.kind, threshold: value };
    else if (form.kind === 'rate') {
      if (value <= 0) return { error: 'ruleNeedsRate' };
      condition = { kind: 'rate', per_minute: value };
    } else return { error: 'ruleNeedsKind' };
  }
  const emails = form.emails.split(/[\s,;]+/).map((e) => e.trim()).filter(Boolean);
  if (emails.some((e) => !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(e))) return { error: 'ruleBadEmail' };
  const url = form.webhook.trim();
  if (url && !/^https?:\/\/[^\s/]+/i.test(url)) return { error: 'ruleBadWebhook' };
  return {
    body: {
      datastream,
      name,
      condition,
      for_minutes: forMinutes,
      hysteresis,
      aggregate: silent || !form.aggregate ? null : form.aggregate,
      webhook: url ? { url } : null,
      emails: [...new Set(emails)],
      language: form.language === 'en' ? 'en' : 'de',
      enabled: form.enabled,
    },
  };
}

/**
 * A rule back as the editor's form, to change it.
 * @param {Rule} rule
 * @returns {RuleForm}
 */
export function ruleForm(rule) {
  const c = rule.condition;
  return {
    name: rule.name,
    datastream: String(rule.datastream),
    kind: c.kind,
    threshold: c.kind === 'above' || c.kind === 'below' ? String(c.threshold) : c.kind === 'rate' ? String(c.per_minute) : '',
    forMinutes: String(rule.for_minutes),
    hysteresis: String(rule.hysteresis),
    aggregate: rule.aggregate ?? '',
    webhook: rule.webhook?.url ?? '',
    emails: rule.emails.join(', '),
    language: rule.language,
    enabled: rule.enabled,
  };
}
