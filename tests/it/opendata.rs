//! Open data: the DCAT-AP.de catalog and the downloads, against a seeded
//! small town on the real database.
//!
//! - `GET /opendata/catalog` without a key, in Turtle, RDF/XML and JSON-LD,
//!   has zero violations of the DCAT-AP.de 3.0 SHACL shapes (the EU profile
//!   and the German rules, `tests/conformance/dcat-ap-de/`, pyshacl) and its
//!   themes, licenses, frequencies, formats and languages are IRIs of their
//!   vocabularies; it lists the open datasets and only those, with what the
//!   profile asks for (publisher, contact, theme, license and attribution,
//!   spatial and temporal coverage, frequency, keywords, distributions and
//!   the SensorThings service);
//! - an unacceptable `Accept` gets 406;
//! - the CSV and JSON downloads stream every reading with the license in the
//!   headers, only for open datasets, and each is audited as a read.
//!
//! The validator runs from `$HOHEIT_TOOLS_DIR/venv` (default
//! `/opt/hoheit-tools`), installed by `deploy/local/hoheit tools`.

use hoheit_tests::town::small_town;
use hoheit_tests::{start_api, Isolation};
use serde_json::Value;

use hoheit_tests::repo;

use hoheit_tests::tools_python as python;

#[tokio::test]
async fn the_catalog_conforms_to_dcat_ap_de_in_every_format_and_lists_only_open_datasets() {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await.unwrap();
    let (running, api) = start_api(&isolation).await.unwrap();
    small_town(&api, &pool).await.unwrap();

    for media in ["text/turtle", "application/rdf+xml", "application/ld+json"] {
        let response = api.get_as(None, "/opendata/catalog").header("accept", media).send().await.unwrap();
        assert_eq!(response.status(), 200, "{media}");
        assert_eq!(response.headers()["content-type"], media);
        let body = response.bytes().await.unwrap();
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &body).unwrap();
        let output = tokio::process::Command::new(python())
            .arg(repo().join("tests/conformance/check_dcat.py"))
            .arg(file.path())
            .arg(media)
            .output()
            .await
            .expect("running check_dcat.py");
        let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "{media}: the catalog does not conform:\n{report}");
        assert!(report.contains("check_dcat: 0 violation(s)"), "{media}:\n{report}");
        assert!(report.contains(", 2 dataset(s)"), "the two open datasets, not the internal one ({media}):\n{report}");
    }

    let turtle = api.get_as(None, "/opendata/catalog").send().await.unwrap().text().await.unwrap();
    let base = api.base.clone();
    for expected in [
        format!("<{base}/opendata/datasets/verkehrszaehlung>"),
        format!("<{base}/opendata/datasets/verkehrszaehlung.csv>"),
        format!("<{base}/opendata/datasets/lufttemperatur.json>"),
        format!("<{base}/sta/v1.1>"),
        "dcat:DataService".into(),
        "<http://publications.europa.eu/resource/authority/data-theme/TRAN>".into(),
        "<http://publications.europa.eu/resource/authority/data-theme/ENVI>".into(),
        "<http://dcat-ap.de/def/licenses/dl-by-de/2.0>".into(),
        "<http://dcat-ap.de/def/licenses/dl-zero-de/2.0>".into(),
        "<http://publications.europa.eu/resource/authority/frequency/CONT>".into(),
        "<mailto:opendata@stadt.example>".into(),
        "POLYGON((13.8203 52.8301, 13.8451 52.8301, 13.8451 52.8402, 13.8203 52.8402, 13.8203 52.8301))".into(),
        "dcat:startDate".into(),
        "\"vehicles\"@de".into(),
    ] {
        assert!(turtle.contains(&expected), "missing {expected} in:\n{turtle}");
    }
    assert!(!turtle.contains("netzlast"), "an internal dataset is not in the open catalog");
    // Attribution where the license requires it (dl-by-de), not for dl-zero-de.
    assert_eq!(turtle.matches("dcatde:licenseAttributionByText").count(), 3, "{turtle}");

    let refused = api.get_as(None, "/opendata/catalog").header("accept", "text/html").send().await.unwrap();
    assert_eq!(refused.status(), 406);
    assert_eq!(refused.headers()["content-type"], "application/problem+json");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn open_downloads_stream_every_reading_with_the_license_and_are_audited() {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await.unwrap();
    let (running, api) = start_api(&isolation).await.unwrap();
    let town = small_town(&api, &pool).await.unwrap();

    let csv = api.get_as(None, "/opendata/datasets/verkehrszaehlung.csv").send().await.unwrap();
    assert_eq!(csv.status(), 200);
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(csv.headers()["x-hoheit-license"], "http://dcat-ap.de/def/licenses/dl-by-de/2.0");
    assert_eq!(csv.headers()["link"], "<http://dcat-ap.de/def/licenses/dl-by-de/2.0>; rel=\"license\"");
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "datastream_id,thing,property,unit,time,value");
    assert_eq!(lines.len(), 1 + town.readings, "{text}");
    assert!(lines[1].starts_with(&format!("{},zaehler-1,vehicles,count,", town.counts)), "{}", lines[1]);

    let json: Value =
        api.get_as(None, "/opendata/datasets/lufttemperatur.json").send().await.unwrap().json().await.unwrap();
    assert_eq!(json["license"], "http://dcat-ap.de/def/licenses/dl-zero-de/2.0");
    assert_eq!(json["observations"].as_array().unwrap().len(), 4);
    assert_eq!(json["observations"][0]["datastream_id"], town.temperature);
    assert_eq!(json["datastreams"][0]["unit"], "Cel");

    // Not open, not there, not a download: 404 with a reason, also for the owner's operator.
    for path in
        ["/opendata/datasets/netzlast.csv", "/opendata/datasets/nichts.json", "/opendata/datasets/verkehrszaehlung.xml"]
    {
        let response = api.get(path).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(response.headers()["content-type"], "application/problem+json", "{path}");
    }

    let seen: Vec<(String, i64, i64, bool)> = sqlx::query_as(
        "SELECT principal_name, dataset_id, rows_returned, decision = 'allow' FROM audit_log WHERE action = 'opendata_download' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        seen,
        vec![("anonymous".into(), town.verkehr, town.readings as i64, true), ("anonymous".into(), town.luft, 4, true)]
    );
    running.stop().await.unwrap();
}
