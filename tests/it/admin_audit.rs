//! Administration leaves a trace, and revocation takes effect at once.
//!
//! - every administrative change, through the API and through `hoheit-admin`,
//!   writes exactly one audit record (who, action, object, before and after,
//!   never a secret) in the read audit's hash chain, which still verifies and
//!   covers before and after;
//! - an organisation's admins see its administrative records, another
//!   organisation's do not;
//! - the public transparency report shows the chain's head;
//! - a live stream ends within a tick of its key's revocation or its
//!   principal's disabling;
//! - a revoked or expired grant no longer shows the dataset's metadata.

use crate::admin_support;

use std::time::Duration;

use admin_support::{admin, admin_json};
use anyhow::{bail, ensure, Context};
use chrono::Utc;
use hoheit_tests::{start_api, ApiClient, Isolation};
use serde_json::{json, Value};
use sqlx::PgPool;

/// One stored administrative record.
#[derive(Debug)]
struct AdminRow {
    id: i64,
    action: String,
    object_kind: String,
    object_id: i64,
    concerns_org_id: i64,
    principal_name: String,
    org_id: Option<i64>,
    before: Value,
    after: Value,
    /// `before` and `after` as stored, to look for secrets.
    text: String,
}

/// An administrative record as stored, `before` and `after` as text.
#[derive(sqlx::FromRow)]
struct StoredRow {
    id: i64,
    action: String,
    object_kind: String,
    object_id: i64,
    concerns_org_id: i64,
    principal_name: String,
    org_id: Option<i64>,
    before: String,
    after: String,
}

/// Follows the administrative records of the audit log.
struct AdminLog {
    pool: PgPool,
    seen: i64,
}

impl AdminLog {
    fn new(pool: &PgPool) -> Self {
        Self { pool: pool.clone(), seen: 0 }
    }

    /// The administrative records written since the last call.
    async fn new_rows(&mut self) -> anyhow::Result<Vec<AdminRow>> {
        let rows: Vec<StoredRow> = sqlx::query_as(
            "SELECT id, action, object_kind, object_id, concerns_org_id, principal_name, org_id,
                    coalesce(before::text, 'null') AS before, coalesce(after::text, 'null') AS after
             FROM audit_log WHERE object_kind IS NOT NULL AND id > $1 ORDER BY id",
        )
        .bind(self.seen)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in rows {
            out.push(AdminRow {
                id: r.id,
                action: r.action,
                object_kind: r.object_kind,
                object_id: r.object_id,
                concerns_org_id: r.concerns_org_id,
                principal_name: r.principal_name,
                org_id: r.org_id,
                before: serde_json::from_str(&r.before)?,
                after: serde_json::from_str(&r.after)?,
                text: format!("{} {}", r.before, r.after),
            });
        }
        if let Some(last) = out.last() {
            self.seen = last.id;
        }
        Ok(out)
    }

    /// Exactly one new administrative record, of `action`.
    async fn one(&mut self, action: &str) -> anyhow::Result<AdminRow> {
        let mut rows = self.new_rows().await?;
        ensure!(rows.len() == 1, "{action}: expected exactly one audit record, got {rows:#?}");
        let row = rows.remove(0);
        ensure!(row.action == action, "expected {action}, got {row:#?}");
        Ok(row)
    }

    /// Exactly these new administrative records, in this order.
    async fn these(&mut self, actions: &[&str]) -> anyhow::Result<Vec<AdminRow>> {
        let rows = self.new_rows().await?;
        let got: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
        ensure!(got == actions, "expected exactly {actions:?}, got {rows:#?}");
        Ok(rows)
    }

    async fn none(&mut self, what: &str) -> anyhow::Result<()> {
        let rows = self.new_rows().await?;
        ensure!(rows.is_empty(), "{what}: expected no audit record, got {rows:#?}");
        Ok(())
    }
}

async fn send(request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    let response = request.send().await?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        bail!("{status}: {text}");
    }
    Ok(if text.is_empty() { Value::Null } else { serde_json::from_str(&text)? })
}

fn post_as(api: &ApiClient, key: &str, path: &str, body: Value) -> reqwest::RequestBuilder {
    api.http.post(format!("{}{path}", api.base)).bearer_auth(key).json(&body)
}

