//! The parent process: options, room setup, worker processes, phases, and
//! the report (human lines on stderr, one JSON summary on stdout).

use crate::args::Args;
use crate::conn::Plan;
use crate::histogram::{Histogram, Sparse};
use crate::worker::Share;
use crate::{gateway_metrics, net, proc_stats, setup, token::Minter};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

pub struct Options {
    scenario: String,
    urls: Vec<String>,
    secret: String,
    conns: usize,
    rooms: usize,
    room_size: usize,
    senders: usize,
    rate: f64,
    window: usize,
    duration: f64,
    pad: usize,
    deflate: bool,
    procs: usize,
    concurrency: usize,
    sources: Vec<std::net::IpAddr>,
    user_base: u64,
    pids: Vec<u32>,
    settle: f64,
    passes: usize,
    pub worker: Option<usize>,
}

impl Options {
    pub fn from_args(scenario: &str, a: &Args) -> Options {
        let fanout = match scenario {
            "fanout" => true,
            "connect" => false,
            other => {
                eprintln!("loadgen: unknown scenario {other:?} (connect or fanout)");
                std::process::exit(2)
            }
        };
        let mut urls = a.list("url");
        if urls.is_empty() {
            urls.push("http://127.0.0.1:8080".into());
        }
        let room_size: usize = a.get("room-size", if fanout { 500 } else { 10 }).max(1);
        let conns: usize = a.get("conns", if fanout { 0 } else { 10_000 });
        let rooms = if fanout {
            a.get("rooms", 1)
        } else {
            conns.div_ceil(room_size)
        };
        let secret = a.string(
            "secret",
            &std::env::var("CHAT_JWT_SECRET").unwrap_or_default(),
        );
        if secret.is_empty() {
            eprintln!("loadgen: give the gateway's JWT secret with --secret or CHAT_JWT_SECRET");
            std::process::exit(2);
        }
        Options {
            scenario: scenario.to_string(),
            urls,
            secret,
            conns: if fanout { rooms * room_size } else { conns },
            rooms,
            room_size,
            senders: a.get("senders", if fanout { 1 } else { 0 }),
            rate: a.get("rate", 0.0),
            window: a.get("window", 32).max(1),
            duration: a.get("duration", if fanout { 20.0 } else { 0.0 }),
            pad: a.get("size", 64),
            deflate: a.get("deflate", false),
            procs: a.get("procs", 1).max(1),
            concurrency: a.get("concurrency", 256).max(1),
            sources: net::parse_sources(&a.string("sources", "127.0.0.1")),
            user_base: a.get("user-base", 1_000_000),
            pids: a
                .list("gateway-pid")
                .iter()
                .map(|p| p.parse().expect("--gateway-pid"))
                .collect(),
            settle: a.get("settle", 3.0),
            passes: a.get("passes", if fanout { 1 } else { 2 }).max(1),
            worker: a
                .get("worker", usize::MAX)
                .lt(&usize::MAX)
                .then(|| a.get("worker", 0)),
        }
    }

    /// The connections worker `index` holds: every `procs`-th of the plan.
    pub fn share(&self, index: usize) -> Share {
        let rooms: Vec<i64> = std::env::var("LOADGEN_ROOMS")
            .unwrap_or_default()
            .split(',')
            .filter_map(|s| s.parse().ok())
            .collect();
        assert_eq!(rooms.len(), self.rooms, "LOADGEN_ROOMS from the parent");
        let minter = Minter::new(&self.secret);
        let addrs: Vec<_> = self.urls.iter().map(|u| net::target(u)).collect();
        let mut plans = Vec::new();
        for g in (index..self.conns).step_by(self.procs) {
            let (r, m) = (g / self.room_size, g % self.room_size);
            let user = self.user_base + g as u64;
            plans.push(Plan {
                addr: addrs[g % addrs.len()],
                source: self.sources[(g / self.procs) % self.sources.len()],
                room: rooms[r],
                user,
                token: minter.token(user),
                sender: m < self.senders,
                window: self.window,
                rate: self.rate,
                pad: self.pad,
                deflate: self.deflate,
            });
        }
        Share {
            plans,
            concurrency: self.concurrency,
        }
    }
}

struct Worker {
    _child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Worker {
    async fn answer(&mut self) -> Value {
        let line = self
            .stdout
            .next_line()
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| fail("a worker process died"));
        serde_json::from_str(&line).unwrap_or_else(|_| fail(&format!("worker said {line:?}")))
    }
}

