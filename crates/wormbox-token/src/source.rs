//! Client-side token sources: where the CLI gets a `SERIAL CODE` from.
//!
//! `serial:PATH[#SERIAL]` talks the line protocol to a token on a serial
//! device (exclusive open, bounded waits, the `ID` checked against the serial
//! the user named); `prompt[:SERIAL]` asks on the terminal; `literal:SERIAL
//! CODE [CODE2]` takes the code from the command line.
//!
//! Invariant: a source either returns a well-formed code or a clear error; a
//! faulty token (silent, garbage, unplugged, low battery) never yields a code,
//! so nothing is sent to the server and nothing is spent.

use std::fmt;
use std::io::{self, BufRead, Read, Write};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::otp::Code;
use crate::protocol::{LineError, LineReader, Request, Response};

/// How long one request may wait for its answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// A code together with the serial of the device that showed it.
#[derive(Clone, PartialEq, Eq)]
pub struct MfaCode {
    /// The device serial.
    pub serial: String,
    /// The code.
    pub code: Code,
}

impl MfaCode {
    /// The `SERIAL CODE` string a guarded request carries.
    pub fn to_header(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{} {}", self.serial, self.code.expose()))
    }
}

impl fmt::Debug for MfaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MfaCode").field("serial", &self.serial).finish_non_exhaustive()
    }
}

/// Why a source gave no code.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source string is not one of the known forms.
    #[error("bad MFA source `{0}`: expected serial:PATH[#SERIAL], prompt[:SERIAL] or literal:SERIAL CODE")]
    Spec(String),
    /// The serial device could not be opened.
    #[error("cannot open token at {path}: {reason}")]
    Open {
        /// Device path.
        path: String,
        /// What the OS said.
        reason: String,
    },
    /// The token did not answer in time.
    #[error("the token did not answer within {0:?} (unplugged or silent?)")]
    Timeout(Duration),
    /// The token's line was closed.
    #[error("the token went away (unplugged?)")]
    Closed,
    /// The token sent something that is not the protocol.
    #[error("the token sent garbage: {0}")]
    Garbage(String),
    /// The token reported trouble (for example a low battery).
    #[error("the token reported an error: {status} {reason}")]
    Token {
        /// Status number.
        status: u16,
        /// Reason word.
        reason: String,
    },
    /// The token on the line is not the one the user named.
    #[error("the token on the line is `{found}`, not `{expected}`")]
    WrongSerial {
        /// What the user named.
        expected: String,
        /// What the token said.
        found: String,
    },
    /// The display did not change to a new code in time (for activation).
    #[error("the token showed no new code within {0:?}")]
    NoNewCode(Duration),
    /// The typed or given code is malformed.
    #[error("malformed code: expected 6 to 8 digits")]
    BadCode,
    /// Reading the terminal failed.
    #[error("cannot read the code: {0}")]
    Io(#[from] io::Error),
}

/// Where codes come from.
pub trait TokenSource {
    /// One code, for a guarded operation.
    fn read_code(&mut self) -> Result<MfaCode, SourceError>;
    /// Two consecutive codes, for activation or resync.
    fn read_pair(&mut self) -> Result<(MfaCode, Code), SourceError>;
}

/// Parses a `--mfa` value and opens the source it names.
pub fn open(spec: &str) -> Result<Box<dyn TokenSource>, SourceError> {
    if let Some(rest) = spec.strip_prefix("serial:") {
        let (path, serial) = match rest.split_once('#') {
            Some((path, serial)) => (path, Some(serial)),
            None => (rest, None),
        };
        if path.is_empty() || serial.is_some_and(str::is_empty) {
            return Err(SourceError::Spec(spec.into()));
        }
        return Ok(Box::new(SerialToken::open(path, serial)?));
    }
    if spec == "prompt" || spec.starts_with("prompt:") {
        let serial = spec.strip_prefix("prompt:").map(str::to_owned);
        return Ok(Box::new(Prompt::new(io::BufReader::new(io::stdin()), io::stderr(), serial)));
    }
    if let Some(rest) = spec.strip_prefix("literal:") {
        return Ok(Box::new(Literal::parse(rest).ok_or_else(|| SourceError::Spec("literal:<redacted>".into()))?));
    }
    Err(SourceError::Spec(spec.chars().take(64).collect()))
}

/// A token speaking the line protocol on any byte stream.
#[derive(Debug)]
pub struct LineToken<S> {
    line: LineReader<S>,
    serial: String,
    step_secs: u64,
}

