//! Device serials: what a `SERIAL CODE` string names.
//!
//! Invariant: a `Serial` is 9..=256 characters of `[A-Za-z0-9_+=/:,.@-]`
//! (the AWS MFA serial alphabet), so it can be a store key, a ledger field
//! and a protocol word without escaping.

use std::fmt;

use crate::MfaError;

/// A validated device serial.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(String);

impl Serial {
    /// Checks length and alphabet.
    pub fn new(text: &str) -> Result<Serial, MfaError> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || "_+=/:,.@-".contains(c);
        if !(9..=256).contains(&text.len()) || !text.chars().all(ok_char) {
            return Err(MfaError::InvalidArgument(
                "device serial must be 9 to 256 characters of A-Z a-z 0-9 _ + = / : , . @ -".into(),
            ));
        }
        Ok(Serial(text.to_owned()))
    }

    /// The serial text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_follow_the_aws_alphabet() {
        for good in ["GAHT12345678", "987654321", "arn:aws:iam::123456789012:mfa/user", "a_b+c=d,e.f@g-h/i"] {
            assert!(Serial::new(good).is_ok(), "{good}");
        }
        for bad in ["12345678", "", "GAHT 12345678", "GAHT12345678\n", "GAHT1234567é", &"x".repeat(257)] {
            assert!(Serial::new(bad).is_err(), "{bad:?}");
        }
        assert!(Serial::new(&"x".repeat(256)).is_ok());
    }
}
