// @ts-check
// Alert rules as people read and write them: the condition as a sentence in
// both languages, the alerts view's order (firing first) and the editor's
// form turned into the API's rule body, refused with a reason where it cannot be.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { messages } from '../src/messages.js';
import { KINDS, changedAt, conditionText, firingFirst, intervalText, ruleBody, ruleForm, statusLabel } from '../src/rules.js';

/**
 * A rule as the API gives it, with the parts a test names.
 * @param {Record<string, any>} parts
 * @returns {import('../src/rules.js').Rule}
 */
function rule(parts) {
  const { state, ...rest } = parts;
  return /** @type {any} */ ({
    id: 1,
    datastream: 7,
    name: 'NO2',
    condition: { kind: 'above', threshold: 200 },
    for_minutes: 0,
    hysteresis: 0,
    aggregate: null,
    webhook: null,
    emails: [],
    language: 'de',
    enabled: true,
    owner: { principal: 3, organisation: 'amt-umwelt' },
    created_at: '2026-11-01T00:00:00Z',
    updated_at: '2026-11-01T00:00:00Z',
    state: { status: 'ok', since: null, fired_at: null, fired_value: null, resolved_at: null, resolved_value: null, last_value: null, last_reading_at: null, ...state },
    ...rest,
  });
}

test('a threshold held for a while, as a sentence in German and English', () => {
  const r = rule({ condition: { kind: 'above', threshold: 200 }, for_minutes: 60, hysteresis: 10, aggregate: '15m' });
  assert.equal(conditionText(r, 'de', 'µg/m³'), 'Mittel über 15 Min. über 200 µg/m³ für mindestens 60 Min.; Entwarnung unter 190 µg/m³');
  assert.equal(conditionText(r, 'en', 'µg/m³'), '15 min average above 200 µg/m³ for at least 60 min; clears below 190 µg/m³');
});

test('below mirrors above: it clears above the threshold plus the hysteresis', () => {
  const r = rule({ condition: { kind: 'below', threshold: 1.5 }, hysteresis: 0.25 });
  assert.equal(conditionText(r, 'de', 'm'), 'Wert unter 1,5 m; Entwarnung über 1,75 m');
  assert.equal(conditionText(r, 'en', 'm'), 'value below 1.5 m; clears above 1.75 m');
});

test('without duration or hysteresis the sentence says neither', () => {
  assert.equal(conditionText(rule({}), 'en', ''), 'value above 200');
});

test('a silent sensor and a rate of change', () => {
  assert.equal(conditionText(rule({ condition: { kind: 'silent' }, for_minutes: 90 }), 'de'), 'kein Messwert seit 90 Min.');
  assert.equal(conditionText(rule({ condition: { kind: 'silent' }, for_minutes: 30 }), 'en'), 'no reading for 30 min');
  const rate = rule({ condition: { kind: 'rate', per_minute: 2.5 }, aggregate: '1h' });
  assert.equal(conditionText(rate, 'de', 'cm'), 'Mittel über 1 Std. ändert sich um mehr als 2,5 cm/Min.');
  assert.equal(conditionText(rate, 'en', 'cm'), '1 hour average changes by more than 2.5 cm/min');
  assert.equal(conditionText(rule({ condition: { kind: 'rate', per_minute: 3 } }), 'en'), 'value changes by more than 3/min');
});

test('aggregate intervals in words', () => {
  assert.equal(intervalText('15m', 'de'), '15 Min.');
  assert.equal(intervalText('1d', 'de'), '1 Tag');
  assert.equal(intervalText('2d', 'de'), '2 Tage');
  assert.equal(intervalText('3h', 'en'), '3 hours');
  assert.equal(intervalText('90s', 'en'), '90 s');
  assert.equal(intervalText('weekly', 'en'), 'weekly', 'an interval of another form as it is');
});

test('firing first, then pending, then resolved, then ok; the newest change first within each', () => {
  const rules = [
    rule({ id: 1, state: { status: 'ok' }, updated_at: '2026-11-29T10:00:00Z' }),
    rule({ id: 2, state: { status: 'resolved', fired_at: '2026-11-29T08:00:00Z', resolved_at: '2026-11-29T09:00:00Z' } }),
    rule({ id: 3, state: { status: 'firing', since: '2026-11-29T07:00:00Z', fired_at: '2026-11-29T07:00:00Z' } }),
    rule({ id: 4, state: { status: 'pending', since: '2026-11-29T11:00:00Z' } }),
    rule({ id: 5, state: { status: 'firing', since: '2026-11-29T09:30:00Z', fired_at: '2026-11-29T09:30:00Z' } }),
    rule({ id: 6, state: { status: 'ok' }, updated_at: '2026-11-29T12:00:00Z' }),
  ];
  assert.deepEqual(firingFirst(rules).map((r) => r.id), [5, 3, 4, 2, 6, 1]);
  assert.deepEqual(rules.map((r) => r.id), [1, 2, 3, 4, 5, 6], 'the list given is left as it was');
  assert.equal(changedAt(rules[1]), Date.parse('2026-11-29T09:00:00Z'), 'a resolution is its newest change');
});

