//! The integration test binary: one binary, one module per area.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod charsets;
mod cli;
mod cluster;
mod conformance;
mod documents;
mod gateway;
mod guomi;
mod harness;
mod names;
mod ops;
mod props;
mod samples;
