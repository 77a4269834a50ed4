// @ts-check
// Data quality on screen: the badges of the map and the list (asked in
// bounded numbers, see quality.js, and kept for a few minutes) and a
// datastream's quality panel: status, expected interval, last reading,
// completeness per day as bars, its gaps (also shaded on the chart), rejected
// readings by reason and the out-of-range share.

import { ApiProblem, getJson, query } from './api.js';
import { h, table } from './dom.js';
import { formatNumber, formatTime, language, t } from './i18n.js';
import { denialLabel } from './labels.js';
import { MAX_ORG_REQUESTS, MAX_STREAM_REQUESTS, QUALITY_TTL_MS, badgeLabel, badgesOfOrganisation, durationText, percent, qualityRequests } from './quality.js';

/** @typedef {import('./main.js').State} State */
/** @typedef {import('./quality.js').Badge} Badge */
/** @typedef {import('./quality.js').DatastreamQuality} DatastreamQuality */
/** @typedef {import('./quality.js').OrganisationQuality} OrganisationQuality */
/** @typedef {import('./quality.js').Gap} Gap */

/** Days a datastream's panel reports. */
const PANEL_DAYS = 14;

/**
 * Asks the badges of `streams` not known yet, within the budget of requests, then calls
 * `done`. A denied or failed request leaves its datastream without a badge for a while.
 * @param {State} state
 * @param {{ id: number, org: string }[]} streams in the order they are shown
 * @param {() => void} done
 */
export async function loadBadges(state, streams, done) {
  const now = Date.now();
  // A budget of requests per period, whatever the views draw in it.
  if (now - state.qualityBudget.since >= QUALITY_TTL_MS) state.qualityBudget = { since: now, orgs: 0, streams: 0 };
  const budget = state.qualityBudget;
  const known = new Set([...state.quality].filter(([, q]) => now - q.at < QUALITY_TTL_MS).map(([id]) => id));
  const plan = qualityRequests(streams, state.me, known, { orgs: MAX_ORG_REQUESTS - budget.orgs, streams: MAX_STREAM_REQUESTS - budget.streams });
  if (!plan.orgs.length && !plan.streams.length) return;
  budget.orgs += plan.orgs.length;
  budget.streams += plan.streams.length;
  const members = (/** @type {string} */ org) => streams.filter((d) => d.org === org).map((d) => d.id);
  // Marked as asked before the answers come, so that a redraw meanwhile asks nothing again.
  for (const id of [...plan.streams, ...plan.orgs.flatMap(members)]) state.quality.set(id, { badge: state.quality.get(id)?.badge ?? null, at: now });
  /** @type {Promise<void>[]} */
  const asked = [];
  for (const org of plan.orgs) {
    asked.push(
      getJson(`/v1/quality${query({ org })}`)
        .then((/** @type {OrganisationQuality} */ list) => {
          for (const [id, badge] of badgesOfOrganisation(list, members(org))) state.quality.set(id, { badge, at: now });
        })
        .catch(() => {
          for (const id of members(org)) state.quality.set(id, { badge: null, at: now });
        }),
    );
  }
  for (const id of plan.streams) {
    asked.push(
      getJson(`/v1/datastreams/${id}/quality${query({ days: 2 })}`)
        .then((/** @type {DatastreamQuality} */ q) => {
          state.quality.set(id, { badge: q.status, at: now });
        })
        .catch(() => {
          state.quality.set(id, { badge: null, at: now });
        }),
    );
  }
  await Promise.all(asked);
  done();
}

/**
 * A datastream's quality badge, or nothing while none is known.
 * @param {State} state
 * @param {number} id
 */
export function qualityBadge(state, id) {
  const badge = state.quality.get(id)?.badge;
  if (!badge) return null;
  return h('span', { class: `badge quality quality-${badge}`, dataset: { quality: badge } }, badgeLabel(badge, language()));
}

/**
 * The worst badge of a thing's datastreams (silent, degraded, then the rest), for its marker.
 * @param {State} state
 * @param {number[]} ids
 * @returns {Badge | null}
 */
export function worstBadge(state, ids) {
  const badges = ids.map((id) => state.quality.get(id)?.badge).filter((b) => !!b);
  for (const b of /** @type {Badge[]} */ (['silent', 'degraded', 'unknown', 'ok', 'unremarkable'])) if (badges.includes(b)) return b;
  return null;
}

/**
 * Completeness per day as bars (HTML: readable without a canvas).
 * @param {DatastreamQuality['days']} days
 */
