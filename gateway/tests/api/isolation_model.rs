//! The isolation test's referee: each client's received frames, and what the
//! server's membership allowed at the moment each message was stored.
//!
//! Membership changes only through the test's own synchronous REST calls, so
//! the test knows it exactly. For a removal it reads the room's newest
//! stored `seq` (from the database, which assigns it) before the request and
//! after its 204: a message stored after that could only have been sent
//! after the removal returned, and must never reach the removed user. Until
//! it joins again: a plain join delivers only what is stored after its
//! admission, so the forbidden range then closes at the newest seq read
//! before the join was sent.

use crate::helpers::{TestApp, WAIT, WsClient};
use futures_util::{SinkExt, StreamExt};
use gateway::store::Store;
use serde_json::{Value, json};
use shared::ids::RoomId;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio_tungstenite::tungstenite::Message;

/// What one connection's own frames tell it (the client-side view).
#[derive(Default)]
pub struct Log {
    /// Rooms it is in (after `online_users`, until `left_room`).
    pub joined: HashSet<i64>,
    /// Rooms it asked to join and has no answer for: room frames may precede `online_users`.
    pending: HashSet<i64>,
    /// Per room, how many joins were answered (`online_users` or `error`).
    answers: HashMap<i64, usize>,
    /// Every chat message received: (room, seq, author).
    pub messages: Vec<(i64, i64, i64)>,
    pub violations: Vec<String>,
    pub room_frames: usize,
}

impl Log {
    fn check(&mut self, frame: &Value) {
        let Some(room) = frame["room_id"].as_i64() else {
            return;
        };
        match frame["type"].as_str().unwrap_or_default() {
            "online_users" => {
                self.pending.remove(&room);
                self.joined.insert(room);
                *self.answers.entry(room).or_default() += 1;
            }
            "left_room" => {
                if !self.joined.remove(&room) {
                    self.violations
                        .push(format!("left_room for a room it was not in: {frame}"));
                }
            }
            "error" => {
                self.pending.remove(&room);
                *self.answers.entry(room).or_default() += 1;
            }
            ty => {
                self.room_frames += 1;
                if !self.joined.contains(&room) && !self.pending.contains(&room) {
                    self.violations
                        .push(format!("frame of room {room} it is not in: {frame}"));
                }
                if ty == "message" {
                    let d = &frame["data"];
                    let (seq, author) = (d["seq"].as_i64(), d["user_id"].as_i64());
                    self.messages.push((room, seq.unwrap(), author.unwrap()));
                }
            }
        }
    }
}

type Sink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;

pub struct Client {
    pub user_id: i64,
    pub token: String,
    sink: Sink,
    pub log: Arc<Mutex<Log>>,
}

impl Client {
    /// `ws` has just connected (into room 1).
    pub fn start(ws: WsClient, user_id: i64, token: String) -> Client {
        let (sink, mut stream) = ws.stream.split();
        let log = Arc::new(Mutex::new(Log::default()));
        log.lock().unwrap().pending.insert(1);
        let reader = Arc::clone(&log);
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                if let Message::Text(t) = msg {
                    let frame: Value = serde_json::from_str(&t).unwrap();
                    reader.lock().unwrap().check(&frame);
                }
            }
        });
        Client {
            user_id,
            token,
            sink,
            log,
        }
    }

    pub async fn send(&mut self, v: Value) {
        self.sink.send(Message::text(v.to_string())).await.unwrap();
    }

    /// `join_room`, and wait for its answer: the test's next membership
    /// change must not race the admission (a public room's would re-add it).
    pub async fn join(&mut self, room: i64) {
        let before = {
            let mut log = self.log.lock().unwrap();
            log.pending.insert(room);
            log.answers.get(&room).copied().unwrap_or(0)
        };
        self.send(json!({"type": "join_room", "room_id": room}))
            .await;
        let deadline = tokio::time::Instant::now() + WAIT;
        while self
            .log
            .lock()
            .unwrap()
            .answers
            .get(&room)
            .copied()
            .unwrap_or(0)
            == before
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no answer to joining room {room}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }

    pub fn in_room(&self, room: i64) -> bool {
        self.log.lock().unwrap().joined.contains(&room)
    }
}

/// The newest seq stored in `room` (0 for none, or for a deleted room).
pub async fn newest_seq(app: &TestApp, room: i64) -> i64 {
    let store: &Store = &app.app_state.store;
    store
        .find_room(RoomId(room))
        .await
        .unwrap()
        .map_or(0, |r| r.last_seq)
}

/// Seqs `(after, until]`; `until` is `None` while the client stays removed.
type Range = (i64, Option<i64>);

/// The seq ranges of each (client, room) that client must never receive.
#[derive(Default)]
pub struct Forbidden {
    ranges: HashMap<(usize, i64), Vec<Range>>,
}

impl Forbidden {
    /// Client `c` lost (or never had) room `room` once seq `after` was stored.
    pub fn open(&mut self, c: usize, room: i64, after: i64) {
        let r = self.ranges.entry((c, room)).or_default();
        if !r.last().is_some_and(|(_, until)| until.is_none()) {
            r.push((after, None));
        }
    }

    /// Client `c` joins `room` again, as a member, with `newest` the room's
    /// newest seq read before the join was sent.
    pub fn close(&mut self, c: usize, room: i64, newest: i64) {
        if let Some((_, until @ None)) = self.ranges.get_mut(&(c, room)).and_then(|r| r.last_mut())
        {
            *until = Some(newest);
        }
    }

    /// The range that forbids `seq`, if any.
    pub fn forbids(&self, c: usize, room: i64, seq: i64) -> Option<Range> {
        self.ranges
            .get(&(c, room))?
            .iter()
            .copied()
            .find(|(after, until)| seq > *after && until.is_none_or(|u| seq <= u))
    }
}

/// Every message each client received, judged against `forbidden`. A
/// client's own messages are skipped: the answer to its own send is not a leak.
pub fn judge(clients: &[Client], forbidden: &Forbidden) -> (usize, Vec<String>) {
    let mut judged = 0;
    let mut leaks = Vec::new();
    for (c, client) in clients.iter().enumerate() {
        let log = client.log.lock().unwrap();
        leaks.extend(log.violations.iter().map(|v| format!("client {c}: {v}")));
        for &(room, seq, author) in &log.messages {
            if author == client.user_id {
                continue;
            }
            judged += 1;
            if let Some((after, until)) = forbidden.forbids(c, room, seq) {
                leaks.push(format!(
                    "client {c} got seq {seq} of room {room}, stored after it lost the room at seq {after} (until {until:?})"
                ));
            }
        }
    }
    (judged, leaks)
}
