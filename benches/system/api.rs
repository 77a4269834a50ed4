//! API benchmark: the release `hoheit-api` on a database with readings every
//! 10 s, loaded in time order (as the writer would store them, so a
//! datastream's rows are spread over the heap as in production), queried by
//! concurrent clients with the operator token. Beside each API figure, in the
//! same run: the same SQL (the `hoheit-store` query functions) straight on a
//! pool of the API's size, and the audit log's own append rate, since every
//! audited read appends one hash-chained record under an advisory lock.
//!
//! Default scale: 1,000 datastreams × 1 day, plus 20 of them with a whole
//! month (for the month of 15-minute aggregates). `--full-month` loads the
//! issue's full month for every datastream (~259M rows: hours and ~25 GB).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::Args;
use hoheit_domain::{DatastreamId, Micros, Reading};
use hoheit_store::audit::{self, AuditRecord};
use hoheit_store::{observations, registry};
use sqlx::postgres::PgPoolOptions;

use crate::harness::{
    api_flags, free_port, machine, mib, percent, run_id, thousands, verdict, wait_ready, BenchDb, Infra, Percentiles,
    Service, Table,
};

const STEP_SECS: i64 = 10;
const DAY_STEPS: i64 = 86_400 / STEP_SECS;

#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// Datastreams with data.
    #[arg(long, default_value_t = 1_000)]
    pub api_datastreams: usize,
    /// Days of readings (one per 10 s) of every datastream.
    #[arg(long, default_value_t = 1)]
    pub days: i64,
    /// Datastreams that also have a whole month (30 days) of readings.
    #[arg(long, default_value_t = 20)]
    pub month_datastreams: usize,
    /// A month for every datastream (the full scale; long and large).
    #[arg(long)]
    pub full_month: bool,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds measured per scenario and concurrency (after 2 s of warm-up).
    #[arg(long, default_value_t = 10)]
    pub secs: u64,
}

/// Loads the readings oldest first, all datastreams interleaved, by binary COPY.
async fn load(db: &BenchDb, ids: &[i64], month_ids: usize, days: i64, end: i64) -> anyhow::Result<(usize, Duration)> {
    let total_steps = if month_ids > 0 { (30 * DAY_STEPS).max(days * DAY_STEPS) } else { days * DAY_STEPS };
    let recent_from = total_steps - days * DAY_STEPS;
    let mut conn = db.pool.acquire().await?;
    let mut rows: Vec<Reading> = Vec::with_capacity(600_000);
    let mut data = Vec::new();
    let mut loaded = 0usize;
    let started = Instant::now();
    for k in 0..total_steps {
        let time = Micros(end - (total_steps - 1 - k) * STEP_SECS * 1_000_000);
        let streams = if k >= recent_from { ids } else { &ids[..month_ids] };
        for (i, id) in streams.iter().enumerate() {
            let value = 20.0 + 5.0 * ((k as f64) / 360.0 + i as f64).sin();
            rows.push(Reading { datastream: DatastreamId(*id), time, value });
        }
        if rows.len() >= 500_000 || k == total_steps - 1 {
            data.clear();
            observations::encode_copy(&rows, &mut data)?;
            let mut copy = conn
                .copy_in_raw("COPY observations (datastream_id, time, value) FROM STDIN WITH (FORMAT binary)")
                .await?;
            copy.send(data.as_slice()).await?;
            loaded += copy.finish().await? as usize;
            rows.clear();
        }
    }
    Ok((loaded, started.elapsed()))
}

/// What one load run measured.
pub(crate) struct Measured {
    pub latency: Percentiles,
    pub per_second: f64,
    pub errors: usize,
    /// The first error, to say what failed.
    pub first_error: Option<String>,
}

