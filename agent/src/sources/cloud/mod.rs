//! The cloud side (issue 14, in progress): credentials from the instance RAM role and the
//! ACS3-HMAC-SHA256 signature of read-only OpenAPI calls. No call is made yet and no check
//! uses it; `[cloud]` in the configuration is parsed and validated.

pub mod credentials;
pub mod signature;
