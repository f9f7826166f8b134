//! The Cairn agent as a library: sources, the backup pipeline, backends,
//! the repository, the catalog, and the operations the front ends (the
//! `cairn` command line and the agent daemon) call.

pub mod audit;
pub mod backend;
pub mod cancel;
pub mod catalog;
pub mod daemon;
pub mod error;
pub mod filter;
pub mod gc;
pub mod ops;
pub mod pipeline;
pub mod progress;
pub mod repo;
pub mod restore;
pub mod retention;
pub mod session;
pub mod source;
pub mod stats;
pub mod sync;
pub mod util;
pub mod xattr;

pub use error::{Action, Context, Error, Result};
