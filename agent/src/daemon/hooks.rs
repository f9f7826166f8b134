//! Hook commands around a job's backup (a CHECKPOINT, a BGSAVE, an
//! fsfreeze and its thaw). Each runs in a process group of its own, so a
//! timeout or a stop kills what it started too (`sh -c "…"` and its
//! children), with its output logged line by line and its last lines kept
//! for the error.

use super::config::{Hook, OnFailure};
use crate::cancel::Cancel;
use std::ffi::OsString;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// A hook's default time limit.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Lines of a hook's output kept for its error message.
const TAIL_LINES: usize = 5;

/// Why a hook failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HookError {
    /// It could not be started.
    #[error("hook {program}: cannot start it: {cause}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        cause: String,
    },
    /// It exited with a failure.
    #[error("hook {program} failed ({status}){}", tail_text(.tail))]
    Failed {
        /// The program.
        program: String,
        /// How it ended.
        status: String,
        /// Its last lines of output.
        tail: Vec<String>,
    },
    /// It ran past its time limit and was killed.
    #[error("hook {program} ran longer than {}s and was killed", .limit.as_secs())]
    Timeout {
        /// The program.
        program: String,
        /// Its limit.
        limit: Duration,
    },
    /// The run was stopped while it ran; it was killed.
    #[error("hook {program} was killed: {reason}")]
    Cancelled {
        /// The program.
        program: String,
        /// Why.
        reason: String,
    },
}

fn tail_text(tail: &[String]) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!(": {}", tail.join(" / "))
    }
}

/// Kills a process group when dropped (a hook that is abandoned).
struct GroupGuard(Option<rustix::process::Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // The group may be gone already; nothing to do then.
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

/// Runs one hook to its end, with `env` added to its environment. The
/// error says why it failed; whether that fails the run is the caller's
/// ([`Hook::on_failure`]).
///
/// # Errors
/// [`HookError`] if it cannot start, exits non-zero or by a signal, times
/// out, or `cancel` fires.
pub async fn run(
    hook: &Hook,
    env: &[(String, OsString)],
    cancel: &Cancel,
) -> Result<(), HookError> {
    let program = hook.command.first().cloned().unwrap_or_default();
    let limit = hook.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0);
    let mut child = tokio::process::Command::new(&program)
        .args(&hook.command[1..])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| HookError::Spawn {
            program: program.clone(),
            cause: e.to_string(),
        })?;
    let guard = GroupGuard(
        child
            .id()
            .and_then(|id| rustix::process::Pid::from_raw(i32::try_from(id).ok()?)),
    );
    let tail = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
    let mut readers = Vec::new();
    for (stream, name) in [
        (
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            "stdout",
        ),
        (
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            "stderr",
        ),
    ] {
        let Some(stream) = stream else { continue };
        let tail = tail.clone();
        let program = program.clone();
        readers.push(tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::info!(hook = %program, stream = name, "hook {program}: {line}");
                let mut t = tail
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                t.push_back(line);
                if t.len() > TAIL_LINES {
                    t.pop_front();
                }
            }
        }));
    }
    let ended = tokio::select! {
        status = child.wait() => Ok(status),
        () = tokio::time::sleep(limit) => Err(HookError::Timeout { program: program.clone(), limit }),
        reason = cancel.cancelled() => Err(HookError::Cancelled { program: program.clone(), reason: reason.to_string() }),
    };
    // Whatever it started goes with it, also when it exited by itself and
    // left a child holding its output open.
    drop(guard);
    let _ = child.kill().await;
    for r in readers {
        let _ = r.await;
    }
    let status = ended?.map_err(|e| HookError::Spawn {
        program: program.clone(),
        cause: e.to_string(),
    })?;
    if status.success() {
        return Ok(());
    }
    let tail = tail
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .cloned()
        .collect();
    Err(HookError::Failed {
        program,
        status: status.to_string(),
        tail,
    })
}

/// Runs hooks in order. A failing hook whose policy is `fail` stops the
/// list and is returned; one whose policy is `continue` is logged.
///
/// # Errors
/// The first hook that failed with `on-failure = "fail"`.
pub async fn run_all(
    hooks: &[toml::Spanned<Hook>],
    which: &str,
    env: &[(String, OsString)],
    cancel: &Cancel,
) -> Result<(), HookError> {
    for hook in hooks {
        let hook = hook.get_ref();
        match run(hook, env, cancel).await {
            Ok(()) => {}
            Err(e)
                if hook.on_failure == OnFailure::Continue
                    && !matches!(e, HookError::Cancelled { .. }) =>
            {
                tracing::warn!(
                    hook = which,
                    "{e} (on-failure = \"continue\": the run goes on)"
                );
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
