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

/// The lines of `text` that are code: not comments, and not in the
/// `#[cfg(test)]` module that closes a file.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .take_while(|(_, l)| !l.trim_start().starts_with("#[cfg(test)]"))
        .filter(|(_, l)| {
            let t = l.trim_start();
            !(t.starts_with("//") || t.starts_with('#') && !t.starts_with("#["))
        })
}

/// Whether `line` holds `number` as a number of its own (not inside a
/// longer one).
fn has_number(line: &str, number: &str) -> bool {
    line.match_indices(number).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + number.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit()) && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

/// A port is written once, in the topology crate: the services' code, the
/// env files and the gateway's and deploy/'s templates derive it. (Tests and docs may
/// name ports; comments are docs.)
#[test]
fn ports_are_written_only_in_the_topology() {
    let root = root();
    let mut files: Vec<PathBuf> = Vec::new();
    for krate in std::fs::read_dir(root.join("crates")).unwrap() {
        let krate = krate.unwrap().path();
        // The topology is the home; test-support is the tests' code.
        if krate.ends_with("topology") || krate.ends_with("test-support") {
            continue;
        }
        files.extend(rust_files(&krate.join("src")));
    }
    for dir in [
        "scripts",
        "env",
        "gateway",
        "deploy/templates",
        "deploy/templates/k8s",
        "deploy/templates/istio",
    ] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                files.push(path);
            }
        }
    }
    let ports: Vec<String> = topology::all_ports().iter().map(u16::to_string).collect();
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let rust = file.extension().is_some_and(|e| e == "rs");
        for (i, line) in code_lines(&text) {
            // In a settings file, a port is an address's (`:PORT`) or a
            // `*PORT=` setting's; `REQUEST_TIMEOUT_MS=3000` is no port.
            let setting = line.split('=').next().unwrap_or_default();
            let may_hold_port = rust || setting.contains("PORT") || line.contains(':');
            for port in &ports {
                if may_hold_port && has_number(line, port) {
                    found.push(format!(
                        "{}:{}: {port}: {}",
                        file.display(),
                        i + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "port literals outside the topology:\n{}",
        found.join("\n")
    );
}

/// No function in `src/` is longer than 80 lines: a longer one does
/// several jobs, and each should have a name.
#[test]
fn no_function_is_over_80_lines() {
    let mut long = Vec::new();
    for krate in std::fs::read_dir(root().join("crates")).unwrap() {
        for file in rust_files(&krate.unwrap().path().join("src")) {
            let text = std::fs::read_to_string(&file).unwrap();
            for (name, line, length) in functions(&text) {
                if length > 80 {
                    long.push(format!(
                        "{}:{line}: {name} is {length} lines",
                        file.display()
                    ));
                }
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over 80 lines:\n{}",
        long.join("\n")
    );
}

/// Each `fn` before the file's test module: its name, first line and
/// length in lines, by counting braces (strings and comments aside).
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim_start().starts_with("#[cfg(test)]"))
        .collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(name) = fn_name(lines[i]) else {
            i += 1;
            continue;
        };
        let (mut depth, mut opened, start) = (0i64, false, i);
        while i < lines.len() {
            let code = strip_strings_and_comments(lines[i]);
            for c in code.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if (!opened && code.trim_end().ends_with(';')) || (opened && depth == 0) {
                break;
            }
            i += 1;
        }
        if opened {
            found.push((name, start + 1, i - start + 1));
        }
        i += 1;
    }
    found
}

/// The function declared on `line`, if one is.
fn fn_name(line: &str) -> Option<String> {
    let t = line.trim_start();
    let t = t
        .strip_prefix("pub(crate) ")
        .or(t.strip_prefix("pub(super) "))
        .or(t.strip_prefix("pub "))
        .unwrap_or(t);
    let t = t.strip_prefix("const ").unwrap_or(t);
    let t = t.strip_prefix("async ").unwrap_or(t);
    let rest = t.strip_prefix("fn ")?;
    Some(
        rest.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect(),
    )
}

/// `line` without string and char literals and without a `//` comment.
fn strip_strings_and_comments(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        match (in_string, c) {
            (true, '\\') => {
                chars.next();
            }
            (true, '"') => in_string = false,
            (true, _) => {}
            (false, '"') => in_string = true,
            (false, '\'') => {
                // A char literal ('{', '\''), not a lifetime ('a).
                let rest: String = chars.clone().take(3).collect();
                if rest.starts_with('\\') || rest.chars().nth(1) == Some('\'') {
                    for c in chars.by_ref() {
                        if c == '\'' {
                            break;
                        }
                    }
                }
            }
            (false, '/') if chars.peek() == Some(&'/') => break,
            (false, c) => out.push(c),
        }
    }
    out
}

/// deploy/'s files that name ports are what `app deploy-files` renders
/// from deploy/templates with the topology's values (CI's `--check`).
#[test]
fn deploy_files_are_rendered_from_the_topology() {
    let root = root();
    let rendered = app::tools::deploy_files::render_all(&root).unwrap();
    assert!(rendered.len() >= 6);
    for (path, text) in rendered {
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            current == text,
            "{} differs from deploy/templates: run `cargo run --bin app -- deploy-files`",
            path.display()
        );
    }
}

/// Counts the docs give that the code defines: "scenarios 1-N" where the
/// whole table is meant (the console and the README's overview) and "N
/// processes" of the stack. A new scenario or process that the docs do
/// not follow fails here.
#[test]
fn counts_in_the_docs_follow_the_code() {
    let root = root();
    let scenarios = app::scenarios::SCENARIOS.len();
    let processes = topology::PROCESSES.len();
    let words = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve",
    ];
    let mut wrong = Vec::new();
    let mut docs = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        docs.push(entry.unwrap().path());
    }
    for doc in docs
        .iter()
        .filter(|d| d.extension().is_some_and(|e| e == "md"))
    {
        let text = std::fs::read_to_string(doc).unwrap();
        for (i, line) in text.lines().enumerate() {
            let place = format!("{}:{}", doc.display(), i + 1);
            // The whole table: "scenarios 1-N" or "scenarios 1 to N" with
            // N past the seed's four (1-2 and 1-4 name the seed's own).
            for pattern in ["scenarios 1-", "scenarios 1 to "] {
                for (at, _) in line.match_indices(pattern) {
                    let n: String = line[at + pattern.len()..]
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect();
                    if n.parse::<usize>().is_ok_and(|n| n > 4 && n != scenarios) {
                        wrong.push(format!("{place}: {pattern}{n}, the table has {scenarios}"));
                    }
                }
            }
            for (n, word) in words.iter().enumerate() {
                // Past four: the whole stack (the quick start runs four).
                if n > 4
                    && n != processes
                    && line.to_lowercase().contains(&format!("{word} processes"))
                {
                    wrong.push(format!(
                        "{place}: {word} processes, the topology has {processes}"
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "counts that differ from the code:\n{}",
        wrong.join("\n")
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
