//! What the supervisor does with one control command (see `control`):
//! `stop NAME`, `start NAME`, `status`, `load-start PATH...`, `load-stop`,
//! `down`. The answer is the narration lines, then `ok` or `error: why`.

use anyhow::{Result, bail};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::UnixStream,
};

use crate::{load, stack::Stack};

/// What the supervisor does after a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Continue,
    Down,
}

/// The supervisor's state a command may change.
pub struct Supervised {
    pub stack: Stack,
    pub load: Option<load::Load>,
    pub client: reqwest::Client,
}

/// Reads one command from `stream`, carries it out, answers.
pub async fn serve(supervised: &mut Supervised, stream: UnixStream) -> Next {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read);
    let read = reader.read_line(&mut line);
    let next = match tokio::time::timeout(std::time::Duration::from_secs(5), read).await {
        Ok(Ok(_)) => match run(supervised, line.trim()).await {
            Ok((lines, next)) => {
                let _ = write
                    .write_all(format!("{}ok\n", with_newlines(&lines)).as_bytes())
                    .await;
                next
            }
            Err(e) => {
                let _ = write.write_all(format!("error: {e:#}\n").as_bytes()).await;
                Next::Continue
            }
        },
        _ => Next::Continue,
    };
    let _ = write.shutdown().await;
    next
}

fn with_newlines(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

async fn run(s: &mut Supervised, command: &str) -> Result<(Vec<String>, Next)> {
    let words: Vec<&str> = command.split_whitespace().collect();
    let lines = match words.as_slice() {
        ["stop", name] => vec![s.stack.stop(name).await?],
        ["start", name] => s.stack.start(name, true).await?,
        ["start", name, "--openbao"] => s.stack.start_openbao(name).await?,
        ["status"] => s.stack.status(),
        ["down"] => return Ok((Vec::new(), Next::Down)),
        ["load-start", paths @ ..] => load_start(s, paths)?,
        ["load-stop"] => load_stop(s).await?,
        _ => bail!("unknown command `{command}`"),
    };
    Ok((lines, Next::Continue))
}

fn load_start(s: &mut Supervised, paths: &[&str]) -> Result<Vec<String>> {
    if s.load.is_some() {
        bail!("a load is running already");
    }
    let paths: Vec<String> = paths.iter().map(|p| (*p).to_owned()).collect();
    s.load = Some(load::start(
        &s.client,
        &topology::SERVICEA.http_url(),
        &paths,
    ));
    Ok(vec![format!(
        "{} callers started: {}",
        paths.len(),
        paths.join(" ")
    )])
}

async fn load_stop(s: &mut Supervised) -> Result<Vec<String>> {
    let Some(load) = s.load.take() else {
        bail!("no load is running");
    };
    let summary = load.stop().await;
    let failed = summary.failed();
    let line = format!("load stopped: {} calls, {failed} failed", summary.calls);
    if failed > 0 || summary.calls == 0 {
        let statuses: Vec<String> = summary
            .statuses
            .iter()
            .map(|(s, n)| format!("{n}x {s}"))
            .collect();
        bail!("{line}; statuses: {}", statuses.join(", "));
    }
    Ok(vec![line])
}
