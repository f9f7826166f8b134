//! The agent daemon (`cairn agent`): one configuration file of scheduled
//! jobs, their retention and the repository's prune, with Prometheus
//! metrics and health endpoints (`docs/agent.md`).
//!
//! - [`config`]: the file, read and checked.
//! - [`schedule`]: when a job runs, and what a restart makes of a missed
//!   run.
//! - [`job`]: one run of a job (hooks, backup, retention, retries).
//! - [`kubernetes`]: the claims mounted on this node, for a job of them.
//! - [`hooks`]: the hook commands.
//! - [`repos`]: the repositories, opened.
//! - [`metrics`] and [`http`]: what Prometheus scrapes.
//! - [`service`]: the daemon itself, its signals and reloads.

pub mod config;
pub mod hooks;
pub mod http;
pub mod job;
pub mod kubernetes;
pub mod metrics;
pub mod repos;
pub mod schedule;
pub mod service;
