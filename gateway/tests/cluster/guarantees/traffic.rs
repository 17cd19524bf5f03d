//! The traffic of the delivery-guarantee scenarios: readers that collect
//! every `message` frame of a connection, and senders that send one message
//! at a time with a `client_msg_id`, retried with the same id until
//! acknowledged (the client model the gateway documents).

use super::*;

// ---------------------------------------------------------------------------
// Readers: collect every `message` frame of a connection
// ---------------------------------------------------------------------------

pub(super) struct Reader {
    pub(super) label: String,
    pub(super) got: Arc<Mutex<Vec<Value>>>,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) task: JoinHandle<(WsClient, Vec<String>)>,
}

/// Read `c` in the background: every `message` frame's data goes to `got`
/// (after `initial`); an `error` frame other than a stale `unavailable`, or
/// the connection ending, is a problem.
pub(super) fn spawn_reader(mut c: WsClient, initial: Vec<Value>) -> Reader {
    let got = Arc::new(Mutex::new(initial));
    let stop = Arc::new(AtomicBool::new(false));
    let label = c.label.clone();
    let task = {
        let (got, stop) = (Arc::clone(&got), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut problems = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match c.rx.next_within(Duration::from_millis(200)).await {
                    Ok(f) if f["type"] == "message" => got.lock().unwrap().push(f["data"].clone()),
                    // A sender's late `unavailable` for an id acknowledged
                    // meanwhile (see `run_sender`).
                    Ok(f) if f["type"] == "error" && f["data"]["code"] == "unavailable" => {}
                    Ok(f) if f["type"] == "error" => {
                        problems.push(format!("{}: unexpected error frame {f}", c.label))
                    }
                    Ok(_) => {}
                    Err(e) if e.starts_with("no frame") => {}
                    Err(e) => {
                        problems.push(format!("{}: connection lost while reading: {e}", c.label));
                        break;
                    }
                }
            }
            (c, problems)
        })
    };
    Reader {
        label,
        got,
        stop,
        task,
    }
}

