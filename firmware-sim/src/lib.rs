//! A software Gemalto-style display token: it holds a seed, keeps its own
//! (possibly wrong, possibly drifting) time, and answers the line protocol of
//! `wormbox_token` on any byte stream or on a pseudo-terminal it creates.
//!
//! Invariant: like the hardware it imitates, the simulator never reveals its
//! seed over the line, never accepts a time, and answers each request line
//! with exactly one response line (unless told to misbehave with a fault).

use std::io::{self, Read, Write};

use serialport::SerialPort as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use wormbox_token::{LineError, LineReader, OtpParams, Request, Response, Seed, Totp};

/// Model name reported by `ID`.
pub const MODEL: &str = "WBX-GEMSIM";
/// Firmware version reported by `ID`.
pub const FIRMWARE: &str = "1.0";

/// A misbehaviour to imitate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fault {
    /// Behaves.
    #[default]
    None,
    /// Reads requests and never answers.
    Silent,
    /// Answers every request with line noise.
    Garbage,
    /// Waits this long before each answer.
    Slow(Duration),
    /// Answers `OTP` with `ERR 503 LOW-BATTERY`.
    Battery,
    /// Hangs up after answering this many requests.
    UnplugAfter(u32),
}

impl std::str::FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("unknown fault `{s}` (silent, garbage, slow:MS, battery, unplug-after:N)");
        Ok(match s.split_once(':') {
            None if s == "silent" => Fault::Silent,
            None if s == "garbage" => Fault::Garbage,
            None if s == "battery" => Fault::Battery,
            None if s == "none" => Fault::None,
            Some(("slow", ms)) => Fault::Slow(Duration::from_millis(ms.parse().map_err(|_| bad())?)),
            Some(("unplug-after", n)) => Fault::UnplugAfter(n.parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        })
    }
}

/// Where the token's clock comes from. Reading real time is the simulator's
/// business (it imitates a device with its own quartz), so it may use the
/// system clock; tests give it a manual one.
pub trait TimeSource: Send + Sync {
    /// Unix time in milliseconds.
    fn unix_millis(&self) -> i64;
}

/// The host's wall clock.
#[derive(Debug, Default)]
pub struct WallClock;