impl<S: Read + Write> LineToken<S> {
    /// Greets the token (`ID`, then `INFO`) and checks its serial if one is named.
    pub fn connect(stream: S, expected_serial: Option<&str>) -> Result<LineToken<S>, SourceError> {
        let mut line = LineReader::new(stream);
        let Response::Id { serial, .. } = ask(&mut line, Request::Id)? else {
            return Err(SourceError::Garbage("answer to ID is not an ID".into()));
        };
        if let Some(expected) = expected_serial
            && expected != serial
        {
            return Err(SourceError::WrongSerial { expected: expected.into(), found: serial });
        }
        let Response::Info { step_secs, .. } = ask(&mut line, Request::Info)? else {
            return Err(SourceError::Garbage("answer to INFO is not INFO".into()));
        };
        Ok(LineToken { line, serial, step_secs: step_secs.max(1) })
    }

    fn otp(&mut self) -> Result<Code, SourceError> {
        match ask(&mut self.line, Request::Otp)? {
            Response::Otp(code) => Ok(code),
            _ => Err(SourceError::Garbage("answer to OTP is not a code".into())),
        }
    }
}

impl<S: Read + Write> TokenSource for LineToken<S> {
    fn read_code(&mut self) -> Result<MfaCode, SourceError> {
        Ok(MfaCode { serial: self.serial.clone(), code: self.otp()? })
    }

    fn read_pair(&mut self) -> Result<(MfaCode, Code), SourceError> {
        let first = self.otp()?;
        // Like a person watching the display: wait for it to change, which
        // happens at the next step boundary.
        let patience = Duration::from_secs(self.step_secs.saturating_mul(2).saturating_add(2));
        let poll = Duration::from_millis((self.step_secs * 1000 / 8).clamp(50, 1000));
        let deadline = Instant::now() + patience;
        loop {
            std::thread::sleep(poll);
            let next = self.otp()?;
            if !next.ct_eq(&first) {
                return Ok((MfaCode { serial: self.serial.clone(), code: first }, next));
            }
            if Instant::now() >= deadline {
                return Err(SourceError::NoNewCode(patience));
            }
        }
    }
}

fn ask<S: Read + Write>(line: &mut LineReader<S>, request: Request) -> Result<Response, SourceError> {
    line.discard_buffered();
    let stream = line.get_mut();
    // serialport reports a vanished line on write or drain as a generic
    // error (it drops the errno), so any failure to send counts as the token
    // having gone away, except a plain timeout.
    let sent = stream.write_all(format!("{}\r\n", request.as_str()).as_bytes()).and_then(|()| stream.flush());
    sent.map_err(|err| match err.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => SourceError::Timeout(ANSWER_TIMEOUT),
        _ => SourceError::Closed,
    })?;
    let text = line.read_line(Some(Instant::now() + ANSWER_TIMEOUT)).map_err(|err| match err {
        LineError::Timeout => SourceError::Timeout(ANSWER_TIMEOUT),
        LineError::Closed => SourceError::Closed,
        LineError::TooLong | LineError::NotAscii => SourceError::Garbage(err.to_string()),
        LineError::Io(err) => io_to_source(err),
    })?;
    match Response::parse(&text).map_err(|err| SourceError::Garbage(err.to_string()))? {
        Response::Err { status, reason } => Err(SourceError::Token { status, reason }),
        response => Ok(response),
    }
}

fn io_to_source(err: io::Error) -> SourceError {
    match err.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => SourceError::Timeout(ANSWER_TIMEOUT),
        // A pty whose other end has gone reads EIO; a pipe says broken.
        io::ErrorKind::BrokenPipe | io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => {
            SourceError::Closed
        }
        _ if err.raw_os_error() == Some(5) => SourceError::Closed,
        _ => SourceError::Io(err),
    }
}

/// A hardware (or simulated) token on a serial device.
#[derive(Debug)]
pub struct SerialToken(LineToken<serialport::TTYPort>);

impl SerialToken {
    /// Opens `path` exclusively, with bounded reads, and greets the token.
    pub fn open(path: &str, expected_serial: Option<&str>) -> Result<SerialToken, SourceError> {
        use serialport::SerialPort;
        let open_err = |reason: String| SourceError::Open { path: path.into(), reason };
        let port = serialport::new(path, 9600)
            .timeout(Duration::from_millis(100))
            .exclusive(true)
            .open_native()
            .map_err(|err| match err.kind() {
                serialport::ErrorKind::NoDevice => open_err("in use by another program or not a serial device".into()),
                _ => open_err(err.to_string()),
            })?;
        // Whatever a previous session left unread is not an answer to us.
        port.clear(serialport::ClearBuffer::All).map_err(|err| open_err(err.to_string()))?;
        Ok(SerialToken(LineToken::connect(port, expected_serial)?))
    }
}

impl TokenSource for SerialToken {
    fn read_code(&mut self) -> Result<MfaCode, SourceError> {
        self.0.read_code()
    }

    fn read_pair(&mut self) -> Result<(MfaCode, Code), SourceError> {
        self.0.read_pair()
    }
}