test('states in words in both languages', () => {
  assert.equal(statusLabel('firing', 'de'), 'ausgelöst');
  assert.equal(statusLabel('firing', 'en'), 'firing');
  assert.equal(statusLabel('resolved', 'de'), 'entwarnt');
  assert.equal(statusLabel('paused', 'en'), 'paused', 'a state no table knows as it is');
});

/** @type {import('../src/rules.js').RuleForm} */
const FORM = {
  name: ' Pegel Finowkanal ', datastream: '12', kind: 'above', threshold: '215,5', forMinutes: '10', hysteresis: '5',
  aggregate: '', webhook: 'https://leitstelle.example/hook', emails: 'a@stadt.example; b@stadt.example, a@stadt.example', language: 'en', enabled: true,
};

test("the editor's form as the API's rule body", () => {
  assert.deepEqual(ruleBody(FORM), {
    body: {
      datastream: 12, name: 'Pegel Finowkanal', condition: { kind: 'above', threshold: 215.5 }, for_minutes: 10, hysteresis: 5,
      aggregate: null, webhook: { url: 'https://leitstelle.example/hook' }, emails: ['a@stadt.example', 'b@stadt.example'], language: 'en', enabled: true,
    },
  });
  const silent = ruleBody({ ...FORM, kind: 'silent', threshold: '', hysteresis: '3', aggregate: '15m', forMinutes: '30', webhook: '', emails: '' });
  assert.deepEqual(silent.body?.condition, { kind: 'silent' });
  assert.equal(silent.body?.hysteresis, 0, 'a silent rule takes no hysteresis');
  assert.equal(silent.body?.aggregate, null, 'and watches raw readings arriving');
  assert.equal(silent.body?.webhook, null);
  assert.deepEqual(silent.body?.emails, []);
  assert.deepEqual(ruleBody({ ...FORM, kind: 'rate', threshold: '2', aggregate: '15m' }).body?.condition, { kind: 'rate', per_minute: 2 });
  assert.equal(ruleBody({ ...FORM, aggregate: '15m' }).body?.aggregate, '15m');
});

test('what the form cannot send is refused with the reason to fix first', () => {
  const refused = (/** @type {Partial<import('../src/rules.js').RuleForm>} */ change) => ruleBody({ ...FORM, ...change }).error;
  assert.equal(refused({ name: '  ' }), 'ruleNeedsName');
  assert.equal(refused({ datastream: '' }), 'ruleNeedsDatastream');
  assert.equal(refused({ threshold: '' }), 'ruleNeedsThreshold');
  assert.equal(refused({ threshold: 'viel' }), 'ruleNeedsThreshold');
  assert.equal(refused({ kind: 'rate', threshold: '0' }), 'ruleNeedsRate');
  assert.equal(refused({ kind: 'silent', forMinutes: '0' }), 'ruleSilentMinutes');
  assert.equal(refused({ forMinutes: '1.5' }), 'ruleBadMinutes');
  assert.equal(refused({ forMinutes: '-1' }), 'ruleBadMinutes');
  assert.equal(refused({ hysteresis: '-2' }), 'ruleBadHysteresis');
  assert.equal(refused({ emails: 'leitstelle' }), 'ruleBadEmail');
  assert.equal(refused({ webhook: 'ftp://x.example' }), 'ruleBadWebhook');
  assert.equal(refused({ kind: 'sometimes' }), 'ruleNeedsKind');
});

test("every refusal and condition kind has the editor's words in both languages", () => {
  const keys = ['ruleNeedsName', 'ruleNeedsDatastream', 'ruleNeedsThreshold', 'ruleNeedsRate', 'ruleSilentMinutes', 'ruleBadMinutes', 'ruleBadHysteresis', 'ruleBadEmail', 'ruleBadWebhook', 'ruleNeedsKind', ...KINDS.map((k) => `kind_${k}`)];
  for (const key of keys) {
    assert.ok(Object.hasOwn(messages.de, key) && Object.hasOwn(messages.en, key), key);
  }
});

test('a rule back in the editor gives the same body', () => {
  const r = rule({ condition: { kind: 'rate', per_minute: 4 }, for_minutes: 5, hysteresis: 1, aggregate: '5m', webhook: { url: 'https://h.example/x' }, emails: ['a@b.example'], language: 'en', enabled: false });
  const again = ruleBody(ruleForm(r)).body;
  assert.deepEqual(again, {
    datastream: 7, name: 'NO2', condition: { kind: 'rate', per_minute: 4 }, for_minutes: 5, hysteresis: 1, aggregate: '5m',
    webhook: { url: 'https://h.example/x' }, emails: ['a@b.example'], language: 'en', enabled: false,
  });
});
