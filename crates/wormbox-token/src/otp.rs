//! HOTP (RFC 4226) and TOTP (RFC 6238) on totp-rs, with any step and T0.
//!
//! Invariant: step `s` of a TOTP device covers unix seconds
//! `[T0 + s·X, T0 + (s+1)·X)`, and its code is HOTP(seed, s). totp-rs counts
//! from the unix epoch only, so T0 is applied here and totp-rs is asked for
//! the code at `s·X`.

use std::fmt;
use std::str::FromStr;

use zeroize::{Zeroize, Zeroizing};

/// Why an OTP parameter, seed or code was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OtpError {
    /// Digits outside 6..=8.
    #[error("digits must be 6, 7 or 8, not {0}")]
    Digits(u8),
    /// A step of zero or over an hour.
    #[error("time step must be 1..=3600 seconds, not {0}")]
    Step(u64),
    /// An algorithm other than SHA1, SHA256, SHA512.
    #[error("unknown algorithm `{0}` (expected SHA1, SHA256 or SHA512)")]
    Algorithm(String),
    /// A seed shorter than RFC 4226's minimum of 128 bits.
    #[error("seed is {0} bytes; at least 16 (128 bits) are required")]
    SeedTooShort(usize),
    /// A seed longer than any HMAC block needs.
    #[error("seed is {0} bytes; at most 128 are accepted")]
    SeedTooLong(usize),
    /// A seed that is not valid base32 or hex.
    #[error("seed is not valid {0}")]
    SeedEncoding(&'static str),
    /// A step whose start time does not fit in 64 bits.
    #[error("time step out of range")]
    StepRange,
}

/// The HMAC hash of a device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// HMAC-SHA-1, the default of RFC 6238 and of most hardware tokens.
    #[default]
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

impl Algorithm {
    /// The protocol's spelling: `SHA1`, `SHA256`, `SHA512`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }

    fn to_totp(self) -> totp_rs::Algorithm {
        match self {
            Algorithm::Sha1 => totp_rs::Algorithm::SHA1,
            Algorithm::Sha256 => totp_rs::Algorithm::SHA256,
            Algorithm::Sha512 => totp_rs::Algorithm::SHA512,
        }
    }
}

impl FromStr for Algorithm {
    type Err = OtpError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().replace('-', "").as_str() {
            "SHA1" => Ok(Algorithm::Sha1),
            "SHA256" => Ok(Algorithm::Sha256),
            "SHA512" => Ok(Algorithm::Sha512),
            _ => Err(OtpError::Algorithm(s.to_owned())),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The public parameters of a TOTP device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OtpParams {
    /// HMAC hash.
    pub algorithm: Algorithm,
    /// Code length, 6..=8.
    pub digits: u8,
    /// Time step X in seconds.
    pub step_secs: u64,
    /// T0, the unix second at which step 0 starts.
    pub t0: u64,
}

impl Default for OtpParams {
    fn default() -> Self {
        OtpParams { algorithm: Algorithm::Sha1, digits: 6, step_secs: 30, t0: 0 }
    }
}

impl OtpParams {
    /// Checks digits and step.
    pub fn validate(&self) -> Result<(), OtpError> {
        if !(6..=8).contains(&self.digits) {
            return Err(OtpError::Digits(self.digits));
        }
        if !(1..=3600).contains(&self.step_secs) {
            return Err(OtpError::Step(self.step_secs));
        }
        Ok(())
    }
}

/// A shared secret. Wiped on drop; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Seed(Zeroizing<Vec<u8>>);

impl Seed {
    /// Takes raw bytes (16..=128 of them).
    pub fn new(bytes: Vec<u8>) -> Result<Seed, OtpError> {
        let seed = Seed(Zeroizing::new(bytes));
        match seed.0.len() {
            n if n < 16 => Err(OtpError::SeedTooShort(n)),
            n if n > 128 => Err(OtpError::SeedTooLong(n)),
            _ => Ok(seed),
        }
    }

    /// Parses RFC 4648 base32, ignoring case, spaces and `=` padding, the way
    /// seeds are printed on token cards.
    pub fn from_base32(text: &str) -> Result<Seed, OtpError> {
        let mut clean: Zeroizing<String> = Zeroizing::new(
            text.chars().filter(|c| !c.is_whitespace() && *c != '=').map(|c| c.to_ascii_uppercase()).collect(),
        );
        let decoded =
            data_encoding::BASE32_NOPAD.decode(clean.as_bytes()).map_err(|_| OtpError::SeedEncoding("base32"));
        clean.zeroize();
        Seed::new(decoded?)
    }

    /// Parses hex, ignoring spaces.
    pub fn from_hex(text: &str) -> Result<Seed, OtpError> {
        let clean: Zeroizing<String> =
            Zeroizing::new(text.chars().filter(|c| !c.is_whitespace()).map(|c| c.to_ascii_lowercase()).collect());
        let decoded =
            data_encoding::HEXLOWER_PERMISSIVE.decode(clean.as_bytes()).map_err(|_| OtpError::SeedEncoding("hex"));
        Seed::new(decoded?)
    }

    /// The secret bytes; callers must not log or return them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Seed(<{} bytes redacted>)", self.0.len())
    }
}

/// A one-time code: `digits` ASCII decimal digits. Wiped on drop; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Code(Zeroizing<String>);

impl Code {
    /// Strictly parses a code of exactly `digits` ASCII digits.
    pub fn parse(text: &str, digits: u8) -> Option<Code> {
        (text.len() == usize::from(digits) && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| Code(Zeroizing::new(text.to_owned())))
    }

