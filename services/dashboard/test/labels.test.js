// @ts-check
// The labels people read for the API's codes: units, EU data themes,
// licenses, audit actions and organisations, in both languages; and every
// audit action the Rust services write has words here.

import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { ACTIONS, DENIALS, LICENSES, THEMES, THEME_BASE, UNITS, actionLabel, denialLabel, licenseLabel, orgLabel, organisations, themeLabel, unitLabel } from '../src/labels.js';

test('units are written as people write them, from the codes datastreams carry', () => {
  assert.equal(unitLabel('ug/m3', 'de'), 'µg/m³');
  assert.equal(unitLabel('Cel', 'en'), '°C');
  assert.equal(unitLabel('%RH', 'de'), '%');
  assert.equal(unitLabel('%', 'de'), '%');
  assert.equal(unitLabel('hPa', 'en'), 'hPa');
  assert.equal(unitLabel('m', 'de'), 'm');
  assert.equal(unitLabel('km/h', 'de'), 'km/h');
  assert.equal(unitLabel('dB(A)', 'de'), 'dB(A)');
  assert.equal(unitLabel('m3/h', 'en'), 'm³/h');
  assert.equal(unitLabel('count', 'de'), 'Anzahl');
  assert.equal(unitLabel('count', 'en'), 'count');
});

test('an unknown unit is shown as its code; no unit as nothing', () => {
  assert.equal(unitLabel('furlong/fortnight', 'de'), 'furlong/fortnight');
  assert.equal(unitLabel(null, 'en'), '');
  assert.equal(unitLabel('', 'en'), '');
});

test('unit labels are written without codes and exist in both languages', () => {
  for (const [code, label] of Object.entries(UNITS)) {
    if (typeof label === 'string') continue;
    assert.ok(label.de.trim() && label.en.trim(), code);
  }
  for (const code of ['ug/m3', 'Cel', 'm3']) assert.notEqual(unitLabel(code, 'de'), code, `${code} has a written form`);
});

test('all 13 EU data themes have a label in both languages, by URI and by code', () => {
  assert.equal(Object.keys(THEMES).length, 13);
  assert.equal(themeLabel(`${THEME_BASE}TRAN`, 'de'), 'Verkehr');
  assert.equal(themeLabel(`${THEME_BASE}TRAN`, 'en'), 'Transport');
  assert.equal(themeLabel(`${THEME_BASE}ENVI`, 'de'), 'Umwelt');
  assert.equal(themeLabel('ENVI', 'en'), 'Environment');
  assert.equal(themeLabel('envi', 'de'), 'Umwelt');
  for (const [code, label] of Object.entries(THEMES)) {
    assert.ok(label.de && label.en && label.de !== code && label.en !== code, code);
    assert.equal(themeLabel(`${THEME_BASE}${code}`, 'de'), label.de);
  }
  assert.equal(themeLabel('Parkhäuser', 'de'), 'Parkhäuser', 'a theme of its own is shown as it is');
  assert.equal(themeLabel(null, 'de'), '');
});

test('licenses by name, linked to their URI (http or https, with or without the slash)', () => {
  assert.deepEqual(licenseLabel('http://dcat-ap.de/def/licenses/dl-by-de/2.0', 'de'), {
    name: 'Datenlizenz Deutschland – Namensnennung 2.0',
    href: 'http://dcat-ap.de/def/licenses/dl-by-de/2.0',
  });
  assert.equal(licenseLabel('http://dcat-ap.de/def/licenses/dl-zero-de/2.0', 'en').name, 'Data licence Germany – zero 2.0');
  assert.equal(licenseLabel('https://creativecommons.org/licenses/by/4.0/', 'en').name, 'Creative Commons Attribution 4.0 International (CC BY 4.0)');
  assert.equal(licenseLabel('http://creativecommons.org/publicdomain/zero/1.0/', 'de').name, 'Creative Commons Zero (CC0 1.0)');
  for (const [key, label] of Object.entries(LICENSES)) assert.ok(label.de && label.en, key);
});

test('a license URI no table knows keeps its link; terms written out have none', () => {
  assert.deepEqual(licenseLabel('https://example.org/terms', 'de'), { name: 'https://example.org/terms', href: 'https://example.org/terms' });
  assert.deepEqual(licenseLabel('Nur zur internen Nutzung', 'de'), { name: 'Nur zur internen Nutzung', href: null });
  assert.deepEqual(licenseLabel(null, 'de'), { name: '', href: null });
});

test('audit actions in words in both languages', () => {
  assert.equal(actionLabel('sta:observations', 'de'), 'Messwerte über SensorThings gelesen');
  assert.equal(actionLabel('grant.create', 'en'), 'Granted access');
  assert.equal(actionLabel('observations', 'de'), 'Messwerte gelesen');
  assert.equal(actionLabel('something.new', 'de'), 'something.new', 'an action no table knows is shown as it is');
  for (const [code, label] of Object.entries(ACTIONS)) {
    assert.ok(label.de.trim() && label.en.trim() && label.de !== label.en, `${code} is written in both languages`);
  }
});

