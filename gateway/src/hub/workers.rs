//! Per-worker fan-out: a broadcast crosses to each worker thread once.
//!
//! Each actix worker is a single-threaded runtime that owns the connections
//! it accepted. Its first session starts one fan-out task there
//! ([`Workers::attach`]); a broadcast is then handed to the task of every
//! worker that holds members of the room, and the task enqueues it to
//! those members and wakes their writers on its own thread: one cross-thread
//! wake-up per worker, not one per member. The task takes what is queued
//! in one turn, then yields, so every writer woken in that turn writes it
//! all in one system call; turns are paced (at most one per [`PACE`]), so
//! under load a turn carries many broadcasts, and a quiet room's message
//! goes at once. This replaces a 4 ms timer each connection armed per
//! broadcast.
//!
//! A broadcast reaches the members that were in the room when it was handed
//! over and still are when the task delivers it: one that left (or was
//! evicted) meanwhile does not get it, and neither does one that entered
//! meanwhile (what it needs of the room it reads from the history, as
//! before per-worker fan-out), so the wait in a worker's queue never shows
//! a newcomer an event that reached the node before it entered.
//!
//! The hand-over queue is bounded: a worker that falls [`QUEUE`] broadcasts
//! behind closes the room's members it holds as slow consumers, since they
//! can no longer get everything in order. A worker without a task (a test
//! thread, a runtime shutting down) is delivered to directly.

use super::Broadcast;
use super::rooms::Rooms;
use crate::conn::ConnHandle;
use crate::conn::outbound::Outbound;
use crate::conn::worker::WorkerId;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::time::Instant;

/// Broadcasts waiting for one worker, at most (a few MiB of shared frames).
pub const QUEUE: usize = 65_536;
/// Broadcasts a task takes in one turn before its writers get theirs.
const TURN: usize = 256;
/// A turn starts at most this long after the previous one: under load the
/// broadcasts of 8 ms leave in one write per member (a system call per
/// write is most of the cost of a delivery), while the first broadcast
/// after a quiet spell goes at once. On the 1,000-member benchmark 4, 6 and
/// 8 ms measured 1.4, 1.2 and 0.8 µs per delivery (BENCHMARKS.md, session 8).
const PACE: Duration = Duration::from_millis(8);

#[derive(Default)]
pub(super) struct Workers {
    queues: RwLock<HashMap<WorkerId, mpsc::Sender<Handover>>>,
}

/// What a worker's queue carries.
pub(super) enum Handover {
    /// A room broadcast, for the room's members on that worker that had
    /// joined by the clock it carries (see `Rooms::now`).
    Room(Arc<Broadcast>, u64),
    /// An item for one connection that must stay behind the broadcasts
    /// handed over before it (the answer to its own send).
    One(ConnHandle, Outbound),
}

/// Why a worker did not take an item.
pub(super) enum Handed {
    /// Its queue is full.
    Full,
    /// It has no task: deliver directly.
    NoTask,
}

impl Workers {
    /// Start the calling worker's fan-out task, once per worker. Must run
    /// on the worker's own runtime (inside its `LocalSet`).
    pub(super) fn attach(&self, rooms: &Arc<Rooms>) {
        let me = WorkerId::current();
        if self.queues.read().expect("workers").contains_key(&me) {
            return;
        }
        let mut queues = self.queues.write().expect("workers");
        if queues.contains_key(&me) {
            return;
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        queues.insert(me, tx);
        tokio::task::spawn_local(run(Arc::clone(rooms), me, rx));
    }

    /// Queue `item` for `worker`; when that fails, what to do instead,
    /// with the item back.
    pub(super) fn hand_over(
        &self,
        worker: WorkerId,
        item: Handover,
    ) -> Result<(), (Handed, Handover)> {
        let queues = self.queues.read().expect("workers");
        let Some(queue) = queues.get(&worker) else {
            return Err((Handed::NoTask, item));
        };
        queue.try_send(item).map_err(|e| match e {
            TrySendError::Full(item) => (Handed::Full, item),
            TrySendError::Closed(item) => (Handed::NoTask, item),
        })
    }
}

/// One worker's fan-out task: until the hub is gone.
async fn run(rooms: Arc<Rooms>, me: WorkerId, mut rx: mpsc::Receiver<Handover>) {
    let mut turn = Vec::with_capacity(TURN);
    let mut last: Option<Instant> = None;
    while rx.recv_many(&mut turn, TURN).await > 0 {
        if let Some(next) = last
            .map(|at| at + PACE)
            .filter(|next| *next > Instant::now())
        {
            tokio::time::sleep_until(next).await;
            while turn.len() < TURN {
                match rx.try_recv() {
                    Ok(b) => turn.push(b),
                    Err(_) => break,
                }
            }
        }
        // Only broadcasts pace the turns: a client's answer alone must not
        // hold back the room's next message.
        if turn.iter().any(|item| matches!(item, Handover::Room(..))) {
            last = Some(Instant::now());
        }
        for item in turn.drain(..) {
            match item {
                Handover::Room(b, stamp) => b.record(rooms.deliver(me, &b, stamp)),
                Handover::One(conn, item) => {
                    conn.push(item);
                }
            }
        }
        // The writers woken in this turn write before the next one.
        tokio::task::yield_now().await;
    }
}
