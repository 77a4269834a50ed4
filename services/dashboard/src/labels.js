// @ts-check
// What people read instead of the codes the API gives: units as people write
// them (µg/m³ for the UCUM code ug/m3), EU data themes by their label,
// licenses by their name, audit actions in words and organisations by name.
// No DOM and the language passed in, so test/labels.test.js checks the tables;
// i18n.js applies them in the current language. A code no table knows is
// shown as it is.

/** @typedef {import('./messages.js').Language} Language */
/** @typedef {{ de: string, en: string }} Both */

/**
 * Units: the UCUM/SenML code datastreams carry → how it is written. A string is
 * the same in both languages.
 * @type {Record<string, string | Both>}
 */
export const UNITS = {
  'ug/m3': 'µg/m³',
  'mg/m3': 'mg/m³',
  'ng/m3': 'ng/m³',
  'g/m3': 'g/m³',
  'Cel': '°C',
  '[degF]': '°F',
  'K': 'K',
  '%': '%',
  '%RH': '%',
  '%EL': '%',
  'Pa': 'Pa',
  'hPa': 'hPa',
  'kPa': 'kPa',
  'bar': 'bar',
  'mbar': 'mbar',
  'm': 'm',
  'cm': 'cm',
  'mm': 'mm',
  'km': 'km',
  'um': 'µm',
  'km/h': 'km/h',
  'm/s': 'm/s',
  'mm/h': 'mm/h',
  'm2': 'm²',
  'm3': 'm³',
  'm3/h': 'm³/h',
  'm3/s': 'm³/s',
  'l': 'l',
  'L': 'l',
  'l/s': 'l/s',
  'L/s': 'l/s',
  'l/min': 'l/min',
  'L/min': 'l/min',
  'dB': 'dB',
  'dB(A)': 'dB(A)',
  'dBA': 'dB(A)',
  'dB[A]': 'dB(A)',
  'dB[SPL]': 'dB',
  'dBm': 'dBm',
  'dBW': 'dBW',
  '[ppm]': 'ppm',
  'ppm': 'ppm',
  '[ppb]': 'ppb',
  'ppb': 'ppb',
  '[pH]': 'pH',
  'pH': 'pH',
  'uS/cm': 'µS/cm',
  'mg/L': 'mg/l',
  'mg/l': 'mg/l',
  'Bq/m3': 'Bq/m³',
  'lx': 'lx',
  'V': 'V',
  'mV': 'mV',
  'A': 'A',
  'mA': 'mA',
  'W': 'W',
  'kW': 'kW',
  'Wh': 'Wh',
  'kWh': 'kWh',
  'MWh': 'MWh',
  'W/m2': 'W/m²',
  'Hz': 'Hz',
  'deg': '°',
  'lat': '°',
  'lon': '°',
  'rad': 'rad',
  's': 's',
  'min': 'min',
  'h': 'h',
  'd': { de: 'Tage', en: 'days' },
  'g': 'g',
  'kg': 'kg',
  't': 't',
  '/min': '/min',
  '/h': '/h',
  '1': '',
  'count': { de: 'Anzahl', en: 'count' },
  '{count}': { de: 'Anzahl', en: 'count' },
  '{vehicles}': { de: 'Fahrzeuge', en: 'vehicles' },
};

/**
 * A unit as people write it; the code where the table does not know it.
 * @param {string | null | undefined} code
 * @param {Language} lang
 */
export function unitLabel(code, lang) {
  if (!code) return '';
  const known = UNITS[code];
  if (known === undefined) return code;
  return typeof known === 'string' ? known : known[lang];
}

/** The EU data-theme vocabulary (publications.europa.eu), whose URIs end in these codes. */
export const THEME_BASE = 'http://publications.europa.eu/resource/authority/data-theme/';

