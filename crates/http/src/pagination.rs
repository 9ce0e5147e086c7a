//! Pagination: the `?page=&per_page=` query and the page envelope of list responses.

use axum::extract::FromRequestParts;
use http::request::Parts;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use microframework_core::ErrorKind;

use crate::error::ApiError;

/// Largest `per_page` accepted.
pub const MAX_PER_PAGE: u32 = 100;
/// Largest `page` accepted (deeper pages are a scan, not a use case).
pub const MAX_PAGE: u32 = 1_000_000;

/// `?page=1&per_page=20` (pages start at 1; `per_page` is 1 to 100, default 20).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, IntoParams)]
#[into_params(parameter_in = Query)]
// Both parameters are optional (the document says so through the serde default).
#[serde(default)]
pub struct Pagination {
    /// Page number, from 1 to 1000000.
    #[param(minimum = 1, maximum = 1000000, default = 1)]
    pub page: u32,
    /// Items per page, 1 to 100.
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub per_page: u32,
}

impl Default for Pagination {
    fn default() -> Self {
        Self { page: 1, per_page: 20 }
    }
}

impl Pagination {
    /// Rows to skip.
    pub fn offset(&self) -> u64 {
        u64::from(self.page.saturating_sub(1)) * u64::from(self.per_page)
    }

    /// Rows to take.
    pub fn limit(&self) -> u32 {
        self.per_page
    }
}

#[derive(Deserialize)]
struct RawPagination {
    page: Option<String>,
    per_page: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Pagination {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let raw: RawPagination = serde_urlencoded::from_str(parts.uri.query().unwrap_or_default())
            .map_err(|e| ApiError::bad_request(format!("The query string is invalid: {e}")))?;
        let mut err = microframework_core::Error::new(ErrorKind::BadRequest, "Invalid pagination parameters.");
        let mut out = Pagination::default();
        if let Some(p) = raw.page {
            match p.parse::<u32>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => out.page = n,
                _ => err = err.with_field("page", format!("must be a whole number from 1 to {MAX_PAGE}")),
            }
        }
        if let Some(p) = raw.per_page {
            match p.parse::<u32>() {
                Ok(n) if (1..=MAX_PER_PAGE).contains(&n) => out.per_page = n,
                _ => err = err.with_field("per_page", format!("must be a whole number from 1 to {MAX_PER_PAGE}")),
            }
        }
        if err.fields().is_empty() { Ok(out) } else { Err(err.into()) }
    }
}

/// A page of results.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// The page number.
    pub page: u32,
    /// The page size.
    pub per_page: u32,
    /// Total number of items.
    pub total: u64,
}

impl<T> Page<T> {
    /// A page of `items` for `pagination`, out of `total`.
    pub fn new(items: Vec<T>, pagination: Pagination, total: u64) -> Self {
        Self { items, page: pagination.page, per_page: pagination.per_page, total }
    }
}
