//! `service-deps`: no service depends on another service; services share code through library
//! crates only (STYLE 1, ARCHITECTURE.md's code map).
//!
//! A service is a crate directory directly under `services/` with a `src/main.rs` or a `[[bin]]`;
//! every other crate is a library. The set is read from the tree, not listed here. Checked:
//! `[dependencies]`, `[dev-dependencies]`, `[build-dependencies]` and their `[target.….…]` forms of
//! each service's `Cargo.toml`; a dependency is named by its package (`package = …` or the key, also
//! through `workspace = true`) or by its `path`.

use anyhow::Context;
use toml_edit::{Document, Item, TableLike};

use super::tree::line_of;
use super::{Tree, Violation};

const RULE: &str = "service-deps";
const DEP_TABLES: &[&str] = &["dependencies", "dev-dependencies", "build-dependencies"];

pub(super) struct Crate {
    pub(super) dir: String,
    pub(super) name: String,
    pub(super) manifest_path: String,
    pub(super) manifest: Document<String>,
    pub(super) is_service: bool,
}

/// Where a dependency points: its package name and, for a path dependency, its directory.
pub(super) struct Target {
    pub(super) package: String,
    pub(super) dir: Option<String>,
}

pub fn check(tree: &Tree) -> anyhow::Result<Vec<Violation>> {
    let crates =
        tree.crates_in("services")?.into_iter().map(|dir| load(tree, dir)).collect::<anyhow::Result<Vec<_>>>()?;
    let services: Vec<&Crate> = crates.iter().filter(|c| c.is_service).collect();
    let root_manifest = if tree.exists("Cargo.toml") { Some(parse(tree, "Cargo.toml")?) } else { None };
    let workspace_deps = root_manifest.as_ref().and_then(|m| m.get("workspace")?.get("dependencies")?.as_table_like());
    let mut violations = Vec::new();
    for service in &services {
        for (section, table) in dependency_tables(&service.manifest) {
            for (key, item) in table.iter() {
                let target = resolve(key, item, &service.dir, workspace_deps);
                let other = services.iter().find(|other| {
                    other.dir != service.dir
                        && (target.dir.as_deref() == Some(&other.dir) || target.package == other.name)
                });
                if let Some(other) = other {
                    let line = key_line(&service.manifest, table, key);
                    let message = format!(
                        "{} (a service) depends on {} (the service in {}/) in [{section}]; services share code \
                         through library crates only",
                        service.name, other.name, other.dir
                    );
                    violations.push(Violation::new(&service.manifest_path, line, RULE, message));
                }
            }
        }
    }
    Ok(violations)
}

/// The line of the dependency `key` in `table` of `manifest` (1 if it cannot be told).
pub(super) fn key_line(manifest: &Document<String>, table: &dyn TableLike, key: &str) -> usize {
    let at = table.get_key_value(key).and_then(|(key, _)| key.span()).map(|span| span.start);
    at.map_or(1, |at| line_of(manifest.raw(), at))
}

pub(super) fn parse(tree: &Tree, path: &str) -> anyhow::Result<Document<String>> {
    Document::parse(tree.read(path)?).with_context(|| format!("parsing {path}"))
}

pub(super) fn load(tree: &Tree, dir: String) -> anyhow::Result<Crate> {
    let manifest_path = format!("{dir}/Cargo.toml");
    let manifest = parse(tree, &manifest_path)?;
    let name = manifest.get("package").and_then(|p| p.get("name")).and_then(Item::as_str).unwrap_or(&dir).to_owned();
    let has_bin = manifest.get("bin").and_then(Item::as_array_of_tables).is_some_and(|bins| !bins.is_empty());
    let is_service = has_bin || tree.exists(&format!("{dir}/src/main.rs"));
    Ok(Crate { dir, name, manifest_path, manifest, is_service })
}

