{% assign consumed = "" %}
{% for s in services %}{% if s.protocol == "rest" or s.protocol == "graphql" or s.protocol == "grpc" %}{% assign consumed = consumed | append: "," | append: s.name %}{% endif %}{% endfor %}
{% assign consumed = consumed | remove_first: "," %}
//! `/v1/events`: the event stream (`GET`) and publishing to it (`POST`).

use std::convert::Infallible;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, StreamExt};
use platform::extract::Json;
use platform::problem::{FieldError, Problem};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::AppState;
use crate::event_log::{Gap, StoredEvent};

/// Header in which a reconnecting client names the last event it received.
pub const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// Event type of the notice that starts a stream which cannot resume exactly after
/// the client's `Last-Event-ID`; clients cannot publish events of this type.
pub const GAP_EVENT: &str = "gap";

/// Longest event type accepted.
pub const MAX_EVENT_TYPE_CHARS: usize = 64;

/// The body of `POST /v1/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    /// The SSE event type: ASCII letters, digits, `-`, `_` and `.`; omitted for the
    /// default type, `message`.
    #[serde(default)]
    pub event: Option<String>,
    /// Any JSON value.
    pub data: Value,
}

impl NewEvent {
    fn validate(&self) -> Result<(), Problem> {
        let Some(event) = &self.event else {
            return Ok(());
        };
        let well_formed = (1..=MAX_EVENT_TYPE_CHARS).contains(&event.len())
            && event
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'));
        let error = if !well_formed {
            format!("must be 1 to {MAX_EVENT_TYPE_CHARS} ASCII letters, digits, '-', '_' or '.'")
        } else if event == GAP_EVENT {
            format!("'{GAP_EVENT}' is reserved for the server")
        } else {
            return Ok(());
        };
        Err(Problem::validation(vec![FieldError::new("event", error)]))
    }
}

/// The answer to `POST /v1/events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// The id of the new event.
    pub id: u64,
}

/// `GET /v1/events`: new events as they are published, after the missed ones when the
/// request carries `Last-Event-ID`.
pub(crate) async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Problem> {
    let subscription = state.events.subscribe(last_event_id(&headers)?);
    let notice = subscription.gap.map(gap_event);
    let backlog = subscription
        .backlog
        .into_iter()
        .map(|stored| to_event(&stored));
    let live = stream::unfold(subscription.live, |live| async move {
        let mut live = live?;
        match live.recv().await {
            Ok(stored) => Some((to_event(&stored), Some(live))),
            Err(RecvError::Lagged(missed)) => {
                // The client reconnects with Last-Event-ID and catches up from the buffer.
                tracing::warn!(missed, "stream fell behind the live feed, ending it");
                None
            }
            Err(RecvError::Closed) => None,
        }
    });
    let events = stream::iter(notice.into_iter().chain(backlog))
        .chain(live)
        .map(Ok::<_, Infallible>);
    let keep_alive = KeepAlive::new()
        .interval(state.config.keep_alive)
        .text("keep-alive");
    Ok(Sse::new(events).keep_alive(keep_alive))
}

/// `POST /v1/events`: appends an event and sends it to every open stream.
pub(crate) async fn publish(
    State(state): State<AppState>,
    Json(input): Json<NewEvent>,
) -> Result<(StatusCode, axum::Json<Published>), Problem> {
    input.validate()?;
    let stored = state.events.append(input.event, input.data.to_string());
    tracing::debug!(id = stored.id, "published");
    Ok((StatusCode::CREATED, axum::Json(Published { id: stored.id })))
}

fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, Problem> {
    let Some(value) = headers.get(&LAST_EVENT_ID) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|value| value.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| {
            Problem::bad_request("Last-Event-ID must be the id of an event of this stream")
        })
}

fn to_event(stored: &StoredEvent) -> Event {
    let event = Event::default().id(stored.id.to_string());
    let event = match &stored.event {
        Some(name) => event.event(name),
        None => event,
    };
    event.data(&stored.data)
}

