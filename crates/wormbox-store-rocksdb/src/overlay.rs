//! What a read-only open sees of the log past the index: the changes of the
//! frames the index does not hold yet (the appliance was killed before the
//! index flushed them), kept in memory above the index, since a read-only
//! open writes nothing. Offline verification of a killed appliance thus
//! reads exactly what the appliance itself will serve once it replays them.
//!
//! Invariant: reads through the overlay see a key as the last frame left
//! it: its value, or gone; keys no frame named, as the index has them.

use std::collections::{BTreeMap, HashMap};
use std::iter::Peekable;

use wormbox_store::backend::{BackendError, Entries, Keyspace};

use crate::log::{Frame, Op};
use crate::segments::{self, ValueRef};

/// A changed key and its value, `None` for removed.
type Change = (Vec<u8>, Option<Vec<u8>>);

/// Changed keys per column family (by name): their value, or `None` for
/// removed.
#[derive(Debug, Default)]
pub(crate) struct Overlay {
    families: HashMap<&'static str, BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
}

impl Overlay {
    fn set(&mut self, family: &'static str, key: &[u8], value: Option<Vec<u8>>) {
        self.families.entry(family).or_default().insert(key.to_vec(), value);
    }

    /// Records `frame`'s changes as the index would hold them: each `chunks`
    /// value as a reference into the frame (and, in a database written
    /// before the log, its key cleared from the `chunks` family).
    pub(crate) fn apply(&mut self, frame: &Frame, legacy_chunks: bool) {
        let bytes = &frame.bytes;
        for op in &frame.ops {
            match op {
                Op::Put { space: Keyspace::Chunks, key, value } => {
                    let r = ValueRef {
                        segment: frame.at.segment,
                        offset: frame.at.offset + value.start as u64,
                        len: value.len() as u32,
                    };
                    self.set(segments::REFS, &bytes[key.clone()], Some(r.encode().to_vec()));
                    if legacy_chunks {
                        self.set(Keyspace::Chunks.name(), &bytes[key.clone()], None);
                    }
                }
                Op::Delete { space: Keyspace::Chunks, key } => {
                    self.set(segments::REFS, &bytes[key.clone()], None);
                    if legacy_chunks {
                        self.set(Keyspace::Chunks.name(), &bytes[key.clone()], None);
                    }
                }
                Op::Put { space, key, value } => {
                    self.set(space.name(), &bytes[key.clone()], Some(bytes[value.clone()].to_vec()))
                }
                Op::Delete { space, key } => self.set(space.name(), &bytes[key.clone()], None),
                Op::Base { .. } => {}
            }
        }
    }

    /// What the overlay says of `key` in `family`: `None` when no frame
    /// named it.
    pub(crate) fn get(&self, family: &str, key: &[u8]) -> Option<Option<Vec<u8>>> {
        self.families.get(family)?.get(key).cloned()
    }

    /// `base` (entries of `family` from `start` on, with `prefix`) as the
    /// overlay changed them.
    pub(crate) fn over<'a>(&self, family: &str, base: Entries<'a>, start: &[u8], prefix: &[u8]) -> Entries<'a> {
        let Some(changed) = self.families.get(family) else { return base };
        let from = if start < prefix { prefix } else { start };
        let over: Vec<Change> = changed
            .range(from.to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        if over.is_empty() {
            return base;
        }
        Box::new(Overlaid { base: base.peekable(), over: over.into_iter().peekable() })
    }
}

struct Overlaid<'a> {
    base: Peekable<Entries<'a>>,
    over: Peekable<std::vec::IntoIter<Change>>,
}

impl Iterator for Overlaid<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>), BackendError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let order = match (self.base.peek(), self.over.peek()) {
                (None, None) => return None,
                (Some(Err(_)), _) | (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(Ok((base, _))), Some((over, _))) => base.cmp(over),
            };
            match order {
                std::cmp::Ordering::Less => return self.base.next(),
                std::cmp::Ordering::Equal => {
                    self.base.next();
                }
                std::cmp::Ordering::Greater => {}
            }
            match self.over.next() {
                Some((key, Some(value))) => return Some(Ok((key, value))),
                // Removed by a frame: the base's entry (if any) is skipped.
                Some((_, None)) => continue,
                None => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(pairs: &[(&str, &str)]) -> Entries<'static> {
        let owned: Vec<_> = pairs.iter().map(|(k, v)| Ok((k.as_bytes().to_vec(), v.as_bytes().to_vec()))).collect();
        Box::new(owned.into_iter())
    }

    #[test]
    fn an_overlaid_scan_shows_changed_values_hides_removed_keys_and_keeps_the_rest() {
        let mut overlay = Overlay::default();
        overlay.set("ledger", b"b", Some(b"new".to_vec()));
        overlay.set("ledger", b"c", None);
        overlay.set("ledger", b"e", Some(b"added".to_vec()));
        overlay.set("ledger", b"x", Some(b"other prefix".to_vec()));
        let base = entries(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]);
        let seen: Vec<(Vec<u8>, Vec<u8>)> = overlay.over("ledger", base, b"", b"").map(Result::unwrap).collect();
        let expected: Vec<(Vec<u8>, Vec<u8>)> =
            [("a", "1"), ("b", "new"), ("d", "4"), ("e", "added"), ("x", "other prefix")]
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect();
        assert_eq!(seen, expected);
        // From a start key, within a prefix; another family is untouched.
        let base = entries(&[("c", "3"), ("d", "4")]);
        let seen: Vec<Vec<u8>> = overlay.over("ledger", base, b"c", b"").map(|e| e.unwrap().0).collect();
        assert_eq!(seen, [b"d".to_vec(), b"e".to_vec(), b"x".to_vec()]);
        let seen: Vec<Vec<u8>> =
            overlay.over("locks", entries(&[("c", "3")]), b"", b"").map(|e| e.unwrap().0).collect();
        assert_eq!(seen, [b"c".to_vec()]);
        assert_eq!(overlay.get("ledger", b"c"), Some(None));
        assert_eq!(overlay.get("ledger", b"a"), None);
    }
}