impl TimeSource for WallClock {
    #[expect(clippy::disallowed_methods, reason = "the simulated token's own quartz is the wall clock")]
    fn unix_millis(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock tests move by hand.
#[derive(Clone, Debug, Default)]
pub struct ManualTime(Arc<AtomicI64>);

impl ManualTime {
    /// Starts at `unix_millis`.
    pub fn new(unix_millis: i64) -> ManualTime {
        ManualTime(Arc::new(AtomicI64::new(unix_millis)))
    }

    /// Sets the time.
    pub fn set_millis(&self, unix_millis: i64) {
        self.0.store(unix_millis, Ordering::SeqCst);
    }

    /// Moves the time forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX), Ordering::SeqCst);
    }
}

impl TimeSource for ManualTime {
    fn unix_millis(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// What a token is made of.
#[derive(Debug)]
pub struct TokenConfig {
    /// Reported by `ID`.
    pub serial: String,
    /// The shared secret.
    pub seed: Seed,
    /// Algorithm, digits, step, T0.
    pub params: OtpParams,
    /// How far the token's clock is off, in seconds (positive: ahead).
    pub clock_offset_secs: i64,
    /// How fast the token's clock runs wrong, in parts per million.
    pub drift_ppm: i64,
    /// Misbehaviour.
    pub fault: Fault,
}

/// A token with its state.
pub struct Token {
    config: TokenConfig,
    totp: Totp,
    time: Box<dyn TimeSource>,
    born_millis: i64,
    answered: u32,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("serial", &self.config.serial).finish_non_exhaustive()
    }
}

/// Why a token could not be made or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Bad parameters.
    #[error(transparent)]
    Otp(#[from] wormbox_token::OtpError),
    /// A serial with spaces would break the `ID` line.
    #[error("serial must be 1..=40 printable characters without spaces")]
    Serial,
    /// The line failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

impl Token {
    /// Makes a token reading time from `time`.
    pub fn new(config: TokenConfig, time: Box<dyn TimeSource>) -> Result<Token, SimError> {
        if config.serial.is_empty() || config.serial.len() > 40 || !config.serial.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(SimError::Serial);
        }
        let totp = Totp::new(&config.seed, config.params)?;
        let born_millis = time.unix_millis();
        Ok(Token { config, totp, time, born_millis, answered: 0 })
    }

    /// The token's idea of the unix time, in seconds: its offset plus drift
    /// accumulated since it was made.
    pub fn token_time(&self) -> u64 {
        let now = self.time.unix_millis();
        let elapsed = now - self.born_millis;
        let drift = elapsed.saturating_mul(self.config.drift_ppm) / 1_000_000;
        let millis = now + drift + self.config.clock_offset_secs.saturating_mul(1000);
        u64::try_from(millis / 1000).unwrap_or(0)
    }

    /// Answers one request line (the display's behaviour, without faults).
    pub fn respond(&self, line: &str) -> Response {
        match Request::parse(line) {
            Some(Request::Ping) => Response::Pong,
            Some(Request::Id) => {
                Response::Id { serial: self.config.serial.clone(), model: MODEL.into(), firmware: FIRMWARE.into() }
            }
            Some(Request::Info) => Response::Info {
                algorithm: self.config.params.algorithm,
                digits: self.config.params.digits,
                step_secs: self.config.params.step_secs,
            },
            Some(Request::Otp) if self.config.fault == Fault::Battery => {
                Response::Err { status: 503, reason: "LOW-BATTERY".into() }
            }
            Some(Request::Otp) => match self.totp.code_at(self.token_time()) {
                Ok(code) => Response::Otp(code),
                // Before T0 the display has nothing to show.
                Err(_) => Response::Err { status: 503, reason: "NO-TIME".into() },
            },
            None => Response::bad_command(),
        }
    }

    /// Serves one client on `stream` until it hangs up (or the fault says to
    /// unplug). Read timeouts on the stream are waited through.
    pub fn serve<S: Read + Write>(&mut self, stream: S) -> Result<(), SimError> {
        let mut line = LineReader::new(stream);
        loop {
            let response = match line.read_line(None) {
                Ok(text) => self.respond(&text),
                Err(LineError::TooLong) => Response::line_too_long(),
                Err(LineError::NotAscii) => Response::bad_command(),
                Err(LineError::Timeout) => continue,
                Err(LineError::Closed) => return Ok(()),
                Err(LineError::Io(err)) if err.raw_os_error() == Some(5) => return Ok(()),
                Err(LineError::Io(err)) => return Err(err.into()),
            };
            if let Fault::UnplugAfter(n) = self.config.fault
                && self.answered >= n
            {
                return Ok(());
            }
            let bytes = match self.config.fault {
                Fault::Silent => continue,
                Fault::Garbage => b"\x00\xff\x1b[2J OK OT\xfe\r\n".to_vec(),
                Fault::Slow(delay) => {
                    std::thread::sleep(delay);
                    format!("{}\r\n", response.to_line()).into_bytes()
                }
                _ => format!("{}\r\n", response.to_line()).into_bytes(),
            };
            let out = line.get_mut();
            out.write_all(&bytes)?;
            out.flush()?;
            self.answered += 1;
        }
    }
}

/// A pseudo-terminal carrying a token: the path a client opens. One client
/// at a time: clients open it exclusively (`TIOCEXCL` and an exclusive
/// `flock`, as `SerialToken` does), so a second one is refused while the
/// first holds it, as with a real USB token.
#[derive(Debug)]
pub struct Pty {
    master: serialport::TTYPort,
    // Held open so that the master keeps working between clients.
    _slave: serialport::TTYPort,
    path: String,
}

impl Pty {
    /// Creates a pseudo-terminal pair.
    pub fn open() -> Result<Pty, SimError> {
        let (master, slave) = serialport::TTYPort::pair().map_err(|e| io::Error::other(e.to_string()))?;
        let path = slave.name().ok_or_else(|| io::Error::other("pseudo-terminal has no name"))?;
        Ok(Pty { master, _slave: slave, path })
    }

    /// The path of the terminal clients open.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Serves the token on this terminal until the fault unplugs it. A hung
    /// up client is not the end: the next one is served on the same line.
    pub fn serve(self, token: &mut Token) -> Result<(), SimError> {
        token.serve(self.master)
    }
}

#[cfg(test)]
mod tests;
