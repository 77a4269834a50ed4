//! Alert rules (`/v1/alerts/rules`) and the alerts of a caller's rules
//! (`/v1/alerts`): a principal manages its own rules, an organisation's
//! admins their organisation's, the operator all (`crate::access`); someone
//! else's rule is 404. A rule is a standing read of its datastream, so the
//! access gate asks the policy at the rule's resolution when it is made and
//! whenever it changes. The alerts service (`services/alerts`) evaluates the
//! stored rules; here they are made, changed, listed, and their events and
//! delivery logs shown.
//!
//! Input is checked once, here, into a [`RuleDraft`]: the rule itself by
//! `hoheit_domain::alert::RuleSpec`, the webhook URL (`http`/`https`, no
//! credentials, at most 2,000 characters), the e-mail addresses (at most 20,
//! each a plausible address by the `email_address` parser). The webhook's
//! secret is made by the store and shown once: in the answer that made it.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::Json;
use hoheit_domain::alert::{self, Condition, Language, RuleSpec};
use hoheit_domain::policy::Resolution;
use hoheit_domain::DatastreamId;
use hoheit_store::alerts::{self, AlertEvent, AlertStatus, Delivery, Rule, RuleDraft, Webhook};
use serde::{Deserialize, Deserializer, Serialize};

use crate::access;
use crate::auth::Who;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, PathId};
use crate::openapi::ProblemDoc;
use crate::params;
use crate::routes::admin::actor;
use crate::AppState;

/// At most this many e-mail addresses per rule.
const MAX_EMAILS: usize = 20;
/// The longest webhook URL.
const MAX_URL_CHARS: usize = 2000;
/// The longest e-mail address (RFC 5321's path limit).
const MAX_EMAIL_CHARS: usize = 254;
/// The longest a rule waits, in minutes (a week).
const MAX_FOR_MINUTES: i64 = alert::MAX_FOR_SECS / 60;

/// A new rule.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    /// The datastream watched: one the caller may read at the rule's resolution.
    #[schema(minimum = 1)]
    pub datastream: i64,
    #[schema(min_length = 1, max_length = 200, example = "NO2 Stundenmittel")]
    pub name: String,
    /// `above`/`below` a `threshold`, `rate` faster than `per_minute`, or `silent` (no reading for `for_minutes`).
    pub condition: Condition,
    /// How long the condition must hold before the rule fires (0: at once); a
    /// silent-sensor rule: how long without a reading (at least 1).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 10080)]
    pub for_minutes: i64,
    /// How far back past the threshold a firing value must come to resolve (not for silent rules).
    #[serde(default)]
    #[schema(minimum = 0)]
    pub hysteresis: f64,
    /// Watch averages of this interval (`15m`, `1h`; 1 minute to 1 day, at
    /// least the caller's grant's interval); absent or `null`: raw readings.
    #[serde(default)]
    #[schema(example = "15m", pattern = "^[0-9]+[smhd]$")]
    pub aggregate: Option<String>,
    /// Where a webhook is posted (JSON, signed with the rule's secret); `null`: none.
    #[serde(default)]
    pub webhook: Option<Webhook>,
    /// Who is told by e-mail (at most 20).
    #[serde(default)]
    #[schema(max_items = 20)]
    pub emails: Vec<String>,
    /// The language of the e-mails.
    #[serde(default)]
    pub language: Language,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

/// A rule's change: members left out stay as they are; `aggregate` and
/// `webhook` are removed by `null`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RulePatch {
    #[schema(minimum = 1)]
    pub datastream: Option<i64>,
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    pub condition: Option<Condition>,
    #[schema(minimum = 0, maximum = 10080)]
    pub for_minutes: Option<i64>,
    #[schema(minimum = 0)]
    pub hysteresis: Option<f64>,
    /// `null`: raw readings.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "1h", pattern = "^[0-9]+[smhd]$")]
    pub aggregate: Option<Option<String>>,
    /// A new URL keeps the rule's secret (a rule that had none gets one, shown once); `null`: no webhook.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Webhook>)]
    pub webhook: Option<Option<Webhook>>,
    #[schema(max_items = 20)]
    pub emails: Option<Vec<String>>,
    pub language: Option<Language>,
    pub enabled: Option<bool>,
}

