//! The repository tree as the rules see it: files by relative path, without build output,
//! dependencies of other ecosystems or local state.
//!
//! Skipped directories: `.git`, every `target` and `node_modules`, every directory with a
//! `CACHEDIR.TAG` (a cargo target directory under any name, where generated `OUT_DIR` files live),
//! `tests/fuzz/corpus`, and the anchored entries of the root `.gitignore` (`/.hoheit`,
//! `/services/dashboard/dist`, …).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Directory names skipped wherever they are.
const SKIPPED_NAMES: &[&str] = &[".git", "target", "node_modules"];
/// Directories skipped by path: fuzz inputs are data, not source.
const SKIPPED_PATHS: &[&str] = &["tests/fuzz/corpus"];

pub struct Tree {
    root: PathBuf,
    /// Anchored `.gitignore` entries (`/target` → `target`): generated or local paths.
    ignored: Vec<String>,
}

impl Tree {
    pub fn open(root: &Path) -> anyhow::Result<Self> {
        anyhow::ensure!(root.is_dir(), "{} is not a directory", root.display());
        let gitignore = fs::read_to_string(root.join(".gitignore")).unwrap_or_default();
        let ignored = gitignore
            .lines()
            .map(str::trim)
            .filter_map(|line| line.strip_prefix('/'))
            .filter(|entry| !entry.contains(['*', '?', '[', '!']))
            .map(|entry| entry.trim_end_matches('/').to_owned())
            .filter(|entry| !entry.is_empty())
            .collect();
        Ok(Self { root: root.to_owned(), ignored })
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    pub fn read(&self, rel: &str) -> anyhow::Result<String> {
        fs::read_to_string(self.path(rel)).with_context(|| format!("reading {rel}"))
    }

    /// Whether `rel` is, or lies under, an anchored `.gitignore` entry: a path the tree produces
    /// (build output, local state) rather than holds.
    pub fn is_ignored(&self, rel: &str) -> bool {
        let rel = rel.trim_end_matches('/');
        self.ignored.iter().any(|entry| rel == entry || rel.starts_with(&format!("{entry}/")))
    }

    /// Every file under `dir` (relative to the root, `""` for all), sorted; none if `dir` is missing.
    pub fn files(&self, dir: &str) -> anyhow::Result<Vec<String>> {
        let mut files = Vec::new();
        if self.path(dir).is_dir() {
            self.walk(dir.trim_end_matches('/'), &mut files)?;
        }
        files.sort();
        Ok(files)
    }

    fn walk(&self, dir: &str, files: &mut Vec<String>) -> anyhow::Result<()> {
        let entries = fs::read_dir(self.path(dir)).with_context(|| format!("listing {dir}"))?;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if dir.is_empty() { name.clone() } else { format!("{dir}/{name}") };
            let kind = entry.file_type()?; // symlinks are not followed
            if kind.is_dir() {
                if !self.skips_dir(&name, &rel) {
                    self.walk(&rel, files)?;
                }
            } else if kind.is_file() {
                files.push(rel);
            }
        }
        Ok(())
    }

    fn skips_dir(&self, name: &str, rel: &str) -> bool {
        SKIPPED_NAMES.contains(&name)
            || SKIPPED_PATHS.contains(&rel)
            || self.is_ignored(rel)
            || self.path(rel).join("CACHEDIR.TAG").exists()
    }

    /// The directories directly under `dir` that hold a `Cargo.toml`: the crates there.
    pub fn crates_in(&self, dir: &str) -> anyhow::Result<Vec<String>> {
        let mut crates = Vec::new();
        let Ok(entries) = fs::read_dir(self.path(dir)) else { return Ok(crates) };
        for entry in entries {
            let entry = entry?;
            let rel = format!("{dir}/{}", entry.file_name().to_string_lossy());
            if entry.file_type()?.is_dir() && self.exists(&format!("{rel}/Cargo.toml")) {
                crates.push(rel);
            }
        }
        crates.sort();
        Ok(crates)
    }
}

/// The 1-based line of byte offset `at` in `text`.
pub fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
pub mod testing {
    //! Mini repositories in temporary directories for the rules' tests.

    use std::fs;
    use std::path::Path;

    pub fn write(root: &Path, rel: &str, content: &str) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    /// A tree that passes every rule: a library and a service crate, a code map, a shell script.
    pub fn clean_tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, ".gitignore", "/target\n/.hoheit\n");
        write(
            root,
            "Cargo.toml",
            "[workspace]\nmembers = [\"services/core\", \"services/api\"]\n\n[workspace.dependencies]\n\
             hoheit-core = { path = \"services/core\", version = \"0.1.0\" }\n\
             hoheit-api = { path = \"services/api\", version = \"0.1.0\" }\n",
        );
        write(root, "services/core/Cargo.toml", "[package]\nname = \"hoheit-core\"\n");
        write(root, "services/core/src/lib.rs", "//! Shared types.\n\npub fn select() {}\n");
        write(
            root,
            "services/api/Cargo.toml",
            "[package]\nname = \"hoheit-api\"\n\n[[bin]]\nname = \"hoheit-api\"\npath = \"src/main.rs\"\n\n\
             [dependencies]\nhoheit-core.workspace = true\n",
        );
        write(root, "services/api/src/main.rs", "//! The API server.\n\nfn main() {}\n");
        write(
            root,
            "services/api/src/lib.rs",
            "//! The router.\n\npub fn documented_routes() -> OpenApiRouter {\n    \
             OpenApiRouter::new().routes(routes!(things::list)).nest(\"/v1\", v1)\n}\n",
        );
        write(root, "services/api/src/routes/mod.rs", "//! One module per resource.\n// SELECT in a comment\n");
        write(root, "services/api/src/sta/mod.rs", "//! SensorThings.\n\nconst Q: &str = \"SELECT 1\";\n");
        write(root, "xtask/src/main.rs", "//! Tasks.\n\nfn main() {}\n");
        write(root, "target/debug/build/out/generated.rs", "fn generated() {}\n");
        write(root, ".hoheit/state.rs", "fn local() {}\n");
        write(
            root,
            "ARCHITECTURE.md",
            "# Architecture\n\n## Code map\n\n| path | what it is |\n| --- | --- |\n\
             | `services/core/` | `hoheit-core`: types (`Slug`, `GET /v1/x`) |\n\
             | `services/api/` | router; `routes/` one module per resource; `lib.rs`; state in `.hoheit/` |\n\
             | `xtask/` | `cargo xtask tidy` |\n\n## Invariants\n\n- `not/a/path` is outside the code map.\n",
        );
        write(root, "deploy/local/hoheit", "#!/usr/bin/env bash\nset -euo pipefail\necho \"hello ${1:-}\"\n");
        dir
    }
}

#[cfg(test)]
mod tests {
    use super::testing::clean_tree;
    use super::Tree;

    #[test]
    fn files_skip_build_output_and_local_state() {
        let dir = clean_tree();
        let tree = Tree::open(dir.path()).unwrap();
        let files = tree.files("").unwrap();
        assert!(files.contains(&"services/api/src/lib.rs".to_owned()));
        assert!(files.iter().all(|f| !f.starts_with("target/") && !f.starts_with(".hoheit/")), "{files:?}");
    }
}
