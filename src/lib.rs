//! dlpgate: a data-security (DLP) defense gateway.
//!
//! A request's life: a listener accepts it (TLS or mTLS), the caller's department is identified
//! (client certificate, API key, source network), a route is chosen by host and path, the request
//! (query, headers, body) and then the response body are scanned by the [`engine`], and each
//! finding is allowed, alerted, masked, redacted, hashed or blocked according to the [`policy`] of
//! that department, route and direction. Every finding becomes a Prometheus count and a JSON audit
//! event that never carries a raw value.
//!
//! Modules, in the only direction dependencies may point:
//! `engine` → `policy` → `config` → `telemetry` → `gateway` → `cli`.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod charset;
pub mod cli;
pub mod config;
pub mod documents;
pub use dlpgate_engine as engine;
pub mod gateway;
pub mod guomi;
pub mod policy;
pub mod telemetry;
