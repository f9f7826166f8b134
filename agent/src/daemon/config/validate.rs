//! The checks of a configuration file after it parsed: those that need
//! more than one value (a job's repository exists), or the file system
//! (a password file can be read), or a parser of their own (cron
//! expressions, time zones, URLs).

use super::{AgentFile, JobSource, Problem, RepoSettings, When};
use crate::retention::Rules;
use crate::source::files::FilesSettings;
use std::path::Path;
use toml::Spanned;

/// Byte offsets to lines and columns.
pub(super) struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    pub(super) fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { starts }
    }

    /// 1-based line and column of byte `offset`.
    pub(super) fn at(&self, offset: usize) -> (usize, usize) {
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line.saturating_sub(1)];
        (line, offset - start + 1)
    }
}

/// The checks that need more than one value, or the file system.
pub(super) struct Check<'a> {
    pub(super) lines: &'a Lines,
    pub(super) problems: Vec<Problem>,
}

impl Check<'_> {
    fn add<T>(&mut self, at: &Spanned<T>, key: &str, message: impl Into<String>) {
        let (line, column) = if at.span().is_empty() && at.span().start == 0 {
            (0, 0)
        } else {
            self.lines.at(at.span().start)
        };
        self.problems.push(Problem {
            line,
            column,
            key: key.to_owned(),
            message: message.into(),
        });
    }

    pub(super) fn file(&mut self, file: &AgentFile) {
        let a = &file.agent;
        if a.listen.get_ref().parse::<std::net::SocketAddr>().is_err() {
            self.add(
                &a.listen,
                "agent.listen",
                format!(
                    "{:?} is not an address and port (for example \"0.0.0.0:9464\")",
                    a.listen.get_ref()
                ),
            );
        }
        if let Some(h) = &a.host {
            if h.get_ref().is_empty() || h.get_ref().chars().any(char::is_control) {
                self.add(
                    h,
                    "agent.host",
                    "must be a non-empty name without control characters",
                );
            }
        }
        if *a.max_concurrent_jobs.get_ref() == 0 {
            self.add(
                &a.max_concurrent_jobs,
                "agent.max-concurrent-jobs",
                "must be at least 1",
            );
        }
        if let Some(r) = &file.repository {
            self.repository(r, "repository");
        }
        for (name, r) in &file.repositories {
            self.repository(r, &format!("repositories.{name}"));
        }
        let known = |name: &Option<Spanned<String>>| match name {
            None => file.repository.is_some(),
            Some(n) => file.repositories.contains_key(n.get_ref()),
        };
        if let Some(p) = &file.prune {
            let s = p.get_ref();
            self.when(s.when(), "prune", p);
            if !known(&s.repository) {
                self.unknown_repository(&s.repository, p, "prune");
            }
            if let Some(m) = &s.max_unused {
                if !(0.0..=100.0).contains(m.get_ref()) {
                    self.add(m, "prune.max-unused", "must be a percentage, 0 to 100");
                }
            }
        }
        if let Some(c) = &file.check {
            let s = c.get_ref();
            self.when(s.when(), "check", c);
            if !known(&s.repository) {
                self.unknown_repository(&s.repository, c, "check");
            }
            if let Some(r) = &s.read_data {
                if let Err(e) = super::read_data(r.get_ref()) {
                    self.add(r, "check.read-data", e);
                }
            }
        }
        for (name, job) in &file.jobs {
            let key = format!("jobs.{name}");
            if !valid_job_name(name) {
                self.add(
                    job,
                    &key,
                    "a job name is letters, digits, '-', '_' and '.', at most 64",
                );
            }
            let j = job.get_ref();
            self.when(j.when(), &key, job);
            if !known(&j.repository) {
                self.unknown_repository(&j.repository, job, &key);
            }
            for t in &j.tags {
                if !cairn_repo_format::valid_tag(t.get_ref()) {
                    self.add(
                        t,
                        &format!("{key}.tags"),
                        format!(
                            "{:?} is not a valid tag (1 to {} bytes, no comma or control character)",
                            t.get_ref(),
                            cairn_repo_format::MAX_TAG_LEN
                        ),
                    );
                }
            }
            if let Some(r) = &j.retention {
                if r.get_ref() == &Rules::default() {
                    self.add(
                        r,
                        &format!("{key}.retention"),
                        "no rule: give keep-last, keep-daily, … (or remove the section to keep everything)",
                    );
                }
            }
            for (which, hooks) in [("pre", &j.pre), ("post", &j.post)] {
                for h in hooks {
                    if h.get_ref().command.is_empty() {
                        self.add(h, &format!("{key}.{which}.command"), "is empty");
                    }
                }
            }
            self.source(&j.source, &format!("{key}.source"));
            if let JobSource::Copy(c) = j.source.get_ref() {
                let from = format!("{key}.source.from");
                let named = |n: &str| {
                    if n == super::super::repos::DEFAULT {
                        file.repository.is_some()
                    } else {
                        file.repositories.contains_key(n)
                    }
                };
                if !named(&c.from) {
                    self.add(
                        &j.source,
                        &from,
                        format!("no repository {:?}: name one of [repositories], or default for [repository]", c.from),
                    );
                } else if super::repository_name(j.repository.as_ref()) == c.from {
                    self.add(
                        &j.source,
                        &from,
                        "is the job's own repository: copy into another one",
                    );
                }
                if !j.tags.is_empty() {
                    self.add(
                        &j.source,
                        &format!("{key}.tags"),
                        "is not for a copy job: copies keep their originals' tags",
                    );
                }
            }
            if let JobSource::Drill(_) = j.source.get_ref() {
                let nothing = "is not for a drill job: it writes no snapshot";
                if !j.tags.is_empty() {
                    self.add(&j.source, &format!("{key}.tags"), nothing);
                }
                if let Some(r) = &j.retention {
                    self.add(r, &format!("{key}.retention"), nothing);
                }
            }
        }
    }

    fn repository(&mut self, r: &Spanned<RepoSettings>, key: &str) {
        let s = r.get_ref();
        if s.url.trim().is_empty() {
            self.add(r, &format!("{key}.url"), "is empty");
        }
        match (&s.password_file, &s.password_env) {
            (Some(f), Some(_)) => self.add(
                f,
                &format!("{key}.password-file"),
                "give password-file or password-env, not both",
            ),
            (Some(f), None) => self.readable(f, f.get_ref(), &format!("{key}.password-file")),
            (None, Some(v)) => {
                if std::env::var_os(v.get_ref()).is_none() {
                    self.add(
                        v,
                        &format!("{key}.password-env"),
                        format!("the environment variable {} is not set", v.get_ref()),
                    );
                }
            }
            // CAIRN_PASSWORD_FILE or CAIRN_PASSWORD then, as for the CLI.
            (None, None) => {}
        }
    }

    /// `file` (named at `at`) can be opened for reading.
    fn readable<T>(&mut self, at: &Spanned<T>, file: &Path, key: &str) {
        if let Err(e) = std::fs::File::open(file) {
            self.add(at, key, format!("cannot read {}: {e}", file.display()));
        }
    }

    fn unknown_repository<T>(
        &mut self,
        name: &Option<Spanned<String>>,
        at: &Spanned<T>,
        key: &str,
    ) {
        match name {
            Some(n) => self.add(
                n,
                &format!("{key}.repository"),
                format!("no [repositories.{}] is defined", n.get_ref()),
            ),
            None => self.add(
                at,
                key,
                "no repository: define [repository], or name one of [repositories] here",
            ),
        }
    }

    fn when<T>(&mut self, w: When<'_>, key: &str, at: &Spanned<T>) {
        match (w.schedule, w.every) {
            (Some(s), Some(_)) => {
                self.add(
                    s,
                    &format!("{key}.schedule"),
                    "give schedule or every, not both",
                );
            }
            (Some(s), None) => {
                if let Err(e) = cron(s.get_ref()) {
                    self.add(s, &format!("{key}.schedule"), e);
                }
            }
            (None, Some(e)) if e.get_ref().0.is_zero() => {
                self.add(e, &format!("{key}.every"), "must be longer than 0s");
            }
            (None, None) if key == "prune" || key == "check" => {
                self.add(at, key, format!("give schedule or every: when to {key}"));
            }
            _ => {}
        }
        if let Some(z) = w.time_zone {
            if w.schedule.is_none() {
                self.add(z, &format!("{key}.time-zone"), "is only for schedule");
            } else if let Err(e) = jiff::tz::TimeZone::get(z.get_ref()) {
                self.add(
                    z,
                    &format!("{key}.time-zone"),
                    format!("{:?} is not a known time zone ({e})", z.get_ref()),
                );
            }
        }
    }

    fn source(&mut self, s: &Spanned<JobSource>, key: &str) {
        match s.get_ref() {
            JobSource::Postgres(pg) => {
                if let Some(f) = &pg.passfile {
                    self.readable(s, f, &format!("{key}.passfile"));
                }
            }
            JobSource::Redis(r) => {
                let url = format!("{key}.url");
                match url::Url::parse(&r.url) {
                    Err(e) => self.add(s, &url, format!("{:?} is not a URL: {e}", r.url)),
                    Ok(u) if u.password().is_some() => self.add(
                        s,
                        &url,
                        "holds a password: put it in a file and name it with password-file",
                    ),
                    Ok(u) if !matches!(u.scheme(), "redis" | "rediss") => {
                        self.add(s, &url, "must start with redis:// or rediss://");
                    }
                    Ok(_) => {}
                }
                if let Some(f) = &r.password_file {
                    self.readable(s, f, &format!("{key}.password-file"));
                }
                if let Some(f) = &r.tls_ca_file {
                    self.readable(s, f, &format!("{key}.tls-ca-file"));
                }
            }
            JobSource::Files(f) => {
                if f.paths.is_empty() && f.files_from.is_empty() {
                    self.add(s, &format!("{key}.paths"), "is empty");
                }
                for file in &f.files_from {
                    self.readable(s, file, &format!("{key}.files-from"));
                }
                for p in f.paths.iter().filter(|p| !p.is_absolute()) {
                    self.add(
                        s,
                        &format!("{key}.paths"),
                        format!("{} is not an absolute path", p.display()),
                    );
                }
                self.selection(s, f, key);
            }
            JobSource::Command(c) => {
                if c.command.is_empty() {
                    self.add(s, &format!("{key}.command"), "is empty");
                }
            }
            JobSource::Copy(c) => {
                if let Err(e) = c.filter().normalized() {
                    self.add(s, &format!("{key}.source-kinds"), e.to_string());
                }
            }
            JobSource::Drill(d) => {
                if let Err(e) = d.filter().normalized() {
                    self.add(s, &format!("{key}.source-kinds"), e.to_string());
                }
                if d.pg_host.is_none()
                    && (d.pg_port.is_some() || d.pg_user.is_some() || d.pg_dbname.is_some())
                {
                    self.add(
                        s,
                        &format!("{key}.pg-host"),
                        "is missing: pg-port, pg-user and pg-dbname name a server with it",
                    );
                }
                if d.pg_host.is_some() && d.pg_bindir.is_some() {
                    self.add(
                        s,
                        &format!("{key}.pg-bindir"),
                        "is for the temporary server, not with pg-host",
                    );
                }
                if d.window.is_some_and(|w| w.0.as_secs() == 0) {
                    self.add(s, &format!("{key}.window"), "is zero");
                }
            }
            JobSource::Kubernetes(k) => {
                let select = format!("{key}.select");
                if !k.select.paths.is_empty() || !k.select.files_from.is_empty() {
                    self.add(
                        s,
                        &format!("{select}.paths"),
                        "is not for a kubernetes job: it backs up the volumes it finds",
                    );
                }
                self.selection(s, &k.select, &select);
                if !k.kubelet_dir.is_absolute() {
                    self.add(
                        s,
                        &format!("{key}.kubelet-dir"),
                        format!("{} is not an absolute path", k.kubelet_dir.display()),
                    );
                }
                if k.annotation.is_empty() {
                    self.add(s, &format!("{key}.annotation"), "is empty");
                }
                if k.label_selector
                    .as_deref()
                    .is_some_and(|l| l.trim().is_empty())
                {
                    self.add(s, &format!("{key}.label-selector"), "is empty");
                }
            }
        }
    }

    /// The keys of a files job that choose what its walk leaves out.
    fn selection(&mut self, s: &Spanned<JobSource>, f: &FilesSettings, key: &str) {
        if let Err(e) = crate::source::files::Excludes::new(&f.excludes, &f.iexcludes) {
            self.add(s, &format!("{key}.excludes"), e);
        }
        for file in &f.exclude_files {
            self.readable(s, file, &format!("{key}.exclude-files"));
        }
        for name in f
            .exclude_if_present
            .iter()
            .filter(|n| n.is_empty() || n.contains('/'))
        {
            self.add(
                s,
                &format!("{key}.exclude-if-present"),
                format!("{name:?} is not a file name"),
            );
        }
    }
}

/// Whether `name` can name a job (it appears in metrics and logs).
fn valid_job_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Parses a cron expression: five fields (minute hour day month weekday),
/// or six with seconds first.
///
/// # Errors
/// What is wrong with it.
pub fn cron(expr: &str) -> Result<croner::Cron, String> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build()
        .parse(expr)
        .map_err(|e| format!("{expr:?} is not a cron expression: {e}"))
}
