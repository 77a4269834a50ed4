//! `layers`: the library crates keep the layers ARCHITECTURE.md draws. The domain (and the demo
//! town built on it) stays pure: no async runtime, database, broker or HTTP crate among its
//! `[dependencies]`. librdkafka is linked only where Kafka is spoken: `hoheit-kafka`, ingest,
//! the writer and the alerts service; the API, `hoheit-admin`, the simulator and the other libraries never depend on
//! `rdkafka` or `hoheit-kafka` (tests and benchmarks, outside `services/`, may).
//!
//! The crates are named here (a layer is a decision, not something to infer); a crate that is not
//! in the tree is skipped, so the rule runs on partial trees too.

use super::service_deps::{dependency_tables, key_line, load, parse, resolve};
use super::{Tree, Violation};

const RULE: &str = "layers";

/// Crates without I/O, and what would bring I/O in.
const PURE: &[&str] = &["hoheit-domain", "hoheit-town"];
const IO: &[&str] = &[
    "tokio",
    "sqlx",
    "rdkafka",
    "rumqttc",
    "axum",
    "hyper",
    "reqwest",
    "hoheit-store",
    "hoheit-runtime",
    "hoheit-kafka",
];

/// The only crates under `services/` that may link librdkafka, and what links it.
const SPEAKS_KAFKA: &[&str] = &["hoheit-kafka", "hoheit-ingest", "hoheit-writer", "hoheit-alerts"];
const KAFKA: &[&str] = &["rdkafka", "hoheit-kafka"];

pub fn check(tree: &Tree) -> anyhow::Result<Vec<Violation>> {
    let crates =
        tree.crates_in("services")?.into_iter().map(|dir| load(tree, dir)).collect::<anyhow::Result<Vec<_>>>()?;
    let root_manifest = if tree.exists("Cargo.toml") { Some(parse(tree, "Cargo.toml")?) } else { None };
    let workspace_deps = root_manifest.as_ref().and_then(|m| m.get("workspace")?.get("dependencies")?.as_table_like());
    let mut violations = Vec::new();
    for krate in &crates {
        let pure = PURE.contains(&krate.name.as_str());
        let may_speak_kafka = SPEAKS_KAFKA.contains(&krate.name.as_str());
        for (section, table) in dependency_tables(&krate.manifest) {
            // Dev- and build-dependencies do not end up in the crate's own code.
            if section.ends_with("dev-dependencies") || section.ends_with("build-dependencies") {
                continue;
            }
            for (key, item) in table.iter() {
                let package = resolve(key, item, &krate.dir, workspace_deps).package;
                let why = if pure && IO.contains(&package.as_str()) {
                    Some(format!("{} is pure (no I/O) but depends on {package}", krate.name))
                } else if !may_speak_kafka && KAFKA.contains(&package.as_str()) {
                    Some(format!(
                        "{} depends on {package}; only {} link librdkafka",
                        krate.name,
                        SPEAKS_KAFKA.join(", ")
                    ))
                } else {
                    None
                };
                if let Some(why) = why {
                    violations.push(Violation::new(
                        &krate.manifest_path,
                        key_line(&krate.manifest, table, key),
                        RULE,
                        why,
                    ));
                }
            }
        }
    }
    Ok(violations)
}

#[cfg(test)]
mod tests {
    use super::super::tree::testing::{clean_tree, write};
    use super::super::Tree;

    fn check(root: &std::path::Path) -> Vec<String> {
        super::check(&Tree::open(root).unwrap()).unwrap().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn io_in_the_domain_and_kafka_in_the_api_are_reported() {
        let dir = clean_tree();
        write(
            dir.path(),
            "services/domain/Cargo.toml",
            "[package]\nname = \"hoheit-domain\"\n\n[dependencies]\nserde = \"1\"\nsqlx.workspace = true\n\n\
             [dev-dependencies]\ntokio = \"1\"\n",
        );
        write(
            dir.path(),
            "services/api/Cargo.toml",
            "[package]\nname = \"hoheit-api\"\n\n[dependencies]\nhoheit-core.workspace = true\nhoheit-kafka = \"0.1\"\n",
        );
        write(
            dir.path(),
            "services/writer/Cargo.toml",
            "[package]\nname = \"hoheit-writer\"\n\n[dependencies]\nrdkafka = \"0.39\"\n",
        );
        assert_eq!(
            check(dir.path()),
            vec![
                "services/api/Cargo.toml:6: layers: hoheit-api depends on hoheit-kafka; only hoheit-kafka, \
                 hoheit-ingest, hoheit-writer, hoheit-alerts link librdkafka",
                "services/domain/Cargo.toml:6: layers: hoheit-domain is pure (no I/O) but depends on sqlx",
            ]
        );
    }

    #[test]
    fn the_clean_tree_keeps_its_layers() {
        assert_eq!(check(clean_tree().path()), Vec::<String>::new());
    }
}
