// @ts-check
// Data quality as the dashboard shows it: which requests give the badges of
// the map and the list (one organisation-wide list per organisation the
// caller owns, one datastream's quality per other datastream, both bounded),
// the badge of each datastream from their answers, a status and a share in
// words, and a datastream's gaps as the time ranges its chart shades. No DOM
// and no requests, so test/quality.test.js checks the choices on their own;
// qualityview.js asks and draws.

import { formatNumber, localeOf } from './format.js';

/** @typedef {import('./messages.js').Language} Language */
/** @typedef {import('./types/api').components['schemas']['DatastreamQuality']} DatastreamQuality */
/** @typedef {import('./types/api').components['schemas']['OrganisationQuality']} OrganisationQuality */
/** @typedef {import('./types/api').components['schemas']['Gap']} Gap */
/** @typedef {import('./types/api').components['schemas']['Me']} Me */

/** At most this many organisation-wide lists are asked per QUALITY_TTL_MS. */
export const MAX_ORG_REQUESTS = 5;
/** At most this many single datastreams' quality is asked per QUALITY_TTL_MS (each is an audited read). */
export const MAX_STREAM_REQUESTS = 12;
/** A badge is asked again after this long. */
export const QUALITY_TTL_MS = 5 * 60e3;

/**
 * The badge of a datastream: a status of the API's (`ok`, `degraded`, `silent`,
 * `unknown`), or `unremarkable` (its organisation's list does not name it: healthy or
 * with no expected interval known).
 * @typedef {'ok' | 'degraded' | 'silent' | 'unknown' | 'unremarkable'} Badge
 */

/**
 * What to ask for the badges of `streams`: the organisations whose list the caller may
 * read (the operator: every organisation shown; an organisation's admins and data owners:
 * their own), and single datastreams of the others, each bounded; datastreams known
 * already (`known`) and those beyond the bounds get no request.
 * @param {{ id: number, org: string }[]} streams in the order they are shown
 * @param {Pick<Me, 'operator' | 'role' | 'organisation'> | null} me
 * @param {Set<number>} [known] datastreams whose badge is fresh
 * @param {{ orgs: number, streams: number }} [limits] requests left
 * @returns {{ orgs: string[], streams: number[] }}
 */
export function qualityRequests(streams, me, known = new Set(), limits = { orgs: MAX_ORG_REQUESTS, streams: MAX_STREAM_REQUESTS }) {
  if (!me) return { orgs: [], streams: [] };
  const ownsOrg = (/** @type {string} */ org) =>
    me.operator || ((me.role === 'admin' || me.role === 'data_owner') && me.organisation?.slug === org);
  /** @type {string[]} */
  const orgs = [];
  /** @type {number[]} */
  const single = [];
  for (const d of streams) {
    if (known.has(d.id)) continue;
    if (ownsOrg(d.org)) {
      if (!orgs.includes(d.org) && orgs.length < limits.orgs) orgs.push(d.org);
      if (orgs.includes(d.org)) continue;
    }
    if (single.length < limits.streams) single.push(d.id);
  }
  return { orgs, streams: single };
}

/**
 * The badges an organisation's list gives: its silent and degraded datastreams as
 * listed, every other datastream of the organisation (`members`) unremarkable.
 * @param {OrganisationQuality} list
 * @param {number[]} members the organisation's datastreams shown
 * @returns {Map<number, Badge>}
 */
export function badgesOfOrganisation(list, members) {
  /** @type {Map<number, Badge>} */
  const out = new Map(members.map((id) => [id, /** @type {Badge} */ ('unremarkable')]));
  for (const d of list.datastreams) out.set(d.datastream, d.status);
  return out;
}

/** @type {Record<Badge, { de: string, en: string }>} */
const BADGE_WORDS = {
  ok: { de: 'in Ordnung', en: 'ok' },
  degraded: { de: 'lückenhaft', en: 'degraded' },
  silent: { de: 'verstummt', en: 'silent' },
  unknown: { de: 'Qualität unbekannt', en: 'quality unknown' },
  unremarkable: { de: 'unauffällig', en: 'no issues' },
};

/**
 * A badge (a quality status) in words.
 * @param {string} badge
 * @param {Language} lang
 */
export function badgeLabel(badge, lang) {
  return Object.hasOwn(BADGE_WORDS, badge) ? BADGE_WORDS[/** @type {Badge} */ (badge)][lang] : badge;
}

/**
 * A share of 0 to 1 as a percentage with at most one decimal; `none` for no share.
 * @param {number | null | undefined} share
 * @param {Language} lang
 * @param {string} none
 */
export function percent(share, lang, none) {
  if (share === null || share === undefined || Number.isNaN(share)) return none;
  return `${formatNumber(Math.round(share * 1000) / 10, localeOf(lang), none)} %`;
}

/**
 * An interval in seconds as people say it: `30 s`, `5 Min.`/`5 min`, `2 Std.`/`2 h`.
 * @param {number | null | undefined} secs
 * @param {Language} lang
 * @param {string} none
 */
export function durationText(secs, lang, none) {
  if (secs === null || secs === undefined) return none;
  const n = (/** @type {number} */ v) => formatNumber(v, localeOf(lang), none);
  if (secs < 60) return `${n(secs)} s`;
  if (secs < 3600) return `${n(Math.round(secs / 6) / 10)} ${lang === 'de' ? 'Min.' : 'min'}`;
  return `${n(Math.round(secs / 360) / 10)} ${lang === 'de' ? 'Std.' : 'h'}`;
}

/**
 * The gaps as ranges of the chart's time axis (seconds), clipped to what it shows;
 * gaps wholly outside are left out.
 * @param {Pick<Gap, 'from' | 'to'>[] | null | undefined} gaps
 * @param {number} from shown range's start, milliseconds
 * @param {number} to its end, milliseconds
 * @returns {[number, number][]}
 */
export function gapRanges(gaps, from, to) {
  /** @type {[number, number][]} */
  const out = [];
  for (const g of gaps || []) {
    const a = Math.max(Date.parse(g.from), from);
    const b = Math.min(Date.parse(g.to), to);
    if (b > a) out.push([a / 1000, b / 1000]);
  }
  return out;
}
