//! Exact row counts, recorded with a dump (format §7.1 `counts`) and read
//! again from a restored database by a drill.
//!
//! At backup a `psql` session opens a repeatable-read, read-only
//! transaction and exports its snapshot; pg_dump is given that snapshot
//! (`--snapshot`), so it dumps exactly the rows the session counts. The
//! count runs while pg_dump dumps, and the transaction stays open until
//! the dump has ended. Counting reads every table once more: about as much
//! reading as the dump itself, on the server (`--no-row-counts` skips it).

use super::super::SourceError;
use cairn_repo_format::TableRows;
use std::ffi::OsString;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// One JSON line: `[[schema, table, "rows"], ..]` for every table whose
/// rows pg_dump dumps (ordinary tables and partitions; not partitioned
/// parents, views, foreign tables, system schemas or an extension's
/// tables). Each count runs through `query_to_xml`, so one statement
/// counts them all.
pub(crate) const COUNT_SQL: &str = "select coalesce(json_agg(json_build_array(n.nspname, c.relname, \
(xpath('/row/n/text()', query_to_xml(format('select count(*) as n from %I.%I', n.nspname, c.relname), false, true, '')))[1]::text)), '[]') \
from pg_class c join pg_namespace n on n.oid = c.relnamespace \
where c.relkind = 'r' and n.nspname <> 'information_schema' and n.nspname !~ '^pg_' \
and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e');";

/// pg_dump options that leave some tables' rows out of the dump (or choose
/// the snapshot): with one of them the counts would not match the dump, so
/// none are recorded.
const SELECTIONS: &[&str] = &[
    "-t",
    "--table",
    "--table-and-children",
    "-T",
    "--exclude-table",
    "--exclude-table-and-children",
    "--exclude-table-data",
    "--exclude-table-data-and-children",
    "-n",
    "--schema",
    "-N",
    "--exclude-schema",
    "-s",
    "--schema-only",
    "-e",
    "--extension",
    "--exclude-extension",
    "--no-unlogged-table-data",
    "--filter",
    "--snapshot",
];

/// The first of `extra` that makes row counts impossible to match.
pub(crate) fn selection(extra: &[String]) -> Option<&str> {
    extra.iter().map(String::as_str).find(|a| {
        SELECTIONS.iter().any(|s| {
            a == s
                || a.strip_prefix(s).is_some_and(|rest| {
                    // `--table=x`, or `-tx` for a short option.
                    rest.starts_with('=') || (s.len() == 2 && !rest.is_empty())
                })
        })
    })
}

/// Parses [`COUNT_SQL`]'s answer, sorted as format §7.1 wants.
///
/// # Errors
/// [`SourceError::Postgres`] for an answer of another shape.
pub(crate) fn parse(line: &str) -> Result<Vec<TableRows>, SourceError> {
    let bad = |why: String| SourceError::Postgres {
        detail: format!("unexpected row counts from psql ({why})"),
    };
    let rows: Vec<(String, String, String)> =
        serde_json::from_str(line.trim()).map_err(|e| bad(e.to_string()))?;
    let mut out = rows
        .into_iter()
        .map(|(schema, table, n)| {
            let rows = n
                .parse()
                .map_err(|_| bad(format!("{schema}.{table}: {n:?}")))?;
            Ok(TableRows {
                schema,
                table,
                rows,
            })
        })
        .collect::<Result<Vec<_>, SourceError>>()?;
    out.sort_by(|a, b| (&a.schema, &a.table).cmp(&(&b.schema, &b.table)));
    out.dedup_by(|a, b| a.schema == b.schema && a.table == b.table);
    Ok(out)
}

/// A psql session holding the transaction whose snapshot a dump uses,
/// counting its tables meanwhile.
pub(crate) struct Counter {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// The exported snapshot, for `pg_dump --snapshot`.
    pub snapshot: String,
}

impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counter")
            .field("snapshot", &self.snapshot)
            .finish_non_exhaustive()
    }
}

