//! Lines, requests and responses of the token's serial protocol (see the
//! crate documentation for the table).
//!
//! Invariant: `LineReader` never buffers more than `MAX_LINE` bytes of one
//! line, whatever arrives; an overlong line is reported once, when its
//! newline arrives, and its bytes are dropped.

use std::io::{self, Read};
use std::time::Instant;

use crate::otp::{Algorithm, Code};

/// Longest line, without its line ending.
pub const MAX_LINE: usize = 64;

/// Why no line could be read.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// A line longer than `MAX_LINE`, already discarded up to its newline.
    #[error("line longer than {MAX_LINE} bytes")]
    TooLong,
    /// Bytes outside printable ASCII, already discarded up to the newline.
    #[error("line is not printable ASCII")]
    NotAscii,
    /// No complete line before the deadline.
    #[error("no answer before the deadline")]
    Timeout,
    /// The other side closed the line.
    #[error("the line was closed")]
    Closed,
    /// Any other I/O failure.
    #[error("I/O error on the line: {0}")]
    Io(#[from] io::Error),
}

/// Reads bounded lines from a byte stream.
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    buf: [u8; 256],
    start: usize,
    end: usize,
    line: Vec<u8>,
    overlong: bool,
    not_ascii: bool,
}

impl<R: Read> LineReader<R> {
    /// Wraps a stream; read timeouts of the stream decide how often the deadline is checked.
    pub fn new(inner: R) -> LineReader<R> {
        LineReader {
            inner,
            buf: [0; 256],
            start: 0,
            end: 0,
            line: Vec::with_capacity(MAX_LINE),
            overlong: false,
            not_ascii: false,
        }
    }

    /// The wrapped stream (for writing requests or responses).
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Drops anything already received but not yet read as a line.
    pub fn discard_buffered(&mut self) {
        self.start = self.end;
        self.line.clear();
        self.overlong = false;
        self.not_ascii = false;
    }

    /// Reads one line without its CR LF or LF. A partial line stays buffered
    /// across a timeout.
    pub fn read_line(&mut self, deadline: Option<Instant>) -> Result<String, LineError> {
        loop {
            while self.start < self.end {
                let byte = self.buf[self.start];
                self.start += 1;
                if byte == b'\n' {
                    if self.line.last() == Some(&b'\r') {
                        self.line.pop();
                    }
                    let (overlong, not_ascii) = (self.overlong, self.not_ascii);
                    self.overlong = false;
                    self.not_ascii = false;
                    if overlong {
                        self.line.clear();
                        return Err(LineError::TooLong);
                    }
                    if not_ascii {
                        self.line.clear();
                        return Err(LineError::NotAscii);
                    }
                    let line = String::from_utf8(std::mem::take(&mut self.line)).map_err(|_| LineError::NotAscii)?;
                    return Ok(line);
                }
                if self.overlong {
                    continue;
                }
                // One byte of slack for the CR of a CR LF ending.
                if self.line.len() > MAX_LINE || (self.line.len() == MAX_LINE && byte != b'\r') {
                    self.overlong = true;
                    self.line.clear();
                    continue;
                }
                if !(byte == b'\r' || (0x20..0x7f).contains(&byte)) {
                    self.not_ascii = true;
                }
                self.line.push(byte);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(LineError::Timeout);
            }
            match self.inner.read(&mut self.buf) {
                Ok(0) => return Err(LineError::Closed),
                Ok(n) => {
                    self.start = 0;
                    self.end = n;
                }
                Err(err) if matches!(err.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) => {
                    if deadline.is_none_or(|d| Instant::now() >= d) {
                        return Err(LineError::Timeout);
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(LineError::Io(err)),
            }
        }
    }
}

/// A host's request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// `PING`
    Ping,
    /// `ID`
    Id,
    /// `INFO`
    Info,
    /// `OTP`
    Otp,
}

impl Request {
    /// Parses a request line exactly (upper case, no extra spaces).
    pub fn parse(line: &str) -> Option<Request> {
        match line {
            "PING" => Some(Request::Ping),
            "ID" => Some(Request::Id),
            "INFO" => Some(Request::Info),
            "OTP" => Some(Request::Otp),
            _ => None,
        }
    }

    /// The request line, without its line ending.
    pub fn as_str(self) -> &'static str {
        match self {
            Request::Ping => "PING",
            Request::Id => "ID",
            Request::Info => "INFO",
            Request::Otp => "OTP",
        }
    }
}

/// A token's response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// `OK PONG`
    Pong,
    /// `OK ID <serial> <model> <firmware>`
    Id {
        /// Device serial.
        serial: String,
        /// Model name (no spaces).
        model: String,
        /// Firmware version (no spaces).
        firmware: String,
    },
    /// `OK INFO ALG=.. DIGITS=.. STEP=..`
    Info {
        /// HMAC hash.
        algorithm: Algorithm,
        /// Code length.
        digits: u8,
        /// Time step in seconds.
        step_secs: u64,
    },
    /// `OK OTP <code>`
    Otp(Code),
    /// `ERR <status> <REASON>`
    Err {
        /// 400 for the host's mistakes, 503 for the token's own trouble.
        status: u16,
        /// Upper-case reason without spaces.
        reason: String,
    },
}

/// Why a response line could not be understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unexpected answer from the token: {0}")]
pub struct BadResponse(String);