fn delete_as(api: &ApiClient, key: &str, path: &str) -> reqwest::RequestBuilder {
    api.http.delete(format!("{}{path}", api.base)).bearer_auth(key)
}

fn id(value: &Value) -> anyhow::Result<i64> {
    value.as_i64().with_context(|| format!("{value} is not an id"))
}

fn dataset_body(slug: &str, owner: &str, classification: &str) -> Value {
    json!({
        "slug": slug, "owner": owner, "title": format!("Dataset {slug}"), "steward_contact": "daten@stadt.example",
        "classification": classification, "license": "Nutzung nach Vereinbarung", "purpose": "Verkehrsplanung",
        "retention_days": 365,
    })
}

/// A principal of `org` and a key for it, as `as_key` (an admin key or the operator token).
async fn principal_with_key(
    api: &ApiClient,
    as_key: &str,
    org: &str,
    name: &str,
    role: &str,
) -> anyhow::Result<(i64, i64, String)> {
    let p = send(post_as(
        api,
        as_key,
        "/v1/admin/principals",
        json!({"org": org, "name": name, "kind": "person", "role": role}),
    ))
    .await?;
    let principal = id(&p["id"])?;
    let k = send(post_as(api, as_key, &format!("/v1/admin/principals/{principal}/keys"), json!({}))).await?;
    Ok((principal, id(&k["id"])?, k["key"].as_str().context("key")?.to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_administrative_change_through_the_api_writes_exactly_one_chained_audit_record() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let (running, api) = start_api(&isolation).await?;
    let token = hoheit_tests::TOKEN;
    let mut log = AdminLog::new(&pool);

    let x = id(&api.organisation("stadt-x", "municipality", None).await?["id"])?;
    let row = log.one("organisation.create").await?;
    assert_eq!((row.object_id, row.concerns_org_id, row.principal_name.as_str()), (x, x, "operator"));
    let y = id(&api.organisation("firma-y", "third_party", None).await?["id"])?;
    log.one("organisation.create").await?;

    // Principals and keys: metadata only, never the key or a hash.
    let (admin_x, _, key_x) = principal_with_key(&api, token, "stadt-x", "admin-x", "admin").await?;
    let mut rows = log.these(&["principal.create", "key.issue"]).await?.into_iter();
    let (created, issued) = (rows.next().context("principal.create")?, rows.next().context("key.issue")?);
    assert_eq!((created.object_kind.as_str(), created.object_id, created.concerns_org_id), ("principal", admin_x, x));
    assert_eq!((created.before.clone(), created.after["name"].clone()), (Value::Null, json!("admin-x")));
    assert_eq!((issued.object_kind.as_str(), issued.concerns_org_id), ("api_key", x));
    assert!(issued.after["lookup"].as_str().is_some_and(|l| key_x.starts_with(l)), "{issued:?}");
    let secret = key_x.splitn(3, '_').nth(2).context("secret part")?;
    assert!(!issued.text.contains(secret) && !issued.text.contains("hash"), "a secret in the audit log: {issued:?}");
    let (_, _, key_y) = principal_with_key(&api, token, "firma-y", "admin-y", "admin").await?;
    let rows = log.these(&["principal.create", "key.issue"]).await?;
    assert_eq!(rows.iter().map(|r| r.concerns_org_id).collect::<Vec<_>>(), [y, y]);

    // The organisation's own admin builds a dataset: the actor is that admin.
    let dataset =
        id(&send(post_as(&api, &key_x, "/v1/admin/datasets", dataset_body("verkehr-x", "stadt-x", "restricted")))
            .await?["id"])?;
    let row = log.one("dataset.create").await?;
    assert_eq!((row.principal_name.as_str(), row.org_id, row.object_id), ("admin-x", Some(x), dataset));
    assert_eq!(row.after["classification"], "restricted");
    send(post_as(&api, &key_x, "/v1/admin/things", json!({"org": "stadt-x", "slug": "zaehler-1", "name": "Zähler 1"})))
        .await?;
    log.one("thing.create").await?;
    let datastream = id(&send(post_as(
        &api,
        &key_x,
        "/v1/admin/datastreams",
        json!({"org": "stadt-x", "thing": "zaehler-1", "property": "count", "name": "Fahrzeuge", "unit": "count"}),
    ))
    .await?["id"])?;
    log.one("datastream.create").await?;
    let assign = json!({"datastream_id": datastream});
    send(post_as(&api, &key_x, &format!("/v1/admin/datasets/{dataset}/datastreams"), assign.clone())).await?;
    let row = log.one("dataset.assign").await?;
    assert_eq!((row.object_kind.as_str(), row.object_id), ("datastream", datastream));
    assert_eq!((row.before.clone(), row.after.clone()), (json!({"dataset_id": null}), json!({"dataset_id": dataset})));
    send(post_as(&api, &key_x, &format!("/v1/admin/datasets/{dataset}/datastreams"), assign)).await?;
    log.none("assigning a datastream to the dataset it is in").await?;

    // A read in between: read and administrative records share one chain.
    sqlx::query("INSERT INTO observations (datastream_id, time, value) VALUES ($1, now(), 7)")
        .bind(datastream)
        .execute(&pool)
        .await?;
    let export = api.http.get(format!("{}/v1/datasets/{dataset}/export", api.base)).bearer_auth(&key_x).send().await?;
    assert_eq!(export.status(), 200);
    export.text().await?;

    // Grants.
    let grant = send(post_as(
        &api,
        &key_x,
        "/v1/admin/grants",
        json!({"dataset_id": dataset, "grantee": "firma-y", "purpose": "Routing", "contract_ref": "V-1",
               "min_interval_mins": 15, "valid_until": (Utc::now() + chrono::Duration::days(30)).to_rfc3339()}),
    ))
    .await?;
    let grant = id(&grant["id"])?;
    let row = log.one("grant.create").await?;
    assert_eq!((row.object_id, row.concerns_org_id, row.before.clone()), (grant, x, Value::Null));
    assert_eq!(row.after["min_interval_mins"], 15);
    send(delete_as(&api, &key_x, &format!("/v1/admin/grants/{grant}"))).await?;
    let row = log.one("grant.revoke").await?;
    assert!(row.before["revoked_at"].is_null() && row.after["revoked_at"].is_string(), "{row:?}");

    // Key revocation and disabling a principal.
    let (reader, reader_key_id, reader_key) = principal_with_key(&api, &key_x, "stadt-x", "leser-x", "reader").await?;
    log.these(&["principal.create", "key.issue"]).await?;
    send(delete_as(&api, &key_x, &format!("/v1/admin/keys/{reader_key_id}"))).await?;
    let row = log.one("key.revoke").await?;
    assert_eq!(row.object_id, reader_key_id);
    assert!(row.before["revoked_at"].is_null() && row.after["revoked_at"].is_string(), "{row:?}");
    assert!(!row.text.contains(reader_key.splitn(3, '_').nth(2).context("secret")?));
    let disabled = send(delete_as(&api, &key_x, &format!("/v1/admin/principals/{reader}"))).await?;
    assert!(disabled["disabled_at"].is_string(), "{disabled}");
    let row = log.one("principal.disable").await?;
    assert!(row.before["disabled_at"].is_null() && row.after["disabled_at"].is_string(), "{row:?}");
    let refused = send(delete_as(&api, &key_x, &format!("/v1/admin/principals/{reader}"))).await;
    assert!(refused.is_err(), "disabling twice is refused");
    log.none("a refused change").await?;

    // Erasure.
    let erased = send(delete_as(&api, &key_x, &format!("/v1/datasets/{dataset}"))).await?;
    assert_eq!(erased["readings_deleted"], 1);
    let row = log.one("dataset.erase").await?;
    assert_eq!(row.before["slug"], "verkehr-x");
    assert_eq!(
        (row.after["readings_deleted"].clone(), row.after["datastreams_deleted"].clone()),
        (json!(1), json!([datastream]))
    );

    // One chain, intact, with reads and changes.
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log").fetch_one(&pool).await?;
    let reads: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE object_kind IS NULL").fetch_one(&pool).await?;
    assert!(reads >= 1, "the export is a read record");
    let check = api.get_json("/v1/audit/verify").await?;
    assert_eq!((check["records_checked"].as_i64(), check["first_broken_id"].clone()), (Some(total), Value::Null));

    // Each organisation sees its own administrative records, not the other's.
    let seen_by = |key: String| {
        let api = api.clone();
        async move { send(api.http.get(format!("{}/v1/audit?limit=10000", api.base)).bearer_auth(key)).await }
    };
    let of_y = seen_by(key_y.clone()).await?;
    let of_y = of_y["records"].as_array().context("records")?;
    assert!(!of_y.is_empty(), "firma-y sees its own administrative records");
    for record in of_y {
        assert_eq!(record["change"]["concerns_org_id"], y, "firma-y sees a record of another organisation: {record}");
    }
    let of_x = seen_by(key_x.clone()).await?;
    let actions: Vec<&str> =
        of_x["records"].as_array().context("records")?.iter().filter_map(|r| r["action"].as_str()).collect();
    for action in [
        "principal.create",
        "dataset.create",
        "dataset.assign",
        "grant.create",
        "grant.revoke",
        "key.revoke",
        "dataset.erase",
    ] {
        assert!(actions.contains(&action), "stadt-x does not see its {action}: {actions:?}");
    }
    let grant_record = of_x["records"].as_array().context("records")?.iter().find(|r| r["action"] == "grant.create");
    let grant_record = grant_record.context("grant.create")?;
    assert_eq!(
        (grant_record["change"]["object_id"].as_i64(), grant_record["grant_id"].as_i64()),
        (Some(grant), Some(grant))
    );
    assert!(grant_record["change"]["before"].is_null() && grant_record["change"]["after"]["purpose"] == "Routing");

    // Before and after are covered by the hash.
    let target =
        sqlx::query_scalar::<_, i64>("SELECT id FROM audit_log WHERE action = 'grant.create'").fetch_one(&pool).await?;
    let mut tx = pool.begin().await?;
    sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only").execute(&mut *tx).await?;
    sqlx::query("UPDATE audit_log SET after = '{\"min_interval_mins\": null}' WHERE id = $1")
        .bind(target)
        .execute(&mut *tx)
        .await?;
    sqlx::query("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only").execute(&mut *tx).await?;
    tx.commit().await?;
    let check = api.get_json("/v1/audit/verify").await?;
    assert_eq!(check["first_broken_id"].as_i64(), Some(target), "{check}");

    running.stop().await?;
    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}

#[tokio::test]
async fn every_change_through_the_command_line_is_audited_with_the_operating_system_user() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let db = isolation.database_url.as_str();
    let mut log = AdminLog::new(&pool);

    admin(db, &["organisations", "create", "stadt-c", "--name", "Stadt C"]).await?;
    log.one("organisation.create").await?;
    admin(db, &["organisations", "create", "firma-c", "--name", "Firma C", "--kind", "third_party"]).await?;
    log.one("organisation.create").await?;
    admin(db, &["principals", "create", "leserin", "--org", "stadt-c", "--role", "reader"]).await?;
    let row = log.one("principal.create").await?;
    assert!(row.principal_name.starts_with("hoheit-admin ("), "{row:?}");
    assert_eq!(row.org_id, None);
    let issued = admin_json(db, &["keys", "create", "leserin"]).await?;
    let row = log.one("key.issue").await?;
    let key = issued["key"].as_str().context("key")?;
    assert!(!row.text.contains(key.splitn(3, '_').nth(2).context("secret")?), "{row:?}");
    admin(db, &["keys", "revoke", &id(&issued["id"])?.to_string()]).await?;
    log.one("key.revoke").await?;
    admin(db, &["principals", "disable", "leserin"]).await?;
    log.one("principal.disable").await?;

    let dataset = admin_json(
        db,
        &[
            "datasets",
            "create",
            "pegel-c",
            "--owner",
            "stadt-c",
            "--title",
            "Pegel",
            "--steward-contact",
            "umwelt@stadt-c.example",
            "--classification",
            "internal",
            "--license",
            "intern",
            "--purpose",
            "Hochwasservorsorge",
            "--retention-days",
            "30",
        ],
    )
    .await?;
    log.one("dataset.create").await?;
    let org = hoheit_domain::Slug::parse("organisation", "stadt-c")?;
    let thing = hoheit_domain::Slug::parse("thing", "pegel-1")?;
    hoheit_store::registry::create_thing(
        &pool,
        &hoheit_store::registry::NewThing {
            org: org.clone(),
            slug: thing.clone(),
            name: "Pegel".into(),
            latitude: None,
            longitude: None,
            external_id: None,
            device_type: None,
        },
    )
    .await?;
    let stream = hoheit_store::registry::create_datastream(
        &pool,
        &hoheit_store::registry::NewDatastream {
            org,
            thing,
            property: hoheit_domain::Slug::parse("property", "level")?,
            name: "Wasserstand".into(),
            unit: None,
            min: None,
            max: None,
        },
    )
    .await?;
    admin(db, &["datasets", "assign", "pegel-c", &stream.id.0.to_string()]).await?;
    let row = log.one("dataset.assign").await?;
    assert_eq!(row.after, json!({"dataset_id": id(&dataset["id"])?}));
    let grant = admin_json(
        db,
        &[
            "grants",
            "create",
            "--dataset",
            "pegel-c",
            "--grantee",
            "firma-c",
            "--purpose",
            "Forschung",
            "--contract-ref",
            "C-1",
        ],
    )
    .await?;
    log.one("grant.create").await?;
    admin(db, &["grants", "revoke", &id(&grant["id"])?.to_string()]).await?;
    log.one("grant.revoke").await?;

    let verified = admin_json(db, &["audit", "verify"]).await?;
    assert_eq!(verified["first_broken_id"], Value::Null, "{verified}");
    assert_eq!(verified["records_checked"].as_i64(), Some(log.seen));

    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}

#[tokio::test]
async fn the_transparency_report_shows_the_chain_head() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let (running, api) = start_api(&isolation).await?;

    let empty: Value = api.get_as(None, "/v1/transparency").send().await?.json().await?;
    assert_eq!(empty["chain_head"], Value::Null, "{empty}");
    api.organisation("stadt-h", "municipality", None).await?;
    api.principal_key("stadt-h", "admin-h", "admin").await?;

    let report: Value = api.get_as(None, "/v1/transparency").send().await?.json().await?;
    let (last, hash): (i64, String) =
        sqlx::query_as("SELECT id, encode(hash, 'hex') FROM audit_log ORDER BY id DESC LIMIT 1")
            .fetch_one(&pool)
            .await?;
    assert_eq!(report["chain_head"]["id"].as_i64(), Some(last), "{report}");
    assert_eq!(report["chain_head"]["hash"].as_str(), Some(hash.as_str()), "{report}");
    assert!(report["lines"].as_array().is_some_and(Vec::is_empty), "administrative records are no accesses: {report}");

    running.stop().await?;
    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}

