//! The cloud side (issue 14, in progress): credentials from the instance RAM role, the
//! ACS3-HMAC-SHA256 signature, and one bounded read-only OpenAPI call. No diagnosis calls the
//! cloud yet and no check uses it; `[cloud]` in the configuration is parsed and validated.

pub mod credentials;
pub mod ecs;
pub mod openapi;
pub mod signature;
pub mod vpc;