    /// Parses 6..=8 ASCII digits (the length a device of unknown digits may show).
    pub fn parse_any(text: &str) -> Option<Code> {
        (6..=8).find_map(|d| Code::parse(text, d))
    }

    /// The digits, for sending to the server; callers must not log them.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares in time independent of where the codes differ.
    pub fn ct_eq(&self, other: &Code) -> bool {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
        std::hint::black_box(diff) == 0
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Code(<redacted>)")
    }
}

/// A TOTP generator for one device.
pub struct Totp {
    inner: totp_rs::Totp,
    params: OtpParams,
}

impl fmt::Debug for Totp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Totp").field("params", &self.params).finish_non_exhaustive()
    }
}

impl Totp {
    /// Builds a generator; the seed is copied into totp-rs's own wiped buffer.
    pub fn new(seed: &Seed, params: OtpParams) -> Result<Totp, OtpError> {
        params.validate()?;
        Ok(Totp { inner: build(seed, params.algorithm, params.digits, params.step_secs)?, params })
    }

    /// The device parameters.
    pub fn params(&self) -> OtpParams {
        self.params
    }

    /// The step covering unix second `unix_secs`, or `None` before T0.
    pub fn step_at(&self, unix_secs: u64) -> Option<u64> {
        unix_secs.checked_sub(self.params.t0).map(|t| t / self.params.step_secs)
    }

    /// The code of step `step`.
    pub fn code_at_step(&self, step: u64) -> Result<Code, OtpError> {
        let time = step.checked_mul(self.params.step_secs).ok_or(OtpError::StepRange)?;
        Ok(Code(Zeroizing::new(self.inner.generate(time).to_string())))
    }

    /// The code a display token shows at unix second `unix_secs`.
    pub fn code_at(&self, unix_secs: u64) -> Result<Code, OtpError> {
        self.code_at_step(self.step_at(unix_secs).ok_or(OtpError::StepRange)?)
    }

    /// Unix second at which `step` begins.
    pub fn step_start(&self, step: u64) -> Option<u64> {
        step.checked_mul(self.params.step_secs)?.checked_add(self.params.t0)
    }
}

/// HOTP(seed, counter) as in RFC 4226 (a TOTP with X = 1 and T0 = 0 is exactly that).
pub fn hotp(seed: &Seed, algorithm: Algorithm, digits: u8, counter: u64) -> Result<Code, OtpError> {
    OtpParams { algorithm, digits, step_secs: 1, t0: 0 }.validate()?;
    let totp = build(seed, algorithm, digits, 1)?;
    Ok(Code(Zeroizing::new(totp.generate(counter).to_string())))
}

