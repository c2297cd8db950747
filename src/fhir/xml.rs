//! A minimal element tree over quick-xml, enough for FHIR XML: every FHIR primitive is an
//! element with a `value` attribute, so text content is not kept (except nothing we read).

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::reader::NsReader;

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
        // XML 1.0 allows no other control character, not even as a character reference.
        if crate::domain::has_control(&value) {
            return Err(format!("Steuerzeichen im Attribut {key} von <{name}>"));
        }
        if attrs.len() >= MAX_ATTRIBUTES {
            return Err(format!("mehr als {MAX_ATTRIBUTES} Attribute an <{name}>"));
        }
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
/// Most attributes on one element (a FHIR element has `value`, `url` or `id`, and `xmlns`).
const MAX_ATTRIBUTES: usize = 16;

const FHIR_NS: &[u8] = b"http://hl7.org/fhir";
const XHTML_NS: &[u8] = b"http://www.w3.org/1999/xhtml";

/// The reading state of [`parse`].
struct Tree {
    stack: Vec<Node>,
    root: Option<Node>,
    /// Depth of the stack where an XHTML narrative (`<div>`) began; inside it text is allowed.
    xhtml_from: Option<usize>,
}

impl Tree {
    /// An element opens: in the FHIR namespace, or XHTML inside a narrative.
    fn open(&mut self, ns: &ResolveResult<'_>, e: &BytesStart<'_>) -> Result<Node, String> {
        if self.root.is_some() {
            return Err("Inhalt nach dem Wurzelelement".into());
        }
        if self.stack.len() >= MAX_DEPTH {
            // A KBV eAU bundle nests about 12 levels; dropping and walking the tree are
            // recursive, so a document nested thousands deep could overflow the stack.
            return Err(format!("mehr als {MAX_DEPTH} Ebenen verschachtelt"));
        }
        let node = start(e)?;
        let in_ns = |uri: &[u8]| matches!(ns, ResolveResult::Bound(Namespace(n)) if *n == uri);
        if self.xhtml_from.is_some() {
            if !in_ns(XHTML_NS) {
                return Err(format!(
                    "<{}> in der Narrative nicht im XHTML-Namensraum",
                    node.name
                ));
            }
        } else if in_ns(XHTML_NS) && node.name == "div" && !self.stack.is_empty() {
            self.xhtml_from = Some(self.stack.len());
        } else if !in_ns(FHIR_NS) {
            return Err(format!(
                "<{}> nicht im FHIR-Namensraum (xmlns=\"http://hl7.org/fhir\" erwartet)",
                node.name
            ));
        } else if let Some((key, _)) = node.attrs.iter().find(|(_, v)| v.trim().is_empty()) {
            // FHIR: an attribute is absent or has content, never empty.
            return Err(format!("leeres Attribut {key} an <{}>", node.name));
        }
        Ok(node)
    }

    fn close(&mut self, node: Node) {
        if self.xhtml_from == Some(self.stack.len()) {
            self.xhtml_from = None;
        }
        match self.stack.last_mut() {
            Some(parent) => parent.children.push(node),
            None => self.root = Some(node),
        }
    }
}

/// Parses a FHIR XML document into its root element. Refused besides what is not
/// well-formed: a DOCTYPE (no DTD, so no entity expansion), CDATA, processing instructions,
/// elements outside the FHIR namespace (XHTML only inside a narrative `div`), text content of
/// FHIR elements (FHIR keeps values in `value` attributes), control characters in attribute
/// values, more than [`MAX_ATTRIBUTES`] attributes on an element or [`MAX_DEPTH`] levels, and
/// anything but comments and whitespace after the root element.
pub(crate) fn parse(bytes: &[u8]) -> Result<Node, XmlError> {
    let mut reader = NsReader::from_reader(bytes);
    reader.config_mut().trim_text(true);
    let mut buf = Vec::new();
    let mut tree = Tree {
        stack: Vec::new(),
        root: None,
        xhtml_from: None,
    };
    let mut seen_anything = false;
    loop {
        let pos = reader.buffer_position();
        let syntax = |message: String| XmlError::Syntax { pos, message };
        let (ns, event) = reader
            .read_resolved_event_into(&mut buf)
            .map_err(|e| syntax(e.to_string()))?;
        match event {
            Event::Eof => break,
            Event::Start(e) => {
                let node = tree.open(&ns, &e).map_err(syntax)?;
                tree.stack.push(node);
            }
            Event::Empty(e) => {
                let node = tree.open(&ns, &e).map_err(syntax)?;
                tree.close(node);
            }
            Event::End(_) => {
                let node = tree
                    .stack
                    .pop()
                    .ok_or_else(|| syntax("schließendes Element ohne Anfang".into()))?;
                tree.close(node);
            }
            Event::Text(_) if tree.xhtml_from.is_some() => {}
            Event::Text(_) if tree.root.is_some() => {
                return Err(syntax("Inhalt nach dem Wurzelelement".into()))
            }
            Event::Text(_) => {
                return Err(syntax(
                    "Text in einem FHIR-Element (Werte stehen im Attribut value)".into(),
                ))
            }
            Event::CData(_) => return Err(syntax("CDATA-Abschnitt nicht erlaubt".into())),
            Event::DocType(_) => {
                return Err(syntax(
                    "DOCTYPE nicht erlaubt (keine DTD, keine Entitäten)".into(),
                ))
            }
            Event::PI(_) => return Err(syntax("Verarbeitungsanweisung nicht erlaubt".into())),
            Event::Decl(_) if seen_anything => {
                return Err(syntax("XML-Deklaration nur am Anfang".into()))
            }
            Event::Decl(_) | Event::Comment(_) => {}
        }
        seen_anything = true;
        buf.clear();
    }
    if !tree.stack.is_empty() {
        return Err(XmlError::Syntax {
            pos: reader.buffer_position(),
            message: "Dokument endet vor dem schließenden Element".into(),
        });
    }
    tree.root.ok_or(XmlError::Empty)
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
