//! The demo's database writes, through `hoheit-store`: wait for the
//! simulator's town, then create or find each planned organisation, dataset,
//! grant, principal and alert rule (idempotent), and issue a key per principal.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hoheit_domain::{DatastreamId, DatastreamKey};
use hoheit_store::alerts::{self, Owner, RuleDraft, Scope, Standing};
use hoheit_store::audit::Actor;
use hoheit_store::datasets::{self, NewDataset};
use hoheit_store::grants::{self, NewGrant};
use hoheit_store::principals::{self, KeyExpiry, KeyLifetime, NewPrincipal};
use hoheit_store::registry::{self, NewOrganisation};
use hoheit_town::Town;
use sqlx::PgPool;

use super::plan::{slug, town_keys, DatasetPlan, GrantPlan, OrgPlan, PrincipalPlan, RulePlan};
use super::report::{Change, DatasetOutcome, GrantOutcome, OrgOutcome, PrincipalOutcome, RuleOutcome};
use crate::cmd::keys;
use crate::AdminError;

/// Waits (bounded) until every datastream of the simulator's town is
/// registered; returns the ids of all registered datastreams.
pub(super) async fn wait_for_town(
    pool: &PgPool,
    town: &Town,
    wait: Duration,
) -> Result<HashMap<DatastreamKey, DatastreamId>, AdminError> {
    let wanted = town_keys(town)?;
    let started = Instant::now();
    loop {
        let registered: HashMap<DatastreamKey, DatastreamId> =
            registry::load_all(pool).await?.into_iter().map(|(key, r)| (key, r.id)).collect();
        let missing: Vec<&DatastreamKey> =
            wanted.iter().map(|(_, key)| key).filter(|key| !registered.contains_key(*key)).collect();
        let Some(first) = missing.first() else { return Ok(registered) };
        if started.elapsed() >= wait {
            return Err(AdminError::NotReady(format!(
                "{} of the simulator's {} datastreams (e.g. {first}) are not registered after {} s: is \
                 hoheit-simulator running against this database (and with this --scale)? Wait longer with --wait-secs",
                missing.len(),
                wanted.len(),
                wait.as_secs()
            )));
        }
        tracing::info!(missing = missing.len(), "waiting for the simulator to register its town");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub(super) async fn ensure_org(pool: &PgPool, plan: &OrgPlan, actor: &Actor) -> Result<OrgOutcome, AdminError> {
    let org_slug = slug("organisation", plan.slug)?;
    let parent = plan.parent.map(|p| slug("organisation", p)).transpose()?;
    let outcome = |name: String, change, was| OrgOutcome {
        slug: plan.slug.into(),
        name,
        kind: plan.kind,
        parent: plan.parent.map(Into::into),
        change,
        was,
    };
    match registry::organisation(pool, &org_slug).await? {
        None => {
            let new = NewOrganisation {
                slug: org_slug,
                name: plan.name.into(),
                kind: Some(plan.kind),
                parent: parent.clone(),
            };
            crate::cmd::organisations::create(pool, &new, actor).await?;
            Ok(outcome(plan.name.into(), Change::Created, None))
        }
        Some(org) if org.kind == plan.kind && org.parent == parent => Ok(outcome(org.name, Change::Unchanged, None)),
        Some(org) => {
            let was = format!("{}{}", org.kind, org.parent.as_ref().map(|p| format!(" of {p}")).unwrap_or_default());
            registry::set_organisation_kind(pool, &org_slug, plan.kind, parent.as_ref(), actor).await?;
            Ok(outcome(org.name, Change::Updated, Some(was)))
        }
    }
}

pub(super) async fn ensure_dataset(
    pool: &PgPool,
    plan: &DatasetPlan,
    town: &Town,
    ids: &HashMap<DatastreamKey, DatastreamId>,
    actor: &Actor,
) -> Result<DatasetOutcome, AdminError> {
    let ds_slug = slug("dataset", plan.slug)?;
    let (ds, change) = match datasets::by_slug(pool, &ds_slug).await? {
        Some(ds) => (ds, Change::Unchanged),
        None => {
            let new = NewDataset {
                slug: ds_slug,
                owner: slug("organisation", plan.owner)?,
                title: plan.title.into(),
                description: plan.description.into(),
                steward_contact: plan.steward.into(),
                classification: plan.classification,
                license: plan.license.into(),
                purpose: plan.purpose.into(),
                retention_days: plan.retention_days,
                theme: plan.theme.into(),
                min_bucket_count: None,
            };
            (datasets::create(pool, &new, actor).await?, Change::Created)
        }
    };
    if ds.owner != plan.owner {
        return Err(AdminError::Input(format!(
            "dataset {} exists with owner {}; the demo needs owner {} (the organisation of its things)",
            ds.slug, ds.owner, plan.owner
        )));
    }
    let mut assigned = Vec::new();
    for (kind, key) in town_keys(town)? {
        if kind != plan.kind || key.org.as_str() != plan.owner {
            continue;
        }
        let id = *ids.get(&key).ok_or_else(|| AdminError::NotReady(format!("datastream {key} is not registered")))?;
        datasets::assign(pool, ds.id, id, actor).await?;
        assigned.push(id);
    }
    Ok(DatasetOutcome {
        id: ds.id,
        slug: ds.slug,
        owner: ds.owner,
        classification: ds.classification,
        license: ds.license,
        retention_days: ds.retention_days,
        datastreams: assigned,
        change,
    })
}

pub(super) async fn ensure_grant(pool: &PgPool, plan: &GrantPlan, actor: &Actor) -> Result<GrantOutcome, AdminError> {
    let ds = crate::cmd::datasets::by_slug(pool, &slug("dataset", plan.dataset)?).await?;
    let grantee = slug("organisation", plan.grantee)?;
    let grantee_id = registry::organisation_id(pool, &grantee).await?;
    let now = Utc::now();
    let current = grants::held(pool, grantee_id, ds.id)
        .await?
        .into_iter()
        .find(|g| g.contract_ref == plan.contract_ref && g.revoked_at.is_none() && g.valid_until > now);
    let (g, change) = match current {
        Some(g) => (g, Change::Unchanged),
        None => {
            let new = NewGrant {
                dataset_id: ds.id,
                grantee,
                purpose: plan.purpose.into(),
                contract_ref: plan.contract_ref.into(),
                min_interval_mins: plan.min_interval_mins,
                history_days: plan.history_days,
                valid_from: Some(now),
                valid_until: crate::cmd::days_from_now(plan.valid_days)?,
                rate_per_minute: Some(plan.rate_per_minute),
            };
            (grants::create(pool, &new, actor).await?, Change::Created)
        }
    };
    Ok(GrantOutcome {
        id: g.id,
        dataset: ds.slug,
        grantee: plan.grantee.into(),
        min_interval_mins: g.min_interval_mins,
        history_days: g.history_days,
        valid_until: g.valid_until,
        rate_per_minute: g.rate_per_minute,
        contract_ref: g.contract_ref,
        purpose: g.purpose,
        change,
    })
}

pub(super) async fn ensure_principal(
    pool: &PgPool,
    plan: &PrincipalPlan,
    expires_at: DateTime<Utc>,
    actor: &Actor,
) -> Result<PrincipalOutcome, AdminError> {
    let name = slug("principal name", plan.name)?;
    let change = match principals::principal_by_name(pool, &name).await? {
        Some(p) if p.org == plan.org => Change::Unchanged,
        Some(p) => {
            return Err(AdminError::Input(format!(
                "principal {} exists in organisation {}; the demo needs it in {}",
                p.name, p.org, plan.org
            )))
        }
        None => {
            let new = NewPrincipal {
                org: slug("organisation", plan.org)?,
                name: name.clone(),
                kind: plan.kind,
                role: plan.role,
                oidc_subject: None,
            };
            principals::create_principal(pool, &new, actor).await?;
            Change::Created
        }
    };
    let expires_at = KeyExpiry::within(Some(expires_at), KeyLifetime::default(), Utc::now())?;
    let key = keys::issue(pool, &name, expires_at, actor).await?;
    Ok(PrincipalOutcome {
        name: plan.name.into(),
        org: plan.org.into(),
        role: plan.role,
        kind: plan.kind.as_str(),
        change,
        key,
    })
}

/// Makes the planned rule of its owner unless the owner already has a rule of
/// that name on that datastream (the demo never changes a rule someone edited).
pub(super) async fn ensure_rule(
    pool: &PgPool,
    plan: &RulePlan,
    ids: &HashMap<DatastreamKey, DatastreamId>,
    actor: &Actor,
) -> Result<RuleOutcome, AdminError> {
    let key = DatastreamKey {
        org: slug("organisation", plan.org)?,
        thing: slug("thing", plan.thing)?,
        property: slug("property", plan.property)?,
    };
    let datastream = *ids
        .get(&key)
        .ok_or_else(|| AdminError::NotReady(format!("rule {:?}: datastream {key} is not registered", plan.name)))?;
    let owner_name = slug("principal name", plan.owner)?;
    let owner = principals::principal_by_name(pool, &owner_name)
        .await?
        .ok_or_else(|| AdminError::Input(format!("rule {:?}: principal {} does not exist", plan.name, plan.owner)))?;
    let existing = alerts::list(pool, Scope::Principal(owner.id), Some(datastream.0)).await?;
    let change = if existing.iter().any(|r| r.name == plan.name) {
        Change::Unchanged
    } else {
        let resolution = hoheit_domain::alert::resolution_from_secs(plan.resolution_secs);
        let spec = hoheit_domain::alert::RuleSpec::new(plan.condition, plan.for_secs, plan.hysteresis, resolution)
            .map_err(|e| AdminError::Input(format!("rule {:?}: {e}", plan.name)))?;
        let org_id = registry::organisation_id(pool, &slug("organisation", &owner.org)?).await?;
        let draft = RuleDraft {
            datastream_id: datastream.0,
            name: plan.name.into(),
            spec,
            webhook_url: None,
            emails: Vec::new(),
            language: hoheit_domain::alert::Language::De,
            enabled: true,
        };
        let owner = Owner { principal_id: Some(owner.id), org_id: Some(org_id) };
        alerts::create(pool, owner, &draft, Standing { dataset_id: None, grant_id: None }, actor).await?;
        Change::Created
    };
    Ok(RuleOutcome { name: plan.name.into(), owner: plan.owner.into(), datastream: key.to_string(), change })
}
