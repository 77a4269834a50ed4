// @ts-check
// The payloads of the alerts and quality API as the shared design describes
// them, until the API's OpenAPI document holds them (then src/types/api.d.ts).

/** @typedef {'ok' | 'pending' | 'firing' | 'resolved'} AlertStatus */
/** @typedef {{ kind: 'above', threshold: number } | { kind: 'below', threshold: number } | { kind: 'silent' } | { kind: 'rate', per_minute: number }} Condition */
/**
 * @typedef {object} RuleState
 * @property {AlertStatus} status
 * @property {string | null} [since]
 * @property {string | null} [fired_at]
 * @property {number | null} [fired_value]
 * @property {string | null} [resolved_at]
 * @property {number | null} [resolved_value]
 * @property {number | null} [last_value]
 * @property {string | null} [last_reading_at]
 */
/**
 * @typedef {object} NewRule
 * @property {number} datastream
 * @property {string} name
 * @property {Condition} condition
 * @property {number} for_minutes
 * @property {number} hysteresis
 * @property {string | null} aggregate
 * @property {{ url: string } | null} webhook
 * @property {string[]} emails
 * @property {'de' | 'en'} language
 * @property {boolean} enabled
 */
/**
 * @typedef {NewRule & { id: number, owner: { principal?: number | null, organisation?: string | null }, created_at: string, updated_at: string, state: RuleState }} Rule
 */
/** @typedef {Rule & { webhook_secret?: string | null }} CreatedRule */
/** @typedef {{ alerts: Rule[] }} AlertList */
/** @typedef {{ id: number, state: string, at: string, value?: number | null, created_at: string }} AlertEvent */
/** @typedef {{ events: AlertEvent[] }} AlertEvents */
/** @typedef {{ attempt: number, at: string, outcome: string, http_status?: number | null, error?: string | null }} DeliveryAttempt */
/** @typedef {{ id: number, event: number, channel: string, target: string, status: string, next_attempt_at: string, delivered_at?: string | null, attempts: DeliveryAttempt[] }} Delivery */
/** @typedef {{ deliveries: Delivery[] }} Deliveries */
/** @typedef {{ from: string, to: string, missing_intervals: number, ongoing: boolean }} Gap */
/**
 * @typedef {object} DatastreamQuality
 * @property {number} datastream
 * @property {number | null} [expected_interval_secs]
 * @property {'set' | 'learned' | null} [interval_source]
 * @property {string | null} [last_reading_at]
 * @property {'ok' | 'degraded' | 'silent' | 'unknown'} status
 * @property {{ day: string, readings: number, expected: number, completeness?: number | null }[]} days
 * @property {Gap[] | null} [gaps]
 * @property {string | null} [gaps_withheld]
 * @property {{ reason: string, count: number }[]} dead_letters
 * @property {number | null} [out_of_range_share]
 */
/** @typedef {{ org: string, datastreams: { datastream: number, status: 'ok' | 'degraded' | 'silent' | 'unknown' }[] }} OrganisationQuality */

export {};
