//! TwiML as the simulator reads it: a small element tree parsed with quick-xml,
//! so every verb the server sends can be interpreted or reported.

use quick_xml::events::Event;
use quick_xml::Reader;

/// One element: name, attributes, text and children.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    /// Element name, e.g. `Gather`.
    pub name: String,
    /// Attributes in document order, unescaped.
    pub attrs: Vec<(String, String)>,
    /// Text content, unescaped.
    pub text: String,
    /// Child elements.
    pub children: Vec<Node>,
}

impl Node {
    /// An attribute's value.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a TwiML document; the root must be `<Response>`.
pub fn parse(xml: &str) -> Result<Node, String> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Node> = vec![Node::default()];
    loop {
        match reader
            .read_event()
            .map_err(|e| format!("TwiML is not well-formed XML: {e}"))?
        {
            Event::Start(e) => stack.push(element(&e)?),
            Event::Empty(e) => {
                let node = element(&e)?;
                if let Some(parent) = stack.last_mut() {
                    parent.children.push(node);
                }
            }
            Event::End(_) => {
                let node = stack.pop().ok_or("unbalanced TwiML")?;
                stack
                    .last_mut()
                    .ok_or("unbalanced TwiML")?
                    .children
                    .push(node);
            }
            Event::Text(t) => {
                let text = t
                    .unescape()
                    .map_err(|e| format!("bad text in TwiML: {e}"))?;
                if let Some(n) = stack.last_mut() {
                    n.text.push_str(&text);
                }
            }
            Event::CData(t) => {
                if let Some(n) = stack.last_mut() {
                    n.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let mut root = stack.pop().ok_or("empty TwiML")?;
    let response = root.children.pop().ok_or("TwiML has no root element")?;
    if response.name != "Response" {
        return Err(format!("TwiML root is <{}>, not <Response>", response.name));
    }
    Ok(response)
}

fn element(e: &quick_xml::events::BytesStart<'_>) -> Result<Node, String> {
    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|err| format!("bad attribute in <{name}>: {err}"))?;
        let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
        let value = a
            .unescape_value()
            .map_err(|err| format!("bad attribute value in <{name}>: {err}"))?
            .into_owned();
        attrs.push((key, value));
    }
    Ok(Node {
        name,
        attrs,
        ..Node::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twiml::{Gather, Response, Say};

    #[test]
    fn the_builders_output_reads_back() {
        let xml = Response::new()
            .gather(
                Gather::new()
                    .action("http://x/a?t=1&u=2")
                    .say(Say::new("Tom & Jerry <3")),
            )
            .hangup()
            .to_xml();
        let doc = parse(&xml).unwrap();
        assert_eq!(doc.children[0].name, "Gather");
        assert_eq!(doc.children[0].attr("action"), Some("http://x/a?t=1&u=2"));
        assert_eq!(doc.children[0].children[0].text, "Tom & Jerry <3");
        assert_eq!(doc.children[1].name, "Hangup");
    }

    #[test]
    fn a_document_that_is_not_twiml_is_refused() {
        assert!(parse("<html></html>").is_err());
        assert!(parse("just text").is_err());
    }
}
