//! What `/proc` says about a process: its CPU time (with its children's,
//! for nginx's workers) in clock ticks, and its resident memory.

use std::path::Path;

/// The fields of `/proc/PID/stat` after the command name (field 3 first).
fn stat_fields(pid: u32) -> Vec<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = text.rfind(')').map_or("", |i| &text[i + 1..]);
    after.split_whitespace().map(str::to_owned).collect()
}

fn field(fields: &[String], number: usize) -> u64 {
    fields
        .get(number - 3)
        .and_then(|f| f.parse().ok())
        .unwrap_or(0)
}

/// User + system CPU time of `pid`, in clock ticks (0 if it is gone).
pub fn ticks(pid: u32) -> u64 {
    let f = stat_fields(pid);
    field(&f, 14) + field(&f, 15)
}

/// [`ticks`] of `pid` and of its children.
pub fn ticks_with_children(pid: u32) -> u64 {
    let children: u64 = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| field(&stat_fields(*child), 4) == u64::from(pid))
        .map(ticks)
        .sum();
    ticks(pid) + children
}

/// Microseconds per clock tick.
pub fn tick_us() -> u64 {
    1_000_000 / rustix::param::clock_ticks_per_second().max(1)
}

/// `VmRSS` of `pid`, and its proportional share (`Pss`: the pages it
/// shares with other processes, such as the `app` binary's code that
/// servicea, serviceb, servicec and the verifier all map, divided among
/// them), as "21.3 MB (PSS 12.1 MB)". The target is judged on the first.
pub fn rss(pid: u32) -> String {
    let read = |file: &str, field: &str| -> f64 {
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join(file))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0)
    };
    let rss = read("status", "VmRSS:");
    let pss = read("smaps_rollup", "Pss:");
    format!("{:.1} MB (PSS {:.1} MB)", rss / 1024.0, pss / 1024.0)
}