fn gap_event(gap: Gap) -> Event {
    let data = json!({
        "last_event_id": gap.last_event_id,
        "oldest_available": gap.oldest_available,
    });
    Event::default().event(GAP_EVENT).data(data.to_string())
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;
    use std::time::Duration;

    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, header};
    use http_body_util::BodyExt;
    use platform::health::Readiness;
{% if messaging.broker != 'none' and consumed != "" %}
    use platform::messaging::CloudEvent;
{% endif %}
    use tower::ServiceExt;

    use super::*;
    use crate::{Config, router};

    /// Upper bound for anything a test waits for.
    const WAIT: Duration = Duration::from_secs(10);

    fn app(config: Config) -> (Router, AppState) {
        let state = AppState::new(config);
        (router(state.clone(), Readiness::new()), state)
    }

    async fn publish(app: &Router, body: Value) -> (StatusCode, Value) {
        let request = Request::post("/v1/events")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    async fn publish_data(app: &Router, data: Value) -> u64 {
        let (status, body) = publish(app, json!({ "data": data })).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_u64().unwrap()
    }

    /// An open event stream, read block by block.
    struct EventStream {
        body: Body,
        buffer: String,
    }

    impl EventStream {
        async fn open(app: &Router, last_event_id: Option<&str>) -> Self {
            let mut request = Request::get("/v1/events");
            if let Some(id) = last_event_id {
                request = request.header(&LAST_EVENT_ID, id);
            }
            let response = app
                .clone()
                .oneshot(request.body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "text/event-stream"
            );
            Self {
                body: response.into_body(),
                buffer: String::new(),
            }
        }

        /// The next event or comment, without its final blank line; `None` when the
        /// stream ends.
        async fn next_block(&mut self) -> Option<String> {
            let read = async {
                loop {
                    if let Some(end) = self.buffer.find("\n\n") {
                        let block = self.buffer[..end].to_owned();
                        self.buffer.drain(..end + 2);
                        return Some(block);
                    }
                    let frame = self.body.frame().await?.unwrap();
                    let data = frame.into_data().unwrap();
                    self.buffer.push_str(std::str::from_utf8(&data).unwrap());
                }
            };
            tokio::time::timeout(WAIT, read)
                .await
                .expect("timed out waiting for the stream")
        }

        async fn assert_next(&mut self, block: &str) {
            assert_eq!(self.next_block().await.as_deref(), Some(block));
        }
    }

    #[tokio::test]
    async fn streams_published_events() {
        let (app, _) = app(Config::default());
        let mut stream = EventStream::open(&app, None).await;

        let (status, body) = publish(
            &app,
            json!({ "event": "greeting", "data": { "text": "hi" } }),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(body, json!({ "id": 1 }));
        stream
            .assert_next("id: 1\nevent: greeting\ndata: {\"text\":\"hi\"}")
            .await;

        publish_data(&app, Value::Null).await;
        stream.assert_next("id: 2\ndata: null").await;
    }

    #[tokio::test]
    async fn resumes_with_exactly_the_missed_events() {
        let (app, _) = app(Config::default());
        for n in 1..=3 {
            publish_data(&app, json!(n)).await;
        }

        let mut stream = EventStream::open(&app, Some("1")).await;
        stream.assert_next("id: 2\ndata: 2").await;
        stream.assert_next("id: 3\ndata: 3").await;
        publish_data(&app, json!(4)).await;
        stream.assert_next("id: 4\ndata: 4").await;
    }

    #[tokio::test]
    async fn resumption_from_before_the_buffer_starts_at_the_oldest_kept_event() {
        let (app, _) = app(Config {
            replay_capacity: NonZeroUsize::new(3).unwrap(),
            ..Config::default()
        });
        for n in 1..=5 {
            publish_data(&app, json!(n)).await;
        }

        let mut stream = EventStream::open(&app, Some("1")).await;
        stream
            .assert_next("event: gap\ndata: {\"last_event_id\":1,\"oldest_available\":3}")
            .await;
        for n in 3..=5 {
            stream.assert_next(&format!("id: {n}\ndata: {n}")).await;
        }
        publish_data(&app, json!(6)).await;
        stream.assert_next("id: 6\ndata: 6").await;
    }

    #[tokio::test]
    async fn idle_streams_get_keep_alive_comments() {
        let (app, _) = app(Config {
            keep_alive: Duration::from_millis(20),
            ..Config::default()
        });
        let mut stream = EventStream::open(&app, None).await;
        stream.assert_next(": keep-alive").await;
    }

    #[tokio::test]
    async fn closing_the_log_ends_open_streams() {
        let (app, state) = app(Config::default());
        let mut stream = EventStream::open(&app, None).await;
        state.events().close();
        assert_eq!(stream.next_block().await, None);
    }

    #[tokio::test]
    async fn invalid_last_event_id_is_a_bad_request() {
        let (app, _) = app(Config::default());
        let request = Request::get("/v1/events")
            .header(&LAST_EVENT_ID, "yesterday")
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
    }

    #[tokio::test]
    async fn invalid_events_are_unprocessable() {
        let (app, _) = app(Config::default());
        for body in [
            json!({ "event": "", "data": 1 }),
            json!({ "event": "two words", "data": 1 }),
            json!({ "event": "x".repeat(MAX_EVENT_TYPE_CHARS + 1), "data": 1 }),
            json!({ "event": GAP_EVENT, "data": 1 }),
            json!({ "event": "greeting" }),
            json!({ "data": 1, "extra": true }),
        ] {
            let (status, problem) = publish(&app, body.clone()).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!(problem["status"], 422);
        }
    }

    #[tokio::test]
    async fn oversized_events_are_rejected() {
        let (app, _) = app(Config {
            max_event_bytes: 100,
            ..Config::default()
        });
        let (status, _) = publish(&app, json!({ "data": "x".repeat(100) })).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    }

{% if messaging.broker != 'none' and consumed != "" %}
    #[tokio::test]
    async fn forwards_the_events_of_other_services_to_streams_and_resumption() {
        let (app, state) = app(Config::default());
        let mut stream = EventStream::open(&app, None).await;

        let event = CloudEvent::new(
            "/{{ name }}/{{ consumed | split: "," | first }}",
            "{{ name }}.{{ consumed | split: "," | first }}.item.created.v1",
            Some("42".to_owned()),
            json!({ "id": "42", "name": "tea" }),
        );
        crate::forward_event(state, event.clone()).await.unwrap();
        let json = serde_json::to_string(&event).unwrap();
        let expected = format!("id: 1\nevent: {{ name }}.{{ consumed | split: "," | first }}.item.created.v1\ndata: {json}");
        stream.assert_next(&expected).await;

        let mut resumed = EventStream::open(&app, Some("0")).await;
        resumed.assert_next(&expected).await;
    }

{% endif %}
    #[tokio::test]
    async fn serves_health_probes() {
        let (app, _) = app(Config::default());
        for path in ["/healthz", "/readyz"] {
            let request = Request::get(path).body(Body::empty()).unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{path}");
        }
    }
}