async fn ask_all(workers: &mut [Worker], cmd: &str) -> Vec<Value> {
    for w in workers.iter_mut() {
        w.stdin
            .write_all(format!("{cmd}\n").as_bytes())
            .await
            .expect("worker stdin");
    }
    let mut out = Vec::new();
    for w in workers.iter_mut() {
        out.push(w.answer().await);
    }
    out
}

fn sum(answers: &[Value], key: &str) -> u64 {
    answers.iter().map(|a| a[key].as_u64().unwrap_or(0)).sum()
}

fn fail(why: &str) -> ! {
    eprintln!("loadgen: {why}");
    std::process::exit(1)
}

fn say(line: String) {
    eprintln!("loadgen: {line}");
}

/// Run the scenario; the exit code is 1 when anything was lost, duplicated,
/// refused or dropped.
pub async fn drive(o: Options, passthrough: Vec<String>) -> i32 {
    let minter = Minter::new(&o.secret);
    let mut summary = json!({"scenario": o.scenario, "nodes": o.urls.len(), "procs": o.procs});
    say(format!(
        "{}: {} connections in {} rooms of {} over {} node(s), {} worker process(es)",
        o.scenario,
        o.conns,
        o.rooms,
        o.room_size,
        o.urls.len(),
        o.procs
    ));
    let rooms = setup::create_rooms(&o.urls[0], &minter, o.user_base - 1, o.rooms).await;
    let room_list = rooms
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let exe = std::env::current_exe().expect("own path");
    let mut workers = Vec::new();
    for i in 0..o.procs {
        let mut child = tokio::process::Command::new(&exe)
            .arg(&o.scenario)
            .args(&passthrough)
            .args(["--worker", &i.to_string()])
            .env("LOADGEN_ROOMS", &room_list)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn a worker");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut w = Worker {
            _child: child,
            stdin,
            stdout,
        };
        w.answer().await;
        workers.push(w);
    }
    let baseline = proc_stats::sample(&o.pids);
    let mut bad = 0u64;
    for pass in 1..=o.passes {
        let answers = ask_all(&mut workers, "CONNECT").await;
        let (connected, failed) = (sum(&answers, "connected"), sum(&answers, "failed"));
        let ms = answers
            .iter()
            .map(|a| a["ms"].as_u64().unwrap_or(0))
            .max()
            .unwrap_or(0)
            .max(1);
        let rate = connected as f64 * 1000.0 / ms as f64;
        bad += failed;
        say(format!(
            "pass {pass}: {connected} connected in {:.2} s = {rate:.0}/s ({failed} failed)",
            ms as f64 / 1000.0
        ));
        summary[format!("connect_rate_pass{pass}")] = json!(rate.round());
        summary["connected"] = json!(connected);
        let quiet = Instant::now();
        ask_all(&mut workers, "QUIET").await;
        say(format!(
            "presence settled {:.2} s after the last connection",
            quiet.elapsed().as_secs_f64()
        ));
        if pass == 1 {
            tokio::time::sleep(Duration::from_secs_f64(o.settle)).await;
            if !o.pids.is_empty() {
                let now = proc_stats::sample(&o.pids);
                let per =
                    (now.rss_kib.saturating_sub(baseline.rss_kib)) as f64 / connected.max(1) as f64;
                say(format!(
                    "gateway: RSS {} → {} MiB = {per:.2} KiB per connection; {} open files, {} threads",
                    baseline.rss_kib / 1024,
                    now.rss_kib / 1024,
                    now.fds,
                    now.threads
                ));
                summary["rss_kib_per_conn"] = json!((per * 100.0).round() / 100.0);
                summary["gateway_rss_mib"] = json!(now.rss_kib / 1024);
            }
            if o.duration > 0.0 {
                let stats = send_phase(&o, &mut workers).await;
                bad += stats["lost"].as_u64().unwrap_or(0)
                    + stats["duplicates"].as_u64().unwrap_or(0)
                    + stats["dropped"].as_u64().unwrap_or(0);
                for (k, v) in stats.as_object().expect("object") {
                    summary[k] = v.clone();
                }
                continue;
            }
        }
        let closed = ask_all(&mut workers, "CLOSE").await;
        let dropped = sum(&closed, "dropped");
        if dropped > 0 {
            say(format!("{dropped} connections were closed by the gateway"));
        }
        bad += dropped;
    }
    ask_all(&mut workers, "EXIT").await;
    println!("{summary}");
    i32::from(bad > 0)
}

