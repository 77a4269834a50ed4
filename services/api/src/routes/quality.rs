//! Data quality: one datastream's (`/v1/datastreams/{id}/quality`, a read of
//! its day aggregates under the policy; its gaps and the time of its last
//! reading only for callers who may read it raw) and an organisation's
//! silent and degraded datastreams for its owners (`/v1/quality`). The
//! rules are `hoheit_domain::quality`'s; the counts `hoheit_store::quality`'s.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use hoheit_domain::policy::DenyCode;
use hoheit_domain::quality::{self, Day, Facts, Gap, Interval, IntervalSource, Status};
use hoheit_domain::{DatastreamId, Slug};
use hoheit_store::quality::{self as counts, QualityFacts, RejectedCount};
use serde::{Deserialize, Serialize};

use crate::access::{authorize_quality, quality_scope};
use crate::auth::Who;
use crate::error::ApiError;
use crate::extract::{ApiQuery, PathId};
use crate::AppState;

/// At most this many gaps are listed, the oldest first.
const MAX_GAPS: i64 = 1000;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct QualityQuery {
    /// UTC days to report, today included: 1 to 90; default 7.
    #[param(minimum = 1, maximum = 90)]
    days: Option<i64>,
    /// A gap is a stretch without readings longer than this many expected
    /// intervals: 2 to 1000; default 3.
    #[param(minimum = 2, maximum = 1000)]
    gap_intervals: Option<i64>,
}

/// Readings dead-lettered for a datastream with one reason code.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RejectedReadings {
    /// The reject code (`out_of_range`, `unit_mismatch`, …).
    reason: String,
    count: i64,
}

/// The data quality of one datastream over the days asked.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DatastreamQuality {
    #[schema(value_type = i64)]
    datastream: DatastreamId,
    /// Seconds between readings it is expected at; null: unknown (none set,
    /// too few readings to learn from).
    expected_interval_secs: Option<i64>,
    /// `set` by its owner, or `learned`: the median gap between its readings
    /// of the last 7 days; null with the interval.
    interval_source: Option<IntervalSource>,
    /// The newest reading's time; null without raw reads (see `gaps_withheld`) or readings.
    last_reading_at: Option<DateTime<Utc>>,
    /// `unknown` (no interval or no reading), `silent` (no reading for more
    /// than 3 intervals and at least an hour), `degraded` (the last full
    /// day's or today's completeness below 0.9, or more than 5 % out of
    /// range over yesterday and today), else `ok`.
    status: Status,
    /// Per UTC day, oldest first: readings, expected readings (from the
    /// datastream's start until now) and completeness (capped at 1). Under an
    /// aggregate-only grant only the days that have ended.
    days: Vec<Day>,
    /// Stretches without readings longer than `gap_intervals` intervals
    /// (oldest first, at most 1000); null when withheld or no interval is known.
    gaps: Option<Vec<Gap>>,
    /// Why gaps and the last reading's time are withheld: the code a raw
    /// read of the datastream is denied with (they are raw timing).
    #[schema(value_type = Option<String>)]
    gaps_withheld: Option<DenyCode>,
    /// Readings dead-lettered for it over the days asked, by reason, the most frequent first.
    dead_letters: Vec<RejectedReadings>,
    /// `out_of_range` rejections over stored readings and those rejections,
    /// over the days asked; null when nothing came.
    #[schema(minimum = 0, maximum = 1)]
    out_of_range_share: Option<f64>,
}

/// The quality of a datastream: completeness per day, gaps, dead letters by
/// reason and the out-of-range share over the last `days` UTC days, with a
/// status.
///
/// Decided as a read of the datastream's daily aggregates over those days
/// (a grant's rate is charged, the read audited as `quality`): `404` for a
/// datastream the caller may not see, `403` with the policy's code when it
/// may see it but not read this. Gaps are raw timing: they are listed only
/// when the caller may read the datastream raw (else `gaps_withheld`).
#[utoipa::path(get, operation_id = "quality_datastream", path = "/datastreams/{id}/quality", tag = "data", security((), ("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "datastream id"), QualityQuery),
    responses((status = 200, description = "the datastream's data quality", body = DatastreamQuality)))]
