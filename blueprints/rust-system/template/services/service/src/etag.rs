//! JSON representations with an `ETag`, and `If-None-Match` revalidation (304).

use std::hash::{DefaultHasher, Hasher};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use platform::Problem;
use serde::Serialize;

/// A JSON body and its strong entity tag, a hash of the body's bytes: the tag changes
/// whenever the representation does.
#[derive(Debug)]
pub(crate) struct Tagged {
    etag: HeaderValue,
    body: Vec<u8>,
}

impl Tagged {
    /// Serializes `value` and tags it.
    pub(crate) fn json<T: Serialize>(value: &T) -> Result<Self, Problem> {
        let body = serde_json::to_vec(value).map_err(|error| {
            tracing::error!(%error, "cannot serialize a response");
            Problem::internal()
        })?;
        let mut hasher = DefaultHasher::new();
        hasher.write(&body);
        let etag = HeaderValue::try_from(format!("\"{:016x}\"", hasher.finish()))
            .expect("a quoted hex string is a valid header value");
        Ok(Self { etag, body })
    }

    /// The response to a read: 304 Not Modified when `If-None-Match` in `request`
    /// names this tag (or is `*`), otherwise 200 with the body.
    pub(crate) fn read_response(self, request: &HeaderMap) -> Response {
        if self.matches_none_match(request) {
            (StatusCode::NOT_MODIFIED, [(header::ETAG, self.etag)]).into_response()
        } else {
            self.with_status(StatusCode::OK)
        }
    }

    /// The body as a JSON response with `status` and the `ETag` header.
    pub(crate) fn with_status(self, status: StatusCode) -> Response {
        (
            status,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ),
                (header::ETAG, self.etag),
            ],
            self.body,
        )
            .into_response()
    }

    /// Weak comparison of this tag with every tag listed in `If-None-Match`
    /// (RFC 9110, section 13.1.2).
    fn matches_none_match(&self, request: &HeaderMap) -> bool {
        let ours = self.etag.as_bytes();
        request
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag).as_bytes() == ours)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn if_none_match(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::IF_NONE_MATCH, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn the_tag_follows_the_content() {
        let a = Tagged::json(&"a").unwrap();
        assert_eq!(a.etag, Tagged::json(&"a").unwrap().etag);
        assert_ne!(a.etag, Tagged::json(&"b").unwrap().etag);
    }

    #[test]
    fn if_none_match_uses_weak_comparison_over_every_listed_tag() {
        let tagged = Tagged::json(&"a").unwrap();
        let ours = tagged.etag.to_str().unwrap().to_owned();
        let weak = format!("W/{ours}");
        let listed = format!("\"other\", {ours}");
        for values in [
            vec![ours.as_str()],
            vec!["*"],
            vec!["\"other\"", weak.as_str()],
            vec![listed.as_str()],
        ] {
            assert!(
                tagged.matches_none_match(&if_none_match(&values)),
                "{values:?}"
            );
        }
        assert!(!tagged.matches_none_match(&if_none_match(&["\"other\""])));
        assert!(!tagged.matches_none_match(&HeaderMap::new()));
    }
}
