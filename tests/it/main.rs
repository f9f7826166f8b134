//! End-to-end tests of the `cairn` binary.
//!
//! Each test gets its own repository in a temp directory ([`cairn_e2e::Repo`])
//! and drives the real binary (built in the tests' profile) through its CLI,
//! as a user would: environment variables for the repository and passphrase,
//! data on stdin or in files, results checked on stdout, in restored files and
//! in the repository's objects.

mod agent;
mod ahead;
mod audit;
mod catalog;
mod check;
mod cli;
mod compat;
mod copy;
mod corruption;
mod daemon;
mod databases;
mod dedup;
mod drill;
mod files;
mod hardening;
mod image;
mod json;
mod kubernetes;
mod lists;
mod metadata;
mod metrics;
mod progress;
mod prune;
mod retention;
mod s3;
mod s3_network;
mod selection;
mod soak;
mod streams;
