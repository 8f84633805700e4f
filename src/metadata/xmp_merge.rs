//! `--xmp-sidecar`: write `<file>.xmp` beside a downloaded file, merging with a sidecar another
//! tool already keeps there.
//!
//! Naming: the sidecar of `IMG_1.JPG` is `IMG_1.JPG.xmp` (the full name plus `.xmp`). That is
//! what darktable and digiKam look for by default, what Immich and exiftool's `%f.%e.xmp`
//! read, what icloudpd writes, and the only scheme under which a live photo's `IMG_1.HEIC`
//! and `IMG_1.MOV` do not share (and fight over) one `IMG_1.xmp`.
//!
//! Merging, so a user's edits in another tool are never lost:
//! * the existing text is kept byte for byte, every element, attribute and comment of it; we
//!   only remove our previous block and insert the new one before `</rdf:RDF>`;
//! * our block is an `rdf:Description` preceded by our marker comment and holding nothing but
//!   properties we write. A block another tool has added to, or rewritten (XMP toolkits drop
//!   comments), is no longer ours: it is theirs from then on;
//! * where another block already has a property we would write, theirs wins and ours is left
//!   out, by group: dates go together, and so do the GPS fields;
//! * a sidecar that is not well-formed XML with an `rdf:RDF` is left untouched.

use std::collections::HashSet;
use std::ffi::OsString;
use std::ops::Range;
use std::path::{Path, PathBuf};

use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;

use super::atomic::{self, Keep};
use super::xmp::{MARKER, RDF_NS, VOCABULARY, properties, render_block};
use super::{MetadataError, render_xmp};
use crate::model::Asset;

/// The result of [`write_xmp_sidecar`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SidecarOutcome {
    /// There was no sidecar; one was written.
    Created,
    /// The sidecar was rewritten: our block replaced or added, everything else kept.
    Updated,
    /// The sidecar already said exactly this; it was not rewritten.
    Unchanged,
    /// The existing file is not XMP we can merge into; it was left untouched. The caller
    /// should show `reason` as a warning.
    LeftAlone { reason: String },
}

/// What [`write_xmp_sidecar`] did, and the properties of ours that another tool's values
/// kept out of the sidecar (`xmp:Rating`, ...): iCloud's values of those are not written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarWrite {
    pub outcome: SidecarOutcome,
    pub kept_theirs: Vec<String>,
}

/// Where the sidecar of a file goes: `IMG_1.JPG` -> `IMG_1.JPG.xmp`.
pub fn sidecar_path(file_path: &Path) -> PathBuf {
    let mut name = OsString::from(file_path.as_os_str());
    name.push(crate::layout::SIDECAR_SUFFIX);
    PathBuf::from(name)
}

/// Write or merge the XMP sidecar of the file at `file_path` (see the module docs).
pub fn write_xmp_sidecar(file_path: &Path, asset: &Asset) -> Result<SidecarWrite, MetadataError> {
    let path = sidecar_path(file_path);
    let done = |outcome, kept_theirs| {
        Ok(SidecarWrite {
            outcome,
            kept_theirs,
        })
    };
    let existing = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            atomic::replace(&path, render_xmp(asset).as_bytes(), Keep::Permissions)?;
            return done(SidecarOutcome::Created, Vec::new());
        }
        Err(e) => return Err(MetadataError::io("read", &path, e)),
    };
    let merged = std::str::from_utf8(&existing)
        .map_err(|_| "not UTF-8 text".to_string())
        .and_then(|text| merge(text, asset));
    match merged {
        Err(reason) => {
            // The caller reports this outcome as a warning; this trace is for debugging.
            tracing::debug!(path = %path.display(), %reason, "existing sidecar left untouched");
            done(SidecarOutcome::LeftAlone { reason }, Vec::new())
        }
        Ok(m) if m.text.as_bytes() == existing => done(SidecarOutcome::Unchanged, m.kept_theirs),
        Ok(m) => {
            atomic::replace(&path, m.text.as_bytes(), Keep::Permissions)?;
            done(SidecarOutcome::Updated, m.kept_theirs)
        }
    }
}

/// What a sidecar's text holds, as far as merging is concerned.
struct Scan {
    /// Where `</rdf:RDF>` starts.
    rdf_end: usize,
    /// Our previous blocks, each with the whitespace before its marker.
    ours: Vec<Range<usize>>,
    /// `(namespace, name)` of every property in the other blocks.
    theirs: HashSet<(String, String)>,
}

/// One `rdf:Description` directly under `rdf:RDF`, being read.
struct Block {
    /// Start of our marker (and the whitespace before it), when the marker precedes the block.
    marker_start: Option<usize>,
    properties: Vec<(String, String)>,
    /// An attribute other than `rdf:about` and namespace declarations.
    foreign_attribute: bool,
}

impl Block {
    fn is_ours(&self) -> bool {
        self.marker_start.is_some()
            && !self.foreign_attribute
            && self
                .properties
                .iter()
                .all(|(ns, name)| VOCABULARY.contains(&(ns.as_str(), name.as_str())))
    }
}

fn namespace_of(r: &ResolveResult<'_>) -> String {
    match r {
        ResolveResult::Bound(ns) => ns.0.to_string(),
        _ => String::new(),
    }
}