/// A member that is present, `null` included (absent: `None` by `default`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A rule, with its webhook's secret when this answer made one.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RuleWithSecret {
    #[serde(flatten)]
    pub rule: Rule,
    /// The HMAC-SHA256 key of the webhook's `Hoheit-Signature` (32 random
    /// bytes, base64url): shown in this answer only, never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RuleList {
    pub rules: Vec<Rule>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertList {
    /// Firing first, then pending, then the rest; within each the newest change first.
    pub alerts: Vec<Rule>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventList {
    /// Newest first.
    pub events: Vec<AlertEvent>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryList {
    /// Newest first, each with its attempts.
    pub deliveries: Vec<Delivery>,
}

/// The new webhook secret of a rule.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RotatedSecret {
    /// Shown in this answer only.
    pub webhook_secret: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RulesQuery {
    /// Only the rules of this datastream.
    #[param(minimum = 1)]
    pub datastream: Option<i64>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlertsQuery {
    /// Only rules in this state.
    pub status: Option<AlertStatus>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// At most this many (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Only those older than this id (the last id of the previous page).
    #[param(minimum = 1)]
    pub before: Option<i64>,
}

impl PageQuery {
    fn checked(&self) -> Result<(i64, Option<i64>), ApiError> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::BadRequest("limit must be between 1 and 1000".into()));
        }
        if self.before.is_some_and(|b| b < 1) {
            return Err(ApiError::BadRequest("before must be a positive id".into()));
        }
        Ok((limit, self.before))
    }
}

fn invalid(field: &str, reason: impl std::fmt::Display) -> ApiError {
    ApiError::Unprocessable(format!("{field}: {reason}"))
}

/// A rule's members, checked into what the store keeps.
#[allow(clippy::too_many_arguments)]
fn draft(
    datastream: i64,
    name: String,
    condition: Condition,
    for_minutes: i64,
    hysteresis: f64,
    aggregate: Option<&str>,
    webhook: Option<Webhook>,
    emails: Vec<String>,
    language: Language,
    enabled: bool,
) -> Result<RuleDraft, ApiError> {
    if datastream < 1 {
        return Err(invalid("datastream", "must be a positive id"));
    }
    if name.trim().is_empty() || name.chars().count() > 200 {
        return Err(invalid("name", "must be 1 to 200 characters, not only spaces"));
    }
    if !(0..=MAX_FOR_MINUTES).contains(&for_minutes) {
        return Err(invalid("for_minutes", format!("must be between 0 and {MAX_FOR_MINUTES} (7 days)")));
    }
    let resolution = match aggregate {
        None => Resolution::Raw,
        Some(text) => {
            Resolution::Aggregate { interval_secs: params::interval(text).map_err(|e| invalid("aggregate", e))? }
        }
    };
    let spec =
        RuleSpec::new(condition, for_minutes * 60, hysteresis, resolution).map_err(|e| invalid("condition", e))?;
    let webhook_url = webhook.map(|w| check_webhook_url(&w.url)).transpose()?;
    let emails = check_emails(emails)?;
    Ok(RuleDraft { datastream_id: datastream, name, spec, webhook_url, emails, language, enabled })
}

/// An `http` or `https` URL with a host, without user name or password, of at most 2,000 characters.
fn check_webhook_url(url: &str) -> Result<String, ApiError> {
    if url.chars().count() > MAX_URL_CHARS {
        return Err(invalid("webhook.url", format!("must be at most {MAX_URL_CHARS} characters")));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| invalid("webhook.url", format!("is not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid("webhook.url", "must be an http or https URL"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("webhook.url", "must name a host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid(
            "webhook.url",
            "must not hold a user name or password: the receiver checks the Hoheit-Signature header instead",
        ));
    }
    // Stored as parsed: the parser drops tabs and line breaks a client may have sent inside it.
    let normalised = String::from(parsed);
    if normalised.chars().count() > MAX_URL_CHARS {
        return Err(invalid("webhook.url", format!("must be at most {MAX_URL_CHARS} characters")));
    }
    Ok(normalised)
}

/// At most 20 distinct, plausible addresses (a local part, `@`, a domain with a top-level domain).
fn check_emails(emails: Vec<String>) -> Result<Vec<String>, ApiError> {
    if emails.len() > MAX_EMAILS {
        return Err(invalid("emails", format!("at most {MAX_EMAILS} addresses per rule")));
    }
    let options = email_address::Options::default().with_required_tld().without_display_text().without_domain_literal();
    for (i, address) in emails.iter().enumerate() {
        if address.chars().count() > MAX_EMAIL_CHARS {
            return Err(invalid("emails", format!("address {} is longer than {MAX_EMAIL_CHARS} characters", i + 1)));
        }
        if let Err(e) = email_address::EmailAddress::parse_with_options(address, options) {
            let shown: String = address.chars().take(80).collect();
            return Err(invalid("emails", format!("{shown:?} is not an e-mail address ({e})")));
        }
        if emails[..i].iter().any(|earlier| earlier.eq_ignore_ascii_case(address)) {
            return Err(invalid("emails", format!("{address} is listed twice")));
        }
    }
    Ok(emails)
}

/// Creates a rule owned by the caller, if it may read the datastream at the
/// rule's resolution. The answer holds the webhook's secret: the only time it is shown.
#[utoipa::path(post, operation_id = "alerts_create", path = "/alerts/rules", tag = "alerts", security(("bearer" = [])),
    request_body = NewRule,
    responses(
        (status = 201, description = "created, with the webhook's secret (shown this once)", body = RuleWithSecret,
            headers(("Location" = String, description = "the rule's path"))),
        (status = 422, description = "the rule is not valid (`detail` says why)", body = ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    who: Who,
    ApiJson(new): ApiJson<NewRule>,
) -> Result<(StatusCode, HeaderMap, Json<RuleWithSecret>), ApiError> {
    let owner = access::rule_owner(&who)?;
    let draft = draft(
        new.datastream,
        new.name,
        new.condition,
        new.for_minutes,
        new.hysteresis,
        new.aggregate.as_deref(),
        new.webhook,
        new.emails,
        new.language,
        new.enabled,
    )?;
    let standing = access::authorize_rule(
        &state,
        &who,
        DatastreamId(draft.datastream_id),
        draft.spec.resolution(),
        "alerts.rule_create",
    )
    .await?;
    let (rule, webhook_secret) = alerts::create(&state.pool, owner, &draft, standing, &actor(&who)).await?;
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/alerts/rules/{}", rule.id)) {
        headers.insert(header::LOCATION, location);
    }
    Ok((StatusCode::CREATED, headers, Json(RuleWithSecret { rule, webhook_secret })))
}

/// The caller's rules: its own; an organisation's admin: the organisation's; the operator: all.
#[utoipa::path(get, operation_id = "alerts_list", path = "/alerts/rules", tag = "alerts", security(("bearer" = [])),
    params(RulesQuery),
    responses((status = 200, description = "the rules, by id", body = RuleList)))]
