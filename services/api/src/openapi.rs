//! The OpenAPI 3.1 document of the API, generated from the code: the
//! handlers' `#[utoipa::path]` annotations and the request and response
//! types' `ToSchema` derives, collected by the router in [`crate::router`]
//! (utoipa-axum), so a route cannot exist without its documentation.
//!
//! This module adds what holds for every operation: the `bearer` security
//! scheme (API key, OIDC token or the operator's token) and the
//! problem+json error responses.

use hoheit_domain::policy::DenyCode;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, Ref, RefOr};
use utoipa::{Modify, ToSchema};

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/openapi.json";
/// Where the interactive documentation is served.
pub const DOCS_PATH: &str = "/docs";

/// An RFC 9457 problem: every error response of the API.
#[derive(Debug, serde::Serialize, ToSchema)]
#[schema(as = Problem)]
pub struct ProblemDoc {
    /// Always `about:blank`: the status says what kind of problem it is.
    #[serde(rename = "type")]
    pub kind: String,
    /// The status's reason phrase.
    pub title: String,
    pub status: u16,
    /// What is wrong and what to change.
    pub detail: String,
    /// On a denial by the access policy (403): why, as a stable machine
    /// code (the `detail` says it in words). `not_authenticated`: the data
    /// is not open, present a credential; `no_grant`: the caller's
    /// organisation holds no grant; `grant_revoked`, `grant_not_yet_valid`,
    /// `grant_expired`: the grant is not in force; `raw_not_granted`: the
    /// grant allows aggregates only; `interval_below_grant`: a finer interval
    /// than the grant allows; `interval_off_grid`: the interval is not a
    /// whole multiple of the grant's grid; `outside_grant_window`: the range
    /// starts before the grant's history window; `personal_raw`: raw
    /// personal data leaves for nobody; `personal_off_grid`: personal
    /// aggregates lie on the 15-minute grid; `personal_not_owner`: personal
    /// data is for its owner only; `not_data_owner`: exports are for the
    /// owner's admins and data owners; `not_visible`: the dataset (or the
    /// datastream's dataset) is not shared with the caller; `write_only`: a
    /// publisher key reads nothing but open data. On a refused write (the
    /// doors: push, SensorThings create, connectors, devices):
    /// `not_authenticated`, `read_only_role` (reader keys never write),
    /// `foreign_organisation`, `supply_grant_revoked`,
    /// `supply_grant_not_yet_valid`, `supply_grant_expired`,
    /// `thing_not_supplied`, `connector_disabled`, and on a rejected reading
    /// its reason code (`non_numeric_value`, …).
    #[schema(nullable = false, value_type = Option<String>)]
    pub code: Option<DenyCode>,
    /// On a refused import (422): every bad row with its line and column.
    #[schema(nullable = false)]
    pub errors: Option<Vec<hoheit_domain::onboarding::RowError>>,
}

/// The document's frame: info, tags and the modifiers below; the paths come from the router.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Hoheit API",
        description = "Access-controlled sensor data of a municipality: registry, readings, aggregates, \
                       dead letters, datasets, grants, the audit log and the transparency report. \
                       Without credentials a caller is anonymous and sees open data only.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    components(schemas(ProblemDoc, DenyCode)),
    modifiers(&Security),
    tags(
        (name = "ops", description = "liveness, readiness, metrics"),
        (name = "data", description = "datastreams, readings and aggregates (policy-checked and audited)"),
        (name = "datasets", description = "dataset metadata, grants, export and erasure"),
        (name = "audit", description = "the audit log and the public transparency report"),
        (name = "me", description = "the caller's own access: who it is, the grants it holds and their use, its read log"),
        (name = "admin", description = "registry, principals and keys, datasets and grants"),
        (name = "opendata", description = "open data: the DCAT-AP.de catalog and downloads"),
        (name = "alerts", description = "alert rules on datastreams the caller may read, their state, events and deliveries"),
    )
)]
pub struct ApiDoc;

/// Security scheme name used by the handlers' `security(...)`.
pub const BEARER: &str = "bearer";
/// Security scheme name of the doors that authenticate a device by its token.
pub const DEVICE_BASIC: &str = "basic";

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`Authorization: Bearer <credential>`: a principal's API key (`hoh_…`), an OIDC \
                         token (JWT) of the configured issuer, or the operator's bootstrap token. \
                         Without the header the caller is anonymous (open data only).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            DEVICE_BASIC,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "A device's own token (`POST /v1/admin/things/{id}/device-token`) as the password of                          HTTP basic auth (the user is not looked at), as the airrohr firmware sends it;                          `Authorization: Bearer <token>` is accepted too.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Error statuses every operation may answer, each as problem+json.
const ERRORS: &[(&str, &str)] = &[
    ("400", "the request is not valid: `detail` says what to change"),
    ("401", "a credential was presented but is not valid (or one is needed)"),
    ("403", "the policy denies this caller (the reason is in `detail`; a denial of the access policy also carries its stable `code`)"),
    ("404", "no such resource"),
    ("429", "rate limit reached; see `Retry-After`"),
    ("500", "internal error"),
    ("503", "the database is not available, the query ran past the statement timeout, or the anonymous public's share of the database is in use (see `Retry-After`); the detail says which"),
];

/// Additionally for operations with a JSON body.
const BODY_ERRORS: &[(&str, &str)] =
    &[("409", "the resource already exists"), ("422", "the body is well-formed but a value is not acceptable")];

/// Adds the problem+json error responses to every operation that does not
/// state them itself; called once the router has collected the operations.
pub fn add_problem_responses(openapi: &mut OpenApi) {
    // axum's catch-all segment `{*resource}` (SensorThings resource paths)
    // is an ordinary path parameter `{resource}` in OpenAPI.
    let wildcards: Vec<String> = openapi.paths.paths.keys().filter(|p| p.contains("{*")).cloned().collect();
    for path in wildcards {
        if let Some(item) = openapi.paths.paths.remove(&path) {
            openapi.paths.paths.insert(path.replace("{*", "{"), item);
        }
    }
    let problem = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
            )
            .build()
    };
    for item in openapi.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
        {
            let extra = if operation.request_body.is_some() { BODY_ERRORS } else { &[] };
            for (status, description) in ERRORS.iter().chain(extra) {
                operation
                    .responses
                    .responses
                    .entry((*status).to_owned())
                    .or_insert_with(|| RefOr::T(problem(description)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_problem_schema_explains_every_denial_code() {
        let schema = serde_json::to_value(<ProblemDoc as utoipa::PartialSchema>::schema()).unwrap();
        let explained = schema["properties"]["code"].to_string();
        for code in DenyCode::ALL {
            assert!(explained.contains(&format!("`{code}`")), "{code} is not explained: {explained}");
        }
    }
}
