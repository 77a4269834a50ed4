// @ts-check
// The UI text: both languages hold every key, and every key the dashboard
// asks for (t('…') in src/, data-i18n in index.html) exists.

import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { test } from 'node:test';

import { message, messages, pickLanguage } from '../src/messages.js';
import { PRESETS } from '../src/range.js';

const src = new URL('../src/', import.meta.url);

/** The keys the code and the page name literally. */
function usedKeys() {
  const keys = new Set();
  for (const file of readdirSync(src).filter((f) => f.endsWith('.js'))) {
    for (const [, key] of readFileSync(new URL(file, src), 'utf8').matchAll(/\bt\('([A-Za-z0-9]+)'\)/g)) keys.add(key);
  }
  for (const [, key] of readFileSync(new URL('../index.html', import.meta.url), 'utf8').matchAll(/data-i18n="([^"]+)"/g)) keys.add(key);
  return keys;
}

test('German and English hold the same keys', () => {
  assert.deepEqual(Object.keys(messages.de).sort(), Object.keys(messages.en).sort());
});

test('no text is empty', () => {
  for (const lang of /** @type {const} */ (['de', 'en'])) {
    for (const [key, value] of Object.entries(messages[lang])) assert.ok(value.trim(), `${lang}.${key} is empty`);
  }
});

test('every key the dashboard uses has a text in both languages', () => {
  const used = usedKeys();
  assert.ok(used.size > 50, `the scan finds the keys in use (${used.size})`);
  // Named through a variable: the range presets' buttons.
  for (const preset of [...Object.keys(PRESETS), 'custom']) used.add(preset);
  for (const key of used) {
    assert.ok(Object.hasOwn(messages.de, key), `de lacks ${key}`);
    assert.ok(Object.hasOwn(messages.en, key), `en lacks ${key}`);
  }
});

test('the texts are translated, not copied', () => {
  assert.equal(message('de', 'signIn'), 'Anmelden');
  assert.equal(message('en', 'signIn'), 'Sign in');
  assert.equal(message('de', 'h24'), '24 Std.');
  assert.equal(message('en', 'd7'), '7 days');
});

test('an unknown key falls back to its name', () => {
  assert.equal(message('de', 'noSuchKey'), 'noSuchKey');
});

test('German for every German browser language, else English', () => {
  assert.equal(pickLanguage('de-DE'), 'de');
  assert.equal(pickLanguage('de-AT'), 'de');
  assert.equal(pickLanguage('DE'), 'de');
  assert.equal(pickLanguage('en-US'), 'en');
  assert.equal(pickLanguage('fr-FR'), 'en');
  assert.equal(pickLanguage(undefined), 'de', 'no language known: the town language');
  assert.equal(pickLanguage(''), 'de');
});