const services = fileURLToPath(new URL('../../', import.meta.url));

/**
 * The Rust sources of a service.
 * @param {string} dir
 * @returns {string[]}
 */
function rustFiles(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return rustFiles(path);
    return name.endsWith('.rs') ? [path] : [];
  });
}

/**
 * The audit actions the services write, as their sources name them: administrative
 * changes (`AdminChange::new("kind.change", …)`, the store's `change("kind.change", …)`
 * helpers, the API's `audit_created(…, "kind", …)` → `kind.create`) and reads
 * (`authorize…(…, "action", …)`, `read_record`/`audit_record`, constants and the live
 * stream's choice).
 */
function actionsInSources() {
  const found = new Set();
  const patterns = [
    /AdminChange::new\(\s*"([a-z_]+\.[a-z_]+)"/g,
    /\bchange\(\s*"([a-z_]+\.[a-z_]+)"/g,
    /\baudit_[a-z_]+\([^;{]*?"([a-z_:]+)"\s*,/g,
    /\bauthorize(?:_[a-z]+)?\([^;{]*?"([a-z_:]+)"\s*,\s*request/g,
    /\b(?:read_record|audit_record)\([^;{]*?"([a-z_:]+)"/g,
    /const [A-Z_]+: &str = "([a-z_]+:[a-z_]+)"/g,
    /\blet action = if [a-z_]+ \{ "([a-z_]+)" \} else \{ "([a-z_]+)" \}/g,
  ];
  for (const service of ['api', 'store', 'admin', 'ingest']) {
    for (const file of rustFiles(join(services, service, 'src'))) {
      const text = readFileSync(file, 'utf8');
      for (const pattern of patterns) {
        for (const m of text.matchAll(pattern)) for (const a of m.slice(1)) if (a) found.add(a);
      }
      for (const [, kind] of text.matchAll(/\baudit_created\([^;{]*?"([a-z_]+)"\s*,/g)) {
        found.delete(kind);
        found.add(`${kind}.create`);
      }
    }
  }
  return found;
}

test('every audit action the API, the store, the admin CLI and ingest write has words', () => {
  const actions = actionsInSources();
  for (const known of ['sta:observations', 'observations', 'aggregates', 'export', 'live_stream', 'grant.create', 'thing.create', 'key.issue']) {
    assert.ok(actions.has(known), `the scan finds ${known} (found: ${[...actions].sort().join(', ')})`);
  }
  assert.ok(actions.size >= 25, `the scan finds the actions in use (${actions.size})`);
  const missing = [...actions].filter((a) => !Object.hasOwn(ACTIONS, a));
  assert.deepEqual(missing, [], 'actions without words in src/labels.js');
});

test('organisations by name, from their id or slug', () => {
  const orgs = organisations([
    { id: 5, slug: 'movi', name: 'Movi Mobilitätsdaten GmbH' },
    { id: 3, slug: 'stadt', name: 'Stadt Eberswalde' },
  ]);
  assert.equal(orgLabel(orgs, 5), 'Movi Mobilitätsdaten GmbH');
  assert.equal(orgLabel(orgs, 'stadt'), 'Stadt Eberswalde');
  assert.equal(orgLabel(orgs, 86), '86', 'an organisation the list lacks keeps its id');
  assert.equal(orgLabel(orgs, 'unknown'), 'unknown');
  assert.equal(orgLabel(orgs, null), '');
});

test("every code the access policy denies with has words a person understands, in both languages", () => {
  const policy = readFileSync(join(services, 'domain', 'src', 'policy.rs'), 'utf8');
  const block = /DenyCode \{([^}]*)\}/.exec(policy);
  assert.ok(block, 'the policy names its codes in a DenyCode block');
  const codes = [...block[1].matchAll(/=> "([a-z_]+)"/g)].map((m) => m[1]);
  assert.ok(codes.length >= 15, `the scan finds the codes (${codes.length})`);
  assert.deepEqual(codes.filter((c) => !Object.hasOwn(DENIALS, c)), [], 'deny codes without words in src/labels.js');
  for (const [code, words] of Object.entries(DENIALS)) assert.ok(words.de.trim() && words.en.trim() && words.de !== words.en, code);
  assert.equal(denialLabel('raw_not_granted', 'de').startsWith('Ihre Freigabe erlaubt nur Aggregate'), true);
  assert.equal(denialLabel('something_new', 'en'), '', 'an unknown code adds no words (the detail says it)');
  assert.equal(denialLabel(undefined, 'en'), '');
});
