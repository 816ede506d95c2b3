//! The cloud side (issue 14, in progress): credentials from the instance RAM role, the
//! ACS3-HMAC-SHA256 signature, bounded read-only OpenAPI calls over HTTPS, and the facts the
//! cloud-side checks judge, gathered in two parallel rounds. No diagnosis gathers them yet and
//! no check is registered; `[cloud]` in the configuration is parsed and validated.

pub mod credentials;
pub mod ecs;
pub mod facts;
#[cfg(test)]
pub(crate) mod fake;
pub mod openapi;
pub mod signature;
pub mod vpc;

use serde_json::Value;

/// A non-empty string field, trimmed (the API sends `""` for absent values).
pub(crate) fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}
