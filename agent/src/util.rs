//! Small helpers: host and user names, time, sizes, temporary names.

use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// A fresh temporary name in `dir`: `.tmp-` and 16 random hex digits.
/// Every repository reader ignores names starting with a dot.
pub fn temp_path(dir: &Path) -> PathBuf {
    dir.join(format!(".tmp-{}", hex::encode(rand::random::<[u8; 8]>())))
}

/// This host's name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// The user running cairn: the name of its user id in the system's user
/// database (through NSS, so LDAP and SSSD users too), else `$USER`, else
/// `uid N`.
pub fn username() -> String {
    let uid = nix::unistd::geteuid();
    if let Ok(Some(user)) = nix::unistd::User::from_uid(uid) {
        return user.name;
    }
    match std::env::var("USER") {
        Ok(u) if !u.is_empty() => u,
        _ => format!("uid {uid}"),
    }
}

/// The host name snapshots and audit records name: `CAIRN_HOST` (the
/// node, in the chart), else the system's.
pub fn host() -> String {
    env_set("CAIRN_HOST").map_or_else(hostname, |h| h.to_string_lossy().into_owned())
}

/// An environment variable's value, if it is set and not empty: `VAR=`
/// in a manifest or a shell means "not set", as it does to most tools.
pub fn env_set(name: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

/// Now, in ns since the epoch.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Whether a process with this id exists on this host (signal 0 probes
/// without sending anything; a process we may not signal exists too).
pub fn process_exists(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    match rustix::process::Pid::from_raw(pid) {
        None => false,
        Some(p) => !matches!(
            rustix::process::test_kill_process(p),
            Err(rustix::io::Errno::SRCH)
        ),
    }
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn format_time(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns)).map_or_else(
        |_| format!("{ns} ns"),
        |t| t.strftime("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

/// A time in ns since the epoch as RFC 3339 in UTC, to the nanosecond
/// where it has them: `2026-12-07T01:04:29.5Z`.
pub fn rfc3339(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns))
        .map_or_else(|_| format!("{ns} ns"), |t| t.to_string())
}

/// Serializes a time in ns since the epoch as [`rfc3339`] (for
/// `#[serde(serialize_with)]`).
///
/// # Errors
/// The serializer's.
pub fn serialize_rfc3339<S: serde::Serializer>(ns: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*ns))
}

/// A name or path as one line of text: control characters (a newline in
/// a file name) escaped as `\n`, `\t`, `\u{1b}`, and then a backslash as
/// `\\`, so that one entry is one line and nothing is ambiguous. Text
/// without a control character is unchanged.
pub fn escape_controls(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() || c == '\\' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Bytes in binary units: `1.5 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A passphrase file's contents, without the one line ending an editor
/// adds (`\n` or `\r\n`).
///
/// # Errors
/// If the file cannot be read.
pub fn read_passphrase_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut b = std::fs::read(path)?;
    if b.last() == Some(&b'\n') {
        b.pop();
        if b.last() == Some(&b'\r') {
            b.pop();
        }
    }
    Ok(b)
}

/// `true`, for serde defaults of settings that are on unless turned off.
pub fn yes() -> bool {
    true
}

/// Makes `p` absolute and removes `.` and `..` lexically (symlinks are not
/// followed: the path is stored as given).
pub fn absolute(p: &Path) -> std::io::Result<PathBuf> {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00");
        assert_eq!(
            format_time(1_763_724_848_000_000_000),
            "2025-11-21 11:34:08"
        );
        assert_eq!(
            format_time(951_782_400 * 1_000_000_000),
            "2000-02-29 00:00:00"
        );
        assert_eq!(format_time(-1_000_000_000), "1969-12-31 23:59:59");
        assert_eq!(rfc3339(1_763_724_848_000_000_000), "2025-11-21T11:34:08Z");
        assert_eq!(rfc3339(1_763_724_848_500_000_000), "2025-11-21T11:34:08.5Z");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_controls("plain \\ name"), "plain \\ name");
        assert_eq!(escape_controls("a\nb\\c\t\u{1b}"), "a\\nb\\\\c\\t\\u{1b}");
    }

    #[test]
    fn sizes() {
        assert_eq!(human_bytes(5), "5 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn absolute_is_lexical() -> std::io::Result<()> {
        assert_eq!(absolute(Path::new("/a/./b/../c"))?, PathBuf::from("/a/c"));
        assert_eq!(absolute(Path::new("/.."))?, PathBuf::from("/"));
        assert!(absolute(Path::new("x"))?.is_absolute());
        Ok(())
    }
}
