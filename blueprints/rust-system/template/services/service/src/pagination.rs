//! Sort orders and opaque cursors for keyset pagination of `/v1/items`.
//!
//! A cursor is the base64url encoding of a small JSON document naming the sort order
//! and the sort key and id of the last item of a page. The next page starts strictly
//! after that position, so inserts and deletes between requests never repeat or skip
//! an item that stays in place.

use std::cmp::Ordering;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use platform::Problem;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::items::Item;

/// Order of a listing; a leading `-` sorts descending. Ties are broken by id, in the
/// same direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Sort {
    /// By name, A to Z.
    #[serde(rename = "name")]
    Name,
    /// By name, Z to A.
    #[serde(rename = "-name")]
    NameDescending,
    /// Oldest first.
    #[default]
    #[serde(rename = "created_at")]
    CreatedAt,
    /// Newest first.
    #[serde(rename = "-created_at")]
    CreatedAtDescending,
}

/// The value an item is sorted by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortKey {
    /// The item's name.
    Name(String),
    /// When the item was created.
    CreatedAt(Timestamp),
}

/// Where a page ended: the sort key and id of its last item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Sort key of the last item.
    pub key: SortKey,
    /// Id of the last item.
    pub id: Uuid,
}

impl Sort {
    fn descending(self) -> bool {
        matches!(self, Self::NameDescending | Self::CreatedAtDescending)
    }

    /// The key `item` is sorted by in this order.
    pub fn key(self, item: &Item) -> SortKey {
        match self {
            Self::Name | Self::NameDescending => SortKey::Name(item.name.clone()),
            Self::CreatedAt | Self::CreatedAtDescending => SortKey::CreatedAt(item.created_at),
        }
    }

    /// Where `item` is in this order.
    pub fn position(self, item: &Item) -> Position {
        Position {
            key: self.key(item),
            id: item.id,
        }
    }

    /// Compares two positions in this order.
    pub fn compare(self, a: &Position, b: &Position) -> Ordering {
        let ascending = a.key.cmp(&b.key).then(a.id.cmp(&b.id));
        if self.descending() {
            ascending.reverse()
        } else {
            ascending
        }
    }

    fn accepts(self, key: &SortKey) -> bool {
        matches!(
            (self, key),
            (Self::Name | Self::NameDescending, SortKey::Name(_))
                | (
                    Self::CreatedAt | Self::CreatedAtDescending,
                    SortKey::CreatedAt(_)
                )
        )
    }
}

/// What a cursor carries.
#[derive(Serialize, Deserialize)]
struct CursorData {
    sort: Sort,
    after: Position,
}

/// The opaque cursor for the page after `after` in `sort` order.
pub(crate) fn encode_cursor(sort: Sort, after: Position) -> String {
    let json = serde_json::to_vec(&CursorData { sort, after })
        .expect("a cursor always serializes to JSON");
    URL_SAFE_NO_PAD.encode(json)
}

/// Reads a cursor given with `sort`; a cursor that was not made by this service, or
/// was made for another sort order, is a 400 problem.
pub(crate) fn decode_cursor(cursor: &str, sort: Sort) -> Result<Position, Problem> {
    let data: CursorData = URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|json| serde_json::from_slice(&json).ok())
        .filter(|data: &CursorData| data.sort.accepts(&data.after.key))
        .ok_or_else(|| Problem::bad_request("the cursor is not valid"))?;
    if data.sort != sort {
        return Err(Problem::bad_request(
            "the cursor belongs to another sort order; list again without a cursor",
        ));
    }
    Ok(data.after)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(name: &str) -> Position {
        Position {
            key: SortKey::Name(name.to_owned()),
            id: Uuid::nil(),
        }
    }

    #[test]
    fn cursors_round_trip_and_are_url_safe() {
        let cursor = encode_cursor(Sort::NameDescending, position("a/b+c?"));
        assert!(
            cursor
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{cursor}"
        );
        assert_eq!(
            decode_cursor(&cursor, Sort::NameDescending),
            Ok(position("a/b+c?"))
        );
    }

    #[test]
    fn cursors_are_bound_to_their_sort_order() {
        let cursor = encode_cursor(Sort::Name, position("a"));
        let problem = decode_cursor(&cursor, Sort::NameDescending).unwrap_err();
        assert_eq!(problem.status, 400);
    }

    #[test]
    fn cursors_whose_key_does_not_fit_the_order_are_invalid() {
        let json = serde_json::json!({
            "sort": "created_at",
            "after": { "key": { "name": "a" }, "id": Uuid::nil() },
        });
        let cursor = URL_SAFE_NO_PAD.encode(json.to_string());
        assert!(decode_cursor(&cursor, Sort::CreatedAt).is_err());
    }

    #[test]
    fn descending_orders_reverse_key_and_id() {
        let (a, b) = (position("a"), position("b"));
        assert_eq!(Sort::Name.compare(&a, &b), Ordering::Less);
        assert_eq!(Sort::NameDescending.compare(&a, &b), Ordering::Greater);
        let later_id = Position {
            id: Uuid::max(),
            ..position("a")
        };
        assert_eq!(
            Sort::NameDescending.compare(&a, &later_id),
            Ordering::Greater
        );
    }
}
