//! The gateway: the only code that touches Pingora. Phases stay thin and call plain functions.
//!
//! - `proxy`: the `ProxyHttp` implementation (identify → route → inspect → forward → inspect);
//! - `head`: the request head: client address, route choice, framing, query encoding;
//! - `ctx`: per-request state; `upstream`: peer, fail-over, the upstream's request head;
//! - `state`: the active snapshot and reload; `listener_tls`: reloadable certificates;
//! - `decide`: each body decision once, for both paths (request body, response plan);
//! - `inspect`: per-request inspection state, the finding log, decompression;
//! - `exchange`: the buffered exchange used when a response may have to be blocked;
//! - `conn`: client connections and their header, body and keep-alive timeouts;
//! - `pool`: upstream addresses, round robin and health state; `idle`: idle upstream
//!   connections kept between exchanges;
//! - `quota`: bulk-exfiltration quotas, sliding-window counts per department; `quota_store`:
//!   the same counts shared by replicas through Redis;
//! - `respond`: the one place that maps verdicts and errors to statuses and JSON bodies;
//! - `tls`: listener TLS/mTLS settings (files checked first) and client identity;
//! - `admin`: `/metrics`, `/healthz`, `/readyz`, `POST /reload`;
//! - `server`: Snapshot → Pingora server, reload, signals, health checks;
//! - `demo`: the bundled demo backend and configuration.

pub mod admin;
pub mod conn;
pub mod ctx;
pub mod decide;
pub mod demo;
pub mod exchange;
pub mod fields;
pub mod head;
pub mod idle;
pub mod inspect;
pub mod listener_tls;
pub mod pool;
pub mod proxy;
pub mod quota;
pub mod quota_store;
pub mod respond;
pub mod server;
pub mod state;
pub mod tls;
pub mod upstream;

pub use server::run_server;
pub use state::Store;
