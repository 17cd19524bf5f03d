//! Striped async locks, one stripe per group of rooms: a room's hub
//! membership change and its bus subscribe/unsubscribe happen under the same
//! lock, so a join can never race a leave of the same room into a node that
//! has members but no subscription (or a subscription and no members).

use shared::ids::RoomId;
use tokio::sync::{Mutex, MutexGuard};

const STRIPES: usize = 256;

pub struct RoomLocks {
    stripes: Box<[Mutex<()>]>,
}

impl Default for RoomLocks {
    fn default() -> Self {
        RoomLocks {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }
}

impl RoomLocks {
    pub async fn lock(&self, room: RoomId) -> MutexGuard<'_, ()> {
        self.stripes[(room.0 as u64 % STRIPES as u64) as usize]
            .lock()
            .await
    }
}
