//! `shellcheck`: every shell script passes shellcheck (`deploy/local/hoheit`, `.ci/run`, the
//! Docker and compose helpers, and any script added later).
//!
//! A shell script is a `*.sh` file or one whose `#!` line runs sh, bash, dash or ksh. shellcheck is
//! a system tool (Debian package `shellcheck`, installed by `deploy/local/hoheit tools`); without it
//! the rule fails and says so rather than passing unchecked.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::process::Command;

use anyhow::Context;

use super::{Tree, Violation};

const RULE: &str = "shellcheck";
pub const PROGRAM: &str = "shellcheck";
const SHELLS: &[&str] = &["sh", "bash", "dash", "ksh"];

pub fn check(tree: &Tree, program: &str) -> anyhow::Result<Vec<Violation>> {
    let mut scripts = Vec::new();
    for file in tree.files("")? {
        if file.ends_with(".sh") || is_shell_script(tree, &file)? {
            scripts.push(file);
        }
    }
    if scripts.is_empty() {
        return Ok(Vec::new());
    }
    let output = match Command::new(program).arg("--format=gcc").args(&scripts).current_dir(tree.path("")).output() {
        Ok(output) => output,
        Err(error) if error.kind() == ErrorKind::NotFound => {
            let message = format!(
                "`{program}` is not installed, so {} shell scripts went unchecked: apt-get install shellcheck \
                 (`deploy/local/hoheit tools` does)",
                scripts.len()
            );
            return Ok(vec![Violation::new("", 0, RULE, message)]);
        }
        Err(error) => return Err(error).with_context(|| format!("running {program}")),
    };
    // 0: clean, 1: findings; anything else is shellcheck failing.
    if !matches!(output.status.code(), Some(0 | 1)) {
        anyhow::bail!("{program} failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&output.stdout).lines().filter_map(finding).collect())
}

/// Whether the first line of `file` is a `#!` line that runs a shell.
fn is_shell_script(tree: &Tree, file: &str) -> anyhow::Result<bool> {
    let mut head = [0; 128];
    let read =
        File::open(tree.path(file)).and_then(|mut f| f.read(&mut head)).with_context(|| format!("reading {file}"))?;
    let head = String::from_utf8_lossy(&head[..read]);
    let Some(shebang) = head.lines().next().and_then(|line| line.strip_prefix("#!")) else { return Ok(false) };
    let mut words = shebang.split_whitespace().map(|word| word.rsplit('/').next().unwrap_or(word));
    let interpreter = match words.next() {
        Some("env") => words.find(|word| !word.starts_with('-')),
        first => first,
    };
    Ok(interpreter.is_some_and(|name| SHELLS.contains(&name)))
}

/// A line of `shellcheck --format=gcc` (`path:line:column: severity: message [SCxxxx]`) as a violation.
fn finding(line: &str) -> Option<Violation> {
    let mut parts = line.splitn(4, ':');
    let (path, number, _column, message) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    Some(Violation::new(path, number.parse().ok()?, RULE, message.trim()))
}

#[cfg(test)]
mod tests {
    use super::super::tree::testing::{clean_tree, write};
    use super::super::Tree;

    fn check(root: &std::path::Path, program: &str) -> Vec<String> {
        super::check(&Tree::open(root).unwrap(), program).unwrap().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn script_warnings_are_reported() {
        let dir = clean_tree();
        write(dir.path(), ".ci/run", "#!/usr/bin/env bash\ncd $1\n");
        write(dir.path(), "deploy/docker/healthcheck.sh", "echo \"ok\"\n");
        write(dir.path(), "services/dashboard/node_modules/x/bad.sh", "#!/bin/sh\ncd $1\n");
        write(dir.path(), "deploy/check/check.py", "#!/usr/bin/env python3\nimport os\n");
        let found = check(dir.path(), super::PROGRAM);
        assert!(found.iter().any(|f| f.starts_with(".ci/run:2: shellcheck: ") && f.contains("[SC2086]")), "{found:?}");
        assert!(found.iter().any(|f| f.starts_with("deploy/docker/healthcheck.sh:1: ") && f.contains("[SC2148]")));
        assert!(found.iter().all(|f| f.starts_with(".ci/run:") || f.starts_with("deploy/docker/")), "{found:?}");
    }

    #[test]
    fn a_missing_shellcheck_fails_the_rule() {
        let dir = clean_tree();
        assert_eq!(
            check(dir.path(), "shellcheck-that-is-not-installed"),
            vec![
                "shellcheck: `shellcheck-that-is-not-installed` is not installed, so 1 shell scripts went unchecked: \
                 apt-get install shellcheck (`deploy/local/hoheit tools` does)"
            ]
        );
    }
}
