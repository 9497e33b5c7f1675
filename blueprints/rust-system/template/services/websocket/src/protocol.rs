//! The JSON message protocol: one message per text frame, tagged by `type`.

use std::fmt;

use axum::extract::ws::Utf8Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Longest topic name accepted, in bytes.
pub const MAX_TOPIC_BYTES: usize = 128;

/// A message from a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Start receiving what is published to `topic`; answered with `subscribed`.
    Subscribe {
        /// The topic to follow.
        topic: Topic,
    },
    /// Stop receiving what is published to `topic`; answered with `unsubscribed`.
    Unsubscribe {
        /// The topic to leave.
        topic: Topic,
    },
    /// Sends `data` to every subscriber of `topic`, the sender included if it subscribes.
    Publish {
        /// The topic to publish to.
        topic: Topic,
        /// Any JSON value.
        data: Value,
    },
}

/// A message from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The first message of every connection.
    Welcome {
        /// The id of this connection, as listed by `GET /v1/connections`.
        connection_id: Uuid,
    },
    /// The connection now receives what is published to `topic`.
    Subscribed {
        /// The topic followed.
        topic: Topic,
    },
    /// The connection no longer receives what is published to `topic`.
    Unsubscribed {
        /// The topic left.
        topic: Topic,
    },
    /// Something published to a topic the connection subscribes to.
    Message {
        /// The topic it was published to.
        topic: Topic,
        /// The published value.
        data: Value,
    },
    /// A request that could not be carried out; the connection stays open.
    Error {
        /// What went wrong.
        message: String,
    },
}

impl ServerMessage {
    /// The message as the text of a WebSocket frame.
    pub fn to_text(&self) -> Utf8Bytes {
        serde_json::to_string(self)
            .expect("server messages have string keys only, so they always serialize")
            .into()
    }
}

/// A topic name: 1 to [`MAX_TOPIC_BYTES`] bytes of text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Topic(String);

impl Topic {
    /// The topic name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A topic name that is empty or too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a topic must be 1 to {MAX_TOPIC_BYTES} bytes long")]
pub struct InvalidTopic;

impl TryFrom<String> for Topic {
    type Error = InvalidTopic;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        if name.is_empty() || name.len() > MAX_TOPIC_BYTES {
            Err(InvalidTopic)
        } else {
            Ok(Self(name))
        }
    }
}

impl From<Topic> for String {
    fn from(topic: Topic) -> Self {
        topic.0
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_client_messages() {
        let message: ClientMessage =
            serde_json::from_value(json!({ "type": "publish", "topic": "news", "data": [1, 2] }))
                .unwrap();
        assert_eq!(
            message,
            ClientMessage::Publish {
                topic: Topic::try_from("news".to_owned()).unwrap(),
                data: json!([1, 2]),
            }
        );
    }

    #[test]
    fn rejects_unknown_types_and_bad_topics() {
        for bad in [
            json!({ "type": "shout", "topic": "news" }),
            json!({ "type": "subscribe" }),
            json!({ "type": "subscribe", "topic": "" }),
            json!({ "type": "subscribe", "topic": "x".repeat(MAX_TOPIC_BYTES + 1) }),
        ] {
            assert!(
                serde_json::from_value::<ClientMessage>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn server_messages_are_tagged_json() {
        let text = ServerMessage::Error {
            message: "nope".to_owned(),
        }
        .to_text();
        assert_eq!(text.as_str(), r#"{"type":"error","message":"nope"}"#);
    }
}
