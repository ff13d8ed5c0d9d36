//! What a token may hold open at once: event streams, and terminal
//! sessions (a VE's console or shell over a WebSocket).
//!
//! Both outlive their request, so the per-request limits do not bound
//! them. A terminal also holds one of the host's pseudo-terminals (a
//! pool all VEs and the host share, `kernel.pty.max`) and a `kennel`
//! process: they have a bound over all tokens too. Root on the Unix
//! socket is bounded by the count over all only.
//!
//! A slot is taken before anything is opened and given back when its
//! guard is dropped, whichever way the stream or session ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use kennel_api::TokenId;

use crate::error::ApiError;

/// Event streams one token may have open at once (default).
pub const STREAMS_PER_TOKEN: usize = 16;
/// Terminal sessions one token may have open at once (default).
pub const TERMINALS_PER_TOKEN: usize = 8;
/// Terminal sessions open at once over all tokens (default).
pub const TERMINALS: usize = 256;

/// The kinds of things held open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlotKind {
    EventStream,
    Terminal,
}

impl SlotKind {
    fn name(self) -> &'static str {
        match self {
            SlotKind::EventStream => "event streams",
            SlotKind::Terminal => "console or shell sessions",
        }
    }
}

/// The bounds, as configured.
#[derive(Debug, Clone, Copy)]
pub struct SlotLimits {
    pub streams_per_token: usize,
    pub terminals_per_token: usize,
    pub terminals: usize,
}

impl Default for SlotLimits {
    fn default() -> Self {
        SlotLimits {
            streams_per_token: STREAMS_PER_TOKEN,
            terminals_per_token: TERMINALS_PER_TOKEN,
            terminals: TERMINALS,
        }
    }
}

#[derive(Debug, Default)]
struct Held {
    per_token: HashMap<(TokenId, SlotKind), usize>,
    terminals: usize,
}

/// The slots held now.
#[derive(Debug, Default)]
pub struct Slots {
    limits: SlotLimits,
    held: Mutex<Held>,
}

/// One slot, given back on drop.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    token: Option<TokenId>,
    kind: SlotKind,
}

impl Slots {
    pub fn new(limits: SlotLimits) -> Self {
        Slots {
            limits,
            held: Mutex::default(),
        }
    }

    /// Takes a slot of `kind` for `token` (`None`: root on the socket),
    /// or says which bound it would pass (429).
    pub fn take(
        self: &Arc<Self>,
        token: Option<&TokenId>,
        kind: SlotKind,
    ) -> Result<Slot, ApiError> {
        let mut held = self.lock();
        if kind == SlotKind::Terminal && held.terminals >= self.limits.terminals {
            return Err(too_many(format!(
                "the host has {} console or shell sessions open, its most: try again when one ends",
                self.limits.terminals
            )));
        }
        if let Some(t) = token {
            let most = match kind {
                SlotKind::EventStream => self.limits.streams_per_token,
                SlotKind::Terminal => self.limits.terminals_per_token,
            };
            let n = held.per_token.entry((t.clone(), kind)).or_default();
            if *n >= most {
                return Err(too_many(format!(
                    "this token has {most} {} open, its most: close one first",
                    kind.name()
                )));
            }
            *n += 1;
        }
        if kind == SlotKind::Terminal {
            held.terminals += 1;
        }
        Ok(Slot {
            slots: Arc::clone(self),
            token: token.cloned(),
            kind,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.slots.lock();
        if let Some(t) = self.token.take() {
            let key = (t, self.kind);
            if let Some(n) = held.per_token.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    held.per_token.remove(&key);
                }
            }
        }
        if self.kind == SlotKind::Terminal {
            held.terminals = held.terminals.saturating_sub(1);
        }
    }
}

fn too_many(message: String) -> ApiError {
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_open", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(s: &str) -> TokenId {
        TokenId::try_from(s.to_string()).expect("a token id")
    }

    #[test]
    fn each_token_has_its_own_share_and_gets_it_back() {
        let slots = Arc::new(Slots::new(SlotLimits {
            streams_per_token: 2,
            terminals_per_token: 1,
            terminals: 10,
        }));
        let (a, b) = (token("0123456789abcdef"), token("fedcba9876543210"));
        let s1 = slots.take(Some(&a), SlotKind::EventStream).expect("first");
        let _s2 = slots.take(Some(&a), SlotKind::EventStream).expect("second");
        let e = slots
            .take(Some(&a), SlotKind::EventStream)
            .expect_err("third");
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(e.message.contains("2 event streams"), "{}", e.message);
        // Another token, another kind, root: not held back.
        let _b = slots.take(Some(&b), SlotKind::EventStream).expect("b");
        let _t = slots
            .take(Some(&a), SlotKind::Terminal)
            .expect("a terminal");
        let _r = slots.take(None, SlotKind::EventStream).expect("root");
        drop(s1);
        let _s3 = slots
            .take(Some(&a), SlotKind::EventStream)
            .expect("one was given back");
    }

    #[test]
    fn terminals_are_bounded_over_all_tokens_root_included() {
        let slots = Arc::new(Slots::new(SlotLimits {
            streams_per_token: 1,
            terminals_per_token: 5,
            terminals: 2,
        }));
        let a = token("0123456789abcdef");
        let t1 = slots.take(Some(&a), SlotKind::Terminal).expect("1");
        let _t2 = slots.take(None, SlotKind::Terminal).expect("2");
        let e = slots.take(None, SlotKind::Terminal).expect_err("3");
        assert!(e.message.contains("the host has 2"), "{}", e.message);
        drop(t1);
        let _t3 = slots.take(None, SlotKind::Terminal).expect("given back");
    }
}