/// Runs `call(i)` from `concurrency` tasks for 2 s of warm-up plus `secs`;
/// latencies and the rate count only calls that ended in the measured window.
pub(crate) async fn drive<F, Fut>(concurrency: usize, secs: u64, call: F) -> Measured
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let warm = Instant::now() + Duration::from_secs(2);
    let end = warm + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for task in 0..concurrency {
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let mut first_error = None;
            let mut i = task.wrapping_mul(7_919);
            loop {
                let started = Instant::now();
                if started >= end {
                    break;
                }
                let result = call(i).await;
                let done = Instant::now();
                if done >= warm && done < end {
                    match result {
                        Ok(()) => latencies.push((done - started).as_secs_f64() * 1000.0),
                        Err(error) => {
                            errors += 1;
                            first_error.get_or_insert_with(|| format!("{error:#}"));
                        }
                    }
                }
                i = i.wrapping_add(1);
            }
            (latencies, errors, first_error)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for task in tasks {
        if let Ok((latencies, e, first)) = task.await {
            all.extend(latencies);
            errors += e;
            first_error = first_error.or(first);
        }
    }
    let per_second = all.len() as f64 / secs as f64;
    Measured { latency: Percentiles::of(&mut all), per_second, errors, first_error }
}

/// GETs `paths[i % len]` with the operator token; an error unless 200.
pub(crate) fn http_call(
    http: reqwest::Client,
    base: String,
    token: String,
    paths: Arc<Vec<String>>,
    all_pages: bool,
) -> impl Fn(usize) -> std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>> + Clone + Send + Sync {
    move |i| {
        let (http, url, token) = (http.clone(), format!("{base}{}", paths[i % paths.len()]), token.clone());
        Box::pin(async move {
            // With `all_pages`, one call follows every @iot.nextLink (SensorThings pages of at most 1,000).
            let mut next = Some(url);
            let mut pages = 0;
            while let Some(url) = next.take() {
                let response = http.get(&url).bearer_auth(&token).send().await?;
                let status = response.status();
                let body = response.bytes().await?;
                if !status.is_success() {
                    bail!("{url}: {status}: {}", String::from_utf8_lossy(&body[..body.len().min(200)]));
                }
                pages += 1;
                if all_pages && pages < 100 {
                    let page: serde_json::Value = serde_json::from_slice(&body)?;
                    next = page["@iot.nextLink"].as_str().map(str::to_owned);
                }
            }
            Ok(())
        })
    }
}

pub(crate) fn ms(p: &Percentiles) -> String {
    format!("{:.1} / {:.1} / {:.1}", p.p50, p.p99, p.max)
}

pub(crate) fn stamp(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

pub(crate) fn datetime(micros: i64) -> anyhow::Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros).context("time out of range")
}

pub async fn run(infra: &Infra, args: &ApiArgs) -> anyhow::Result<Vec<Table>> {
    let id = run_id();
    println!("\n== api benchmark ({}) — {}", id, machine());
    let db = BenchDb::create(infra, &id).await?;
    let result = measure(infra, args, &db).await;
    db.drop().await;
    result
}

