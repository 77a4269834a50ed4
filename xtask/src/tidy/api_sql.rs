//! `api-sql`: the api crate has no SQL of its own apart from the SensorThings queries (`sta/`); the
//! SQL of a table lives beside its type in a library crate (ARCHITECTURE.md, code map and
//! invariants).
//!
//! Flagged in `services/api/src` outside `sta/`: any `sqlx::query…` (functions and macros) and
//! string literals holding an SQL statement (`SELECT `, `INSERT INTO`, `UPDATE … SET `,
//! `DELETE FROM`, `WITH … AS (`; upper case, as our SQL is written).

use super::rust_source::lex;
use super::{Tree, Violation};

const RULE: &str = "api-sql";
const API_SRC: &str = "services/api/src";
const ALLOWED: &str = "services/api/src/sta/";

pub fn check(tree: &Tree) -> anyhow::Result<Vec<Violation>> {
    let mut violations = Vec::new();
    for file in tree.files(API_SRC)? {
        if !file.ends_with(".rs") || file.starts_with(ALLOWED) {
            continue;
        }
        let lexed = lex(&tree.read(&file)?);
        for (index, code) in lexed.code_lines.iter().enumerate() {
            if code.contains("sqlx::query") || (code.contains("sqlx::{") && code.contains("query")) {
                let message = "`sqlx::query` in the api: database access belongs to the library crates";
                violations.push(Violation::new(&file, index + 1, RULE, message));
            }
        }
        for literal in &lexed.literals {
            if let Some(statement) = sql_statement(&literal.text) {
                let message = format!(
                    "SQL (`{statement}`) in the api: the SQL of a table lives beside its type in a library crate"
                );
                violations.push(Violation::new(&file, literal.line, RULE, message));
            }
        }
    }
    violations.sort_by_key(|v| (v.path.clone(), v.line));
    Ok(violations)
}

/// The kind of SQL statement `text` holds, if any.
fn sql_statement(text: &str) -> Option<&'static str> {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ") + " ";
    let then = |first: &str, second: &str| text.find(first).is_some_and(|at| text[at..].contains(second));
    if text.contains("SELECT ") {
        Some("SELECT")
    } else if text.contains("INSERT INTO") {
        Some("INSERT INTO")
    } else if text.contains("DELETE FROM") {
        Some("DELETE FROM")
    } else if then("UPDATE ", " SET ") {
        Some("UPDATE … SET")
    } else if then("WITH ", " AS (") {
        Some("WITH … AS (")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::tree::testing::{clean_tree, write};
    use super::super::Tree;
    use super::sql_statement;

    fn check(root: &std::path::Path) -> Vec<String> {
        super::check(&Tree::open(root).unwrap()).unwrap().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn sql_in_the_api_outside_sta_is_reported() {
        let dir = clean_tree();
        write(
            dir.path(),
            "services/api/src/routes/things.rs",
            "//! Things.\n\nuse sqlx::{query, PgPool};\n\n// SELECT in a comment is fine\n\
             async fn list(pool: &PgPool) {\n    let rows = sqlx::query_as::<_, (i64,)>(\n        \
             r#\"SELECT id\n             FROM things\"#,\n    );\n    \
             sqlx::query!(\"UPDATE things\n SET name = $1\", name);\n}\n",
        );
        assert_eq!(
            check(dir.path()),
            vec![
                "services/api/src/routes/things.rs:3: api-sql: `sqlx::query` in the api: database access belongs to the library crates",
                "services/api/src/routes/things.rs:7: api-sql: `sqlx::query` in the api: database access belongs to the library crates",
                "services/api/src/routes/things.rs:8: api-sql: SQL (`SELECT`) in the api: the SQL of a table lives beside its type in a library crate",
                "services/api/src/routes/things.rs:11: api-sql: `sqlx::query` in the api: database access belongs to the library crates",
                "services/api/src/routes/things.rs:11: api-sql: SQL (`UPDATE … SET`) in the api: the SQL of a table lives beside its type in a library crate",
            ]
        );
    }

    #[test]
    fn sql_statements_are_recognised_by_their_keywords() {
        assert_eq!(sql_statement("INSERT INTO audit (a) VALUES ($1)"), Some("INSERT INTO"));
        assert_eq!(sql_statement("DELETE FROM grants WHERE id = $1"), Some("DELETE FROM"));
        assert_eq!(sql_statement("WITH recent AS (SELECT 1) SELECT * FROM recent"), Some("SELECT"));
        assert_eq!(sql_statement("WITH x AS (VALUES (1)) TABLE x"), Some("WITH … AS ("));
        assert_eq!(sql_statement("UPDATE grants SET revoked_at = now()"), Some("UPDATE … SET"));
        assert_eq!(sql_statement("select your dataset"), None);
        assert_eq!(sql_statement("UPDATE available"), None);
    }
}
