//! The simulator against the protocol table, with a manual clock, on an
//! in-memory duplex and on a real pseudo-terminal.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use wormbox_token::source::{LineToken, SerialToken, SourceError, TokenSource};
use wormbox_token::{Algorithm, OtpParams, Seed};

use super::*;

const SEED: &[u8] = b"12345678901234567890";

fn config(fault: Fault) -> TokenConfig {
    TokenConfig {
        serial: "GAHT12345678".into(),
        seed: Seed::new(SEED.to_vec()).unwrap(),
        params: OtpParams::default(),
        clock_offset_secs: 0,
        drift_ppm: 0,
        fault,
    }
}

/// Starts a token on one end of a socket pair and returns the other end.
fn spawn(config: TokenConfig, time: ManualTime) -> UnixStream {
    let (ours, theirs) = UnixStream::pair().unwrap();
    theirs.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut token = Token::new(config, Box::new(time)).unwrap();
    std::thread::spawn(move || token.serve(theirs));
    ours.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    ours
}

fn exchange(stream: &mut UnixStream, input: &[u8], lines: usize) -> Vec<String> {
    stream.write_all(input).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    (0..lines)
        .map(|_| {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert!(line.ends_with("\r\n"), "{line:?}");
            line.trim_end().to_owned()
        })
        .collect()
}

#[test]
fn answers_the_protocol_table() {
    let time = ManualTime::new(59_000);
    let mut s = spawn(config(Fault::None), time.clone());
    let out = exchange(&mut s, b"PING\r\nID\r\nINFO\nOTP\r\nOTP\r\nFOO\r\notp\r\n", 7);
    assert_eq!(
        out,
        [
            "OK PONG",
            "OK ID GAHT12345678 WBX-GEMSIM 1.0",
            "OK INFO ALG=SHA1 DIGITS=6 STEP=30",
            "OK OTP 287082",
            "OK OTP 287082",
            "ERR 400 BAD-COMMAND",
            "ERR 400 BAD-COMMAND",
        ]
    );
    // The display changes at the step boundary, never by asking again.
    time.set_millis(60_000);
    assert_eq!(exchange(&mut s, b"OTP\r\n", 1), ["OK OTP 359152"]);
    // An overlong line gets one error, and the line after it is served.
    let mut long = vec![b'X'; 300];
    long.extend_from_slice(b"\r\nPING\r\n");
    assert_eq!(exchange(&mut s, &long, 2), ["ERR 400 LINE-TOO-LONG", "OK PONG"]);
    // Binary noise is a bad command, not a crash.
    assert_eq!(exchange(&mut s, b"\x00\xff\xfe\r\nPING\r\n", 2), ["ERR 400 BAD-COMMAND", "OK PONG"]);
    // There is no way to set the time or read the seed.
    assert_eq!(exchange(&mut s, b"TIME 0\r\nSEED\r\n", 2), ["ERR 400 BAD-COMMAND", "ERR 400 BAD-COMMAND"]);
}

#[test]
fn clock_offset_and_drift_move_the_display() {
    let time = ManualTime::new(59_000);
    let mut ahead = config(Fault::None);
    ahead.clock_offset_secs = 30;
    let mut s = spawn(ahead, time.clone());
    assert_eq!(exchange(&mut s, b"OTP\r\n", 1), ["OK OTP 359152"]);

    let mut drifting = config(Fault::None);
    drifting.drift_ppm = 100_000; // 10 % fast: 300 s later it is 30 s ahead.
    let mut s = spawn(drifting, time.clone());
    time.advance(Duration::from_secs(300));
    let token = Token::new(config(Fault::None), Box::new(ManualTime::new(0))).unwrap();
    let want = token.totp.code_at(59 + 330).unwrap();
    assert_eq!(exchange(&mut s, b"OTP\r\n", 1), [format!("OK OTP {}", want.expose())]);
}

#[test]
fn other_algorithms_and_lengths() {
    let mut c = config(Fault::None);
    c.seed = Seed::new(b"12345678901234567890123456789012".to_vec()).unwrap();
    c.params = OtpParams { algorithm: Algorithm::Sha256, digits: 8, step_secs: 30, t0: 0 };
    let mut s = spawn(c, ManualTime::new(1_111_111_109_000));
    assert_eq!(exchange(&mut s, b"INFO\r\nOTP\r\n", 2), ["OK INFO ALG=SHA256 DIGITS=8 STEP=30", "OK OTP 68084774"]);
}

#[test]
fn faults_give_clear_client_errors() {
    let time = ManualTime::new(59_000);
    let err = |fault| LineToken::connect(spawn(config(fault), time.clone()), None).and_then(|mut t| t.read_code());
    assert!(matches!(err(Fault::Silent), Err(SourceError::Timeout(_))));
    assert!(matches!(err(Fault::Garbage), Err(SourceError::Garbage(_))));
    assert!(matches!(err(Fault::Battery), Err(SourceError::Token { status: 503, .. })));
    assert!(matches!(err(Fault::UnplugAfter(2)), Err(SourceError::Closed)));
    assert!(matches!(err(Fault::Slow(Duration::from_millis(2500))), Err(SourceError::Timeout(_))));
    let ok = err(Fault::Slow(Duration::from_millis(10))).unwrap();
    assert_eq!(ok.to_header().as_str(), "GAHT12345678 287082");
    let wrong = LineToken::connect(spawn(config(Fault::None), time), Some("GAHT99999999"));
    assert!(matches!(wrong, Err(SourceError::WrongSerial { .. })));
}

#[test]
fn faults_parse() {
    assert_eq!("slow:250".parse::<Fault>().unwrap(), Fault::Slow(Duration::from_millis(250)));
    assert_eq!("unplug-after:3".parse::<Fault>().unwrap(), Fault::UnplugAfter(3));
    assert!("slow:x".parse::<Fault>().is_err());
    assert!("melt".parse::<Fault>().is_err());
}

#[test]
fn serves_a_real_pseudo_terminal_exclusively() {
    let mut c = config(Fault::None);
    c.params.step_secs = 1;
    let mut token = Token::new(c, Box::new(WallClock)).unwrap();
    let pty = Pty::open().unwrap();
    let path = pty.path().to_owned();
    std::thread::spawn(move || pty.serve(&mut token));

    let mut first = SerialToken::open(&path, Some("GAHT12345678")).unwrap();
    let code = first.read_code().unwrap();
    assert_eq!(code.serial, "GAHT12345678");
    assert_eq!(code.code.expose().len(), 6);
    // A second program cannot talk to the token while the first holds it.
    let second = SerialToken::open(&path, None).unwrap_err();
    assert!(second.to_string().contains("in use"), "{second}");
    // Activation reads two consecutive codes by waiting for the display.
    let (one, two) = first.read_pair().unwrap();
    assert!(!one.code.ct_eq(&two));
    drop(first);
    // After the first hangs up, the next client is served.
    let mut again = SerialToken::open(&path, Some("GAHT12345678")).unwrap();
    again.read_code().unwrap();
    drop(again);
    assert!(matches!(SerialToken::open(&path, Some("OTHER")), Err(SourceError::WrongSerial { .. })));
}
