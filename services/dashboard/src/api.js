// @ts-check
// The API client: every request carries the signed-in credential in the
// Authorization header. The key lives only in this module's memory: never in
// a URL, never in localStorage or sessionStorage, gone on reload or sign-out.

import { eventReader } from './sse.js';

/** @typedef {import('./types/api').components['schemas']['Problem']} Problem */

/** @type {string | null} */
let credential = null;

/** An error answer of the API (problem+json), with the reason it gave and its other members. */
export class ApiProblem extends Error {
  /**
   * @param {number} status
   * @param {string} detail
   * @param {string} title
   * @param {Record<string, any>} [body] the whole problem (e.g. an import's `errors`)
   */
  constructor(status, detail, title, body = {}) {
    super(detail || title || `HTTP ${status}`);
    this.status = status;
    this.detail = detail || title || `HTTP ${status}`;
    this.body = body;
  }
}

/** @param {string | null} key */
export function setCredential(key) {
  credential = key && key.trim() ? key.trim() : null;
}

export function signedIn() {
  return credential !== null;
}

/**
 * @param {Record<string, string>} [extra]
 * @returns {Record<string, string>}
 */
function headers(extra = {}) {
  /** @type {Record<string, string>} */
  const h = { Accept: 'application/json', ...extra };
  if (credential) h.Authorization = `Bearer ${credential}`;
  return h;
}

/** @param {Response} response */
async function problemOf(response) {
  let detail = '';
  let title = response.statusText;
  /** @type {Record<string, any>} */
  let problem = {};
  try {
    /** @type {Partial<Problem> & Record<string, any>} */
    const body = await response.json();
    detail = body.detail || '';
    title = body.title || title;
    problem = body;
  } catch {
    /* not problem+json */
  }
  return new ApiProblem(response.status, detail, title, problem);
}

/**
 * GET a JSON resource; throws ApiProblem on an error answer. The caller names
 * the answer's type (a schema of the API's OpenAPI document).
 * @param {string} path
 * @param {AbortSignal} [signal]
 * @returns {Promise<any>}
 */
export async function getJson(path, signal) {
  const response = await fetch(path, { headers: headers(), signal, credentials: 'omit', cache: 'no-store' });
  if (!response.ok) throw await problemOf(response);
  return response.json();
}

/**
 * Sends `body` (JSON, or text of the given type) with `method`; answers the JSON
 * answer (null when there is none); throws ApiProblem on an error answer.
 * @param {'POST' | 'PUT' | 'PATCH' | 'DELETE'} method
 * @param {string} path
 * @param {unknown} body undefined: none
 * @param {string} [contentType] for a text body; a JSON body without it
 * @returns {Promise<any>}
 */
export async function send(method, path, body, contentType) {
  const none = body === undefined;
  const text = none ? undefined : contentType ? String(body) : JSON.stringify(body);
  const response = await fetch(path, {
    method,
    headers: none ? headers() : headers({ 'Content-Type': contentType || 'application/json' }),
    body: text,
    credentials: 'omit',
    cache: 'no-store',
  });
  if (!response.ok) throw await problemOf(response);
  return response.status === 204 ? null : response.json();
}

/**
 * Builds a query string from the defined values.
 * @param {Record<string, string | number | null | undefined>} params
 */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

/**
 * Reads the server-sent event stream at `path` with fetch (EventSource cannot
 * send the Authorization header) and calls onEvent(name, data) per event.
 * Resolves when the stream ends; rejects on an error answer.
 * @param {string} path
 * @param {(name: string, data: string) => void} onEvent
 * @param {AbortSignal} [signal]
 */
export async function stream(path, onEvent, signal) {
  const response = await fetch(path, {
    headers: headers({ Accept: 'text/event-stream' }),
    signal,
    credentials: 'omit',
    cache: 'no-store',
  });
  if (!response.ok) throw await problemOf(response);
  if (!response.body) return;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const events = eventReader(onEvent);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    events.push(value);
  }
}
