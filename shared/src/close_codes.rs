//! WebSocket close codes the gateway sends, named in one place.
//!
//! Standard codes (RFC 6455 §7.4.1) where one fits; otherwise the private
//! range 4000–4999. Clients should reconnect (with jittered backoff and
//! `since_seq`) after every code except [`NORMAL`], [`POLICY_VIOLATION`] and
//! [`ACCOUNT_DELETED`].

/// A close code with the short reason text sent beside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Close {
    pub code: u16,
    pub reason: &'static str,
}

/// The client asked to leave (`leave_room` without `room_id`) or closed first.
pub const NORMAL: Close = Close {
    code: 1000,
    reason: "bye",
};
/// The client broke the protocol so badly that no `error` frame can answer it.
pub const PROTOCOL_ERROR: Close = Close {
    code: 1002,
    reason: "protocol error",
};
/// A text frame that is not valid UTF-8.
pub const INVALID_PAYLOAD: Close = Close {
    code: 1007,
    reason: "invalid UTF-8",
};
/// The client kept sending after being told it was rate limited.
pub const POLICY_VIOLATION: Close = Close {
    code: 1008,
    reason: "policy violation",
};
/// A frame (or a fragmented message) was larger than the configured limit.
pub const MESSAGE_TOO_BIG: Close = Close {
    code: 1009,
    reason: "message too big",
};
/// The node hit an unexpected internal failure for this connection.
pub const INTERNAL_ERROR: Close = Close {
    code: 1011,
    reason: "internal error",
};
/// The node is shutting down or restarting: reconnect, another node will answer.
pub const SERVICE_RESTART: Close = Close {
    code: 1012,
    reason: "service restart",
};
/// A backend the connection needs (the bus, presence) is down: retry later.
pub const TRY_AGAIN_LATER: Close = Close {
    code: 1013,
    reason: "try again later",
};
/// No frame (not even a pong) arrived within the client timeout.
pub const HEARTBEAT_TIMEOUT: Close = Close {
    code: 4000,
    reason: "heartbeat timeout",
};
/// The user deleted their account: do not reconnect with this token.
pub const ACCOUNT_DELETED: Close = Close {
    code: 4001,
    reason: "account deleted",
};
/// The client did not read fast enough and its outgoing queue filled up.
pub const SLOW_CONSUMER: Close = Close {
    code: 4008,
    reason: "slow consumer",
};

/// Every code above, for documentation and tests.
pub const ALL: [Close; 11] = [
    NORMAL,
    PROTOCOL_ERROR,
    INVALID_PAYLOAD,
    POLICY_VIOLATION,
    MESSAGE_TOO_BIG,
    INTERNAL_ERROR,
    SERVICE_RESTART,
    TRY_AGAIN_LATER,
    HEARTBEAT_TIMEOUT,
    ACCOUNT_DELETED,
    SLOW_CONSUMER,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_valid_for_a_close_frame() {
        for (i, a) in ALL.iter().enumerate() {
            assert!(
                a.code == 1000 || (1002..=1014).contains(&a.code) || (4000..5000).contains(&a.code)
            );
            assert!(
                a.reason.len() < 123,
                "a close reason must fit a control frame"
            );
            for b in &ALL[i + 1..] {
                assert_ne!(a.code, b.code);
            }
        }
    }
}
