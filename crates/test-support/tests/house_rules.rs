//! The shape of the code, checked: rules a reviewer would otherwise have
//! to remember. Each reads the tree as text, so it needs no build of its
//! own and fails with the file and line that broke the rule.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `.rs` file under `dir`, recursively, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The first segment of every path `file` takes from under `prefix`
/// (`crate::`, `super::super::`), also inside groups such as
/// `use crate::{a::X, b};`, each with its line.
fn modules_used(file: &Path, prefix: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(file).unwrap();
    let code: String = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("//") {
                ""
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        let line = code[..at].matches('\n').count() + 1;
        let place = format!("{}:{line}", file.display());
        let rest = &code[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level items of the group: split on commas at depth 0.
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.push((first_segment(&item), place.clone()));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            found.push((first_segment(&item), place));
        } else {
            found.push((first_segment(rest), place));
        }
    }
    found.retain(|(m, _)| !m.is_empty());
    found
}

fn first_segment(path: &str) -> String {
    path.trim()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// servicea and the receivers share only what sits at the root of `app`:
/// a receiver never reaches into the caller, nor the other way round, nor
/// either into the verifier, so each role can change alone.
#[test]
fn roles_do_not_import_each_other() {
    let src = root().join("crates/app/src");
    let roles = ["caller", "receiver", "verifier", "tools"];
    let mut broken = Vec::new();
    for role in roles {
        for file in rust_files(&src.join(role)) {
            for prefix in ["crate::", "super::super::"] {
                for (module, place) in modules_used(&file, prefix) {
                    if module != role && roles.contains(&module.as_str()) {
                        broken.push(format!("{place}: {role} uses {module}"));
                    }
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "a role imports another:\n{}",
        broken.join("\n")
    );
}

/// What two roles share sits at the root, and the root never reaches into
/// a role: only the command line (`cli.rs`), which lists the roles'
/// arguments, does.
#[test]
fn shared_modules_do_not_import_a_role() {
    let src = root().join("crates/app/src");
    let roles = ["caller", "receiver", "verifier", "tools"];
    let mut broken = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let file = entry.unwrap().path();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if file.is_file()
            && name.ends_with(".rs")
            && !["cli.rs", "lib.rs", "main.rs"].contains(&name.as_str())
        {
            for (module, place) in modules_used(&file, "crate::") {
                if roles.contains(&module.as_str()) {
                    broken.push(format!("{place}: uses {module}"));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "a shared module imports a role:\n{}",
        broken.join("\n")
    );
}

/// The scripts stay small, and supervise nothing: starting, watching and
/// stopping processes is `cargo xtask` (crates/xtask), in Rust. Bash keeps
/// what a workshop reads (the `curl` lines of the walkthrough), within a
/// budget of non-blank, non-comment lines over every `scripts/*.sh`.
#[test]
fn scripts_stay_small_and_supervise_nothing() {
    const BUDGET: usize = 350;
    let dir = root().join("scripts");
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sh"))
        .collect();
    scripts.sort();
    let mut total = 0;
    let mut per_file = Vec::new();
    let mut supervision = Vec::new();
    for script in &scripts {
        let text = std::fs::read_to_string(script).unwrap();
        let code: Vec<(usize, &str)> = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
            .collect();
        total += code.len();
        per_file.push(format!("{:5} {}", code.len(), script.display()));
        for (n, line) in code {
            let words: Vec<&str> = line
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
                .collect();
            if words.contains(&"kill")
                || words.contains(&"PIDS")
                || line.contains("wait -n")
                || words.contains(&"pkill")
            {
                supervision.push(format!("{}:{n}: {line}", script.display()));
            }
        }
    }
    assert!(
        supervision.is_empty(),
        "process supervision in bash (use cargo xtask up/stop/start/down):\n{}",
        supervision.join("\n")
    );
    assert!(
        total <= BUDGET,
        "scripts/*.sh have {total} non-blank, non-comment lines, over the budget of {BUDGET}: \
         move logic into cargo xtask\n{}",
        per_file.join("\n")
    );
}