async fn measure(infra: &Infra, args: &ApiArgs, db: &BenchDb) -> anyhow::Result<Vec<Table>> {
    let properties = 10;
    let things = args.api_datastreams.div_ceil(properties).max(1);
    let ids = db.register(things, properties).await?;
    let ids = &ids[..args.api_datastreams.min(ids.len())];
    let (days, month) = if args.full_month { (30, 0) } else { (args.days, args.month_datastreams.min(ids.len())) };
    let month_ids: Vec<i64> = if args.full_month { ids.to_vec() } else { ids[..month].to_vec() };
    // End of the data: now, on a 10 s step, so "the last day" is what clients ask for.
    let end = Micros::now().0 / 10_000_000 * 10_000_000;
    println!(
        "  loading {} datastreams × {} day(s){} in time order",
        ids.len(),
        days,
        if month > 0 { format!(", {month} of them × 30 days") } else { String::new() }
    );
    let (rows, took) = load(db, ids, month, days, end).await?;
    println!(
        "  loaded {} rows in {:.1} s ({} rows/s); VACUUM ANALYZE",
        thousands(rows as f64),
        took.as_secs_f64(),
        thousands(rows as f64 / took.as_secs_f64())
    );
    // The bulk load bypassed the writer's path: build the 15-minute rollup as the writer would have kept it.
    let started = std::time::Instant::now();
    observations::rebuild_rollup(&db.pool).await?;
    println!("  built the 15-minute rollup in {:.1} s", started.elapsed().as_secs_f64());
    sqlx::query("VACUUM ANALYZE observations").execute(&db.pool).await?;
    sqlx::query("VACUUM ANALYZE observations_15m").execute(&db.pool).await?;
    db.checkpoint().await?;

    let port = free_port()?;
    let mut api = Service::spawn(infra, "hoheit-api", &api_flags(infra, port, &db.url))?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency * 2).build()?;
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&http, &format!("{base}/readyz"), &mut api, Duration::from_secs(60)).await?;
    // The API's pool size (its default); the SQL-alone runs get the same.
    let sql_pool = PgPoolOptions::new().max_connections(8).connect(&db.url).await?;

    let day_from = end - 86_400_000_000 + 1;
    let to = end + 1;
    // A month on 15-minute boundaries (as a dashboard asks for it), ending after the newest reading.
    let month_to = (end / 900_000_000 + 1) * 900_000_000;
    let month_from = month_to - 30 * 86_400_000_000;
    let month_to_t = datetime(month_to)?;
    let minute_from = end - 60_000_000 + 1;
    let (day_from_t, to_t, month_from_t, minute_from_t) =
        (datetime(day_from)?, datetime(to)?, datetime(month_from)?, datetime(minute_from)?);
    let path = |id: &i64, kind: &str| {
        match kind {
        "latest" => format!("/v1/datastreams/{id}"),
        "minute" => format!("/v1/datastreams/{id}/observations?from={}&to={}", stamp(minute_from), stamp(to)),
        "day" => format!("/v1/datastreams/{id}/observations?from={}&to={}&limit=10000", stamp(day_from), stamp(to)),
        "sta-day-array" => format!(
            "/sta/v1.1/Datastreams({id})/Observations?$filter=phenomenonTime%20ge%20{}%20and%20phenomenonTime%20lt%20{}&$top=1000&$resultFormat=dataArray&$select=phenomenonTime,result",
            stamp(day_from),
            stamp(to)
        ),
        "sta-latest" => format!("/sta/v1.1/Datastreams({id})/Observations?$top=1&$orderby=phenomenonTime%20desc"),
        "sta-day" => format!(
            "/sta/v1.1/Datastreams({id})/Observations?$filter=phenomenonTime%20ge%20{}%20and%20phenomenonTime%20lt%20{}&$top=1000",
            stamp(day_from).replace('+', "%2B"),
            stamp(to).replace('+', "%2B")
        ),
        _ => format!("/v1/datastreams/{id}/aggregates?from={}&to={}&interval=15m", stamp(month_from), stamp(month_to)),
    }
    };

    struct Scenario {
        name: &'static str,
        paths: Vec<String>,
        audited: bool,
        /// Follow every `@iot.nextLink` (SensorThings pages) as part of one call.
        all_pages: bool,
    }
    let scenarios = [
        Scenario {
            name: "latest value of a datastream (GET /v1/datastreams/{id})",
            paths: ids.iter().map(|i| path(i, "latest")).collect(),
            audited: false,
            all_pages: false,
        },
        Scenario {
            name: "latest values of all datastreams (GET /v1/datastreams)",
            paths: vec!["/v1/datastreams".into()],
            audited: true,
            all_pages: false,
        },
        Scenario {
            name: "1 minute of raw readings (6 rows)",
            paths: ids.iter().map(|i| path(i, "minute")).collect(),
            audited: true,
            all_pages: false,
        },
        Scenario {
            name: "1 day of raw readings (8,640 rows)",
            paths: ids.iter().map(|i| path(i, "day")).collect(),
            audited: true,
            all_pages: false,
        },
        Scenario {
            name: "1 month of 15-minute aggregates (2,880 buckets)",
            paths: month_ids.iter().map(|i| path(i, "month")).collect(),
            audited: true,
            all_pages: false,
        },
        Scenario {
            name: "SensorThings: latest observation ($top=1, newest first)",
            paths: ids.iter().map(|i| path(i, "sta-latest")).collect(),
            audited: true,
            all_pages: false,
        },
        Scenario {
            name: "SensorThings: 1 day of raw observations ($filter on phenomenonTime; 9 pages of ≤ 1,000 via @iot.nextLink)",
            paths: ids.iter().map(|i| path(i, "sta-day")).collect(),
            audited: true,
            all_pages: true,
        },
        Scenario {
            name: "SensorThings: 1 day as dataArray ($resultFormat=dataArray, $select=phenomenonTime,result; 9 pages)",
            paths: ids.iter().map(|i| path(i, "sta-day-array")).collect(),
            audited: true,
            all_pages: true,
        },
    ];

    let mut table = Table::new(
        format!(
            "api: {} datastreams × {} day(s){}, {} rows; {} clients; operator token",
            ids.len(),
            days,
            if month > 0 { format!(" + {month} × 30 days") } else { String::new() },
            thousands(rows as f64),
            args.concurrency
        ),
        &[
            "request",
            "audited",
            "1 client p50/p99/max ms",
            "64 clients p50/p99/max ms",
            "req/s (64)",
            "SQL alone req/s (64)",
            "ratio",
            "target p99 ≤ 25 ms",
        ],
    );
    // (No month scenario without month-long datastreams: `--month-datastreams 0`.)
    for scenario in scenarios.iter().filter(|s| !s.paths.is_empty()) {
        let paths = Arc::new(scenario.paths.clone());
        let call = http_call(http.clone(), base.clone(), infra.api_token.clone(), paths.clone(), scenario.all_pages);
        if let Err(error) = call(0).await {
            bail!("{}: {error}", scenario.name);
        }
        let single = drive(1, args.secs.div_ceil(2), call.clone()).await;
        let loaded = drive(args.concurrency, args.secs, call).await;
        api.check_alive()?;
        let sql = {
            let pool = sql_pool.clone();
            let ids: Arc<Vec<i64>> =
                Arc::new(if scenario.name.contains("month") { month_ids.clone() } else { ids.to_vec() });
            let kind = scenario.name;
            drive(args.concurrency, args.secs, move |i| {
                let (pool, ids) = (pool.clone(), ids.clone());
                async move {
                    let id = DatastreamId(ids[i % ids.len()]);
                    if kind.starts_with("latest value of") || kind.starts_with("SensorThings: latest") {
                        registry::get_datastream(&pool, id).await?;
                    } else if kind.starts_with("latest values") {
                        registry::list_datastreams(&pool).await?;
                    } else if kind.starts_with("1 minute") {
                        observations::range(&pool, id, minute_from_t, to_t, None, 1000).await?;
                    } else if kind.starts_with("1 day") || kind.starts_with("SensorThings: 1 day") {
                        observations::range(&pool, id, day_from_t, to_t, None, 10_000).await?;
                    } else {
                        observations::aggregates(&pool, id, month_from_t, month_to_t, 900).await?;
                    }
                    Ok(())
                }
            })
            .await
        };
        println!(
            "  {}: 1 client {} ms; {} clients {} ms, {:.0} req/s ({} errors); SQL alone {:.0} req/s",
            scenario.name,
            ms(&single.latency),
            args.concurrency,
            ms(&loaded.latency),
            loaded.per_second,
            loaded.errors + single.errors,
            sql.per_second
        );
        if let Some(error) = loaded.first_error.as_ref().or(single.first_error.as_ref()) {
            println!("    first error: {}", error.chars().take(300).collect::<String>());
        }
        let target = if scenario.name.contains("1 day") || scenario.name.starts_with("1 month") {
            verdict(loaded.latency.p99 <= 25.0 && loaded.errors == 0).to_owned()
        } else {
            String::new()
        };
        table.row(vec![
            scenario.name.into(),
            if scenario.audited { "yes".into() } else { "no".into() },
            ms(&single.latency),
            ms(&loaded.latency),
            if loaded.errors + single.errors > 0 {
                format!("{:.0} ({} errors)", loaded.per_second, loaded.errors + single.errors)
            } else {
                format!("{:.0}", loaded.per_second)
            },
            format!("{:.0}", sql.per_second),
            percent(loaded.per_second, sql.per_second),
            target,
        ]);
    }

    // The audit log alone: appends from the same number of clients, and from
    // one; each record in a transaction of its own (the chain's raw limit), and
    // through the API's group commit (`AuditLog`).
    let group_log = audit::AuditLog::start(sql_pool.clone());
    let append = |clients: usize, secs: u64, tag: &'static str, grouped: bool| {
        let pool = sql_pool.clone();
        let log = group_log.clone();
        drive(clients, secs, move |i| {
            let pool = pool.clone();
            let log = log.clone();
            async move {
                let record = AuditRecord {
                    at: Utc::now(),
                    request_id: format!("bench-{tag}{i}"),
                    principal_id: None,
                    principal_name: "operator".into(),
                    org_id: None,
                    grant_id: None,
                    dataset_id: None,
                    datastream_id: Some(1),
                    action: "observations".into(),
                    range_from: None,
                    range_to: None,
                    resolution: "raw".into(),
                    rows_returned: 6,
                    allowed: true,
                    reason: "benchmark".into(),
                };
                match grouped {
                    true => log.append(record).await?,
                    false => audit::append(&pool, record).await?,
                };
                Ok(())
            }
        })
    };
    for (grouped, name) in [
        (false, "audit append alone, one record per transaction (SQL, no read)"),
        (true, "audit append alone, group commit as the API does it (no read)"),
    ] {
        let audit = append(args.concurrency, args.secs, "", grouped).await;
        let single_audit = append(1, args.secs.div_ceil(2), "single-", grouped).await;
        println!(
            "  {name}: 1 client {} ms; {} clients {} ms, {:.0} appends/s",
            ms(&single_audit.latency),
            args.concurrency,
            ms(&audit.latency),
            audit.per_second
        );
        table.row(vec![
            name.into(),
            "—".into(),
            ms(&single_audit.latency),
            ms(&audit.latency),
            format!("{:.0}", audit.per_second),
            "".into(),
            "".into(),
            "".into(),
        ]);
    }

    // Where a month's aggregate spends its time (pages touched).
    if let Some(id) = month_ids.first() {
        let plan: Vec<(String,)> = sqlx::query_as(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT)
             SELECT time_bucket(make_interval(secs => 900), bucket, timestamptz 'epoch') AS b,
                    sum(sum) / sum(count), min(min), max(max), sum(count)
             FROM observations_15m WHERE datastream_id = $1 AND bucket >= $2 AND bucket < $3 GROUP BY 1 ORDER BY 1",
        )
        .bind(id)
        .bind(month_from_t)
        .bind(month_to_t)
        .fetch_all(&sql_pool)
        .await?;
        let lines: Vec<&str> = plan
            .iter()
            .map(|(l,)| l.as_str())
            .filter(|l| l.contains("Buffers") || l.contains("Execution Time"))
            .take(2)
            .collect();
        println!("  a month of 15-minute aggregates (rollup), one datastream: {}", lines.join("; ").trim());
    }

    sql_pool.close().await;
    let (peak, _) = api.stop(Duration::from_secs(30)).await?;
    table.row(vec![
        "hoheit-api peak RSS (VmHWM)".into(),
        "".into(),
        "".into(),
        mib(peak),
        "".into(),
        "".into(),
        "".into(),
        "".into(),
    ]);
    Ok(vec![table])
}