/** @type {Record<string, Both>} */
export const THEMES = {
  AGRI: { de: 'Landwirtschaft, Fischerei, Forstwirtschaft und Nahrungsmittel', en: 'Agriculture, fisheries, forestry and food' },
  ECON: { de: 'Wirtschaft und Finanzen', en: 'Economy and finance' },
  EDUC: { de: 'Bildung, Kultur und Sport', en: 'Education, culture and sport' },
  ENER: { de: 'Energie', en: 'Energy' },
  ENVI: { de: 'Umwelt', en: 'Environment' },
  GOVE: { de: 'Regierung und öffentlicher Sektor', en: 'Government and public sector' },
  HEAL: { de: 'Gesundheit', en: 'Health' },
  INTR: { de: 'Internationale Themen', en: 'International issues' },
  JUST: { de: 'Justiz, Rechtssystem und öffentliche Sicherheit', en: 'Justice, legal system and public safety' },
  REGI: { de: 'Regionen und Städte', en: 'Regions and cities' },
  SOCI: { de: 'Bevölkerung und Gesellschaft', en: 'Population and society' },
  TECH: { de: 'Wissenschaft und Technologie', en: 'Science and technology' },
  TRAN: { de: 'Verkehr', en: 'Transport' },
};

/**
 * A dataset's theme (an EU data-theme URI or its code, as datasets hold it) by its label;
 * any other text as it is.
 * @param {string | null | undefined} theme
 * @param {Language} lang
 */
export function themeLabel(theme, lang) {
  if (!theme) return '';
  const trimmed = theme.trim();
  const code = (trimmed.startsWith(THEME_BASE) ? trimmed.slice(THEME_BASE.length) : trimmed).toUpperCase();
  return Object.hasOwn(THEMES, code) ? THEMES[code][lang] : theme;
}

/**
 * Licenses by name, keyed by their URI without scheme and trailing slash (the
 * dcat-ap.de vocabulary and Creative Commons are written with http and https).
 * @type {Record<string, Both>}
 */
export const LICENSES = {
  'dcat-ap.de/def/licenses/dl-by-de/2.0': { de: 'Datenlizenz Deutschland – Namensnennung 2.0', en: 'Data licence Germany – attribution 2.0' },
  'dcat-ap.de/def/licenses/dl-zero-de/2.0': { de: 'Datenlizenz Deutschland – Zero 2.0', en: 'Data licence Germany – zero 2.0' },
  'dcat-ap.de/def/licenses/cc-by/4.0': { de: 'Creative Commons Namensnennung 4.0 International (CC BY 4.0)', en: 'Creative Commons Attribution 4.0 International (CC BY 4.0)' },
  'dcat-ap.de/def/licenses/cc-by-sa/4.0': { de: 'Creative Commons Namensnennung – Weitergabe unter gleichen Bedingungen 4.0 International (CC BY-SA 4.0)', en: 'Creative Commons Attribution-ShareAlike 4.0 International (CC BY-SA 4.0)' },
  'dcat-ap.de/def/licenses/cc-zero': { de: 'Creative Commons Zero (CC0 1.0)', en: 'Creative Commons Zero (CC0 1.0)' },
  'dcat-ap.de/def/licenses/other-closed': { de: 'Andere geschlossene Lizenz', en: 'Other closed license' },
  'creativecommons.org/licenses/by/4.0': { de: 'Creative Commons Namensnennung 4.0 International (CC BY 4.0)', en: 'Creative Commons Attribution 4.0 International (CC BY 4.0)' },
  'creativecommons.org/licenses/by-sa/4.0': { de: 'Creative Commons Namensnennung – Weitergabe unter gleichen Bedingungen 4.0 International (CC BY-SA 4.0)', en: 'Creative Commons Attribution-ShareAlike 4.0 International (CC BY-SA 4.0)' },
  'creativecommons.org/publicdomain/zero/1.0': { de: 'Creative Commons Zero (CC0 1.0)', en: 'Creative Commons Zero (CC0 1.0)' },
};

/**
 * A license: its name and, when it is a URI, the link to it (terms written out have no link).
 * @param {string | null | undefined} license
 * @param {Language} lang
 * @returns {{ name: string, href: string | null }}
 */