/// The dependency tables of a manifest with their names: the plain ones and those under `[target.*]`.
pub(super) fn dependency_tables(manifest: &Document<String>) -> Vec<(String, &dyn TableLike)> {
    let mut tables = Vec::new();
    for name in DEP_TABLES {
        if let Some(table) = manifest.get(name).and_then(Item::as_table_like) {
            tables.push((name.to_string(), table));
        }
    }
    let platforms = manifest.get("target").and_then(Item::as_table_like);
    for (platform, item) in platforms.into_iter().flat_map(|t| t.iter()) {
        for name in DEP_TABLES {
            if let Some(table) = item.get(name).and_then(Item::as_table_like) {
                tables.push((format!("target.{platform}.{name}"), table));
            }
        }
    }
    tables
}

/// What the dependency `key = item` of the crate in `crate_dir` points to.
pub(super) fn resolve(key: &str, item: &Item, crate_dir: &str, workspace_deps: Option<&dyn TableLike>) -> Target {
    let inherited = item.get("workspace").and_then(Item::as_bool) == Some(true);
    let (item, base) = match workspace_deps.and_then(|deps| deps.get(key)) {
        Some(workspace_item) if inherited => (workspace_item, ""),
        _ => (item, crate_dir),
    };
    let package = item.get("package").and_then(Item::as_str).unwrap_or(key).to_owned();
    let dir = item.get("path").and_then(Item::as_str).map(|path| join(base, path));
    Target { package, dir }
}

/// `base/rel` with `.` and `..` resolved, relative to the repository root.
fn join(base: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::super::tree::testing::{clean_tree, write};
    use super::super::Tree;

    fn check(root: &std::path::Path) -> Vec<String> {
        super::check(&Tree::open(root).unwrap()).unwrap().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_service_depending_on_a_service_is_reported() {
        let dir = clean_tree();
        // A service by its main.rs, depended on by path and through the workspace under another key.
        write(dir.path(), "services/ingest/Cargo.toml", "[package]\nname = \"hoheit-ingest\"\n");
        write(dir.path(), "services/ingest/src/main.rs", "//! Ingest.\nfn main() {}\n");
        // A service by its [[bin]], with a library dependency only: fine.
        write(
            dir.path(),
            "services/admin/Cargo.toml",
            "[package]\nname = \"hoheit-admin\"\n\n[[bin]]\nname = \"hoheit-admin\"\npath = \"src/cli.rs\"\n\n\
             [dependencies]\nhoheit-core.workspace = true\n",
        );
        write(
            dir.path(),
            "services/api/Cargo.toml",
            "[package]\nname = \"hoheit-api\"\n\n[dependencies]\nhoheit-core.workspace = true\n\
             renamed = { workspace = true }\n\n[dev-dependencies]\ningest = { path = \"../ingest\" }\n\n\
             [target.'cfg(unix)'.build-dependencies]\nhoheit-admin = \"0.1\"\n",
        );
        let root_manifest = std::fs::read_to_string(dir.path().join("Cargo.toml")).unwrap()
            + "renamed = { path = \"services/ingest\", package = \"hoheit-ingest\" }\n";
        write(dir.path(), "Cargo.toml", &root_manifest);
        assert_eq!(
            check(dir.path()),
            vec![
                "services/api/Cargo.toml:6: service-deps: hoheit-api (a service) depends on hoheit-ingest (the service \
                 in services/ingest/) in [dependencies]; services share code through library crates only",
                "services/api/Cargo.toml:9: service-deps: hoheit-api (a service) depends on hoheit-ingest (the service \
                 in services/ingest/) in [dev-dependencies]; services share code through library crates only",
                "services/api/Cargo.toml:12: service-deps: hoheit-api (a service) depends on hoheit-admin (the service \
                 in services/admin/) in [target.cfg(unix).build-dependencies]; services share code through library \
                 crates only",
            ]
        );
    }

    #[test]
    fn libraries_may_depend_on_each_other() {
        let dir = clean_tree();
        write(
            dir.path(),
            "services/store/Cargo.toml",
            "[package]\nname = \"hoheit-store\"\n\n[dependencies]\nhoheit-core.workspace = true\n",
        );
        assert_eq!(check(dir.path()), Vec::<String>::new());
    }
}