pub async fn list(
    State(state): State<AppState>,
    who: Who,
    ApiQuery(query): ApiQuery<RulesQuery>,
) -> Result<Json<RuleList>, ApiError> {
    let scope = access::rule_scope(&who)?;
    Ok(Json(RuleList { rules: alerts::list(&state.pool, scope, query.datastream).await? }))
}

#[utoipa::path(get, operation_id = "alerts_get_one", path = "/alerts/rules/{id}", tag = "alerts", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "rule id")),
    responses((status = 200, description = "the rule with its state", body = Rule)))]
pub async fn get_one(State(state): State<AppState>, who: Who, PathId(id): PathId) -> Result<Json<Rule>, ApiError> {
    access::require_rule(&state, &who, id).await?;
    Ok(Json(alerts::get(&state.pool, id).await?))
}

/// Changes a rule; the policy decides again. A changed datastream,
/// condition or aggregate resets its state to `ok`.
#[utoipa::path(patch, operation_id = "alerts_update", path = "/alerts/rules/{id}", tag = "alerts", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "rule id")),
    request_body = RulePatch,
    responses(
        (status = 200, description = "the changed rule (with a webhook secret if it got its first webhook)", body = RuleWithSecret),
        (status = 422, description = "the rule is not valid (`detail` says why)", body = ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn update(
    State(state): State<AppState>,
    who: Who,
    PathId(id): PathId,
    ApiJson(patch): ApiJson<RulePatch>,
) -> Result<Json<RuleWithSecret>, ApiError> {
    access::require_rule(&state, &who, id).await?;
    let rule = alerts::get(&state.pool, id).await?;
    let aggregate = match patch.aggregate {
        Some(aggregate) => aggregate,
        None => rule.aggregate,
    };
    let draft = draft(
        patch.datastream.unwrap_or(rule.datastream),
        patch.name.unwrap_or(rule.name),
        patch.condition.unwrap_or(rule.condition),
        patch.for_minutes.unwrap_or(rule.for_minutes),
        patch.hysteresis.unwrap_or(rule.hysteresis),
        aggregate.as_deref(),
        patch.webhook.unwrap_or(rule.webhook),
        patch.emails.unwrap_or(rule.emails),
        patch.language.unwrap_or(rule.language),
        patch.enabled.unwrap_or(rule.enabled),
    )?;
    let standing = access::authorize_rule(
        &state,
        &who,
        DatastreamId(draft.datastream_id),
        draft.spec.resolution(),
        "alerts.rule_update",
    )
    .await?;
    let (rule, webhook_secret) = alerts::update(&state.pool, id, &draft, standing, &actor(&who)).await?;
    Ok(Json(RuleWithSecret { rule, webhook_secret }))
}

/// Deletes a rule with its state, events and delivery log.
#[utoipa::path(delete, operation_id = "alerts_delete", path = "/alerts/rules/{id}", tag = "alerts", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "rule id")),
    responses((status = 204, description = "deleted")))]
