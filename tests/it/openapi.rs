//! The API's OpenAPI document against the API itself:
//!
//! - the document served at `/openapi.json` names every route the router
//!   registers (the handlers in `routes!(…)` in `services/api/src/lib.rs`
//!   are its operation ids), every documented operation is answered by a real
//!   handler (not the 404 fallback, not 405), and the document is valid
//!   OpenAPI 3.1 (`openapi-spec-validator`);
//! - `/docs` is a self-contained page (no script or style from another host);
//! - schemathesis fuzzes every operation against a seeded small database as
//!   the operator: no 5xx, and status codes, content types, headers and
//!   bodies conform to the document (bounded: 25 examples per operation and
//!   60 s by default; `HOHEIT_FUZZ_EXAMPLES`, `HOHEIT_FUZZ_SECONDS` raise it).
//!
//! The Python tools come from `$HOHEIT_TOOLS_DIR/venv` (default
//! `/opt/hoheit-tools`), installed by `deploy/local/hoheit tools`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use hoheit_tests::town::small_town;
use hoheit_tests::{start_api, Isolation, TOKEN};
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

use hoheit_tests::repo;

fn venv() -> PathBuf {
    let dir = std::env::var_os("HOHEIT_TOOLS_DIR").map(PathBuf::from).unwrap_or_else(|| "/opt/hoheit-tools".into());
    let venv = dir.join("venv/bin");
    assert!(
        venv.join("python").is_file() && venv.join("st").is_file(),
        "the Python test tools are not installed in {}: run `deploy/local/hoheit tools` (as root)",
        dir.display()
    );
    venv
}

/// The handlers registered with `routes!(…)` in the API's router, as
/// `module_function` (the operation id each handler declares).
fn registered_handlers() -> BTreeSet<String> {
    let source = std::fs::read_to_string(repo().join("services/api/src/lib.rs")).expect("services/api/src/lib.rs");
    assert!(
        !source.contains(".route(") && !source.contains(".route_service("),
        "the API router must register routes only through routes!(…), so that each is documented"
    );
    source
        .split("routes!(")
        .skip(1)
        .flat_map(|rest| {
            let inside = &rest[..rest.find(')').expect("routes!(…) closes")];
            inside.split(',').map(|h| h.trim().replace("::", "_")).collect::<Vec<_>>()
        })
        .filter(|h| !h.is_empty())
        .collect()
}

/// (method, path, operationId) of every operation in the document.
fn operations(document: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                out.push((method.to_owned(), path.clone(), op["operationId"].as_str().unwrap_or_default().to_owned()));
            }
        }
    }
    out
}

#[tokio::test]
async fn the_document_names_every_route_and_is_valid_openapi_3_1() {
    let isolation = Isolation::new();
    let _pool = isolation.create_database().await.unwrap();
    let (running, api) = start_api(&isolation).await.unwrap();
    let response = api.get_as(None, "/openapi.json").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");

    let ops = operations(&document);
    let ids: BTreeSet<String> = ops.iter().map(|(_, _, id)| id.clone()).collect();
    assert_eq!(ids.len(), ops.len(), "operation ids are unique");
    assert_eq!(ids, registered_handlers(), "documented operations = handlers registered in the router");
    assert!(ids.len() >= 25, "all of the API: {ids:?}");

    // Every documented operation reaches its handler (ids that do not exist: nothing changes).
    for (method, path, _) in &ops {
        let url = format!("{}{}", api.base, path.replace("{id}", "987654"));
        let request = api.http.request(method.to_uppercase().parse().unwrap(), &url).bearer_auth(TOKEN);
        let request = if method == "post" { request.json(&serde_json::json!({})) } else { request };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        // A documented 405 (SensorThings updates and deletes) says why; axum's own has no body.
        assert!(status != 405 || body.contains("not supported"), "{method} {path} is documented but not routed");
        assert!(!body.contains("no resource at"), "{method} {path} is documented but falls through to 404: {body}");
    }

    // Auth schemes, error schema and parameters are in it.
    assert_eq!(document["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert!(document["components"]["schemas"]["Problem"]["properties"]["detail"].is_object());
    let observations = &document["paths"]["/v1/datastreams/{id}/observations"]["get"];
    let params: BTreeSet<&str> =
        observations["parameters"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(params, BTreeSet::from(["id", "from", "to", "limit", "cursor"]));
    assert_eq!(
        observations["responses"]["403"]["content"]["application/problem+json"]["schema"]["$ref"],
        "#/components/schemas/Problem"
    );
    let anonymous_allowed =
        observations["security"].as_array().unwrap().iter().any(|s| s.as_object().unwrap().is_empty());
    assert!(anonymous_allowed, "open data needs no credential");
    let verify_security = &document["paths"]["/v1/audit/verify"]["get"]["security"];
    assert_eq!(verify_security, &serde_json::json!([{"bearer": []}]), "the operator's check needs a credential");

    // Valid OpenAPI 3.1.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_vec(&document).unwrap()).unwrap();
    let output = Command::new(venv().join("python"))
        .arg(repo().join("tests/conformance/check_openapi.py"))
        .arg(file.path())
        .output()
        .expect("running check_openapi.py");
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && report.contains("valid OpenAPI 3.1"), "{report}");

    // The interactive page is served from the binary: nothing from another host.
    let page = api.get_as(None, "/docs/").send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"), "no assets from elsewhere: {html}");
    let init = api.get_as(None, "/docs/swagger-initializer.js").send().await.unwrap().text().await.unwrap();
    assert!(init.contains("/openapi.json"), "{init}");
    running.stop().await.unwrap();
}

/// A bound of the fuzzing run: small by default so that CI stays fast;
/// raise it for a deeper run (`HOHEIT_FUZZ_SECONDS=600 cargo test …`).
fn fuzz_setting(name: &str, default: u32) -> String {
    std::env::var(name).ok().and_then(|v| v.parse::<u32>().ok()).filter(|n| *n > 0).unwrap_or(default).to_string()
}

#[tokio::test]
async fn the_api_conforms_to_its_own_document_under_fuzzing() {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await.unwrap();
    // With ingest, whose HTTP doors answer the write paths the API forwards.
    let ingest = hoheit_tests::start_ingest(&isolation).await.unwrap();
    let doors = ingest.doors_url.clone();
    let (running, api) = hoheit_tests::start_api_with(&isolation, |api| api.ingest_url = doors).await.unwrap();
    small_town(&api, &pool).await.unwrap();
    // Async, so that the API on this runtime answers while schemathesis runs.
    let output = tokio::process::Command::new(venv().join("st"))
        .args(["run", &format!("{}/openapi.json", api.base)])
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance"])
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", &fuzz_setting("HOHEIT_FUZZ_EXAMPLES", 25)])
        .args(["--max-time", &fuzz_setting("HOHEIT_FUZZ_SECONDS", 60)])
        // One worker: hypothesis describes its filters by parsing their source with `ast.parse`,
        // which in CPython before 3.11.8 can fail when two threads parse at once ("AST
        // constructor recursion depth mismatch"): a tool error that failed CI by chance.
        .args(["--workers", "1", "--request-timeout", "10"])
        .args(["--generation-database", "none", "--no-color", "--continue-on-failure"])
        .env("SCHEMATHESIS_HOOKS", repo().join("tests/conformance/schemathesis_hooks.py"))
        .current_dir(std::env::temp_dir())
        .output()
        .await
        .expect("running schemathesis");
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "schemathesis found problems:\n{report}");
    running.stop().await.unwrap();
    ingest.stop().await.unwrap();
}