/// Wait until every reader holds every seq 1..=n (or `within` passes), then
/// `LATE_WINDOW` more for late duplicates; stop them all. Their frames and
/// problems; the checks that follow say what is missing.
pub(super) async fn finish_readers(
    readers: Vec<Reader>,
    n: i64,
    within: Duration,
) -> Vec<(String, Vec<Value>, Vec<String>)> {
    let deadline = Instant::now() + within;
    loop {
        let complete = readers.iter().all(|r| {
            let got = r.got.lock().unwrap();
            let seqs: HashSet<i64> = got.iter().filter_map(|d| d["seq"].as_i64()).collect();
            (1..=n).all(|s| seqs.contains(&s))
        });
        let dead = readers.iter().any(|r| r.task.is_finished());
        if complete || dead || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(LATE_WINDOW).await;
    let mut out = Vec::new();
    for r in readers {
        r.stop.store(true, Ordering::Relaxed);
        let (_client, problems) = r.task.await.expect("reader task");
        let got = std::mem::take(&mut *r.got.lock().unwrap());
        out.push((r.label, got, problems));
    }
    out
}

// ---------------------------------------------------------------------------
// Senders: one message at a time, retried with the same id until acknowledged
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub(super) struct Ack {
    pub(super) cmid: String,
    pub(super) id: i64,
    pub(super) seq: i64,
    /// 1 when the first attempt was acknowledged.
    pub(super) attempts: u32,
}

#[derive(Debug, Default)]
pub(super) struct SenderLog {
    pub(super) label: String,
    pub(super) user_id: i64,
    pub(super) acks: Vec<Ack>,
    pub(super) unavailable: u32,
    pub(super) rate_limited: u32,
    /// Attempts that got no answer within `RESEND_AFTER`.
    pub(super) unanswered: u32,
    /// `unavailable` answers that arrived after their id was acknowledged.
    pub(super) stale: u32,
    /// Timeline of notable events (ms since the stream started).
    pub(super) events: Vec<String>,
}

pub(super) struct SenderPlan {
    pub(super) tag: String,
    pub(super) count: usize,
}

/// What a sender task hands back: its client (to keep reading), the
/// `message` frames it received, its log and, on failure, why.
pub(super) type SenderOutcome = (WsClient, Vec<Value>, SenderLog, Result<(), String>);

pub(super) enum Answer {
    Ack(Value),
    Unavailable,
    RateLimited,
    Nothing,
}

/// Send `plan.count` messages; every `message` frame received meanwhile goes
/// to `traffic`. Returns the client (to keep reading), the log and, on
/// failure, why.
pub(super) async fn run_sender(
    mut c: WsClient,
    user_id: i64,
    plan: SenderPlan,
    acked: Arc<AtomicUsize>,
    t0: Instant,
    deadline: Instant,
) -> SenderOutcome {
    let mut log = SenderLog {
        label: c.label.clone(),
        user_id,
        ..Default::default()
    };
    let mut traffic = Vec::new();
    let ms = |t0: Instant| t0.elapsed().as_millis();
    let result = async {
        let mut acked_ids: HashSet<String> = HashSet::new();
        for i in 0..plan.count {
            let cmid = format!("{}-{i}", plan.tag);
            let content = format!("{} message {i}", plan.tag);
            let frame = json!({"type": "message", "room_id": ROOM, "content": content, "client_msg_id": cmid});
            let mut attempts = 0u32;
            let data = loop {
                attempts += 1;
                if Instant::now() >= deadline {
                    return Err(format!("{cmid} still not acknowledged after {attempts} attempts"));
                }
                c.tx
                    .send(Message::text(frame.to_string()))
                    .await
                    .map_err(|e| format!("sending {cmid}: {e}"))?;
                let answer_by = (Instant::now() + RESEND_AFTER).min(deadline);
                let answer = loop {
                    let left = answer_by.saturating_duration_since(Instant::now());
                    let f = match c.rx.next_within(left).await {
                        Ok(f) => f,
                        Err(e) if e.starts_with("no frame") => break Answer::Nothing,
                        Err(e) => {
                            return Err(format!("waiting for an answer to {cmid} (attempt {attempts}): {e}"));
                        }
                    };
                    match f["type"].as_str() {
                        Some("message") => {
                            let d = f["data"].clone();
                            traffic.push(d.clone());
                            if d["user_id"].as_i64() == Some(user_id)
                                && d["client_msg_id"].as_str() == Some(cmid.as_str())
                            {
                                break Answer::Ack(d);
                            }
                        }
                        Some("error") => {
                            let (code, r) = (f["data"]["code"].as_str(), f["data"]["ref"].as_str());
                            match (code, r) {
                                // (Possibly the late answer to an earlier
                                // attempt of this id: one more attempt, harmless.)
                                (Some("unavailable"), Some(r)) if r == cmid => break Answer::Unavailable,
                                // The publish of an earlier attempt timed out
                                // after all went through: its echo came first.
                                (Some("unavailable"), Some(r)) if acked_ids.contains(r) => {
                                    log.stale += 1;
                                    log.events.push(format!("{}ms stale unavailable for {r}", ms(t0)));
                                }
                                (Some("rate_limited"), _) => break Answer::RateLimited,
                                _ => return Err(format!("unexpected error frame while waiting for {cmid}: {f}")),
                            }
                        }
                        _ => {} // presence frames
                    }
                };
                match answer {
                    Answer::Ack(d) => break d,
                    Answer::Unavailable => {
                        log.unavailable += 1;
                        if attempts == 1 {
                            log.events.push(format!("{}ms {cmid}: unavailable, retrying", ms(t0)));
                        }
                        tokio::time::sleep(RETRY_AFTER).await;
                    }
                    Answer::RateLimited => {
                        log.rate_limited += 1;
                        log.events.push(format!("{}ms {cmid}: rate_limited", ms(t0)));
                        tokio::time::sleep(RATE_LIMITED_PAUSE).await;
                    }
                    // No acknowledgement: the documented client move is to
                    // send the same id again (a stored original comes back).
                    Answer::Nothing => {
                        log.unanswered += 1;
                        log.events.push(format!(
                            "{}ms {cmid}: no answer within {RESEND_AFTER:?} (attempt {attempts}), resending",
                            ms(t0)
                        ));
                    }
                }
            };
            let ack = Ack {
                cmid: cmid.clone(),
                id: data["id"].as_i64().unwrap_or(-1),
                seq: data["seq"].as_i64().unwrap_or(-1),
                attempts,
            };
            if attempts > 1 {
                log.events.push(format!(
                    "{}ms {cmid}: acknowledged after {attempts} attempts (seq {})",
                    ms(t0),
                    ack.seq
                ));
            }
            log.acks.push(ack);
            acked_ids.insert(cmid);
            acked.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(PACE).await;
        }
        Ok(())
    }
    .await;
    (c, traffic, log, result)
}

pub(super) fn sender_summary(log: &SenderLog) -> String {
    let retried: Vec<String> = log
        .acks
        .iter()
        .filter(|a| a.attempts > 1)
        .map(|a| format!("{}(seq {}, {} attempts)", a.cmid, a.seq, a.attempts))
        .collect();
    format!(
        "{}: {} acknowledged, {} unavailable answers, {} rate_limited, {} unanswered, {} stale; \
         retried: [{}]\n    events: {}",
        log.label,
        log.acks.len(),
        log.unavailable,
        log.rate_limited,
        log.unanswered,
        log.stale,
        retried.join(", "),
        log.events.join(" | ")
    )
}