function completenessBars(days) {
  const lang = language();
  return h(
    'figure',
    { class: 'bars completeness', id: 'quality-days' },
    h('figcaption', {}, t('completenessPerDay')),
    h(
      'ul',
      {},
      days.map((d) =>
        h(
          'li',
          { dataset: { day: d.day, completeness: d.completeness ?? '' } },
          h('span', { class: 'bar-label' }, `${new Date(`${d.day}T00:00:00Z`).toLocaleDateString(lang === 'de' ? 'de-DE' : 'en-GB', { timeZone: 'UTC', weekday: 'short', day: '2-digit', month: '2-digit' })} (${formatNumber(d.readings)}/${formatNumber(d.expected)})`),
          h('span', { class: `bar${d.completeness != null && d.completeness < 0.9 ? ' low' : ''}`, style: `width: ${Math.max(1, 100 * (d.completeness ?? 0))}%` }),
          h('span', { class: 'bar-value' }, percent(d.completeness, lang, t('none'))),
        ),
      ),
    ),
  );
}

/**
 * A datastream's quality panel; `onGaps` gets the gaps to shade on the chart.
 * @param {number} id
 * @param {(gaps: Gap[]) => void} onGaps
 */
export function qualityPanel(id, onGaps) {
  const body = h('div', { id: 'quality-body' }, h('p', {}, t('loading')));
  const section = h('section', { class: 'quality-panel', id: 'quality', 'aria-labelledby': 'h-quality' }, h('h3', { id: 'h-quality' }, t('quality')), body);
  const load = async () => {
    try {
      /** @type {DatastreamQuality} */
      const q = await getJson(`/v1/datastreams/${id}/quality${query({ days: PANEL_DAYS })}`);
      fill(body, q);
      section.dataset.status = q.status;
      onGaps(q.gaps || []);
    } catch (e) {
      const words = e instanceof ApiProblem && e.status === 403 ? denialLabel(e.body.code, language()) : '';
      body.replaceChildren(h('p', { class: 'error' }, [t('qualityUnavailable'), words, e instanceof Error ? e.message : String(e)].filter(Boolean).join(' ')));
    }
  };
  return { section, load };
}

/**
 * @param {HTMLElement} body
 * @param {DatastreamQuality} q
 */
function fill(body, q) {
  const lang = language();
  const days = q.days.filter((d) => d.expected > 0 || d.readings > 0);
  const interval = q.expected_interval_secs == null
    ? t('intervalUnknown')
    : `${durationText(q.expected_interval_secs, lang, t('none'))} (${q.interval_source === 'set' ? t('intervalSet') : t('intervalLearned')})`;
  const gaps = q.gaps
    ? q.gaps.length
      ? table(
        `${q.gaps.length} ${t('gaps')}`,
        [t('from'), t('to'), t('missingReadings')],
        q.gaps.map((g) => h('tr', { dataset: { from: g.from, to: g.to } }, [formatTime(g.from), g.ongoing ? t('gapOngoing') : formatTime(g.to), formatNumber(g.missing_intervals)].map((c) => h('td', {}, c)))),
        { id: 'quality-gaps' },
      )
      : h('p', { id: 'quality-gaps' }, t('noGaps'))
    : h('p', { id: 'quality-gaps' }, q.gaps_withheld ? `${t('gapsWithheld')} ${denialLabel(q.gaps_withheld, lang)}` : t('gapsNeedInterval'));
  body.replaceChildren(
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, t('status')), h('dd', { id: 'quality-status' }, h('span', { class: `badge quality quality-${q.status}` }, badgeLabel(q.status, lang))),
      h('dt', {}, t('expectedInterval')), h('dd', {}, interval),
      h('dt', {}, t('lastReading')), h('dd', {}, formatTime(q.last_reading_at)),
      h('dt', {}, t('outOfRangeShare')), h('dd', { id: 'quality-out-of-range' }, percent(q.out_of_range_share, lang, t('none'))),
    ),
    // Days before the datastream existed expect nothing: they are left out.
    days.length ? completenessBars(days) : h('p', {}, t('noDays')),
    h('h4', {}, t('gaps')),
    gaps,
    h('h4', {}, t('rejectedByReason')),
    q.dead_letters.length
      ? table(null, [t('reasonCode'), t('count')], q.dead_letters.map((d) => [h('code', {}, d.reason), formatNumber(d.count)]), { id: 'quality-dead-letters' })
      : h('p', { id: 'quality-dead-letters' }, t('noRejected')),
  );
}