/// Asks on a terminal, the way the 2010 boto script did.
#[derive(Debug)]
pub struct Prompt<R, W> {
    input: R,
    output: W,
    serial: Option<String>,
}

impl<R: BufRead, W: Write> Prompt<R, W> {
    /// A prompt reading `input` and asking on `output`.
    pub fn new(input: R, output: W, serial: Option<String>) -> Prompt<R, W> {
        Prompt { input, output, serial }
    }

    fn ask(&mut self, question: &str) -> Result<Zeroizing<String>, SourceError> {
        write!(self.output, "{question}: ")?;
        self.output.flush()?;
        let mut answer = Zeroizing::new(String::new());
        if self.input.read_line(&mut answer)? == 0 {
            return Err(SourceError::Closed);
        }
        Ok(Zeroizing::new(answer.trim().to_owned()))
    }

    fn serial(&mut self) -> Result<String, SourceError> {
        match &self.serial {
            Some(serial) => Ok(serial.clone()),
            None => {
                let serial = self.ask("MFA device serial")?.to_string();
                self.serial = Some(serial.clone());
                Ok(serial)
            }
        }
    }
}

impl<R: BufRead, W: Write> TokenSource for Prompt<R, W> {
    fn read_code(&mut self) -> Result<MfaCode, SourceError> {
        let serial = self.serial()?;
        let code = Code::parse_any(&self.ask(&format!("MFA code shown by {serial}"))?).ok_or(SourceError::BadCode)?;
        Ok(MfaCode { serial, code })
    }

    fn read_pair(&mut self) -> Result<(MfaCode, Code), SourceError> {
        let first = self.read_code()?;
        let next = self.ask("Next code, after the display changes")?;
        Ok((first, Code::parse_any(&next).ok_or(SourceError::BadCode)?))
    }
}

/// A code given on the command line: `SERIAL CODE [CODE2]`.
#[derive(Debug)]
pub struct Literal {
    serial: String,
    codes: Vec<Code>,
}

impl Literal {
    /// Parses `SERIAL CODE` or `SERIAL CODE1 CODE2`.
    pub fn parse(text: &str) -> Option<Literal> {
        let mut words = text.split_whitespace();
        let serial = words.next()?.to_owned();
        let codes: Option<Vec<Code>> = words.map(Code::parse_any).collect();
        let codes = codes?;
        (1..=2).contains(&codes.len()).then_some(Literal { serial, codes })
    }
}

impl TokenSource for Literal {
    fn read_code(&mut self) -> Result<MfaCode, SourceError> {
        Ok(MfaCode { serial: self.serial.clone(), code: self.codes[0].clone() })
    }

    fn read_pair(&mut self) -> Result<(MfaCode, Code), SourceError> {
        let next = self.codes.get(1).ok_or(SourceError::BadCode)?.clone();
        Ok((self.read_code()?, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_and_prompt_sources() {
        let mut literal = Literal::parse("GAHT12345678 492039").unwrap();
        assert_eq!(literal.read_code().unwrap().to_header().as_str(), "GAHT12345678 492039");
        assert!(literal.read_pair().is_err());
        let mut pair = Literal::parse("GAHT12345678 492039 118345").unwrap();
        assert_eq!(pair.read_pair().unwrap().1.expose(), "118345");
        assert!(Literal::parse("GAHT12345678").is_none());
        assert!(Literal::parse("GAHT12345678 49203x").is_none());

        let mut out = Vec::new();
        let mut prompt = Prompt::new(&b"GAHT12345678\n 492039 \n118345\n"[..], &mut out, None);
        let (first, next) = prompt.read_pair().unwrap();
        assert_eq!(first.to_header().as_str(), "GAHT12345678 492039");
        assert_eq!(next.expose(), "118345");
        drop(prompt);
        assert!(String::from_utf8(out).unwrap().contains("MFA code shown by GAHT12345678"));
        let mut empty = Prompt::new(&b""[..], Vec::new(), Some("S".into()));
        assert!(matches!(empty.read_code(), Err(SourceError::Closed)));
    }

    #[test]
    fn specs_are_checked_and_literal_codes_are_not_echoed() {
        for bad in ["", "usb:/dev/x", "serial:", "serial:/dev/x#", "literal:ONLYSERIAL"] {
            let err = open(bad).err().expect(bad).to_string();
            assert!(err.contains("bad MFA source") || err.contains("cannot open"), "{bad}: {err}");
        }
        let err = open("literal:S 12345").err().unwrap().to_string();
        assert!(!err.contains("12345"), "{err}");
        let debug = format!("{:?}", Literal::parse("S 123456").unwrap().read_code().unwrap());
        assert!(!debug.contains("123456"));
    }
}