/// The next complete server-sent event (name, data) or `None` when the stream ended.
async fn next_event(response: &mut reqwest::Response, buffer: &mut String) -> anyhow::Result<Option<(String, String)>> {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut name = String::from("message");
            let mut data = String::new();
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event:") {
                    name = n.trim().to_owned();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            if block.lines().all(|l| l.starts_with(':') || l.is_empty()) {
                continue; // keep-alive comment
            }
            return Ok(Some((name, data)));
        }
        match response.chunk().await? {
            Some(chunk) => buffer.push_str(&String::from_utf8_lossy(&chunk)),
            None => return Ok(None),
        }
    }
}

/// Opens a live stream as `key`, applies `end_credential` after the snapshot,
/// and returns how many `latest` events came after it and the `end` event's reason.
async fn live_until_ended<F, Fut>(api: &ApiClient, key: &str, end_credential: F) -> anyhow::Result<(usize, String)>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut response = api.get_as(Some(key), "/v1/live").header("accept", "text/event-stream").send().await?;
    ensure!(response.status() == 200, "live: {}", response.status());
    let mut buffer = String::new();
    let (first, _) = next_event(&mut response, &mut buffer).await?.context("a snapshot")?;
    ensure!(first == "snapshot", "first event: {first}");
    let (next, _) = next_event(&mut response, &mut buffer).await?.context("a tick before the revocation")?;
    ensure!(next == "latest", "second event: {next}");
    end_credential().await?;
    let mut latest_after = 0;
    let mut reason = None;
    while let Some((name, data)) = next_event(&mut response, &mut buffer).await? {
        match name.as_str() {
            "latest" => latest_after += 1,
            "end" => reason = Some(data),
            other => bail!("unexpected event {other}: {data}"),
        }
    }
    Ok((latest_after, reason.context("the stream closed without an end event")?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_stream_ends_within_a_tick_of_revocation_or_disabling() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let (running, api) = start_api(&isolation).await?;
    api.register("stadt-l", "zaehler-1", "count", Some("count")).await?;
    let token = hoheit_tests::TOKEN;

    let (_, key_id, key) = principal_with_key(&api, token, "stadt-l", "leser-1", "reader").await?;
    let revoke = || async { send(delete_as(&api, token, &format!("/v1/admin/keys/{key_id}"))).await.map(drop) };
    let (latest, reason) = tokio::time::timeout(Duration::from_secs(60), live_until_ended(&api, &key, revoke))
        .await
        .context("the stream went on after the key was revoked")??;
    assert!(latest <= 1, "{latest} ticks after the revocation");
    assert!(reason.contains("revoked"), "{reason}");

    let (principal, _, key) = principal_with_key(&api, token, "stadt-l", "leser-2", "reader").await?;
    let disable =
        || async { send(delete_as(&api, token, &format!("/v1/admin/principals/{principal}"))).await.map(drop) };
    let (latest, reason) = tokio::time::timeout(Duration::from_secs(60), live_until_ended(&api, &key, disable))
        .await
        .context("the stream went on after the principal was disabled")??;
    assert!(latest <= 1, "{latest} ticks after disabling");
    assert!(reason.contains("disabled"), "{reason}");

    running.stop().await?;
    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}

#[tokio::test]
async fn a_revoked_or_expired_grant_shows_nothing_of_the_dataset() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let (running, api) = start_api(&isolation).await?;
    let token = hoheit_tests::TOKEN;
    api.organisation("stadt-m", "municipality", None).await?;
    api.organisation("firma-m", "third_party", None).await?;
    let (_, _, grantee) = principal_with_key(&api, token, "firma-m", "leser-m", "reader").await?;
    let dataset =
        id(&api.post_ok("/v1/admin/datasets", dataset_body("verkehr-m", "stadt-m", "restricted")).await?["id"])?;

    let sees = |key: String| {
        let api = api.clone();
        async move {
            let one = api.get_as(Some(&key), &format!("/v1/datasets/{dataset}")).send().await?.status();
            let list: Value = api.get_as(Some(&key), "/v1/datasets").send().await?.json().await?;
            let listed = list["datasets"].as_array().context("datasets")?.iter().any(|d| d["id"] == dataset);
            anyhow::Ok((one.as_u16(), listed))
        }
    };
    assert_eq!(sees(grantee.clone()).await?, (403, false), "no grant, nothing to see");

    let until = (Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let grant = api
        .post_ok(
            "/v1/admin/grants",
            json!({"dataset_id": dataset, "grantee": "firma-m", "purpose": "Routing", "contract_ref": "M-1",
                   "min_interval_mins": 60, "valid_until": until}),
        )
        .await?;
    assert_eq!(sees(grantee.clone()).await?, (200, true), "a grant in force shows the dataset");
    send(delete_as(&api, token, &format!("/v1/admin/grants/{}", id(&grant["id"])?))).await?;
    assert_eq!(sees(grantee.clone()).await?, (403, false), "a revoked grant shows nothing");

    let (past_from, past_until) =
        ((Utc::now() - chrono::Duration::days(60)).to_rfc3339(), (Utc::now() - chrono::Duration::days(1)).to_rfc3339());
    api.post_ok(
        "/v1/admin/grants",
        json!({"dataset_id": dataset, "grantee": "firma-m", "purpose": "Routing", "contract_ref": "M-0",
               "valid_from": past_from, "valid_until": past_until}),
    )
    .await?;
    assert_eq!(sees(grantee).await?, (403, false), "an expired grant shows nothing");

    running.stop().await?;
    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}
