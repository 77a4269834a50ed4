// @ts-check
// The dashboard's current language (German or English; the default follows
// the browser's), its text, its way of writing numbers and times and the
// labels people read for codes (units, themes, licenses, audit actions). The
// text lives in messages.js, the formatting rules in format.js, the labels in
// labels.js.

import { h } from './dom.js';
import { formatNumber as numberIn, formatTime as timeIn, localeOf, withUnit } from './format.js';
import { actionLabel, licenseLabel, themeLabel, unitLabel } from './labels.js';
import { message, pickLanguage } from './messages.js';

/** @typedef {import('./messages.js').Language} Language */

/** @type {Language} */
let lang = pickLanguage(navigator.language);

export function language() {
  return lang;
}

/** @param {string} l */
export function setLanguage(l) {
  lang = l === 'en' ? 'en' : 'de';
  document.documentElement.lang = lang;
}

/** @param {string} key */
export function t(key) {
  return message(lang, key);
}

export function locale() {
  return localeOf(lang);
}

/** @param {string | null | undefined} iso */
export function formatTime(iso) {
  return timeIn(iso, locale(), t('none'));
}

/** @param {number | null | undefined} v */
export function formatNumber(v) {
  return numberIn(v, locale(), t('none'));
}

/**
 * A unit as people write it (µg/m³ for ug/m3).
 * @param {string | null | undefined} code
 */
export function unit(code) {
  return unitLabel(code, lang);
}

/**
 * A number with its unit as people write it.
 * @param {number | null | undefined} v
 * @param {string | null | undefined} code
 */
export function formatValue(v, code) {
  return withUnit(formatNumber(v), unit(code));
}

/**
 * A dataset's theme by its label in the EU data-theme vocabulary.
 * @param {string | null | undefined} theme
 */
export function theme(theme) {
  return themeLabel(theme, lang);
}

/**
 * An audit action in words.
 * @param {string} action
 */
export function action(action) {
  return actionLabel(action, lang);
}

/**
 * A license by name, linked to its URI when it has one.
 * @param {string | null | undefined} license
 * @param {Record<string, any>} [attrs] of the link
 */
export function license(license, attrs = {}) {
  const { name, href } = licenseLabel(license, lang);
  if (!name) return t('none');
  return href ? h('a', { ...attrs, href, rel: 'license noreferrer' }, name) : h('span', attrs, name);
}

/**
 * Fills every element with data-i18n under root.
 * @param {ParentNode} [root]
 */
export function translate(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) {
    if (el instanceof HTMLElement) el.textContent = t(el.dataset.i18n || '');
  }
}
