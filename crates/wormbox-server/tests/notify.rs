//! The real binary under a stand-in for systemd's notification socket:
//! `EXTEND_TIMEOUT_USEC=` while the archive opens (an upgrade of its format
//! can outlast systemd's start timeout), then `READY=1` once every listener
//! answers, with a `STATUS=` line;
//! `WATCHDOG=1` comes at half the watchdog's period while the writer
//! answers; `SIGTERM` brings `STOPPING=1` and a clean exit. A watchdog meant
//! for another process (`WATCHDOG_PID`) is not fed.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The daemon, killed if a test fails.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts wormboxd notifying `socket`, with `env` added; returns it and its
/// gRPC and metrics addresses.
fn start(dir: &std::path::Path, socket: &std::path::Path, env: &[(&str, String)]) -> (Daemon, SocketAddr, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wormboxd"))
        .args(["--listen", "127.0.0.1:0", "--s3-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("WORMBOX_LOG", "warn")
        .env("NOTIFY_SOCKET", socket)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("wormboxd starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut metrics = None;
    let grpc = loop {
        let line = lines.next().expect("wormboxd prints its addresses").unwrap();
        if let Some(addr) = line.strip_prefix("wormboxd metrics listening on ") {
            metrics = Some(addr.parse().unwrap());
        }
        if let Some(addr) = line.strip_prefix("wormboxd listening on ") {
            break addr.parse().unwrap();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    (Daemon(child), grpc, metrics.expect("the metrics address comes before gRPC's"))
}

/// The notifications up to and including `READY=1`, within `within` each.
fn until_ready(socket: &UnixDatagram, within: Duration) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let message = next(socket, within).expect("READY=1");
        let ready = message.lines().any(|l| l == "READY=1");
        seen.push(message);
        if ready {
            return seen;
        }
    }
}

/// The next notification within `within`.
fn next(socket: &UnixDatagram, within: Duration) -> Option<String> {
    socket.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).ok()?;
    Some(String::from_utf8(buf[..n].to_vec()).expect("notifications are text"))
}

#[test]
fn ready_comes_when_serving_the_watchdog_is_fed_and_sigterm_says_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let (mut daemon, grpc, metrics) = start(dir.path(), &path, &[("WATCHDOG_USEC", "400000".to_owned())]);

    let mut seen = until_ready(&socket, Duration::from_secs(60));
    let ready = seen.pop().unwrap();
    // More start time was asked for while the archive opened, and only then.
    assert!(!seen.is_empty(), "no EXTEND_TIMEOUT_USEC before READY=1");
    for message in &seen {
        assert!(message.lines().any(|l| l == "EXTEND_TIMEOUT_USEC=60000000"), "{message}");
        assert!(message.contains("STATUS=opening the archive"), "{message}");
    }
    assert!(!ready.contains("EXTEND_TIMEOUT_USEC"), "{ready}");
    let status = ready.lines().find(|l| l.starts_with("STATUS=")).expect("a status line");
    assert!(status.contains("ledger sequence") && status.contains("GiB free"), "{status}");
    // Said once serving: every listener answers.
    std::net::TcpStream::connect(grpc).expect("gRPC listens when READY=1 comes");
    std::net::TcpStream::connect(metrics).expect("the metrics listen when READY=1 comes");

    // Fed every 200 ms (half the period) while the writer answers.
    let started = Instant::now();
    let mut fed = 0;
    while fed < 3 {
        let message = next(&socket, Duration::from_secs(5)).expect("the watchdog is fed");
        if message.lines().any(|l| l == "WATCHDOG=1") {
            fed += 1;
            assert!(message.lines().any(|l| l.starts_with("STATUS=serving")), "{message}");
        } else {
            assert!(!message.contains("EXTEND_TIMEOUT_USEC"), "asked for start time once serving: {message}");
        }
    }
    assert!(started.elapsed() < Duration::from_secs(5), "three feeds took {:?}", started.elapsed());

    let pid = daemon.0.id() as libc::pid_t;
    // SAFETY: signalling a child this test started and still owns.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let stopping = loop {
        let message = next(&socket, Duration::from_secs(30)).expect("STOPPING=1");
        if message.lines().any(|l| l == "STOPPING=1") {
            break message;
        }
    };
    assert!(stopping.contains("STATUS=stopping"), "{stopping}");
    let exit = daemon.0.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn a_watchdog_meant_for_another_process_is_not_fed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let env = [("WATCHDOG_USEC", "200000".to_owned()), ("WATCHDOG_PID", "1".to_owned())];
    let (_daemon, _, _) = start(dir.path(), &path, &env);
    until_ready(&socket, Duration::from_secs(60));
    // Without a watchdog of its own, it only reports its status every 30 s.
    if let Some(message) = next(&socket, Duration::from_secs(1)) {
        assert!(!message.contains("WATCHDOG=1"), "{message}");
    }
}
