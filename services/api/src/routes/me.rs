//! The caller's own access: who it is (`/v1/me`), the grants its
//! organisation holds with their terms and use (`/v1/me/grants`), and its own
//! read log (`/v1/me/reads`). A licensee learns here what its contract allows
//! without asking the dataset's owner; every signed-in caller may ask.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use hoheit_domain::policy::{Caller, GrantStanding, GrantTerms, Principal, Role};
use hoheit_domain::Slug;
use hoheit_store::audit::{self, AuditEntry, Reader};
use hoheit_store::grants::{self, HeldGrant};
use hoheit_store::principals;
use hoheit_store::registry;
use serde::{Deserialize, Serialize};

use crate::auth::Who;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::params::{self, TimeRange};
use crate::AppState;

/// The organisation a principal belongs to.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MyOrganisation {
    id: i64,
    slug: String,
    name: String,
}

/// The key the request was made with (never the key itself).
#[derive(Serialize, utoipa::ToSchema)]
pub struct MyKey {
    /// The key's public part (also its MQTT user name).
    lookup: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

/// How the caller signed in.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignedInWith {
    /// The platform operator's token.
    OperatorToken,
    /// An API key.
    ApiKey,
    /// A token of the organisation's OpenID Connect issuer.
    Oidc,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Me {
    /// The principal's name; `operator` for the platform operator.
    name: String,
    /// The principal's id; absent for the operator.
    principal_id: Option<i64>,
    /// The principal's role; absent for the operator, who may do everything.
    #[schema(value_type = Option<String>, example = "reader")]
    role: Option<Role>,
    operator: bool,
    organisation: Option<MyOrganisation>,
    signed_in_with: SignedInWith,
    /// The key in use, when the caller signed in with one.
    key: Option<MyKey>,
}

fn signed_in(who: &Who) -> Result<Option<&Principal>, ApiError> {
    match &*who.caller {
        Caller::Anonymous => Err(ApiError::Unauthorized("who you are needs a credential: present an API key".into())),
        Caller::Operator => Ok(None),
        Caller::Principal(p) => Ok(Some(p)),
    }
}

/// The caller: principal, organisation, role, and the expiry of the key in use.
#[utoipa::path(get, operation_id = "me_get", path = "/me", tag = "me", security(("bearer" = [])),
    responses((status = 200, description = "the caller", body = Me)))]
pub async fn get(State(state): State<AppState>, who: Who) -> Result<Json<Me>, ApiError> {
    let Some(principal) = signed_in(&who)? else {
        return Ok(Json(Me {
            name: who.caller.name().to_owned(),
            principal_id: None,
            role: None,
            operator: true,
            organisation: None,
            signed_in_with: SignedInWith::OperatorToken,
            key: None,
        }));
    };
    let slug = Slug::parse("org", &principal.org_slug).map_err(|_| ApiError::Internal)?;
    let org = registry::organisation(&state.pool, &slug).await?.ok_or(ApiError::Internal)?;
    let key = match principal.key_id {
        Some(id) => {
            let k = principals::key_view(&state.pool, id).await?;
            Some(MyKey { lookup: k.lookup, created_at: k.created_at, expires_at: k.expires_at })
        }
        None => None,
    };
    Ok(Json(Me {
        name: principal.name.clone(),
        principal_id: Some(principal.id),
        role: Some(principal.role),
        operator: false,
        organisation: Some(MyOrganisation { id: org.id, slug: org.slug.as_str().to_owned(), name: org.name }),
        signed_in_with: if key.is_some() { SignedInWith::ApiKey } else { SignedInWith::Oidc },
        key,
    }))
}

/// Where a grant stands now.
#[derive(Serialize, utoipa::ToSchema, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum GrantStatus {
    /// In force: reads under it are allowed within its terms.
    Active,
    /// Its validity has not begun.
    NotYetValid,
    /// Its validity has ended.
    Expired,
    /// The owner revoked it.
    Revoked,
}

impl GrantStatus {
    fn of(terms: &GrantTerms, now: DateTime<Utc>) -> Self {
        match terms.standing(now) {
            GrantStanding::InForce => GrantStatus::Active,
            GrantStanding::NotYetValid => GrantStatus::NotYetValid,
            GrantStanding::Expired => GrantStatus::Expired,
            GrantStanding::Revoked(_) => GrantStatus::Revoked,
        }
    }
}