export function licenseLabel(license, lang) {
  if (!license) return { name: '', href: null };
  const trimmed = license.trim();
  const isUri = /^https?:\/\/\S+$/.test(trimmed);
  const key = trimmed.replace(/^https?:\/\//, '').replace(/\/+$/, '');
  const known = isUri && Object.hasOwn(LICENSES, key) ? LICENSES[key][lang] : null;
  return { name: known ?? trimmed, href: isUri ? trimmed : null };
}

/**
 * Audit actions in words: every action the API and the store write into the audit log
 * (reads by what was read; administrative changes as `kind.change`).
 * @type {Record<string, Both>}
 */
export const ACTIONS = {
  // Reads (hoheit-api's access module and routes).
  observations: { de: 'Messwerte gelesen', en: 'Read readings' },
  aggregates: { de: 'Aggregate gelesen', en: 'Read aggregates' },
  'sta:observations': { de: 'Messwerte über SensorThings gelesen', en: 'Read readings through SensorThings' },
  export: { de: 'Datensatz exportiert', en: 'Exported a dataset' },
  datastreams: { de: 'Datenströme mit letzten Werten abgerufen', en: 'Listed datastreams with latest values' },
  live: { de: 'Live-Werte abgerufen', en: 'Read the live values' },
  live_stream: { de: 'Live-Stream geöffnet', en: 'Opened the live stream' },
  opendata_download: { de: 'Offene Daten heruntergeladen', en: 'Downloaded open data' },
  // Administrative changes (hoheit-api's admin routes, hoheit-store, hoheit-admin, ingest's replay).
  'organisation.create': { de: 'Organisation angelegt', en: 'Created an organisation' },
  'organisation.update': { de: 'Organisation geändert', en: 'Changed an organisation' },
  'principal.create': { de: 'Zugang angelegt', en: 'Created a principal' },
  'principal.disable': { de: 'Zugang gesperrt', en: 'Disabled a principal' },
  'key.issue': { de: 'API-Schlüssel ausgegeben', en: 'Issued an API key' },
  'key.revoke': { de: 'API-Schlüssel widerrufen', en: 'Revoked an API key' },
  'thing.create': { de: 'Messstelle angelegt', en: 'Registered a thing' },
  'thing.update': { de: 'Messstelle geändert', en: 'Changed a thing' },
  'thing.device_token': { de: 'Geräte-Token ausgegeben', en: 'Issued a device token' },
  'thing.import': { de: 'Messstellen importiert', en: 'Imported things' },
  'datastream.create': { de: 'Datenstrom angelegt', en: 'Registered a datastream' },
  'datastream.update': { de: 'Datenstrom geändert', en: 'Changed a datastream' },
  'device_type.create': { de: 'Gerätetyp angelegt', en: 'Created a device type' },
  'device_type.update': { de: 'Gerätetyp geändert', en: 'Changed a device type' },
  'device_type.delete': { de: 'Gerätetyp gelöscht', en: 'Deleted a device type' },
  'dataset.create': { de: 'Datensatz angelegt', en: 'Created a dataset' },
  'dataset.assign': { de: 'Datenstrom einem Datensatz zugeordnet', en: 'Assigned a datastream to a dataset' },
  'dataset.erase': { de: 'Datensatz gelöscht', en: 'Erased a dataset' },
  'grant.create': { de: 'Freigabe erteilt', en: 'Granted access' },
  'grant.revoke': { de: 'Freigabe widerrufen', en: 'Revoked a grant' },
  'supply_grant.create': { de: 'Lieferfreigabe erteilt', en: 'Granted a supply' },
  'supply_grant.revoke': { de: 'Lieferfreigabe widerrufen', en: 'Revoked a supply grant' },
  'connector.create': { de: 'Anbindung angelegt', en: 'Created a connector' },
  'connector.disable': { de: 'Anbindung abgeschaltet', en: 'Disabled a connector' },
  'dead_letters.replay': { de: 'Abgelehnte Nachrichten erneut verarbeitet', en: 'Replayed rejected messages' },
  // Alert rules (hoheit-store's alerts module) and data quality (a read of a datastream's day aggregates).
  'alerts.rule_create': { de: 'Alarmregel angelegt', en: 'Created an alert rule' },
  'alerts.rule_update': { de: 'Alarmregel geändert', en: 'Changed an alert rule' },
  'alerts.rule_delete': { de: 'Alarmregel gelöscht', en: 'Deleted an alert rule' },
  'alerts.rule_rotate_secret': { de: 'Webhook-Geheimnis einer Alarmregel erneuert', en: "Renewed an alert rule's webhook secret" },
  quality: { de: 'Datenqualität abgerufen', en: 'Read the data quality' },
};

/**
 * An audit action in words; one the table does not know as it is.
 * @param {string} action
 * @param {Language} lang
 */
export function actionLabel(action, lang) {
  return Object.hasOwn(ACTIONS, action) ? ACTIONS[action][lang] : action;
}

/**
 * The access policy's reasons for a denial (the `code` of a 403 problem) in words: what
 * the person can understand and act on; the API's `detail` says the particulars.
 * @type {Record<string, Both>}
 */
export const DENIALS = {
  not_authenticated: { de: 'Diese Daten sind nicht offen: bitte anmelden.', en: 'These data are not open: please sign in.' },
  no_grant: { de: 'Ihre Organisation hat keine Freigabe für diese Daten.', en: 'Your organisation holds no grant for these data.' },
  grant_revoked: { de: 'Die Freigabe Ihrer Organisation wurde widerrufen.', en: "Your organisation's grant was revoked." },
  grant_not_yet_valid: { de: 'Die Freigabe Ihrer Organisation gilt noch nicht.', en: "Your organisation's grant is not valid yet." },
  grant_expired: { de: 'Die Freigabe Ihrer Organisation ist abgelaufen.', en: "Your organisation's grant has expired." },
  raw_not_granted: { de: 'Ihre Freigabe erlaubt nur Aggregate, keine Rohwerte: wählen Sie ein Mittel über ein Intervall.', en: 'Your grant allows aggregates only, not raw readings: choose an average over an interval.' },
  interval_below_grant: { de: 'Das Intervall ist feiner, als Ihre Freigabe erlaubt: wählen Sie ein längeres.', en: 'The interval is finer than your grant allows: choose a longer one.' },
  interval_off_grid: { de: 'Das Intervall passt nicht auf das Raster Ihrer Freigabe (ein Vielfaches davon).', en: "The interval is not a whole multiple of your grant's grid." },
  outside_grant_window: { de: 'Der Zeitraum beginnt vor dem, was Ihre Freigabe an Historie erlaubt.', en: 'The range starts before the history your grant allows.' },
  personal_raw: { de: 'Personenbezogene Rohwerte gibt die Plattform an niemanden heraus.', en: 'Raw personal data leaves the platform for nobody.' },
  personal_off_grid: { de: 'Personenbezogene Daten gibt es nur als Aggregate im 15-Minuten-Raster.', en: 'Personal data is available only as aggregates on the 15-minute grid.' },
  personal_not_owner: { de: 'Personenbezogene Daten sind nur für ihren Eigentümer.', en: 'Personal data is for its owner only.' },
  not_data_owner: { de: 'Das dürfen nur Administration und Datenverantwortliche des Eigentümers.', en: "Only the owner's admins and data owners may do this." },
  not_visible: { de: 'Diese Daten sind für Sie nicht freigegeben.', en: 'These data are not shared with you.' },
  write_only: { de: 'Ein Schlüssel zum Einliefern liest nur offene Daten.', en: 'A publisher key reads open data only.' },
};

/**
 * A denial's reason in words; none for a code the table does not know (the API's detail then speaks alone).
 * @param {string | null | undefined} code
 * @param {Language} lang
 */
export function denialLabel(code, lang) {
  return code && Object.hasOwn(DENIALS, code) ? DENIALS[code][lang] : '';
}

/** @typedef {{ id: number, slug: string, name: string }} Organisation */

/**
 * Organisations by id and by slug, from `GET /v1/organisations`.
 * @typedef {{ byId: Map<number, Organisation>, bySlug: Map<string, Organisation> }} Organisations
 */

/**
 * @param {Organisation[]} list
 * @returns {Organisations}
 */
export function organisations(list) {
  return { byId: new Map(list.map((o) => [o.id, o])), bySlug: new Map(list.map((o) => [o.slug, o])) };
}

/**
 * An organisation (its id or slug) by name; unknown ones as they were given.
 * @param {Organisations} orgs
 * @param {number | string | null | undefined} idOrSlug
 */
export function orgLabel(orgs, idOrSlug) {
  if (idOrSlug === null || idOrSlug === undefined) return '';
  const org = typeof idOrSlug === 'number' ? orgs.byId.get(idOrSlug) : orgs.bySlug.get(idOrSlug);
  return org?.name || String(idOrSlug);
}
