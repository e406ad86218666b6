//! docs/reference.md's settings tables, rendered from the clap
//! definitions: the test fails when the document differs from what the
//! code reads, so a new, renamed or re-defaulted setting cannot go
//! undocumented. `REGENERATE=1 cargo test -p test-support --test
//! reference_tables` rewrites the tables.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use clap::CommandFactory as _;

const START: &str = "<!-- settings: generated from the clap definitions \
    (crates/test-support/tests/reference_tables.rs; REGENERATE=1 rewrites them) -->";
const END: &str = "<!-- end of the generated settings -->";

/// Each process's settings: its title, and its clap command.
fn commands() -> Vec<(&'static str, clap::Command)> {
    let app = app::cli::Cli::command();
    let sub = |name: &str| {
        app.find_subcommand(name)
            .unwrap_or_else(|| panic!("no subcommand {name}"))
            .clone()
    };
    vec![
        (
            "servicea (`app servicea`, `env/servicea.env`)",
            sub("servicea"),
        ),
        (
            "serviceb and servicec (`app serviceb`, `app servicec`, `env/serviceb.env`, `env/servicec.env`)",
            sub("serviceb"),
        ),
        (
            "the gateway's verifier (`app verifier`, `env/verifier.env`)",
            sub("verifier"),
        ),
        (
            "the gateway (`app gateway-config`, `env/gateway.env`)",
            sub("gateway-config"),
        ),
        (
            "the sidecars (`app mesh-config [POLICY...] [--wait]`, `env/mesh.env`)",
            sub("mesh-config"),
        ),
        (
            "jwt-factory (`env/jwt-factory.env`)",
            jwt_factory::Config::command(),
        ),
    ]
}

/// One line of help text, safe in a Markdown table cell.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// The table of `cmd`'s settings that have an env variable.
fn table(title: &str, cmd: &clap::Command) -> String {
    let mut out = format!(
        "\n### {title}\n\n| variable | flag | what | default |\n| --- | --- | --- | --- |\n"
    );
    for arg in cmd.get_arguments() {
        let Some(env) = arg.get_env() else { continue };
        let flag = arg
            .get_long()
            .map_or_else(String::new, |l| format!("`--{l}`"));
        let help = arg
            .get_long_help()
            .or(arg.get_help())
            .map_or_else(String::new, |h| cell(&h.to_string()));
        let default = arg
            .get_default_values()
            .iter()
            .map(|v| format!("`{}`", v.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!(
            "| `{}` | {flag} | {help} | {default} |\n",
            env.to_string_lossy()
        ));
    }
    out
}

/// Every table, between the markers.
fn rendered() -> String {
    let tables: String = commands()
        .iter()
        .map(|(title, cmd)| table(title, cmd))
        .collect();
    let count = settings_count();
    format!(
        "{START}\n\n{count} settings in all (each env variable counted once).\n{tables}\n{END}\n"
    )
}

/// How many distinct env variables all the processes read.
fn settings_count() -> usize {
    let mut names: Vec<String> = commands()
        .iter()
        .flat_map(|(_, cmd)| {
            cmd.get_arguments()
                .filter_map(|a| a.get_env())
                .map(|e| e.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    names.sort();
    names.dedup();
    names.len()
}

#[test]
fn the_reference_documents_every_setting_as_the_code_defines_it() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/reference.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let start = doc
        .find(START)
        .expect("the start marker in docs/reference.md");
    let end = doc.find(END).expect("the end marker in docs/reference.md") + END.len() + 1;
    let want = rendered();
    let have = &doc[start..end.min(doc.len())];
    if std::env::var_os("REGENERATE").is_some() {
        let new = format!("{}{want}{}", &doc[..start], &doc[end.min(doc.len())..]);
        std::fs::write(&path, new).unwrap();
        return;
    }
    assert!(
        have == want,
        "docs/reference.md's settings differ from the code: run \
         REGENERATE=1 cargo test -p test-support --test reference_tables"
    );
}