/// A grant the caller's organisation holds.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MyGrant {
    #[serde(flatten)]
    grant: HeldGrant,
    status: GrantStatus,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MyGrants {
    grants: Vec<MyGrant>,
}

/// The grants (contracts) the caller's organisation holds, with their terms
/// (purpose, contract, resolution, history, validity, rate), status and current use.
#[utoipa::path(get, operation_id = "me_grants", path = "/me/grants", tag = "me", security(("bearer" = [])),
    responses((status = 200, description = "the grants held; none for the operator, who needs none", body = MyGrants)))]
pub async fn grants(State(state): State<AppState>, who: Who) -> Result<Json<MyGrants>, ApiError> {
    let Some(principal) = signed_in(&who)? else {
        return Ok(Json(MyGrants { grants: Vec::new() }));
    };
    let now = Utc::now();
    let grants = grants::held_with_use(&state.pool, principal.org_id)
        .await?
        .into_iter()
        .map(|grant| MyGrant { status: GrantStatus::of(&grant.terms, now), grant })
        .collect();
    Ok(Json(MyGrants { grants }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReadsQuery {
    /// Start of the range (inclusive), RFC 3339; default: 30 days ago.
    #[param(format = DateTime)]
    from: Option<String>,
    /// End of the range (exclusive), RFC 3339; default: now.
    #[param(format = DateTime)]
    to: Option<String>,
    /// Page size, 1 to 10,000; default 1,000.
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ReadsPage {
    records: Vec<AuditEntry>,
    next_cursor: Option<String>,
}

/// The caller's own read log, oldest first, for its own compliance: what it
/// read (or was refused), when, under which grant. Admins and data owners see
/// their organisation's reads, other principals their own; the operator its own.
#[utoipa::path(get, operation_id = "me_reads", path = "/me/reads", tag = "me", security(("bearer" = [])),
    params(ReadsQuery),
    responses((status = 200, description = "one page of the caller's read records", body = ReadsPage)))]
pub async fn reads(
    State(state): State<AppState>,
    who: Who,
    ApiQuery(query): ApiQuery<ReadsQuery>,
) -> Result<Json<ReadsPage>, ApiError> {
    let principal = signed_in(&who)?;
    let range = TimeRange::parse(query.from.as_deref(), query.to.as_deref(), Duration::days(30))?;
    let limit = params::limit(query.limit)?;
    let after = query.cursor.as_deref().map(|c| params::decode_cursor('r', c)).transpose()?.unwrap_or(0);
    let reader = match principal {
        // Admins and data owners answer for their organisation's reads; the others for their own.
        Some(p) => Reader::Organisation {
            org_id: p.org_id,
            principal_id: (!matches!(p.role, Role::Admin | Role::DataOwner)).then_some(p.id),
        },
        None => Reader::Operator,
    };
    let records = audit::reads_of(&state.pool, reader, range.from, range.to, after, limit).await?;
    let next_cursor =
        (records.len() as i64 == limit).then(|| records.last().map(|r| params::encode_cursor('r', r.id))).flatten();
    Ok(Json(ReadsPage { records, next_cursor }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(from: i64, until: i64, revoked: Option<i64>) -> GrantTerms {
        let at = |h: i64| DateTime::<Utc>::UNIX_EPOCH + Duration::hours(h);
        GrantTerms {
            id: 1,
            dataset_id: 1,
            grantee_org_id: 2,
            purpose: "p".into(),
            contract_ref: "c".into(),
            min_interval_mins: None,
            history_days: None,
            valid_from: at(from),
            valid_until: at(until),
            rate_per_minute: 60,
            revoked_at: revoked.map(at),
        }
    }

    #[test]
    fn a_grants_status_follows_its_validity_and_revocation() {
        let now = DateTime::<Utc>::UNIX_EPOCH + Duration::hours(10);
        assert_eq!(GrantStatus::of(&terms(0, 20, None), now), GrantStatus::Active);
        assert_eq!(GrantStatus::of(&terms(11, 20, None), now), GrantStatus::NotYetValid);
        assert_eq!(GrantStatus::of(&terms(0, 10, None), now), GrantStatus::Expired, "the end is exclusive");
        assert_eq!(GrantStatus::of(&terms(0, 20, Some(9)), now), GrantStatus::Revoked);
        assert_eq!(
            GrantStatus::of(&terms(0, 20, Some(11)), now),
            GrantStatus::Revoked,
            "as the policy: any revocation"
        );
    }
}
