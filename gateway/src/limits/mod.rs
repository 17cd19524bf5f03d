//! What one client may make a node do, and the counter of every refusal:
//! `chat_gateway_limited_total{limit}` (see [`Limit`] for the labels).
//!
//! Where each limit lives:
//! - per connection, in `ws`: the read budget (every frame and byte,
//!   `ws::read_budget`), the message rate (`ws::rate`), the replay budget
//!   (`ws::replay`), the frame size, the outbound queue, rooms per connection;
//! - per client address, here: upgrade attempts, registrations and logins;
//! - per user, here: sends (WebSocket and REST share one budget), other REST
//!   writes; rooms owned, at creation (`routes::rooms`);
//! - per node: password hashes at once (`auth::password_hash`), connections
//!   ([`connections`]), request heads ([`head_deadline`]).
//!
//! Behind a load balancer the client address comes from `X-Forwarded-For`
//! when the peer is a trusted proxy ([`client_ip`]).

pub mod client_ip;
pub mod connections;
pub mod gcra;
pub mod head_deadline;
pub mod keyed;

use crate::config::Settings;
use client_ip::TrustedProxies;
use keyed::KeyedRate;
use shared::ids::UserId;
use std::net::IpAddr;

/// A limit that refused something (the `limit` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// A connection's reading paused: its frame or byte budget was spent.
    ReadBudget,
    /// A client frame refused with `rate_limited` (per connection).
    MessageRate,
    /// A send refused: the user's send budget (WebSocket and REST) was spent.
    SendRate,
    /// An upgrade refused: too many attempts from the client's address.
    ConnectRate,
    /// A registration or login refused: too many from the client's address.
    AuthRate,
    /// A registration or login refused: every password-hashing slot busy.
    PasswordHashing,
    /// A resume refused: the connection's replay budget was spent.
    Replay,
    /// A REST write refused: the user's write budget was spent.
    RestWrites,
    /// A room creation refused: the user owns `limits.max_rooms_per_user`.
    RoomsPerUser,
    /// A connection closed (1009): a frame or message over the size cap.
    FrameSize,
    /// A connection dropped: its request head did not arrive in time.
    RequestHead,
}

impl Limit {
    /// Every limit, for series that exist (at 0) before the first refusal.
    pub const ALL: [Limit; 11] = [
        Limit::ReadBudget,
        Limit::MessageRate,
        Limit::SendRate,
        Limit::ConnectRate,
        Limit::AuthRate,
        Limit::PasswordHashing,
        Limit::Replay,
        Limit::RestWrites,
        Limit::RoomsPerUser,
        Limit::FrameSize,
        Limit::RequestHead,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Limit::ReadBudget => "read_budget",
            Limit::MessageRate => "message_rate",
            Limit::SendRate => "send_rate",
            Limit::ConnectRate => "connect_rate",
            Limit::AuthRate => "auth_rate",
            Limit::PasswordHashing => "password_hashing",
            Limit::Replay => "replay",
            Limit::RestWrites => "rest_writes",
            Limit::RoomsPerUser => "rooms_per_user",
            Limit::FrameSize => "frame_size",
            Limit::RequestHead => "request_head",
        }
    }

    /// Count one refusal.
    pub fn hit(self) {
        crate::metrics::metrics()
            .limited
            .with_label_values(&[self.label()])
            .inc();
    }
}

/// The limits keyed by client address or user, shared by every handler.
pub struct Limits {
    /// Upgrade attempts per client address.
    pub connect: Option<KeyedRate<IpAddr>>,
    /// Registrations and logins per client address.
    pub auth: Option<KeyedRate<IpAddr>>,
    /// Chat messages per user, WebSocket and REST together.
    pub sends: Option<KeyedRate<UserId>>,
    /// Other REST writes per user.
    pub rest_writes: Option<KeyedRate<UserId>>,
    pub trusted_proxies: TrustedProxies,
}

impl Limits {
    pub fn new(settings: &Settings) -> Self {
        let l = &settings.limits;
        Limits {
            connect: KeyedRate::new(l.connect_rate_per_ip, 2, Limit::ConnectRate),
            auth: KeyedRate::new(l.auth_rate_per_ip, 2, Limit::AuthRate),
            sends: KeyedRate::with_burst(l.msg_rate, l.msg_burst, Limit::SendRate),
            rest_writes: KeyedRate::new(l.rest_write_rate, 4, Limit::RestWrites),
            trusted_proxies: TrustedProxies::new(&settings.server.trusted_proxies),
        }
    }

    /// Forget the addresses and users not seen lately (run every minute):
    /// the keyed limiters would otherwise remember every key they ever saw.
    pub fn forget_idle(&self) {
        for limiter in [&self.connect, &self.auth].into_iter().flatten() {
            limiter.forget_idle();
        }
        for limiter in [&self.sends, &self.rest_writes].into_iter().flatten() {
            limiter.forget_idle();
        }
    }
}