pub async fn datastream(
    State(state): State<AppState>,
    who: Who,
    PathId(id): PathId,
    ApiQuery(query): ApiQuery<QualityQuery>,
) -> Result<Json<DatastreamQuality>, ApiError> {
    let days = bounded("days", query.days.unwrap_or(7), 1, 90)?;
    let gap_intervals = bounded("gap_intervals", query.gap_intervals.unwrap_or(3), 2, 1000)?;
    let id = DatastreamId(id);
    let now = Utc::now();
    let today = now.date_naive();
    let first_day = today - Duration::days(days - 1);
    let quality = authorize_quality(&state, &who, id, midnight(first_day), now).await?;
    let released = quality.permit.range;
    let report = Report::load(&state, id, first_day, now).await?;
    let days_released: Vec<Day> =
        report.days.iter().filter(|d| d.day >= first_day && midnight(d.day) < released.to).cloned().collect();
    let (gaps, last_reading_at) = match (&quality.raw_timing, report.interval) {
        (Err(_), _) => (None, None),
        (Ok(()), None) => (None, report.facts.last_reading_at),
        (Ok(()), Some(_)) => {
            (Some(report.gaps(&state, midnight(first_day), gap_intervals).await?), report.facts.last_reading_at)
        }
    };
    let mut dead_letters: Vec<RejectedReadings> = report
        .rejected
        .iter()
        .filter(|r| r.asked > 0)
        .map(|r| RejectedReadings { reason: r.reason.clone(), count: r.asked })
        .collect();
    dead_letters.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
    let stored: i64 = days_released.iter().map(|d| d.readings).sum();
    let out_of_range = dead_letters.iter().filter(|r| r.reason == OUT_OF_RANGE).map(|r| r.count).sum();
    quality.permit.finish(&state, days_released.len()).await?;
    Ok(Json(DatastreamQuality {
        datastream: id,
        expected_interval_secs: report.interval.map(|i| i.secs),
        interval_source: report.interval.map(|i| i.source),
        last_reading_at,
        status: report.status(now),
        days: days_released,
        gaps,
        gaps_withheld: quality.raw_timing.err(),
        dead_letters,
        out_of_range_share: quality::out_of_range_share(stored, out_of_range),
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrganisationQualityQuery {
    /// The organisation's slug.
    #[param(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")]
    org: String,
}

/// A datastream that needs attention.
#[derive(Serialize, utoipa::ToSchema)]
pub struct QualitySummary {
    #[schema(value_type = i64)]
    datastream: DatastreamId,
    thing: String,
    property: String,
    /// `silent` or `degraded` (see the datastream's quality).
    status: Status,
    last_reading_at: Option<DateTime<Utc>>,
    expected_interval_secs: Option<i64>,
    interval_source: Option<IntervalSource>,
    /// Completeness of yesterday (UTC), if any reading was expected.
    #[schema(minimum = 0, maximum = 1)]
    last_full_day_completeness: Option<f64>,
    /// Over yesterday and today.
    #[schema(minimum = 0, maximum = 1)]
    out_of_range_share: Option<f64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct OrganisationQuality {
    org: String,
    /// Silent datastreams first, then degraded ones, each in id order; healthy
    /// and unknown ones are not listed.
    datastreams: Vec<QualitySummary>,
}

/// An organisation's silent and degraded datastreams with their summary, for
/// its admins and data owners and the operator.
#[utoipa::path(get, operation_id = "quality_organisation", path = "/quality", tag = "data", security(("bearer" = [])),
    params(OrganisationQualityQuery),
    responses((status = 200, description = "the datastreams that need attention", body = OrganisationQuality)))]
pub async fn organisation(
    State(state): State<AppState>,
    who: Who,
    ApiQuery(query): ApiQuery<OrganisationQualityQuery>,
) -> Result<Json<OrganisationQuality>, ApiError> {
    let org = Slug::parse("org", &query.org).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let org_id = quality_scope(&state, &who, &org).await?;
    let now = Utc::now();
    let yesterday = now.date_naive() - Duration::days(1);
    let mut listed = Vec::new();
    for facts in counts::facts_of_organisation(&state.pool, org_id, learn_from(now), now).await? {
        let report = Report::of(&state, facts, yesterday, now).await?;
        let status = report.status(now);
        if matches!(status, Status::Silent | Status::Degraded) {
            listed.push(QualitySummary {
                datastream: report.facts.id,
                thing: report.facts.thing.to_string(),
                property: report.facts.property.to_string(),
                status,
                last_reading_at: report.facts.last_reading_at,
                expected_interval_secs: report.interval.map(|i| i.secs),
                interval_source: report.interval.map(|i| i.source),
                last_full_day_completeness: report.last_full_day(now),
                out_of_range_share: report.recent_out_of_range_share(),
            });
        }
    }
    listed.sort_by_key(|s| (s.status != Status::Silent, s.datastream));
    Ok(Json(OrganisationQuality { org: org.to_string(), datastreams: listed }))
}

/// The reject code whose share is reported.
const OUT_OF_RANGE: &str = "out_of_range";

/// What one datastream's quality is computed from: the days asked and
/// always yesterday and today, which its status is judged on.
struct Report {
    facts: QualityFacts,
    interval: Option<Interval>,
    /// From the earlier of the first day asked and yesterday until today.
    days: Vec<Day>,
    rejected: Vec<RejectedCount>,
    /// Yesterday's start: since when `RejectedCount::recent` counts.
    recent_from: DateTime<Utc>,
}

impl Report {
    async fn load(
        state: &AppState,
        id: DatastreamId,
        first_day: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<Self, ApiError> {
        let facts = counts::facts(&state.pool, id, learn_from(now), now).await?;
        Report::of(state, facts, first_day, now).await
    }

    async fn of(
        state: &AppState,
        facts: QualityFacts,
        first_day: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<Self, ApiError> {
        let yesterday = now.date_naive() - Duration::days(1);
        let from = midnight(first_day.min(yesterday));
        let interval = quality::expected_interval(facts.expected_interval_secs, facts.median_gap_secs);
        let day_counts = counts::day_counts(&state.pool, facts.id, from, now).await?;
        // Its start: its creation, or an earlier first reading (readings imported from before).
        let since = day_counts.first().map_or(facts.created_at, |d| d.first.min(facts.created_at));
        let per_day: Vec<(NaiveDate, i64)> = day_counts.iter().map(|d| (d.day.date_naive(), d.readings)).collect();
        let days = quality::days(first_day.min(yesterday), now.date_naive(), &per_day, since, now, interval);
        let recent_from = midnight(yesterday);
        let topic = state.topics.datastream_topic(&facts.org, &facts.thing, &facts.property);
        let rejected = counts::rejected(&state.pool, &facts, &topic, midnight(first_day), recent_from, now).await?;
        Ok(Report { facts, interval, days, rejected, recent_from })
    }

    fn day(&self, day: NaiveDate) -> Option<&Day> {
        self.days.iter().find(|d| d.day == day)
    }

    fn last_full_day(&self, now: DateTime<Utc>) -> Option<f64> {
        self.day(now.date_naive() - Duration::days(1)).and_then(|d| d.completeness)
    }

    /// The out-of-range share over yesterday and today.
    fn recent_out_of_range_share(&self) -> Option<f64> {
        let stored: i64 = self.days.iter().filter(|d| midnight(d.day) >= self.recent_from).map(|d| d.readings).sum();
        let out_of_range = self.rejected.iter().filter(|r| r.reason == OUT_OF_RANGE).map(|r| r.recent).sum();
        quality::out_of_range_share(stored, out_of_range)
    }

    fn status(&self, now: DateTime<Utc>) -> Status {
        let today = self.day(now.date_naive()).map_or((0, 0), |d| (d.readings, d.expected));
        quality::status(&Facts {
            now,
            interval: self.interval,
            last_reading: self.facts.last_reading_at,
            last_full_day: self.last_full_day(now),
            today,
            out_of_range_share: self.recent_out_of_range_share(),
        })
    }

    /// Gaps from `from` until now: between readings, and the one lasting until now.
    async fn gaps(&self, state: &AppState, from: DateTime<Utc>, gap_intervals: i64) -> Result<Vec<Gap>, ApiError> {
        let Some(interval) = self.interval else { return Ok(Vec::new()) };
        let threshold = quality::gap_threshold_secs(interval.secs, gap_intervals);
        let now = Utc::now();
        let rows = counts::gaps(&state.pool, self.facts.id, from, now, threshold, MAX_GAPS).await?;
        let mut gaps: Vec<Gap> = rows.into_iter().map(|g| quality::gap_between(g.from, g.to, interval.secs)).collect();
        if let Some(ongoing) = self
            .facts
            .last_reading_at
            .and_then(|last| quality::ongoing_gap(last.max(from), now, interval.secs, threshold))
        {
            if (gaps.len() as i64) < MAX_GAPS {
                gaps.push(ongoing);
            }
        }
        Ok(gaps)
    }
}

/// Where an interval is learned from: the last [`quality::LEARNING_DAYS`] days.
fn learn_from(now: DateTime<Utc>) -> DateTime<Utc> {
    now - Duration::days(quality::LEARNING_DAYS)
}

fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or_default()
}

/// `value` if it lies in `min..=max`, else 400 naming the parameter.
fn bounded(name: &str, value: i64, min: i64, max: i64) -> Result<i64, ApiError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::BadRequest(format!("{name} must be between {min} and {max}; got {value}")))
    }
}
