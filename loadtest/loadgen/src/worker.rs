//! A worker process: holds its share of the connections (at most ~19,000:
//! the per-process open-file cap) on one thread, and answers the parent's
//! commands on stdin with one JSON line each on stdout.

use crate::conn::{self, Phase, Plan, Totals};
use serde_json::{Value, json};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

pub struct Share {
    pub plans: Vec<Plan>,
    pub concurrency: usize,
}

pub async fn run(share: Share) {
    let totals = Rc::new(RefCell::new(Totals::default()));
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let (mut phase_tx, _) = watch::channel(Phase::Idle);
    let mut tasks: JoinSet<()> = JoinSet::new();
    let plans = Rc::new(share.plans);
    reply(json!({"up": plans.len()}));
    while let Ok(Some(cmd)) = lines.next_line().await {
        let answer = match cmd.trim() {
            "CONNECT" => {
                let (tx, _) = watch::channel(Phase::Idle);
                phase_tx = tx;
                connect_all(&plans, share.concurrency, &totals, &phase_tx, &mut tasks).await
            }
            "QUIET" => {
                quiet(&totals, Duration::from_secs(1), Duration::from_secs(120)).await;
                json!({"frames": totals.borrow().other_frames})
            }
            "SEND" => {
                let cpu = crate::proc_stats::own_cpu();
                phase_tx.send_replace(Phase::Send);
                json!({"cpu_ms": cpu.as_millis() as u64})
            }
            "STOP" => {
                phase_tx.send_replace(Phase::StopSending);
                let deadline = Instant::now() + Duration::from_secs(30);
                while totals.borrow().pending > 0 && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                quiet(&totals, Duration::from_millis(500), Duration::from_secs(30)).await;
                // Stop the clients so that each reports its room's counts.
                phase_tx.send_replace(Phase::Close);
                let closing = tokio::time::timeout(Duration::from_secs(30), async {
                    while tasks.join_next().await.is_some() {}
                });
                let _ = closing.await;
                let t = totals.replace(Totals::default());
                json!({
                    "cpu_ms": crate::proc_stats::own_cpu().as_millis() as u64,
                    "frames": t.frames,
                    "duplicates": t.duplicates,
                    "gaps": t.gaps,
                    "errors": t.errors,
                    "dropped": t.dropped,
                    "sent": t.sent,
                    "pending": t.pending,
                    "rooms": t.rooms.iter().map(|(r, v)| json!([r, v.0, v.1, v.2])).collect::<Vec<_>>(),
                    "latency": t.latency.sparse(),
                })
            }
            "CLOSE" => {
                phase_tx.send_replace(Phase::Close);
                let _ = tokio::time::timeout(Duration::from_secs(30), async {
                    while tasks.join_next().await.is_some() {}
                })
                .await;
                let t = totals.replace(Totals::default());
                json!({"dropped": t.dropped, "errors": t.errors})
            }
            "EXIT" => {
                reply(json!({"bye": true}));
                break;
            }
            other => json!({"error": format!("unknown command {other:?}")}),
        };
        reply(answer);
    }
}

fn reply(v: Value) {
    println!("{v}");
}

/// Open every planned connection, `concurrency` handshakes at a time.
async fn connect_all(
    plans: &Rc<Vec<Plan>>,
    concurrency: usize,
    totals: &Rc<RefCell<Totals>>,
    phase: &watch::Sender<Phase>,
    tasks: &mut JoinSet<()>,
) -> Value {
    let started = Instant::now();
    let gate = std::sync::Arc::new(Semaphore::new(concurrency));
    let connected = Rc::new(RefCell::new(0u64));
    let failures = Rc::new(RefCell::new(Vec::<String>::new()));
    let mut opening = JoinSet::new();
    for i in 0..plans.len() {
        let permit = std::sync::Arc::clone(&gate)
            .acquire_owned()
            .await
            .expect("semaphore");
        let plans = Rc::clone(plans);
        let totals = Rc::clone(totals);
        let rx = phase.subscribe();
        let connected = Rc::clone(&connected);
        let failures = Rc::clone(&failures);
        opening.spawn_local(async move {
            let plan = &plans[i];
            let result = conn::open(plan).await;
            drop(permit);
            match result {
                Ok(ws) => {
                    *connected.borrow_mut() += 1;
                    let plan = Plan {
                        token: String::new(),
                        ..plan.clone()
                    };
                    Some(tokio::task::spawn_local(conn::run(ws, plan, totals, rx)))
                }
                Err(e) => {
                    failures.borrow_mut().push(e);
                    None
                }
            }
        });
    }
    while let Some(r) = opening.join_next().await {
        if let Ok(Some(handle)) = r {
            tasks.spawn_local(async move {
                let _ = handle.await;
            });
        }
    }
    let ms = started.elapsed().as_millis() as u64;
    let failures = failures.borrow();
    for f in failures.iter().take(3) {
        eprintln!("loadgen: connect failed: {f}");
    }
    json!({"connected": *connected.borrow(), "failed": failures.len(), "ms": ms})
}

/// Wait until no frame arrived for `gap` (at most `max`).
async fn quiet(totals: &Rc<RefCell<Totals>>, gap: Duration, max: Duration) {
    let deadline = Instant::now() + max;
    loop {
        let last = totals.borrow().last_frame;
        let now = Instant::now();
        match last {
            Some(t) if now.duration_since(t) < gap && now < deadline => {
                tokio::time::sleep(gap - now.duration_since(t)).await;
            }
            None if now < deadline && now.duration_since(deadline - max) < gap => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => return,
        }
    }
}
