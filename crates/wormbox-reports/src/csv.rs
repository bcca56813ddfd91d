//! RFC 4180 CSV fields: quoted when they hold a comma, semicolon, quote or
//! line break.
//!
//! Invariant: a field that starts like a spreadsheet formula is prefixed with
//! a quote mark, so opening a report never runs an object key as a formula.

/// Appends one record (CRLF-terminated, as RFC 4180 says).
pub(crate) fn record<S: AsRef<str>>(out: &mut String, fields: &[S]) {
    for (n, field) in fields.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        field_into(out, field.as_ref());
    }
    out.push_str("\r\n");
}

fn field_into(out: &mut String, field: &str) {
    // A leading quote mark is doubled too, so that `parse` can strip exactly one.
    let formula = field.starts_with(['=', '+', '-', '@', '\t', '\r', '\'']);
    // Spreadsheets in locales whose list separator is `;` split an unquoted
    // field there, and the piece after it can start a formula.
    let quote = formula || field.contains([',', ';', '"', '\n', '\r']);
    if !quote {
        out.push_str(field);
        return;
    }
    out.push('"');
    if formula {
        out.push('\'');
    }
    out.push_str(&field.replace('"', "\"\""));
    out.push('"');
}

/// Splits CSV text into records of fields (the inverse of `record`, used to
/// check exported manifests).
#[cfg(test)]
pub(crate) fn parse(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut records = Vec::new();
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' if at_start => {
                quoted = true;
                at_start = false;
                if chars.peek() == Some(&'\'') {
                    chars.next();
                }
            }
            ',' => {
                fields.push(std::mem::take(&mut field));
                at_start = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                fields.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut fields));
                at_start = true;
            }
            '"' => return Err("a quote inside an unquoted field".to_owned()),
            c => {
                field.push(c);
                at_start = false;
            }
        }
    }
    if quoted {
        return Err("an unterminated quoted field".to_owned());
    }
    if !field.is_empty() || !fields.is_empty() {
        fields.push(field);
        records.push(fields);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_formulas_are_defused() {
        let rows = vec![
            vec!["plain".to_owned(), "a,b".to_owned(), "say \"hi\"".to_owned(), "two\nlines".to_owned()],
            vec!["=HYPERLINK(\"x\")".to_owned(), String::new(), "-1".to_owned(), "'quoted, already".to_owned()],
        ];
        let mut out = String::new();
        for row in &rows {
            record(&mut out, row);
        }
        assert!(out.contains("\"'=HYPERLINK(\"\"x\"\")\""), "{out}");
        assert_eq!(parse(&out).unwrap(), rows);
        assert!(parse("a,\"open").is_err());
    }

    #[test]
    fn fields_holding_a_semicolon_are_quoted() {
        let rows = vec![vec!["a;=cmd|' /C calc'!A0".to_owned(), "x;y".to_owned(), "plain".to_owned()]];
        let mut out = String::new();
        record(&mut out, &rows[0]);
        assert_eq!(out, "\"a;=cmd|' /C calc'!A0\",\"x;y\",plain\r\n");
        assert_eq!(parse(&out).unwrap(), rows);
    }
}