pub async fn delete(State(state): State<AppState>, who: Who, PathId(id): PathId) -> Result<StatusCode, ApiError> {
    access::require_rule(&state, &who, id).await?;
    alerts::delete(&state.pool, id, &actor(&who)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Gives the rule's webhook a new secret, shown in this answer only; the old one signs no more.
#[utoipa::path(post, operation_id = "alerts_rotate_secret", path = "/alerts/rules/{id}/rotate-secret", tag = "alerts", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "rule id")),
    responses(
        (status = 200, description = "the new secret", body = RotatedSecret),
        (status = 422, description = "the rule has no webhook", body = ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    who: Who,
    PathId(id): PathId,
) -> Result<Json<RotatedSecret>, ApiError> {
    access::require_rule(&state, &who, id).await?;
    Ok(Json(RotatedSecret { webhook_secret: alerts::rotate_secret(&state.pool, id, &actor(&who)).await? }))
}

/// The caller's rules with their state: firing first, then pending, then
/// the rest; within each the newest change first.
#[utoipa::path(get, operation_id = "alerts_alerts", path = "/alerts", tag = "alerts", security(("bearer" = [])),
    params(AlertsQuery),
    responses((status = 200, description = "the rules with their state", body = AlertList)))]
pub async fn alerts(
    State(state): State<AppState>,
    who: Who,
    ApiQuery(query): ApiQuery<AlertsQuery>,
) -> Result<Json<AlertList>, ApiError> {
    let scope = access::rule_scope(&who)?;
    Ok(Json(AlertList { alerts: alerts::with_state(&state.pool, scope, query.status).await? }))
}

/// A rule's state changes, newest first.
#[utoipa::path(get, operation_id = "alerts_events", path = "/alerts/rules/{id}/events", tag = "alerts", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "rule id"), PageQuery),
    responses((status = 200, description = "the events", body = EventList)))]
pub async fn events(
    State(state): State<AppState>,
    who: Who,
    PathId(id): PathId,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<EventList>, ApiError> {
    let (limit, before) = page.checked()?;
    access::require_rule(&state, &who, id).await?;
    Ok(Json(EventList { events: alerts::events(&state.pool, id, limit, before).await? }))
}

/// A rule's delivery log: each notification (webhook or e-mail) with every attempt, newest first.
#[utoipa::path(get, operation_id = "alerts_deliveries", path = "/alerts/rules/{id}/deliveries", tag = "alerts", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "rule id"), PageQuery),
    responses((status = 200, description = "the deliveries", body = DeliveryList)))]
pub async fn deliveries(
    State(state): State<AppState>,
    who: Who,
    PathId(id): PathId,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<DeliveryList>, ApiError> {
    let (limit, before) = page.checked()?;
    access::require_rule(&state, &who, id).await?;
    Ok(Json(DeliveryList { deliveries: alerts::deliveries(&state.pool, id, limit, before).await? }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(webhook: Option<&str>, emails: &[&str]) -> Result<RuleDraft, ApiError> {
        draft(
            1,
            "Pegel".into(),
            Condition::Above { threshold: 2.5 },
            10,
            0.1,
            Some("15m"),
            webhook.map(|url| Webhook { url: url.into() }),
            emails.iter().map(|e| e.to_string()).collect(),
            Language::En,
            true,
        )
    }

    #[test]
    fn a_valid_rule_is_drafted() {
        let draft = checked(Some("https://hooks.example/x?y=1"), &["a@b.de", "leitstelle@stadt.example"]).unwrap();
        assert_eq!(draft.spec.resolution(), Resolution::Aggregate { interval_secs: 900 });
        assert_eq!(draft.spec.for_secs(), 600);
        assert_eq!(draft.emails.len(), 2);
    }

    #[test]
    fn webhook_urls_are_http_without_credentials() {
        for bad in
            ["ftp://hooks.example/", "https://user:pw@hooks.example/", "https://user@hooks.example/", "not a url"]
        {
            assert!(checked(Some(bad), &[]).is_err(), "{bad}");
        }
        let sent = checked(Some("https://hooks.example/a\tb\n"), &[]).unwrap();
        assert_eq!(sent.webhook_url.as_deref(), Some("https://hooks.example/ab"), "stored as parsed");
        let long = format!("https://hooks.example/{}", "a".repeat(2000));
        assert!(checked(Some(&long), &[]).is_err());
    }

    #[test]
    fn emails_are_plausible_distinct_and_few() {
        for bad in ["nobody", "a@localhost", "Name <a@b.de>", "a@[127.0.0.1]", "@b.de"] {
            assert!(checked(None, &[bad]).is_err(), "{bad}");
        }
        assert!(checked(None, &["a@b.de", "A@b.de"]).is_err());
        let many: Vec<String> = (0..21).map(|i| format!("p{i}@stadt.example")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(checked(None, &many).is_err());
    }
}
