// @ts-check
// The dashboard's current language (German or English; the default follows
// the browser's), its text and its way of writing numbers and times. The text
// lives in messages.js, the formatting rules in format.js.

import { formatNumber as numberIn, formatTime as timeIn, localeOf } from './format.js';
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
 * Fills every element with data-i18n under root.
 * @param {ParentNode} [root]
 */
export function translate(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) {
    if (el instanceof HTMLElement) el.textContent = t(el.dataset.i18n || '');
  }
}
