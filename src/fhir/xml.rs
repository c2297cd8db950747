//! A minimal element tree over quick-xml, enough for FHIR XML: every FHIR primitive is an
//! element with a `value` attribute, so text content is not kept (except nothing we read).

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// One XML element: local name, attributes (local names, unescaped values), child elements.
#[derive(Debug, Clone, Default)]
pub(crate) struct Node {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Node>,
}

impl Node {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The `value` attribute of a FHIR primitive.
    pub fn value(&self) -> Option<&str> {
        self.attr("value")
    }

    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Children of one name with their index among them (`identifier[1]`).
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = (usize, &'a Node)> + 'a {
        self.children
            .iter()
            .filter(move |c| c.name == name)
            .enumerate()
    }

    /// Follows the first child of each name and returns that element.
    pub fn at(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self, |n, p| n.child(p))
    }

    /// Follows a path and returns the `value` attribute there.
    pub fn val(&self, path: &[&str]) -> Option<&str> {
        self.at(path).and_then(Node::value)
    }

    /// The `value` attribute of the named child.
    pub fn value_of(&self, child: &str) -> Option<&str> {
        self.val(&[child])
    }

    /// The extension with the given url.
    pub fn extension(&self, url: &str) -> Option<&Node> {
        self.children
            .iter()
            .find(|c| c.name == "extension" && c.attr("url") == Some(url))
    }

    /// The first `coding` of a CodeableConcept-like element with the given system.
    pub fn coding<'a>(&'a self, system: &str) -> Option<&'a Node> {
        self.children
            .iter()
            .find(|c| c.name == "coding" && c.val(&["system"]) == Some(system))
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum XmlError {
    #[error("XML nicht lesbar an Byte {pos}: {message}")]
    Syntax { pos: u64, message: String },
    #[error("XML enthält kein Wurzelelement")]
    Empty,
}

fn start(e: &BytesStart<'_>) -> Result<Node, String> {
    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|err| err.to_string())?;
        let key = String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned();
        let value = a.unescape_value().map_err(|err| err.to_string())?;
        attrs.push((key, value.into_owned()));
    }
    Ok(Node {
        name,
        attrs,
        children: Vec::new(),
    })
}

/// Deepest element nesting read (see [`parse`]).
const MAX_DEPTH: usize = 64;

/// Parses a document into its root element.
pub(crate) fn parse(bytes: &[u8]) -> Result<Node, XmlError> {
    let mut reader = Reader::from_reader(bytes);
    reader.config_mut().trim_text(true);
    let mut buf = Vec::new();
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    loop {
        let pos = reader.buffer_position();
        let syntax = |message: String| XmlError::Syntax { pos, message };
        match reader.read_event_into(&mut buf) {
            Err(e) => return Err(syntax(e.to_string())),
            Ok(Event::Eof) => break,
            Ok(Event::Start(e)) => {
                // A KBV eAU bundle nests about 12 levels; dropping and walking the tree are
                // recursive, so a document nested thousands deep could overflow the stack.
                if stack.len() >= MAX_DEPTH {
                    return Err(syntax(format!("mehr als {MAX_DEPTH} Ebenen verschachtelt")));
                }
                stack.push(start(&e).map_err(syntax)?)
            }
            Ok(Event::Empty(e)) => {
                let node = start(&e).map_err(syntax)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Ok(Event::End(_)) => {
                let node = stack
                    .pop()
                    .ok_or_else(|| syntax("schließendes Element ohne Anfang".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Ok(_) => {}
        }
        buf.clear();
    }
    if !stack.is_empty() {
        return Err(XmlError::Syntax {
            pos: reader.buffer_position(),
            message: "Dokument endet vor dem schließenden Element".into(),
        });
    }
    root.ok_or(XmlError::Empty)
}

/// A small indenting XML writer for FHIR: elements, `value` leaves, escaping.
pub(crate) struct Writer {
    out: String,
    depth: usize,
}

impl Writer {
    pub fn new() -> Self {
        let mut out = String::with_capacity(16 * 1024);
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        Self { out, depth: 0 }
    }

    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }

    /// `<name>` or `<name k="v">`.
    pub fn open(&mut self, name: &str) -> &mut Self {
        self.open_with(name, &[])
    }

    pub fn open_with(&mut self, name: &str, attrs: &[(&str, &str)]) -> &mut Self {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        for (k, v) in attrs {
            self.out.push(' ');
            self.out.push_str(k);
            self.out.push_str("=\"");
            self.out.push_str(&quick_xml::escape::escape(*v));
            self.out.push('"');
        }
        self.out.push_str(">\n");
        self.depth += 1;
        self
    }

    pub fn close(&mut self, name: &str) -> &mut Self {
        self.depth = self.depth.saturating_sub(1);
        self.indent();
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
        self
    }

    /// `<name value="…"/>`.
    pub fn leaf(&mut self, name: &str, value: &str) -> &mut Self {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        self.out.push_str(" value=\"");
        self.out.push_str(&quick_xml::escape::escape(value));
        self.out.push_str("\"/>\n");
        self
    }

    /// `<coding><system/><code/></coding>`.
    pub fn coding(&mut self, system: &str, code: &str) -> &mut Self {
        self.open("coding")
            .leaf("system", system)
            .leaf("code", code)
            .close("coding")
    }

    /// `<name><reference value="…"/></name>`.
    pub fn reference(&mut self, name: &str, reference: &str) -> &mut Self {
        self.open(name).leaf("reference", reference).close(name)
    }

    /// `<extension url><valueString/></extension>`.
    pub fn ext_string(&mut self, url: &str, value: &str) -> &mut Self {
        self.open_with("extension", &[("url", url)])
            .leaf("valueString", value)
            .close("extension")
    }

    /// `<extension url><valueCoding>…</valueCoding></extension>`.
    pub fn ext_coding(&mut self, url: &str, system: &str, code: &str) -> &mut Self {
        self.open_with("extension", &[("url", url)])
            .open("valueCoding")
            .leaf("system", system)
            .leaf("code", code)
            .close("valueCoding")
            .close("extension")
    }

    pub fn finish(self) -> Vec<u8> {
        self.out.into_bytes()
    }
}
