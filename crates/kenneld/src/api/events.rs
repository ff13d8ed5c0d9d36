//! `/v1/events`: the event stream, as Server-Sent Events.
//!
//! Each client reads the in-memory log (`crate::events::EventLog`) at its
//! own pace, from its own position: nothing is queued per client beyond
//! one page, so a slow reader holds back no one and costs no memory as it
//! falls behind (when what it has not read is no longer kept, it gets a
//! `gap` event and goes on from the oldest kept). A client that goes away
//! ends its stream at the next write (a keep-alive comment at the latest).
//!
//! The token is checked again every few seconds while a stream is open:
//! a revoked token's stream ends, and a tenant's changed grant applies.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use kennel_api::Principal;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::access::slots::{Slot, SlotKind};
use crate::access::{Caller, Peer};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::events::cursor::CursorKey;
use crate::events::{Event, Filter, Gap};

/// Events read from the log at a time.
const PAGE: usize = 256;
/// How often an open stream's token is checked again.
const RECHECK: Duration = Duration::from_secs(5);
/// A comment line this often keeps proxies and clients from timing out
/// (and finds a client that went away).
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only these VEs: ids, comma-separated (`101,102`).
    pub ve: Option<String>,
    /// Only these types, comma-separated: `state`, `created`,
    /// `destroyed`, `oom`, `limit_hit`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub types: Option<String>,
    /// Resume after this position: an event's `id` as the stream sent
    /// it (`0`: from the oldest event kept). The `Last-Event-ID` header,
    /// when sent, wins. Without either, the stream begins with the next
    /// event.
    pub after: Option<String>,
}

/// The VE events the caller may see, as Server-Sent Events.
///
/// Each event's `id` is its position, its `event` its `type`, its
/// `data` the event as JSON. A host admin's positions are the numbers of
/// one sequence over all VEs (`seq`); a tenant's token sees each as an
/// opaque cursor of 32 hex digits (in `id` and as `seq`), so that the
/// gaps between its own events tell nothing of other VEs. A client that
/// reconnects with `Last-Event-ID: ID` (or `?after=ID`) gets every event
/// after it, then the live ones; if some are no longer kept, an `event:
/// gap` comes first, `data: {"after": ID, "next": ID}`: the events from
/// `next` on follow, those between were lost (list the VEs again).
#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventsQuery),
    responses(
        (status = 200, content_type = "text/event-stream", body = Event,
         description = "Server-Sent Events, each one's data an Event (or a Gap)"),
        (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody,
         description = "the token has as many streams open as it may")),
    security(("bearer" = [])))]
