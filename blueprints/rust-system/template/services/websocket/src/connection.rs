//! One WebSocket connection: answers client messages, forwards published messages,
//! sends heartbeat pings and closes with a code that says why.

use std::error::Error as _;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{
    CloseCode, CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code,
};
use axum::response::{IntoResponse, Response};
use platform::Problem;
use tokio::sync::watch;
use tokio::time::{self, Instant, MissedTickBehavior};
use uuid::Uuid;

use crate::AppState;
use crate::hub::{Hub, Registration};
use crate::protocol::{ClientMessage, ServerMessage};

/// How long to wait for the client to end a connection that is closing.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the server ends a connection, sent to the client in the close frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Close {
    code: CloseCode,
    reason: &'static str,
    /// Whether the connection can still be read to wait for the client's close frame.
    readable: bool,
}

impl Close {
    const fn new(code: CloseCode, reason: &'static str) -> Self {
        Self {
            code,
            reason,
            readable: true,
        }
    }

    const fn after_read_error(code: CloseCode, reason: &'static str) -> Self {
        Self {
            code,
            reason,
            readable: false,
        }
    }
}

const IDLE: Close = Close::new(close_code::NORMAL, "idle timeout");
const SHUTDOWN: Close = Close::new(close_code::AWAY, "server shutting down");
const MALFORMED: Close = Close::new(close_code::POLICY, "malformed message");
const BINARY: Close = Close::new(close_code::UNSUPPORTED, "binary messages are not supported");
const TOO_SLOW: Close = Close::new(close_code::AGAIN, "too slow to receive messages");
const TOO_BIG: Close = Close::after_read_error(close_code::SIZE, "message too big");
const NOT_UTF8: Close = Close::after_read_error(close_code::INVALID, "text is not UTF-8");
const PROTOCOL: Close = Close::after_read_error(close_code::PROTOCOL, "protocol error");

/// `GET /v1/ws`: upgrades to a WebSocket; anything else is a problem-details error.
pub(crate) async fn upgrade(
    State(state): State<AppState>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    match upgrade {
        Ok(upgrade) => upgrade
            .max_message_size(state.config.max_message_bytes)
            .max_frame_size(state.config.max_message_bytes)
            .on_upgrade(move |socket| serve(socket, state)),
        Err(rejection) => Problem::new(rejection.status())
            .with_detail(rejection.body_text())
            .into_response(),
    }
}

async fn serve(mut socket: WebSocket, state: AppState) {
    let mut connection = state.hub.register();
    let id = connection.id;
    tracing::info!(connection = %id, "connected");
    let close = converse(&mut socket, &state, &mut connection).await;

    // Leave the registry first, so that a client that sees the close frame no longer
    // counts as connected.
    state.hub.remove(id);
    match close {
        Some(close) => {
            tracing::info!(connection = %id, code = close.code, reason = close.reason, "closing");
            close_with(&mut socket, close).await;
        }
        None => tracing::info!(connection = %id, "disconnected"),
    }
}

/// Serves the connection until it has to close; `None` when the client closed it or
/// is gone, so that no close frame is due.
async fn converse(
    socket: &mut WebSocket,
    state: &AppState,
    connection: &mut Registration,
) -> Option<Close> {
    let config = &state.config;
    let mut heartbeat = time::interval_at(
        Instant::now() + config.heartbeat_interval,
        config.heartbeat_interval,
    );
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let idle = time::sleep(config.idle_timeout);
    tokio::pin!(idle);

    let welcome = ServerMessage::Welcome {
        connection_id: connection.id,
    };
    if !send(socket, &welcome).await {
        return None;
    }
    loop {
        tokio::select! {
            inbound = socket.recv() => {
                idle.as_mut().reset(Instant::now() + config.idle_timeout);
                match inbound {
                    Some(Ok(Message::Text(text))) => match answer(&state.hub, connection.id, &text) {
                        Ok(Some(reply)) => {
                            if !send(socket, &reply).await {
                                return None;
                            }
                        }
                        Ok(None) => {}
                        Err(error) => {
                            send(socket, &error).await;
                            return Some(MALFORMED);
                        }
                    },
                    Some(Ok(Message::Binary(_))) => return Some(BINARY),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) => {
                        drain(socket).await;
                        return None;
                    }
                    None => return None,
                    Some(Err(error)) => return read_error(&error),
                }
            }
            queued = connection.queue.recv() => match queued {
                Some(text) => {
                    if socket.send(Message::Text(text)).await.is_err() {
                        return None;
                    }
                }
                None => return Some(TOO_SLOW),
            },
            _ = heartbeat.tick() => {
                if socket.send(Message::Ping(Bytes::new())).await.is_err() {
                    return None;
                }
            }
            () = &mut idle => return Some(IDLE),
            () = shutting_down(&mut connection.shutdown) => return Some(SHUTDOWN),
        }
    }
}

/// Completes when the hub asks its connections to close.
async fn shutting_down(shutdown: &mut watch::Receiver<bool>) {
    // An error means that the hub is gone, which ends the connection as well.
    let _ = shutdown.wait_for(|stopping| *stopping).await;
}

/// Carries out one client message. `Ok` holds the reply, if any; `Err` the error that
/// precedes closing the connection for a malformed message.
fn answer(hub: &Hub, id: Uuid, text: &str) -> Result<Option<ServerMessage>, ServerMessage> {
    let message = serde_json::from_str(text).map_err(|error| ServerMessage::Error {
        message: format!("malformed message: {error}"),
    })?;
    Ok(match message {
        ClientMessage::Subscribe { topic } => Some(match hub.subscribe(id, &topic) {
            Ok(()) => ServerMessage::Subscribed { topic },
            Err(error) => ServerMessage::Error {
                message: error.to_string(),
            },
        }),
        ClientMessage::Unsubscribe { topic } => {
            hub.unsubscribe(id, &topic);
            Some(ServerMessage::Unsubscribed { topic })
        }
        ClientMessage::Publish { topic, data } => {
            let recipients = hub.publish(&topic, data);
            tracing::debug!(connection = %id, %topic, recipients, "published");
            None
        }
    })
}

/// Sends `message`; `false` when the connection is gone.
async fn send(socket: &mut WebSocket, message: &ServerMessage) -> bool {
    socket.send(Message::Text(message.to_text())).await.is_ok()
}

/// The close frame to send after a failed read, if the client can still receive one.
fn read_error(error: &axum::Error) -> Option<Close> {
    let error = error.source()?.downcast_ref::<tungstenite::Error>()?;
    match error {
        tungstenite::Error::Capacity(_) => Some(TOO_BIG),
        tungstenite::Error::Utf8(_) => Some(NOT_UTF8),
        tungstenite::Error::Protocol(_) => Some(PROTOCOL),
        _ => None,
    }
}

/// Sends the close frame and, when the stream is still readable, waits for the client's
/// close frame so the connection ends cleanly on both sides.
async fn close_with(socket: &mut WebSocket, close: Close) {
    let frame = CloseFrame {
        code: close.code,
        reason: Utf8Bytes::from_static(close.reason),
    };
    if socket.send(Message::Close(Some(frame))).await.is_ok() && close.readable {
        drain(socket).await;
    }
}

/// Reads what the client still sends until the connection ends, for a bounded time.
/// Reading also sends the answer to a close frame from the client.
async fn drain(socket: &mut WebSocket) {
    let read_to_end = async { while let Some(Ok(_)) = socket.recv().await {} };
    if time::timeout(CLOSE_TIMEOUT, read_to_end).await.is_err() {
        tracing::debug!("the client did not end the connection in time");
    }
}
