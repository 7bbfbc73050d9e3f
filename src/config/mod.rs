//! Configuration: YAML → raw serde types (`deny_unknown_fields`) → checks → a compiled, immutable
//! [`Snapshot`]. Every problem is collected with file:line and key, and `dlpgate check`, `run` and
//! reload all call [`load`].
//!
//! - `raw`: the file as serde reads it (plain data, defaults);
//! - `compile`: checks and compilation, one problem per line, all collected;
//! - `model`: the compiled [`Snapshot`] and its parts;
//! - `error`: [`ConfigError`] and line finding;
//! - `keys`: hash, fingerprint and API keys;
//! - `path`: request paths in normal form (what routes match).

mod compile;
mod error;
mod keys;
mod model;
mod path;
mod raw;
#[cfg(test)]
mod tests;

pub use compile::{load, load_str};
pub use error::{ConfigError, ConfigErrors};
pub use keys::{api_key_digest, random_key};
pub use model::*;
pub use path::normal_path;
