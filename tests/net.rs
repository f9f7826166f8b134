//! A TCP proxy that damages connections as an imperfect network does, for
//! the tests of cairn against the real S3 server over it.

/// How [`FaultyProxy`] damages the connections it carries. Connections are
/// kept alive and reused for many requests, so the fates are drawn for
/// every [`NET_WINDOW`] bytes each direction carries (about a pack's upload
/// or a restore's read), as well as once when a connection is accepted.
#[derive(Debug, Clone, Copy)]
pub struct NetFaults {
    /// Of each window: cut at a random byte in it, closed cleanly or reset.
    pub cut: f64,
    /// Of each connection: reset as soon as it is accepted, before the
    /// server is reached.
    pub reset_on_connect: f64,
    /// Of each window of the server's answers: stalled at a random byte for
    /// `stall_for`, then closed.
    pub stall: f64,
    /// How long a stall lasts.
    pub stall_for: std::time::Duration,
    /// Seed of the fates.
    pub seed: u64,
}

impl NetFaults {
    /// A clean network.
    pub fn none() -> Self {
        NetFaults {
            cut: 0.0,
            reset_on_connect: 0.0,
            stall: 0.0,
            stall_for: std::time::Duration::ZERO,
            seed: 0,
        }
    }
}

/// A TCP proxy on 127.0.0.1 in front of a real server, damaging connections
/// as an imperfect network does ([`NetFaults`]). Dropping it closes the
/// port and every connection it carries.
#[derive(Debug)]
pub struct FaultyProxy {
    /// The port it listens on.
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    live: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
    damaged: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stalls: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// The bytes of one direction of a connection for which [`NetFaults`]
/// draws a fate.
pub const NET_WINDOW: u64 = 4 << 20;

impl FaultyProxy {
    /// Listens on a free port and forwards to 127.0.0.1:`upstream`.
    ///
    /// # Panics
    /// If it cannot listen.
    pub fn start(upstream: u16, faults: NetFaults) -> FaultyProxy {
        Self::start_on(0, upstream, faults)
    }

    /// The same on a given port (0: any free one).
    ///
    /// # Panics
    /// If it cannot listen.
    pub fn start_on(port: u16, upstream: u16, faults: NetFaults) -> FaultyProxy {
        use rand::{Rng, SeedableRng};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("proxy listen");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let port = listener.local_addr().expect("proxy address").port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let live = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let damaged = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stalls = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (stop2, live2, damaged2, stalls2) =
            (stop.clone(), live.clone(), damaged.clone(), stalls.clone());
        std::thread::spawn(move || {
            let mut rng = rand::rngs::StdRng::seed_from_u64(faults.seed);
            while !stop2.load(Ordering::Relaxed) {
                let client = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(std::time::Duration::from_millis(2));
                        continue;
                    }
                    Err(_) => break,
                };
                let _ = client.set_nonblocking(false);
                if rng.gen::<f64>() < faults.reset_on_connect {
                    damaged2.fetch_add(1, Ordering::Relaxed);
                    let _ = rustix::net::sockopt::set_socket_linger(
                        &client,
                        Some(std::time::Duration::ZERO),
                    );
                    drop(client);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = (
                    client.try_clone(),
                    server.try_clone(),
                    client.try_clone(),
                    server.try_clone(),
                ) else {
                    continue;
                };
                {
                    let mut l = live2
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    l.retain(|x: &std::net::TcpStream| x.peer_addr().is_ok());
                    l.extend([c3, s3]);
                }
                let up = Pump {
                    cut: faults.cut,
                    stall: 0.0,
                    stall_for: faults.stall_for,
                    seed: rng.gen(),
                    damaged: damaged2.clone(),
                    stalls: stalls2.clone(),
                };
                let down = Pump {
                    stall: faults.stall,
                    seed: rng.gen(),
                    ..up.clone()
                };
                std::thread::spawn(move || up.run(client, server));
                std::thread::spawn(move || down.run(s2, c2));
            }
        });
        FaultyProxy {
            port,
            stop,
            live,
            damaged,
            stalls,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Connections damaged so far (stalls included).
    pub fn damaged(&self) -> u64 {
        self.damaged.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Connections stalled so far.
    pub fn stalled(&self) -> u64 {
        self.stalls.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // The listener closes within a few ms (its thread sees `stop`).
        std::thread::sleep(std::time::Duration::from_millis(20));
        let live = self
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for s in live.iter() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// One direction of a proxied connection.
#[derive(Debug, Clone)]
struct Pump {
    cut: f64,
    stall: f64,
    stall_for: std::time::Duration,
    seed: u64,
    damaged: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stalls: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Pump {
    /// Copies `from` into `to`, drawing a fate for every [`NET_WINDOW`]
    /// bytes: at a cut, closes (or resets) both; at a stall, stops for
    /// `stall_for`, then closes both.
    fn run(self, mut from: std::net::TcpStream, mut to: std::net::TcpStream) {
        use rand::{Rng, SeedableRng};
        use std::io::{Read, Write};
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed);
        let mut buf = vec![0u8; 64 << 10];
        // The next damage: (at byte, stall rather than cut, reset).
        let mut draw = |from: u64| -> Option<(u64, bool, bool)> {
            let roll: f64 = rng.gen();
            let at = from + rng.gen_range(0..NET_WINDOW);
            if roll < self.cut {
                Some((at, false, rng.gen()))
            } else if roll < self.cut + self.stall {
                Some((at, true, false))
            } else {
                None
            }
        };
        let mut seen = 0u64;
        let mut window_end = NET_WINDOW;
        let mut next = draw(0);
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let len = n as u64;
            if let Some((at, stall, reset)) = next.filter(|(at, _, _)| seen + len > *at) {
                let keep = usize::try_from(at.saturating_sub(seen)).unwrap_or(0);
                let _ = to.write_all(&buf[..keep]);
                self.damaged
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if stall {
                    self.stalls
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    std::thread::sleep(self.stall_for);
                }
                if reset {
                    let zero = Some(std::time::Duration::ZERO);
                    let _ = rustix::net::sockopt::set_socket_linger(&from, zero);
                    let _ = rustix::net::sockopt::set_socket_linger(&to, zero);
                }
                let _ = from.shutdown(std::net::Shutdown::Both);
                let _ = to.shutdown(std::net::Shutdown::Both);
                return;
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
            seen += len;
            while seen >= window_end {
                next = draw(window_end);
                window_end += NET_WINDOW;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    }
}
