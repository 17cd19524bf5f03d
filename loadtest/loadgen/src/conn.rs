//! One simulated client: connects into its room, reads every frame (so the
//! gateway's pings get their pongs), checks each message's `seq` for loss and
//! duplicates, measures delivery latency from the send timestamp in the
//! content, and (for a sender) keeps up to `window` messages unacknowledged
//! at an optional rate.

use crate::histogram::Histogram;
use crate::net::{self, Ws};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;

/// What the worker's connections add up, shared on one thread.
#[derive(Default)]
pub struct Totals {
    pub latency: Histogram,
    /// Message frames received (duplicates included).
    pub frames: u64,
    pub duplicates: u64,
    /// Seq jumps seen (a gap the gateway should have filled).
    pub gaps: u64,
    pub errors: u64,
    pub other_frames: u64,
    /// Connections closed by the gateway or failed after connecting.
    pub dropped: u64,
    pub sent: u64,
    /// Sent and not yet answered (echo or error), over all senders.
    pub pending: i64,
    /// Per room: (highest seq a sender saw acknowledged, receivers, distinct seqs received).
    pub rooms: std::collections::BTreeMap<i64, (i64, u64, u64)>,
    pub last_frame: Option<Instant>,
}

#[derive(Clone)]
pub struct Plan {
    pub addr: SocketAddr,
    pub source: IpAddr,
    pub room: i64,
    pub user: u64,
    pub token: String,
    pub sender: bool,
    pub window: usize,
    /// Messages per second for a sender; 0: as fast as the window allows.
    pub rate: f64,
    pub pad: usize,
    /// Offer permessage-deflate (`--deflate true`).
    pub deflate: bool,
}

/// Phases the worker drives all connections through.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    Idle,
    Send,
    StopSending,
    Close,
}

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    ty: &'a str,
    #[serde(default)]
    data: Option<Data<'a>>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(default)]
    seq: Option<i64>,
    #[serde(default)]
    user_id: Option<u64>,
    #[serde(default, borrow)]
    content: Option<&'a str>,
}

pub fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_micros() as u64
}

/// `len` bytes of word salad, different for each `seed`: compresses about
/// as well as chat text does (a run of one letter would flatter deflate).
fn prose(len: usize, seed: u64) -> String {
    const WORDS: [&str; 32] = [
        "the", "meeting", "is", "moved", "to", "three", "tomorrow", "and", "we", "should", "check",
        "deploy", "logs", "before", "lunch", "ok", "sounds", "good", "I", "will", "ping", "you",
        "after", "review", "thanks", "for", "update", "on", "staging", "build", "failed", "again",
    ];
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = String::with_capacity(len + 10);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push_str(WORDS[(x % 32) as usize]);
        out.push(' ');
    }
    out.truncate(len);
    out
}

/// Connect; Ok once `online_users` arrived (the room is entered).
pub async fn open(plan: &Plan) -> Result<Ws, String> {
    let path = format!("/ws?room_id={}&token={}", plan.room, plan.token);
    let mut ws = net::connect(plan.source, plan.addr, &path, plan.deflate).await?;
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.contains("\"online_users\"") => return Ok(ws),
            Ok(Some(Ok(Message::Text(t)))) if t.contains("\"error\"") => return Err(t.to_string()),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(None) => return Err("closed before online_users".into()),
            Err(_) => return Err("no online_users within 30 s".into()),
        }
    }
}

/// Run a connected client until the phase says close. Its `client_msg_id`s
/// name the room (fresh per run): a user reused by a later run within the
/// gateway's 10-minute dedup window must not get its old messages back.
pub async fn run(
    mut ws: Ws,
    plan: Plan,
    totals: Rc<RefCell<Totals>>,
    mut phase: watch::Receiver<Phase>,
) {
    let mut last_seq = 0i64;
    let mut distinct = 0u64;
    let mut acked = 0i64;
    let mut inflight = 0usize;
    let mut counter = 0u64;
    let period = if plan.rate > 0.0 {
        Duration::from_secs_f64(1.0 / plan.rate)
    } else {
        Duration::from_millis(1)
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut closed_by_peer = false;
    loop {
        let current = *phase.borrow();
        if current == Phase::Close {
            break;
        }
        let sending = plan.sender && current == Phase::Send;
        let may_send = sending && inflight < plan.window;
        tokio::select! {
            changed = phase.changed() => if changed.is_err() { break },
            _ = tick.tick(), if may_send => {
                // Rate 0: fill the window now, in one flush.
                let burst = if plan.rate > 0.0 { 1 } else { plan.window - inflight };
                let mut ok = true;
                for _ in 0..burst {
                    counter += 1;
                    let pad = prose(plan.pad, plan.user ^ counter << 20);
                    let frame = format!(
                        r#"{{"type":"message","content":"{} {pad}","client_msg_id":"lg{}-{}-{counter}"}}"#,
                        unix_micros(), plan.room, plan.user
                    );
                    if ws.feed(Message::text(frame)).await.is_err() { ok = false; break; }
                    inflight += 1;
                }
                let burst = burst.min(inflight);
                if !ok || ws.flush().await.is_err() { closed_by_peer = true; break; }
                let mut t = totals.borrow_mut();
                t.sent += burst as u64;
                t.pending += burst as i64;
            }
            msg = ws.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => { closed_by_peer = true; break; }
                    Some(Ok(_)) => continue,
                };
                let now = unix_micros();
                let mut t = totals.borrow_mut();
                t.last_frame = Some(Instant::now());
                let Ok(frame) = serde_json::from_str::<Frame>(&text) else { t.errors += 1; continue };
                match (frame.ty, frame.data) {
                    ("message", Some(d)) => {
                        t.frames += 1;
                        let seq = d.seq.unwrap_or(0);
                        if seq <= last_seq {
                            t.duplicates += 1;
                        } else {
                            if seq != last_seq + 1 { t.gaps += 1; }
                            last_seq = seq;
                            distinct += 1;
                        }
                        if let Some(sent) = d.content.and_then(|c| c.split(' ').next()).and_then(|s| s.parse::<u64>().ok()) {
                            t.latency.record(now.saturating_sub(sent));
                        }
                        if plan.sender && d.user_id == Some(plan.user) {
                            inflight = inflight.saturating_sub(1);
                            t.pending -= 1;
                            acked = acked.max(seq);
                        }
                    }
                    ("error", _) => {
                        t.errors += 1;
                        if t.errors <= 3 { eprintln!("loadgen: error frame: {text}"); }
                        if plan.sender { inflight = inflight.saturating_sub(1); t.pending -= 1; }
                    }
                    _ => t.other_frames += 1,
                }
            }
        }
    }
    {
        let mut t = totals.borrow_mut();
        if closed_by_peer {
            t.dropped += 1;
        }
        let entry = t.rooms.entry(plan.room).or_default();
        entry.0 = entry.0.max(acked);
        entry.1 += 1;
        entry.2 += distinct;
    }
    let _ = ws.close(None).await;
}
