//! `openapi-routes`: every route is in the OpenAPI document, because every route is registered
//! through utoipa-axum's `routes!` (`OpenApiRouter::routes`), which takes the handler's
//! `#[utoipa::path]` into the document (ARCHITECTURE.md, invariants).
//!
//! Statically, in `services/api/src`: axum's own ways to add a handler (`.route(`,
//! `.route_service(`, `.nest_service(`, `.fallback(`, `.fallback_service(`, `.merge(`, anything from
//! `axum::routing::`) appear only as the entries of [`ALLOWED`], each with its reason. A
//! `#[cfg(test)] mod` at the end of a file is not looked at. `tests/it/openapi.rs` checks the document
//! against the running router in both directions; this rule stops a new handler from bypassing
//! `routes!` before it gets that far.

use super::rust_source::lex;
use super::{Tree, Violation};

const RULE: &str = "openapi-routes";
const API_SRC: &str = "services/api/src";

/// Calls that register handlers outside the OpenAPI document.
const REGISTRATIONS: &[&str] =
    &[".route(", ".route_service(", ".nest_service(", ".fallback(", ".fallback_service(", ".merge(", "routing::"];

/// The registrations that are not API operations: (code, why it is not in the document). The code
/// is matched against a line of `services/api/src` without comments, spaces at either end ignored.
const ALLOWED: &[(&str, &str)] = &[
    (
        ".merge(headers::docs_policy(Router::from(docs)))",
        "Swagger UI at /docs and the document itself at /openapi.json: the document's own pages",
    ),
    (
        ".fallback(dashboard::serve)",
        "the dashboard's files at /: the fallback answers only requests no documented route matched",
    ),
];

pub fn check(tree: &Tree) -> anyhow::Result<Vec<Violation>> {
    let mut violations = Vec::new();
    for file in tree.files(API_SRC)?.into_iter().filter(|f| f.ends_with(".rs")) {
        let lexed = lex(&tree.read(&file)?);
        for (index, code) in lexed.code_lines.iter().enumerate() {
            if starts_test_module(&lexed.code_lines[index..]) {
                break;
            }
            let code = code.trim();
            let Some(call) = REGISTRATIONS.iter().find(|call| code.contains(*call)) else { continue };
            if ALLOWED.iter().any(|(allowed, _)| code.contains(allowed)) {
                continue;
            }
            let message = format!(
                "`{}` registers a route outside `routes!`, so it is missing from the OpenAPI document; use \
                 `.routes(routes!(handler))` with a `#[utoipa::path]`, or add a reasoned entry to the allow-list in \
                 xtask/src/tidy/openapi_routes.rs",
                call.trim_end_matches('(')
            );
            violations.push(Violation::new(&file, index + 1, RULE, message));
        }
    }
    Ok(violations)
}

/// Whether `lines` start with `#[cfg(test)]` followed by a `mod` item.
fn starts_test_module(lines: &[String]) -> bool {
    let mut rest = lines.iter().map(|l| l.trim()).filter(|l| !l.is_empty());
    rest.next() == Some("#[cfg(test)]")
        && rest.find(|l| !l.starts_with("#[")).is_some_and(|l| l.starts_with("mod ") || l.starts_with("pub mod "))
}

#[cfg(test)]
mod tests {
    use super::super::tree::testing::{clean_tree, write};
    use super::super::Tree;

    fn check(root: &std::path::Path) -> Vec<String> {
        super::check(&Tree::open(root).unwrap()).unwrap().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn routes_registered_past_routes_macro_are_reported() {
        let dir = clean_tree();
        write(
            dir.path(),
            "services/api/src/lib.rs",
            "//! The router.\n\nuse axum::routing::{get, post};\n\n\
             pub fn router(state: AppState) -> Router {\n    \
             // .route(\"/in/a/comment\", get(x)) is fine\n    \
             let (routes, document) = documented_routes().split_for_parts();\n    \
             routes\n        .route(\"/hidden\", get(hidden))\n        \
             .merge(headers::docs_policy(Router::from(docs)))\n        \
             .nest_service(\"/files\", ServeDir::new(\"dist\"))\n        \
             .fallback(dashboard::serve)\n}\n\n\
             #[cfg(test)]\nmod tests {\n    fn app() -> Router { Router::new().route(\"/\", get(ok)) }\n}\n",
        );
        let message = "registers a route outside `routes!`, so it is missing from the OpenAPI document; use \
                       `.routes(routes!(handler))` with a `#[utoipa::path]`, or add a reasoned entry to the \
                       allow-list in xtask/src/tidy/openapi_routes.rs";
        assert_eq!(
            check(dir.path()),
            vec![
                format!("services/api/src/lib.rs:3: openapi-routes: `routing::` {message}"),
                format!("services/api/src/lib.rs:9: openapi-routes: `.route` {message}"),
                format!("services/api/src/lib.rs:11: openapi-routes: `.nest_service` {message}"),
            ]
        );
    }
}
