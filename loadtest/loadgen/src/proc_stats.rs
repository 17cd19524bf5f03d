//! What the gateway process costs, read from /proc: CPU time, resident
//! memory, open files, threads.

use std::time::Duration;

#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub cpu: Duration,
    pub rss_kib: u64,
    pub fds: u64,
    pub threads: u64,
}

/// Summed over `pids` (several nodes on one machine).
pub fn sample(pids: &[u32]) -> Sample {
    let mut total = Sample::default();
    for &pid in pids {
        let s = one(pid).unwrap_or_else(|e| {
            eprintln!("loadgen: cannot read /proc/{pid}: {e}");
            std::process::exit(1)
        });
        total.cpu += s.cpu;
        total.rss_kib += s.rss_kib;
        total.fds += s.fds;
        total.threads += s.threads;
    }
    total
}

fn one(pid: u32) -> std::io::Result<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    let ticks: u64 =
        fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
    let threads = fields[17].parse().unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64;
    Ok(Sample {
        // The kernel's clock tick is 100 Hz on Linux/x86-64.
        cpu: Duration::from_millis(ticks * 10),
        rss_kib,
        fds,
        threads,
    })
}

/// This process's own CPU time.
pub fn own_cpu() -> Duration {
    one(std::process::id()).map(|s| s.cpu).unwrap_or_default()
}
