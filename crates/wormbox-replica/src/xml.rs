//! S3's XML: a small element tree read from a response with quick-xml, and the
//! few request bodies the client sends.
//!
//! Invariant: text is kept exactly as the server sent it (entities resolved,
//! whitespace kept), so a key with leading or trailing spaces, `&` or `<`
//! reads back the same; only whitespace between child elements is dropped.

use quick_xml::Reader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;

use crate::error::S3Error;

/// One element: its local name (namespace prefix dropped), its text, its children.
#[derive(Debug, Default)]
pub(crate) struct Element {
    pub(crate) name: String,
    pub(crate) text: String,
    pub(crate) children: Vec<Element>,
}

impl Element {
    /// The first child named `name`.
    pub(crate) fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The text of the first child named `name`.
    pub(crate) fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }
}

/// Parses a whole XML document into its root element.
pub(crate) fn parse(body: &[u8]) -> Result<Element, S3Error> {
    let text = std::str::from_utf8(body).map_err(|e| S3Error::Xml(format!("not UTF-8: {e}")))?;
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let bad = |e: &dyn std::fmt::Display| S3Error::Xml(e.to_string());
    loop {
        match reader.read_event().map_err(|e| bad(&e))? {
            Event::Start(start) => {
                stack.push(Element { name: start.local_name().as_ref().to_owned(), ..Element::default() });
            }
            Event::Empty(start) => {
                let element = Element { name: start.local_name().as_ref().to_owned(), ..Element::default() };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => return Ok(element),
                }
            }
            Event::End(_) => {
                let Some(mut done) = stack.pop() else { return Err(S3Error::Xml("unbalanced end tag".into())) };
                if !done.children.is_empty() {
                    // Indentation between children, not content.
                    done.text.clear();
                }
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => return Ok(done),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let Some(top) = stack.last_mut() else { continue };
                if let Some(c) = r.resolve_char_ref().map_err(|e| bad(&e))? {
                    top.text.push(c);
                } else {
                    let name = r.xml10_content();
                    let resolved = resolve_predefined_entity(&name)
                        .ok_or_else(|| S3Error::Xml(format!("unknown entity &{name};")))?;
                    top.text.push_str(resolved);
                }
            }
            Event::Eof => return Err(S3Error::Xml("document ended before its root element closed".into())),
            _ => {}
        }
    }
}

/// The S3 namespace request bodies declare.
pub(crate) const S3_NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_reads_back_exactly_and_namespaces_are_dropped() {
        let doc = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Version><Key> a &amp; b &lt;c&gt; &#233;</Key><Size>3</Size></Version>
  <DeleteMarker><Key>x</Key></DeleteMarker>
  <Empty/>
</ListVersionsResult>"#;
        let root = parse(doc).unwrap();
        assert_eq!(root.name, "ListVersionsResult");
        assert_eq!(root.text, "");
        let names: Vec<_> = root.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["Version", "DeleteMarker", "Empty"]);
        assert_eq!(root.children[0].text_of("Key"), Some(" a & b <c> é"));
        assert_eq!(root.children[0].text_of("Size"), Some("3"));
    }

    #[test]
    fn broken_documents_are_errors() {
        for bad in [&b"<a><b></a>"[..], b"<a>", b"", b"<a>&nope;</a>", b"\xff"] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
