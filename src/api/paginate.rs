//! Kazoo list pagination: `page_size` entries (default [`DEFAULT_PAGE_SIZE`]) from
//! `start_key` (the first key of the page, inclusive), or everything with `paginate=false`.
//! The answer carries `page_size` (entries returned), the `start_key` used and, when more
//! follow, `next_start_key` (the first key of the next page). Entries are ordered by key.

use super::reply::{Answer, ApiError};
use serde_json::{Value, json};
use std::collections::HashMap;

/// Crossbar's default page size.
pub const DEFAULT_PAGE_SIZE: usize = 50;

/// The query string of a list request; other keys are ignored.
#[derive(Debug, Default)]
pub struct PageQuery {
    page_size: Option<String>,
    start_key: Option<String>,
    paginate: Option<String>,
}

impl PageQuery {
    /// Any query string reads (a repeated key: the last one), so a bad value gets a
    /// validation error naming it rather than the extractor's plain-text rejection.
    pub fn new(mut query: HashMap<String, String>) -> Self {
        PageQuery {
            page_size: query.remove("page_size"),
            start_key: query.remove("start_key"),
            paginate: query.remove("paginate"),
        }
    }

    /// The page of `entries` (sorted by `key`) this query asks for, as the answer.
    pub fn answer(&self, mut entries: Vec<Value>, key: &str) -> Result<Answer, ApiError> {
        let size = self.size()?;
        let key_of = |e: &Value| e.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
        entries.sort_by_key(key_of);
        let first = match &self.start_key {
            Some(start) => entries.partition_point(|e| key_of(e) < *start),
            None => 0,
        };
        let mut page: Vec<Value> = entries.drain(first..).collect();
        let next = match size {
            Some(n) if page.len() > n => Some(key_of(&page[n])),
            _ => None,
        };
        page.truncate(size.unwrap_or(usize::MAX));
        let start = page.first().map(key_of);
        let count = page.len();
        let mut answer = Answer::ok(Value::Array(page)).extra("page_size", count.into());
        if size.is_some() {
            answer = answer.extra("start_key", json!(start.or(self.start_key.clone())));
        }
        if let Some(next) = next {
            answer = answer.extra("next_start_key", next.into());
        }
        Ok(answer)
    }

    /// `None` when not paginated.
    fn size(&self) -> Result<Option<usize>, ApiError> {
        match self.paginate.as_deref() {
            None | Some("true") => {}
            Some("false") => return Ok(None),
            Some(other) => return Err(enum_error("paginate", other, json!(["true", "false"]))),
        }
        let Some(text) = &self.page_size else {
            return Ok(Some(DEFAULT_PAGE_SIZE));
        };
        match text.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(Some(n)),
            _ => Err(ApiError::invalid(
                "page_size",
                "minimum",
                json!({"message": "Value must be an integer of at least 1", "target": 1,
                       "value": text}),
            )),
        }
    }
}

fn enum_error(field: &str, value: &str, allowed: Value) -> ApiError {
    let message = "Value not found in enumerated list of values";
    ApiError::invalid(
        field,
        "enum",
        json!({"message": message, "target": allowed, "value": value}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(page_size: Option<&str>, paginate: Option<&str>) -> PageQuery {
        let pairs = [("page_size", page_size), ("paginate", paginate)];
        let given = pairs
            .into_iter()
            .filter_map(|(k, v)| Some((k.into(), v?.into())));
        PageQuery::new(given.collect())
    }

    #[test]
    fn page_size_and_paginate_parse_or_are_refused() {
        let one = query(Some("2"), None).size().unwrap();
        assert_eq!(one, Some(2));
        assert_eq!(query(None, None).size().unwrap(), Some(DEFAULT_PAGE_SIZE));
        assert_eq!(query(Some("2"), Some("false")).size().unwrap(), None);
        for bad in ["0", "-1", "x"] {
            assert!(query(Some(bad), None).size().is_err(), "{bad}");
        }
        assert!(query(None, Some("no")).size().is_err());
    }
}