fn build(seed: &Seed, algorithm: Algorithm, digits: u8, step_secs: u64) -> Result<totp_rs::Totp, OtpError> {
    totp_rs::Builder::new()
        .with_algorithm(algorithm.to_totp())
        .with_digits(digits)
        .with_step_duration(step_secs)
        .with_skew(0)
        .with_secret(seed.expose().to_vec())
        .build()
        .map_err(|err| match err {
            totp_rs::TotpError::InvalidDigits { .. } => OtpError::Digits(digits),
            totp_rs::TotpError::InvalidStepZero => OtpError::Step(step_secs),
            _ => OtpError::SeedTooShort(seed.expose().len()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(ascii: &str) -> Seed {
        Seed::new(ascii.as_bytes().to_vec()).unwrap()
    }

    const SHA1_SEED: &str = "12345678901234567890";
    const SHA256_SEED: &str = "12345678901234567890123456789012";
    const SHA512_SEED: &str = "1234567890123456789012345678901234567890123456789012345678901234";

    #[test]
    fn rfc4226_appendix_d() {
        let expected =
            ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"];
        for (counter, want) in expected.iter().enumerate() {
            let code = hotp(&seed(SHA1_SEED), Algorithm::Sha1, 6, counter as u64).unwrap();
            assert_eq!(code.expose(), *want, "counter {counter}");
        }
    }

    #[test]
    fn rfc6238_appendix_b_all_modes_8_and_6_digits() {
        let table: [(u64, [&str; 3]); 6] = [
            (59, ["94287082", "46119246", "90693936"]),
            (1111111109, ["07081804", "68084774", "25091201"]),
            (1111111111, ["14050471", "67062674", "99943326"]),
            (1234567890, ["89005924", "91819424", "93441116"]),
            (2000000000, ["69279037", "90698825", "38618901"]),
            (20000000000, ["65353130", "77737706", "47863826"]),
        ];
        let modes = [(Algorithm::Sha1, SHA1_SEED), (Algorithm::Sha256, SHA256_SEED), (Algorithm::Sha512, SHA512_SEED)];
        for (time, codes) in table {
            for ((algorithm, ascii), want) in modes.iter().zip(codes) {
                for digits in [8u8, 6] {
                    let params = OtpParams { algorithm: *algorithm, digits, step_secs: 30, t0: 0 };
                    let totp = Totp::new(&seed(ascii), params).unwrap();
                    let want = &want[8 - usize::from(digits)..];
                    assert_eq!(totp.code_at(time).unwrap().expose(), want, "{algorithm} t={time} digits={digits}");
                }
            }
        }
    }

    #[test]
    fn the_seed_trap_short_seed_gives_other_sha256_codes() {
        let params = OtpParams { algorithm: Algorithm::Sha256, digits: 8, step_secs: 30, t0: 0 };
        let totp = Totp::new(&seed(SHA1_SEED), params).unwrap();
        assert_eq!(totp.code_at(59).unwrap().expose(), "32247374");
    }

    #[test]
    fn totp_steps_equal_hotp_counters_and_t0_shifts_them() {
        let s = seed(SHA1_SEED);
        let plain = Totp::new(&s, OtpParams::default()).unwrap();
        let shifted = Totp::new(&s, OtpParams { t0: 1000, ..OtpParams::default() }).unwrap();
        for step in 0..6 {
            let want = hotp(&s, Algorithm::Sha1, 6, step).unwrap();
            assert!(plain.code_at(step * 30 + 29).unwrap().ct_eq(&want));
            assert!(shifted.code_at(1000 + step * 30).unwrap().ct_eq(&want));
        }
        assert_eq!(shifted.step_at(999), None);
        assert_eq!(plain.step_at(59), Some(1));
        assert_eq!(plain.step_start(2), Some(60));
    }

    #[test]
    fn leading_zeros_are_kept() {
        let totp = Totp::new(&seed(SHA1_SEED), OtpParams::default()).unwrap();
        assert_eq!(totp.code_at(1111111109).unwrap().expose(), "081804");
    }

    #[test]
    fn parameters_and_seeds_are_checked() {
        let s = seed(SHA1_SEED);
        assert_eq!(Totp::new(&s, OtpParams { digits: 5, ..OtpParams::default() }).unwrap_err(), OtpError::Digits(5));
        assert_eq!(Totp::new(&s, OtpParams { digits: 9, ..OtpParams::default() }).unwrap_err(), OtpError::Digits(9));
        assert_eq!(Totp::new(&s, OtpParams { step_secs: 0, ..OtpParams::default() }).unwrap_err(), OtpError::Step(0));
        assert_eq!(Seed::new(b"1234".to_vec()).unwrap_err(), OtpError::SeedTooShort(4));
        assert_eq!(Seed::new(vec![0; 129]).unwrap_err(), OtpError::SeedTooLong(129));
        // "12345678901234567890" in base32, in the forms people type it.
        let b32 = Seed::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        assert_eq!(b32.expose(), SHA1_SEED.as_bytes());
        assert_eq!(Seed::from_base32("gezd gnbv gy3t qojq gezd gnbv gy3t qojq").unwrap(), b32);
        assert_eq!(Seed::from_hex("3132333435363738393031323334353637383930").unwrap(), b32);
        assert_eq!(Seed::from_base32("GEZDGNBVGY3TQOJ1").unwrap_err(), OtpError::SeedEncoding("base32"));
        assert_eq!(Seed::from_hex("zz").unwrap_err(), OtpError::SeedEncoding("hex"));
        assert_eq!("sha-256".parse::<Algorithm>().unwrap(), Algorithm::Sha256);
        assert!("md5".parse::<Algorithm>().is_err());
    }

    #[test]
    fn codes_parse_strictly_and_never_print() {
        assert!(Code::parse("287082", 6).is_some());
        for bad in ["28708", "2870822", "+87082", " 87082", "28708a", "２87082"] {
            assert!(Code::parse(bad, 6).is_none(), "{bad:?}");
        }
        let code = Code::parse("287082", 6).unwrap();
        assert!(!format!("{code:?}").contains("287082"));
        let seed = seed(SHA1_SEED);
        assert!(!format!("{seed:?}").contains("1234"));
        assert!(code.ct_eq(&Code::parse("287082", 6).unwrap()));
        assert!(!code.ct_eq(&Code::parse("287083", 6).unwrap()));
        assert!(!code.ct_eq(&Code::parse("2870820", 7).unwrap()));
    }
}
