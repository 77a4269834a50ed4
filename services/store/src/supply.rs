//! Supply grants (supply contracts): the owner of a dataset lets a supplier's
//! writer keys deliver readings into it. The terms are decided by
//! [`hoheit_domain::write`]; ingest reads the grants a supplier holds.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgPool};

use hoheit_domain::write::SupplyTerms;

/// A supply grant's terms as stored.
#[derive(FromRow)]
struct SupplyRow {
    id: i64,
    dataset_id: i64,
    owner_org_id: i64,
    supplier_org_id: i64,
    contract_ref: String,
    things: Option<Vec<i64>>,
    valid_from: DateTime<Utc>,
    valid_until: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<SupplyRow> for SupplyTerms {
    fn from(r: SupplyRow) -> Self {
        SupplyTerms {
            id: r.id,
            dataset_id: r.dataset_id,
            owner_org_id: r.owner_org_id,
            supplier_org_id: r.supplier_org_id,
            contract_ref: r.contract_ref,
            things: r.things,
            valid_from: r.valid_from,
            valid_until: r.valid_until,
            revoked_at: r.revoked_at,
        }
    }
}

const SUPPLY_SELECT: &str = "SELECT s.id, s.dataset_id, d.owner_org_id, s.supplier_org_id, s.contract_ref, s.things,
            s.valid_from, s.valid_until, s.revoked_at
     FROM supply_grants s JOIN datasets d ON d.id = s.dataset_id";

/// Every supply grant `supplier_org_id` holds (ended ones included: they say why a write is refused).
pub async fn held_by(pool: &PgPool, supplier_org_id: i64) -> Result<Vec<SupplyTerms>, sqlx::Error> {
    let rows: Vec<SupplyRow> = sqlx::query_as(&format!("{SUPPLY_SELECT} WHERE s.supplier_org_id = $1 ORDER BY s.id"))
        .bind(supplier_org_id)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(SupplyTerms::from).collect())
}
