//! `app topology`: the stack's processes as the `topology` crate defines
//! them, for scripts and people: a table, or `--shell` lines to `eval`.

use clap::Args as ClapArgs;
use topology::{PROCESSES, Process};

#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    /// Print `NAME_PORT=`, `NAME_URL=` (and `NAME_HTTPS_URL=`) lines for
    /// `eval` in a shell script, and `ALL_PORTS`; NAME is the process's
    /// name in capitals, `-` as `_` (JWT_FACTORY_URL, SIDECAR_SERVICEA_PORT).
    #[arg(long)]
    pub shell: bool,
}

/// The topology as text.
pub fn render(args: &Args) -> String {
    if args.shell { shell() } else { table() }
}

fn table() -> String {
    let mut out = format!("{:<18} {:<9} {:<17} url\n", "process", "kind", "ports");
    for p in PROCESSES {
        let ports = p
            .ports()
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let url = match p.https_url() {
            Some(https) => format!("{} {https}", p.http_url()),
            None => p.http_url(),
        };
        let kind = format!("{:?}", p.kind).to_lowercase();
        out.push_str(&format!("{:<18} {kind:<9} {ports:<17} {url}\n", p.name));
    }
    out
}

fn shell() -> String {
    let mut out = String::new();
    for p in PROCESSES {
        let name = shell_name(&p);
        out.push_str(&format!(
            "{name}_PORT={}\n{name}_URL={}\n",
            p.port,
            p.http_url()
        ));
        if let (Some(port), Some(url)) = (p.https_port, p.https_url()) {
            out.push_str(&format!(
                "{name}_HTTPS_PORT={port}\n{name}_HTTPS_URL={url}\n"
            ));
        }
    }
    // OpenBao (scenario 11) is no process of the stack: `cargo xtask
    // openbao up` starts it apart. The address its clients use.
    out.push_str(&format!(
        "OPENBAO_PORT={0}\nOPENBAO_URL=http://127.0.0.1:{0}\n",
        topology::OPENBAO_PORT
    ));
    let ports: Vec<String> = topology::all_ports().iter().map(u16::to_string).collect();
    out.push_str(&format!("ALL_PORTS=\"{}\"\n", ports.join(" ")));
    out
}

fn shell_name(p: &Process) -> String {
    p.name.to_uppercase().replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_lines_name_every_process() {
        let out = render(&Args { shell: true });
        assert!(
            out.contains("SERVICEB_URL=http://localhost:3001\n"),
            "{out}"
        );
        assert!(
            out.contains("SERVICEB_HTTPS_URL=https://localhost:8443\n"),
            "{out}"
        );
        assert!(out.contains("JWT_FACTORY_PORT=5555\n"), "{out}");
        assert!(out.contains("SIDECAR_SERVICEA_PORT=15010\n"), "{out}");
        assert!(out.contains("ALL_PORTS=\"5555 5556 3000 "), "{out}");
    }

    #[test]
    fn the_table_has_a_line_per_process() {
        assert_eq!(
            render(&Args { shell: false }).lines().count(),
            1 + PROCESSES.len()
        );
    }
}
