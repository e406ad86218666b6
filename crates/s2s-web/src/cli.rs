//! How a binary reads its command line and how it ends.
//!
//! - [`parse`]: clap, with the settings' env files in mind. An env file is
//!   loaded into the environment before clap parses, so clap's own help
//!   would print `[env: PORT=3000]` (read as if the shell had set it), and
//!   its error for `PORT=abc` would name the flag `--port`, which nobody
//!   typed. Here `--help` prints `[env: PORT]`, and such an error names
//!   the variable.
//! - [`report`]: a user error is one clear line on stderr and exit status
//!   1, never a backtrace (`main` returning `anyhow::Result` prints its
//!   `Debug` form, 30 frames of it with `RUST_BACKTRACE=1`).

use std::{error::Error as _, ffi::OsString, process::ExitCode};

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// `args` parsed as `T` (as `T::parse_from` would: exits with clap's
/// message on `--help` or an error), with env values hidden in the help
/// and a bad value from the environment named by its variable.
pub fn parse<T: clap::Parser>(args: Vec<OsString>) -> T {
    let mut cmd = hide_env_values(T::command());
    let parsed = cmd
        .clone()
        .try_get_matches_from(&args)
        .and_then(|m| <T as clap::FromArgMatches>::from_arg_matches(&m));
    match parsed {
        Ok(t) => t,
        Err(err) => match from_the_environment(&err, &cmd, &args) {
            Some(message) => {
                eprintln!("error: {message}");
                std::process::exit(2)
            }
            None => err.format(&mut cmd).exit(),
        },
    }
}

/// `cmd` and every subcommand with `[env: NAME]` in their help, no value.
fn hide_env_values(cmd: clap::Command) -> clap::Command {
    cmd.mut_args(|a| a.hide_env_values(true))
        .mut_subcommands(hide_env_values)
}

/// For an invalid value that came from an env variable (its flag was not
/// on the command line): the message, naming the variable.
fn from_the_environment(
    err: &clap::Error,
    cmd: &clap::Command,
    args: &[OsString],
) -> Option<String> {
    if !matches!(
        err.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return None;
    }
    let Some(ContextValue::String(shown)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    // Shown as `--port <PORT>`: the long flag names the argument.
    let long = shown.strip_prefix("--")?.split([' ', '=']).next()?;
    let arg = all_args(cmd).find(|a| a.get_long() == Some(long))?;
    let var = arg.get_env()?.to_string_lossy().into_owned();
    let flag = format!("--{long}");
    let typed = args.iter().any(|a| {
        a.to_str()
            .is_some_and(|a| a == flag || a.starts_with(&format!("{flag}=")))
    });
    if typed {
        return None;
    }
    let value = match err.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(v)) => format!("{v:?}"),
        _ => "its value".to_owned(),
    };
    let why = err.source().map(|e| format!(": {e}")).unwrap_or_default();
    Some(format!(
        "invalid value {value} for the environment variable {var} (set in the shell or the env \
         file; the flag is {flag}){why}"
    ))
}

/// Every argument of `cmd` and its subcommands.
fn all_args(cmd: &clap::Command) -> Box<dyn Iterator<Item = &clap::Arg> + '_> {
    Box::new(
        cmd.get_arguments()
            .chain(cmd.get_subcommands().flat_map(all_args)),
    )
}

/// `error: <what went wrong>: <why>`, and exit status 1.
pub fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once: many errors
/// already repeat their source's text in their own.
fn one_line(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let s = cause.to_string();
        if !text.contains(&s) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&s);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err = anyhow::Error::new(io).context("could not load env file x.env: no such file");
        assert_eq!(
            super::one_line(&err),
            "could not load env file x.env: no such file"
        );
    }
}