impl Response {
    /// `ERR 400 BAD-COMMAND`
    pub fn bad_command() -> Response {
        Response::Err { status: 400, reason: "BAD-COMMAND".into() }
    }

    /// `ERR 400 LINE-TOO-LONG`
    pub fn line_too_long() -> Response {
        Response::Err { status: 400, reason: "LINE-TOO-LONG".into() }
    }

    /// The response line, without its line ending.
    pub fn to_line(&self) -> String {
        match self {
            Response::Pong => "OK PONG".into(),
            Response::Id { serial, model, firmware } => format!("OK ID {serial} {model} {firmware}"),
            Response::Info { algorithm, digits, step_secs } => {
                format!("OK INFO ALG={algorithm} DIGITS={digits} STEP={step_secs}")
            }
            Response::Otp(code) => format!("OK OTP {}", code.expose()),
            Response::Err { status, reason } => format!("ERR {status} {reason}"),
        }
    }

    /// Parses a response line strictly. The error text never quotes an `OTP`
    /// line, so a code cannot leak through an error message.
    pub fn parse(line: &str) -> Result<Response, BadResponse> {
        let words: Vec<&str> = line.split(' ').collect();
        let bad = || BadResponse(if line.starts_with("OK OTP") { "malformed OTP line".into() } else { quote(line) });
        match words.as_slice() {
            ["OK", "PONG"] => Ok(Response::Pong),
            ["OK", "ID", serial, model, firmware] if [serial, model, firmware].iter().all(|w| !w.is_empty()) => {
                Ok(Response::Id { serial: (*serial).into(), model: (*model).into(), firmware: (*firmware).into() })
            }
            ["OK", "INFO", alg, digits, step] => {
                let algorithm = alg.strip_prefix("ALG=").and_then(|a| a.parse().ok()).ok_or_else(bad)?;
                let digits = digits.strip_prefix("DIGITS=").and_then(|d| d.parse().ok()).ok_or_else(bad)?;
                let step_secs = step.strip_prefix("STEP=").and_then(|s| s.parse().ok()).ok_or_else(bad)?;
                Ok(Response::Info { algorithm, digits, step_secs })
            }
            ["OK", "OTP", code] => Code::parse_any(code).map(Response::Otp).ok_or_else(bad),
            ["ERR", status, reason] if !reason.is_empty() => {
                Ok(Response::Err { status: status.parse().map_err(|_| bad())?, reason: (*reason).into() })
            }
            _ => Err(bad()),
        }
    }
}

fn quote(line: &str) -> String {
    let mut text: String = line.chars().take(40).collect();
    if line.len() > 40 {
        text.push('…');
    }
    format!("{text:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<Result<String, String>> {
        let mut reader = LineReader::new(input);
        let mut out = Vec::new();
        loop {
            match reader.read_line(None) {
                Ok(line) => out.push(Ok(line)),
                Err(LineError::Closed) => return out,
                Err(err) => out.push(Err(err.to_string())),
            }
        }
    }

    #[test]
    fn crlf_and_bare_lf_end_lines() {
        assert_eq!(lines(b"PING\r\nID\nOTP\r\n"), vec![Ok("PING".into()), Ok("ID".into()), Ok("OTP".into())]);
    }

    #[test]
    fn an_overlong_line_is_reported_once_and_discarded_to_its_newline() {
        let mut input = vec![b'A'; 64];
        input.extend_from_slice(b"\r\n");
        input.extend(vec![b'B'; 65]);
        input.extend_from_slice(b"\r\nPING\r\n");
        input.extend(vec![b'C'; 1000]);
        input.extend_from_slice(b"\nID\n");
        let out = lines(&input);
        assert_eq!(out[0].as_ref().unwrap().len(), 64);
        assert!(out[1].is_err());
        assert_eq!(out[2], Ok("PING".into()));
        assert!(out[3].is_err());
        assert_eq!(out[4], Ok("ID".into()));
        assert_eq!(out.len(), 5);
    }

    #[test]
    fn binary_garbage_is_refused_and_the_next_line_still_reads() {
        let out = lines(b"\x00\xff\x1b[2J\nPING\n");
        assert_eq!(out, vec![Err("line is not printable ASCII".into()), Ok("PING".into())]);
    }

    #[test]
    fn requests_parse_exactly() {
        assert_eq!(Request::parse("PING"), Some(Request::Ping));
        for bad in ["ping", " PING", "PING ", "OTP 1", "", "SEED", "TIME 0"] {
            assert_eq!(Request::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn responses_round_trip_and_garbage_is_refused() {
        let all = [
            Response::Pong,
            Response::Id { serial: "GAHT12345678".into(), model: "GEMALTO-SIM".into(), firmware: "1.0".into() },
            Response::Info { algorithm: Algorithm::Sha256, digits: 8, step_secs: 60 },
            Response::Otp(Code::parse("081804", 6).unwrap()),
            Response::bad_command(),
            Response::line_too_long(),
        ];
        for response in all {
            assert_eq!(Response::parse(&response.to_line()).unwrap(), response);
        }
        for bad in ["OK", "OK OTP 12a456", "OK OTP 12345", "OK INFO ALG=MD5 DIGITS=6 STEP=30", "HELLO", "ERR x Y"] {
            assert!(Response::parse(bad).is_err(), "{bad:?}");
        }
        assert!(!Response::parse("OK OTP 1234567890").unwrap_err().to_string().contains("1234567890"));
    }
}