async fn send_phase(o: &Options, workers: &mut [Worker]) -> Value {
    let before = proc_stats::sample(&o.pids);
    let bytes_before = gateway_metrics::ws_sent_bytes(&o.urls).await;
    let started = Instant::now();
    let own_before = sum(&ask_all(workers, "SEND").await, "cpu_ms");
    say(format!("sending for {} s", o.duration));
    tokio::time::sleep(Duration::from_secs_f64(o.duration)).await;
    let answers = ask_all(workers, "STOP").await;
    let wall = started.elapsed().as_secs_f64();
    let after = proc_stats::sample(&o.pids);
    let bytes_after = gateway_metrics::ws_sent_bytes(&o.urls).await;
    let mut latency = Histogram::default();
    let mut rooms: BTreeMap<i64, (i64, u64, u64)> = BTreeMap::new();
    for a in &answers {
        let sparse: Sparse = serde_json::from_value(a["latency"].clone()).unwrap_or_default();
        latency.merge(&sparse);
        for r in a["rooms"].as_array().into_iter().flatten() {
            let e = rooms.entry(r[0].as_i64().unwrap_or(0)).or_default();
            e.0 = e.0.max(r[1].as_i64().unwrap_or(0));
            e.1 += r[2].as_u64().unwrap_or(0);
            e.2 += r[3].as_u64().unwrap_or(0);
        }
    }
    let expected: u64 = rooms.values().map(|(last, n, _)| *last as u64 * n).sum();
    let distinct: u64 = rooms.values().map(|(_, _, d)| d).sum();
    let frames = sum(&answers, "frames");
    let stored: i64 = rooms.values().map(|(last, _, _)| last).sum();
    let cpu = after.cpu.saturating_sub(before.cpu);
    let own = sum(&answers, "cpu_ms").saturating_sub(own_before);
    let per_delivery_us = cpu.as_secs_f64() * 1e6 / frames.max(1) as f64;
    let ms = |us: u64| us as f64 / 1000.0;
    // Everything the nodes wrote in the phase (acks included) per delivery.
    let wire_bytes = bytes_before
        .zip(bytes_after)
        .map(|(b, a)| (a.saturating_sub(b) as f64 / frames.max(1) as f64).round());
    let stats = json!({
        "messages": stored,
        "deliveries": frames,
        "deliveries_per_s": (frames as f64 / wall).round(),
        "messages_per_s": (stored as f64 / wall).round(),
        "p50_ms": ms(latency.quantile(0.5)),
        "p99_ms": ms(latency.quantile(0.99)),
        "p999_ms": ms(latency.quantile(0.999)),
        "max_ms": ms(latency.quantile(1.0)),
        "lost": expected.saturating_sub(distinct),
        "duplicates": sum(&answers, "duplicates"),
        "gaps": sum(&answers, "gaps"),
        "errors": sum(&answers, "errors"),
        "dropped": sum(&answers, "dropped"),
        "gateway_cpu_s": cpu.as_secs_f64(),
        "gateway_cpu_us_per_delivery": (per_delivery_us * 1000.0).round() / 1000.0,
        "loadgen_cpu_s": own as f64 / 1000.0,
        "wire_bytes_per_delivery": wire_bytes,
        "wall_s": (wall * 100.0).round() / 100.0,
        "latency_samples": latency.count(),
    });
    say(format!(
        "{stored} messages stored, {frames} deliveries in {wall:.1} s = {:.0}/s; latency p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms",
        frames as f64 / wall,
        ms(latency.quantile(0.5)),
        ms(latency.quantile(0.99)),
        ms(latency.quantile(0.999)),
    ));
    say(format!(
        "lost {}, duplicates {}, gaps {}, error frames {}, dropped connections {}",
        stats["lost"], stats["duplicates"], stats["gaps"], stats["errors"], stats["dropped"]
    ));
    if let Some(bytes) = wire_bytes {
        say(format!("{bytes} bytes written to WebSockets per delivery"));
    }
    if !o.pids.is_empty() {
        say(format!(
            "gateway CPU {:.2} s = {per_delivery_us:.3} µs per delivery (loadgen {:.2} s)",
            cpu.as_secs_f64(),
            own as f64 / 1000.0
        ));
    }
    stats
}
