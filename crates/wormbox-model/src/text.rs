//! Free text a user supplies and the archive keeps: legal hold case ids and
//! notes, user metadata names and values, content types.
//!
//! Invariant: every entry point (the gRPC conversions, the store, the writer)
//! checks such text with `FreeText::check`, so that one kind of field has one
//! limit and one error text wherever it arrives, and no control character
//! (NUL, newline, escape, ...) reaches a record, a ledger entry or a report.

use std::fmt;

/// A kind of user-supplied free text, each with its length limits in bytes of UTF-8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FreeText {
    /// A legal hold's case id: 1 to 256 bytes.
    CaseId,
    /// A legal hold's note: at most 1024 bytes.
    HoldNote,
    /// A user metadata name: 1 to 2048 bytes (the whole metadata is at most 2048).
    MetadataName,
    /// A user metadata value: at most 2048 bytes (the whole metadata is at most 2048).
    MetadataValue,
    /// A version's content type: at most 256 bytes.
    ContentType,
}

/// Why a free-text field was refused. Never carries the text itself, which
/// may be large or hold the very characters refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} must be {} bytes of text without control characters: {problem}", .kind.what(), .kind.range())]
pub struct FreeTextError {
    /// The field.
    pub kind: FreeText,
    /// What is wrong with it.
    pub problem: FreeTextProblem,
}

/// What is wrong with a refused free-text field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeTextProblem {
    /// Empty where text is required.
    Empty,
    /// Longer than the limit, by its length in bytes.
    TooLong(usize),
    /// A control character at this byte offset.
    Control(usize),
}

impl fmt::Display for FreeTextProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FreeTextProblem::Empty => f.write_str("it is empty"),
            FreeTextProblem::TooLong(len) => write!(f, "it is {len} bytes"),
            FreeTextProblem::Control(at) => write!(f, "it holds a control character at byte {at}"),
        }
    }
}

impl FreeText {
    /// The field's name in error messages.
    pub fn what(self) -> &'static str {
        match self {
            FreeText::CaseId => "a legal hold's case id",
            FreeText::HoldNote => "a legal hold's note",
            FreeText::MetadataName => "a user metadata name",
            FreeText::MetadataValue => "a user metadata value",
            FreeText::ContentType => "a content type",
        }
    }

    /// The fewest bytes allowed.
    pub fn min_bytes(self) -> usize {
        match self {
            FreeText::CaseId | FreeText::MetadataName => 1,
            FreeText::HoldNote | FreeText::MetadataValue | FreeText::ContentType => 0,
        }
    }

    /// The most bytes allowed.
    pub fn max_bytes(self) -> usize {
        match self {
            FreeText::CaseId | FreeText::ContentType => 256,
            FreeText::HoldNote => 1024,
            FreeText::MetadataName | FreeText::MetadataValue => crate::MAX_USER_METADATA_BYTES,
        }
    }

    fn range(self) -> String {
        match self.min_bytes() {
            0 => format!("at most {}", self.max_bytes()),
            min => format!("{min} to {}", self.max_bytes()),
        }
    }

    /// Checks `text` against this field's limits; the length is checked
    /// first, so an oversize text is never scanned.
    pub fn check(self, text: &str) -> Result<(), FreeTextError> {
        let fail = |problem| Err(FreeTextError { kind: self, problem });
        if text.len() < self.min_bytes() {
            return fail(FreeTextProblem::Empty);
        }
        if text.len() > self.max_bytes() {
            return fail(FreeTextProblem::TooLong(text.len()));
        }
        match text.char_indices().find(|(_, c)| c.is_control()) {
            Some((at, _)) => fail(FreeTextProblem::Control(at)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_ids_are_1_to_256_bytes_without_control_characters() {
        assert!(FreeText::CaseId.check("SEC-2026-17").is_ok());
        assert!(FreeText::CaseId.check(&"é".repeat(128)).is_ok());
        // Punctuation is text like any other: what it looks like no longer matters to the evidence.
        assert!(FreeText::CaseId.check("SEC; lock-sha256 00").is_ok());
        assert_eq!(FreeText::CaseId.check("").unwrap_err().problem, FreeTextProblem::Empty);
        assert_eq!(FreeText::CaseId.check(&"x".repeat(257)).unwrap_err().problem, FreeTextProblem::TooLong(257));
        assert_eq!(FreeText::CaseId.check("a\0b").unwrap_err().problem, FreeTextProblem::Control(1));
        for bad in ["a\nb", "a\rb", "\u{1b}[31m", "a\u{7f}", "a\u{85}b"] {
            assert!(FreeText::CaseId.check(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_kind_has_its_limits_and_one_error_form() {
        assert!(FreeText::HoldNote.check("").is_ok());
        assert!(FreeText::HoldNote.check(&"n".repeat(1024)).is_ok());
        assert!(FreeText::HoldNote.check(&"n".repeat(1025)).is_err());
        assert!(FreeText::MetadataName.check("").is_err());
        assert!(FreeText::MetadataValue.check("").is_ok());
        assert!(FreeText::ContentType.check(&"t".repeat(257)).is_err());
        let err = FreeText::CaseId.check(&format!("{}\0\n", "x".repeat(210 * 1024))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a legal hold's case id must be 1 to 256 bytes of text without control characters: it is 215042 bytes"
        );
        let err = FreeText::HoldNote.check("line\nbreak").unwrap_err();
        assert_eq!(
            err.to_string(),
            "a legal hold's note must be at most 1024 bytes of text without control characters: \
             it holds a control character at byte 4"
        );
    }
}