impl Counter {
    /// Starts psql (`argv`: the program and its connection options), opens
    /// the transaction, exports its snapshot and sends the count.
    ///
    /// # Errors
    /// [`SourceError`] if psql cannot start or the server refuses (a
    /// standby that cannot export snapshots, say).
    pub(crate) async fn start(
        argv: &[String],
        env: &[(String, OsString)],
    ) -> Result<Self, SourceError> {
        let mut child = tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .args([
                "--no-psqlrc",
                "--no-align",
                "--tuples-only",
                "--quiet",
                "--set=ON_ERROR_STOP=1",
            ])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|cause| SourceError::Spawn {
                program: argv[0].clone(),
                cause,
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(SourceError::Postgres {
                detail: "psql started without its pipes".into(),
            });
        };
        let mut counter = Counter {
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
            snapshot: String::new(),
        };
        // pg_dump turns row security off too: a table it would hide rows
        // of fails both.
        counter
            .send("begin isolation level repeatable read read only;\nset row_security = off;\nselect pg_export_snapshot();\n")
            .await?;
        counter.snapshot = counter.line().await?;
        counter.send(&format!("{COUNT_SQL}\n")).await?;
        Ok(counter)
    }

    async fn send(&mut self, text: &str) -> Result<(), SourceError> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(self.failed().await);
        };
        if stdin.write_all(text.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
            return Err(self.failed().await);
        }
        Ok(())
    }

    /// The next line psql prints; its error when it ends instead.
    async fn line(&mut self) -> Result<String, SourceError> {
        let mut line = String::new();
        match self.stdout.read_line(&mut line).await {
            Ok(n) if n > 0 => Ok(line.trim_end_matches('\n').to_owned()),
            _ => Err(self.failed().await),
        }
    }

    /// psql's error: its exit status and last words.
    async fn failed(&mut self) -> SourceError {
        self.stdin = None;
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err).await;
        }
        let status = self.child.wait().await;
        let tail: Vec<&str> = err.lines().rev().take(4).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        SourceError::Postgres {
            detail: format!(
                "counting rows with psql failed ({}): {}",
                status.map_or_else(|e| e.to_string(), |s| s.to_string()),
                tail.join("\n").trim()
            ),
        }
    }

    /// The counts; ends the transaction (the dump has ended).
    ///
    /// # Errors
    /// [`SourceError::Postgres`] if the count failed.
    pub(crate) async fn finish(mut self) -> Result<Vec<TableRows>, SourceError> {
        let line = self.line().await?;
        let rows = parse(&line)?;
        self.send("commit;\n").await?;
        self.stdin = None;
        match self.child.wait().await {
            Ok(s) if s.success() => Ok(rows),
            _ => Err(self.failed().await),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_that_select_tables_are_found() {
        let v = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(selection(&v(&["--table=a"])), Some("--table=a"));
        assert_eq!(selection(&v(&["-tfoo"])), Some("-tfoo"));
        assert_eq!(selection(&v(&["-T", "x"])), Some("-T"));
        assert_eq!(
            selection(&v(&["--exclude-table-data=public.log"])),
            Some("--exclude-table-data=public.log")
        );
        assert_eq!(selection(&v(&["--no-owner", "--data-only", "-v"])), None);
        // A longer option that only starts like a selection is not one.
        assert_eq!(selection(&v(&["--tablespace-thing"])), None);
    }

    #[test]
    fn counts_are_parsed_and_sorted() {
        let rows =
            parse(r#"[["public","b","3"],["app","Odd|na\nme","0"],["public","a","12"]]"#).unwrap();
        let names: Vec<_> = rows
            .iter()
            .map(|r| (r.schema.as_str(), r.table.as_str(), r.rows))
            .collect();
        assert_eq!(
            names,
            [
                ("app", "Odd|na\nme", 0),
                ("public", "a", 12),
                ("public", "b", 3)
            ]
        );
        assert!(parse("[[\"public\",\"a\",\"x\"]]").is_err());
        assert!(parse("ERROR").is_err());
        assert!(parse("[]").unwrap().is_empty());
    }
}