/// Open a block: its attributes are properties too (`xmp:Rating="1"`), except namespace
/// declarations and the `rdf:` ones (`about`, `ID`, `nodeID`).
fn open_block(
    reader: &NsReader<&[u8]>,
    start: &BytesStart<'_>,
    marker_start: Option<usize>,
) -> Result<Block, String> {
    let mut block = Block {
        marker_start,
        properties: Vec::new(),
        foreign_attribute: false,
    };
    for attr in start.attributes() {
        let attr = attr.map_err(|e| e.to_string())?;
        if attr.key.as_namespace_binding().is_some() {
            continue;
        }
        let (ns, local) = reader.resolver().resolve_attribute(attr.key);
        let ns = namespace_of(&ns);
        if ns == RDF_NS {
            if local.into_inner() != "about" {
                block.foreign_attribute = true;
            }
            continue;
        }
        block.foreign_attribute = true;
        block.properties.push((ns, local.into_inner().to_string()));
    }
    Ok(block)
}

fn scan(text: &str) -> Result<Scan, String> {
    let mut reader = NsReader::from_str(text);
    let mut depth = 0usize;
    let mut rdf_depth: Option<usize> = None;
    let mut rdf_end = None;
    let mut block: Option<Block> = None;
    // Our marker, if it is the last thing seen apart from whitespace: where the whitespace
    // before it starts.
    let mut marker: Option<usize> = None;
    // End of the last thing seen that is not whitespace.
    let mut whitespace_from = 0usize;
    let mut scan = Scan {
        rdf_end: 0,
        ours: Vec::new(),
        theirs: HashSet::new(),
    };
    loop {
        let before = reader.buffer_position() as usize;
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|e| format!("not well-formed XML: {e}"))?;
        let ns = namespace_of(&ns);
        let after = reader.buffer_position() as usize;
        match &event {
            // Whitespace keeps a marker attached to what follows.
            Event::Text(t) if t.xml10_content().trim().is_empty() => continue,
            Event::Comment(c) => {
                let ours = format!("<!--{}-->", c.xml10_content()) == MARKER;
                marker = (ours && rdf_depth == Some(depth)).then_some(whitespace_from);
                whitespace_from = after;
                continue;
            }
            _ => {}
        }
        let pending_marker = marker.take();
        whitespace_from = after;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                let local = e.local_name().into_inner().to_string();
                if rdf_depth.is_none() && rdf_end.is_none() && ns == RDF_NS && local == "RDF" {
                    if empty {
                        return Err("empty rdf:RDF".into());
                    }
                    rdf_depth = Some(depth + 1);
                } else if rdf_depth == Some(depth) && ns == RDF_NS && local == "Description" {
                    let b = open_block(&reader, e, pending_marker)?;
                    if empty {
                        close_block(b, before, after, &mut scan);
                    } else {
                        block = Some(b);
                    }
                } else if let (Some(b), Some(r)) = (block.as_mut(), rdf_depth)
                    && depth == r + 1
                {
                    b.properties.push((ns, local));
                }
                if !empty {
                    depth += 1;
                }
            }
            Event::End(_) => {
                depth = depth.checked_sub(1).ok_or("unbalanced end tag")?;
                if let Some(r) = rdf_depth {
                    if depth == r {
                        if let Some(b) = block.take() {
                            close_block(b, before, after, &mut scan);
                        }
                    } else if depth + 1 == r {
                        rdf_end = Some(before);
                        rdf_depth = None;
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if depth != 0 {
        return Err("not well-formed XML: unclosed elements".into());
    }
    scan.rdf_end = rdf_end.ok_or("no rdf:RDF element: not an XMP packet")?;
    Ok(scan)
}

fn close_block(b: Block, start: usize, end: usize, scan: &mut Scan) {
    if b.is_ours() {
        let from = b.marker_start.unwrap_or(start);
        scan.ours.push(from..end);
    } else {
        scan.theirs.extend(b.properties);
    }
}

/// `existing` with our block for `asset` replacing the previous one (see the module docs).
/// A merged sidecar's text, and the properties of ours left out for another tool's.
pub(crate) struct Merged {
    pub text: String,
    pub kept_theirs: Vec<String>,
}

pub(crate) fn merge(existing: &str, asset: &Asset) -> Result<Merged, String> {
    let scan = scan(existing)?;
    let mut props = properties(asset);
    let blocked: HashSet<&str> = props
        .iter()
        .filter(|p| {
            scan.theirs
                .contains(&(p.namespace().to_string(), p.name.to_string()))
        })
        .map(|p| p.group)
        .collect();
    let kept_theirs = props
        .iter()
        .filter(|p| blocked.contains(p.group))
        .map(|p| format!("{}:{}", p.prefix, p.name))
        .collect();
    props.retain(|p| !blocked.contains(p.group));

    // Insert after the last non-blank text before `</rdf:RDF>`, one step deeper than it.
    let head = &existing[..scan.rdf_end];
    let at = head.trim_end().len();
    let line_start = head.rfind('\n').map_or(0, |i| i + 1);
    let indent = &head[line_start..];
    let indent = if indent.trim().is_empty() { indent } else { "" };
    let child = format!("{indent} ");
    let insert = render_block(&props, &child).map(|b| format!("\n{child}{b}"));

    let mut out = String::with_capacity(existing.len() + 2048);
    let mut pos = 0;
    let mut inserted = insert.is_none();
    for span in &scan.ours {
        if !inserted && at <= span.start {
            out.push_str(&existing[pos..at]);
            out.push_str(insert.as_deref().unwrap_or_default());
            pos = at;
            inserted = true;
        }
        out.push_str(&existing[pos..span.start]);
        pos = span.end;
    }
    if !inserted {
        out.push_str(&existing[pos..at]);
        out.push_str(insert.as_deref().unwrap_or_default());
        pos = at;
    }
    out.push_str(&existing[pos..]);
    Ok(Merged {
        text: out,
        kept_theirs,
    })
}