pub async fn stream(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Response> {
    let filter = Filter::parse(q.ve.as_deref(), q.types.as_deref())
        .map_err(|e| ApiError::bad_input(e.to_string()))?;
    // An empty one is none (a client that has seen no event yet).
    let header = headers
        .get("last-event-id")
        .map(|v| v.to_str().map(str::trim).unwrap_or("?"))
        .filter(|v| !v.is_empty());
    let sealed = caller.0.ves.is_some();
    let resume = header
        .or(q.after.as_deref())
        .map(|v| position(&app, sealed, v))
        .transpose()?;
    let slot = app
        .slots
        .take(caller.0.token.as_ref(), SlotKind::EventStream)?;
    // Subscribed before the position is taken: nothing published in
    // between is missed.
    let rx = app.events.subscribe();
    let cursor = resume.unwrap_or_else(|| app.events.last_seq());
    let Caller(principal, peer) = caller;
    let reader = Reader {
        authorization: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        app,
        filter,
        principal,
        peer,
        cursor,
        rx,
        queue: VecDeque::new(),
        checked: Instant::now(),
        sealed,
        _slot: slot,
    };
    let events = stream::unfold(reader, |r| r.next());
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

/// One client's place in the log.
struct Reader {
    app: AppState,
    filter: Filter,
    principal: Principal,
    authorization: Option<String>,
    peer: Peer,
    /// The last position read (sent or filtered out).
    cursor: u64,
    rx: tokio::sync::watch::Receiver<u64>,
    /// Read, not yet sent: at most a page.
    queue: VecDeque<SseEvent>,
    checked: Instant,
    /// A tenant's: positions are sent sealed.
    sealed: bool,
    /// Given back when the stream ends.
    _slot: Slot,
}

impl Reader {
    /// The next event to send; `None` ends the stream.
    async fn next(mut self) -> Option<(Result<SseEvent, Infallible>, Self)> {
        loop {
            if let Some(e) = self.queue.pop_front() {
                return Some((Ok(e), self));
            }
            if self.checked.elapsed() >= RECHECK && !self.recheck().await {
                return None;
            }
            // Marked seen before reading: a publish after the read wakes
            // the wait below.
            self.rx.borrow_and_update();
            let page = self.app.events.after(self.cursor, PAGE);
            if let Some(gap) = page.gap {
                self.queue.push_back(gap_event(gap, self.seal()));
                self.cursor = gap.next.saturating_sub(1);
            }
            let read_some = !page.events.is_empty();
            for e in page.events {
                self.cursor = e.seq;
                if self.filter.matches(&e, &self.principal) {
                    if let Some(s) = sse_event(&e, self.seal()) {
                        self.queue.push_back(s);
                    }
                }
            }
            if !self.queue.is_empty() {
                continue;
            }
            if read_some {
                // A page of others' events: let other tasks run.
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                changed = self.rx.changed() => if changed.is_err() {
                    return None;
                },
                _ = tokio::time::sleep(RECHECK) => {}
            }
        }
    }

    /// The key positions are sealed with, for a tenant's stream.
    fn seal(&self) -> Option<&CursorKey> {
        self.sealed.then_some(&self.app.cursors)
    }

    /// Checks the token again; false: the stream must end.
    async fn recheck(&mut self) -> bool {
        self.checked = Instant::now();
        match self
            .app
            .access
            .recheck(self.authorization.as_deref(), self.peer)
            .await
        {
            Ok(p) => {
                self.principal = p;
                true
            }
            // Fail closed: a revoked token, or one that cannot be checked
            // now, ends the stream (its client resumes where it was).
            Err(e) => {
                tracing::info!(
                    "events: a stream of {} ended: {}",
                    self.principal.who(),
                    e.message
                );
                false
            }
        }
    }
}

/// A position as the client gave it: a host admin's a number, a
/// tenant's `0` or a cursor sealed for it (never another number: by
/// trying numbers, a tenant could find its events' places).
fn position(app: &AppState, sealed: bool, raw: &str) -> ApiResult<u64> {
    let raw = raw.trim();
    let found = match (sealed, raw) {
        (_, "0") => Some(0),
        (false, _) => raw.parse::<u64>().ok(),
        (true, _) => app.cursors.open(raw),
    };
    found.ok_or_else(|| {
        ApiError::bad_input(format!(
            "Last-Event-ID or after: '{}' is not an event's id as this stream sends them (or 0, from the oldest kept)",
            raw.chars().take(64).collect::<String>().escape_default()
        ))
    })
}

/// A position as the client sees it.
fn shown(seq: u64, seal: Option<&CursorKey>) -> serde_json::Value {
    match seal {
        Some(k) => k.seal(seq).into(),
        None => seq.into(),
    }
}

fn sse_event(e: &Event, seal: Option<&CursorKey>) -> Option<SseEvent> {
    let json = serde_json::to_value(e).and_then(|mut v| {
        v["seq"] = shown(e.seq, seal);
        serde_json::to_string(&v)
    });
    match json {
        Ok(json) => Some(
            SseEvent::default()
                .id(shown_id(e.seq, seal))
                .event(e.kind.type_name())
                .data(json),
        ),
        Err(err) => {
            tracing::warn!("events: cannot encode event {}: {err}", e.seq);
            None
        }
    }
}

fn shown_id(seq: u64, seal: Option<&CursorKey>) -> String {
    match shown(seq, seal) {
        serde_json::Value::String(s) => s,
        v => v.to_string(),
    }
}

fn gap_event(gap: Gap, seal: Option<&CursorKey>) -> SseEvent {
    let data = serde_json::json!({
        "after": shown(gap.after, seal),
        "next": shown(gap.next, seal),
    });
    SseEvent::default()
        .id(shown_id(gap.next.saturating_sub(1), seal))
        .event("gap")
        .data(data.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_takes_type_by_its_name() {
        let q: EventsQuery =
            serde_json::from_value(serde_json::json!({"ve": "101", "type": "oom", "after": "5"}))
                .unwrap();
        assert_eq!(q.types.as_deref(), Some("oom"));
        assert_eq!(q.after.as_deref(), Some("5"));
    }
}
