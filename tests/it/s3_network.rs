//! S3 over a real, imperfect network (issue 24): a TCP proxy between cairn
//! and the real S3 server cuts, resets and stalls connections; everything
//! completes byte-exact, with retries, and a vanished endpoint fails a
//! backup in bounded time without losing anything.

use cairn_e2e::{listing, random_bytes, s3_server, FaultyProxy, NetFaults, Repo};
use std::time::{Duration, Instant};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn s3_port() -> u16 {
    let endpoint = &s3_server().endpoint;
    endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {endpoint}"))
}

/// A repository on the S3 server, reached through `proxy`.
fn through(proxy: &FaultyProxy) -> Repo {
    let mut r = Repo::new_s3();
    for (k, v) in r.env.iter_mut() {
        if k == "AWS_ENDPOINT_URL_S3" {
            *v = proxy.endpoint();
        }
    }
    r.env.push(("CAIRN_S3_READ_TIMEOUT".into(), "2".into()));
    r
}

/// Runs cairn and returns its output and the retries it reported.
fn run(r: &Repo, args: &[&str], stdin: &[u8]) -> (std::process::Output, usize) {
    let o = r.run_with(args, stdin);
    let retries = stderr(&o)
        .lines()
        .filter(|l| l.contains("retrying"))
        .count();
    (o, retries)
}

#[test]
fn everything_completes_through_a_network_that_cuts_one_connection_in_ten() {
    let proxy = FaultyProxy::start(
        s3_port(),
        NetFaults {
            cut: 0.05,
            reset_on_connect: 0.02,
            stall: 0.03,
            // Longer than the read timeout (2 s): only cairn giving up on
            // the stalled connection keeps the test short.
            stall_for: Duration::from_secs(60),
            seed: 24,
        },
    );
    let started = Instant::now();
    let r = through(&proxy);
    let mut retries = Vec::new();
    let (o, n) = run(&r, &["init", "--pack-size-mib", "8"], b"");
    assert!(o.status.success(), "init: {}", stderr(&o));
    retries.push(("init", n));

    let data = random_bytes(256 << 20, 24);
    let (o, n) = run(&r, &["backup", "--stdin", "--name", "big.bin"], &data);
    assert!(o.status.success(), "backup: {}", stderr(&o));
    retries.push(("backup of 256 MiB", n));

    let src = r.tmp("tree");
    for i in 0..300u64 {
        let d = src.join(format!("d{}", i % 7));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join(format!("f{i}")),
            random_bytes(1000 + (i as usize * 997) % 200_000, i),
        )
        .unwrap();
    }
    let (o, n) = run(&r, &["backup", src.to_str().unwrap()], b"");
    assert!(o.status.success(), "tree backup: {}", stderr(&o));
    retries.push(("tree backup", n));

    // `latest` is the tree; the stream is the first snapshot.
    let stream = r.snapshots()[0]["id"].as_str().unwrap().to_owned();
    let (o, n) = run(&r, &["restore", &stream, "--stdout"], b"");
    assert!(o.status.success(), "restore: {}", stderr(&o));
    assert!(o.stdout == data, "the restored stream differs");
    retries.push(("restore of 256 MiB", n));

    let target = r.tmp("target");
    let (o, n) = run(
        &r,
        &["restore", "latest", "--target", target.to_str().unwrap()],
        b"",
    );
    assert!(o.status.success(), "tree restore: {}", stderr(&o));
    assert_eq!(
        listing(&src),
        listing(&target.join(src.strip_prefix("/").unwrap()))
    );
    retries.push(("tree restore", n));

    let mut fresh = through(&proxy);
    fresh.path = r.path.clone();
    fresh.catalog = r.tmp("fresh.catalog");
    let (o, n) = run(&fresh, &["catalog", "rebuild"], b"");
    assert!(o.status.success(), "catalog rebuild: {}", stderr(&o));
    assert_eq!(fresh.snapshots().len(), 2);
    retries.push(("catalog rebuild", n));

    let total: usize = retries.iter().map(|(_, n)| n).sum();
    eprintln!(
        "{} connections damaged ({} stalled); retries: {retries:?}",
        proxy.damaged(),
        proxy.stalled()
    );
    assert!(
        proxy.damaged() > 5,
        "the proxy damaged too little to mean anything"
    );
    assert!(total > 0, "no retry: the faults did not reach cairn");
    // Every stall lasts a minute: only cairn giving up on it after its read
    // timeout lets the whole test finish sooner.
    assert!(proxy.stalled() > 0, "no stall happened");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "a stall was waited out"
    );
}

#[test]
fn with_the_endpoint_gone_a_backup_fails_in_bounded_time_and_nothing_is_lost() {
    let proxy = FaultyProxy::start(s3_port(), NetFaults::none());
    let port = proxy.port;
    let r = through(&proxy);
    r.ok(&["init"]);
    let first = random_bytes(2 << 20, 5);
    r.ok_with(&["backup", "--stdin"], &first);
    drop(proxy);

    let started = Instant::now();
    let o = r.run_with(
        &["--retries", "3", "backup", "--stdin"],
        &random_bytes(1 << 20, 6),
    );
    let took = started.elapsed();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(took < Duration::from_secs(60), "took {took:?}");
    let err = stderr(&o);
    assert!(
        err.contains(&format!("127.0.0.1:{port}")),
        "the endpoint is not named: {err}"
    );
    assert!(
        !err.contains("credentials"),
        "the hint sends the operator to the wrong place: {err}"
    );

    // Back again: the earlier snapshot restores, and no new one was written.
    let proxy = FaultyProxy::start_on(port, s3_port(), NetFaults::none());
    assert_eq!(r.snapshots().len(), 1);
    assert_eq!(r.ok(&["restore", "latest", "--stdout"]), first);
    drop(proxy);
}
