//! Trees (format §7.2): the JSON listing of one directory, stored as a blob.

use crate::error::FormatError;
use crate::ids::{chunk_hex, ChunkId};
use crate::sealed::decode_json;

/// Metadata every node carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeMeta {
    /// `st_mode & 0o7777`.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i64,
    /// Status change time, ns since the epoch.
    pub ctime_ns: i64,
    /// Inode at backup time.
    pub inode: u64,
    /// Device at backup time.
    pub device: u64,
    /// Link count at backup time.
    pub links: u64,
}

/// What a node is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// A regular file.
    File {
        /// Its length.
        size: u64,
        /// Its chunks, in order.
        content: Vec<ChunkId>,
    },
    /// A directory.
    Dir {
        /// Its tree blob.
        subtree: ChunkId,
    },
    /// A symbolic link.
    Symlink {
        /// The link target's bytes.
        target: Vec<u8>,
    },
}

/// One entry of a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The name's bytes (any bytes but `/` and NUL).
    pub name: Vec<u8>,
    /// Metadata.
    pub meta: NodeMeta,
    /// Type and type-specific data.
    pub kind: NodeKind,
}

/// A directory listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    nodes: Vec<Node>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTree {
    version: u32,
    nodes: Vec<RawNode>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name_hex: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime_ns: i64,
    ctime_ns: i64,
    inode: u64,
    device: u64,
    links: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "chunk_hex::vec"
    )]
    content: Option<Vec<ChunkId>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "chunk_hex::opt"
    )]
    subtree: Option<ChunkId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target_hex: Option<String>,
}

/// Splits bytes into the (`x`, `x_hex`) pair of the format: text when valid UTF-8.
fn to_text_or_hex(bytes: &[u8]) -> (Option<String>, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (Some(s.to_owned()), None),
        Err(_) => (None, Some(hex::encode(bytes))),
    }
}

fn from_text_or_hex(
    what: &str,
    field: &str,
    text: Option<String>,
    hexed: Option<String>,
) -> Result<Vec<u8>, FormatError> {
    match (text, hexed) {
        (Some(t), None) => Ok(t.into_bytes()),
        (None, Some(h)) => {
            let b = hex::decode(&h)
                .map_err(|_| FormatError::invalid(what, format!("{field}_hex is not hex")))?;
            if std::str::from_utf8(&b).is_ok() {
                return Err(FormatError::invalid(
                    what,
                    format!("{field}_hex holds valid UTF-8; use {field}"),
                ));
            }
            Ok(b)
        }
        _ => Err(FormatError::invalid(
            what,
            format!("exactly one of {field} and {field}_hex must be present"),
        )),
    }
}

impl Tree {
    /// Builds a tree, sorting the nodes by name.
    ///
    /// # Errors
    /// [`FormatError::Invalid`] if a name is empty, `.`, `..`, contains `/` or
    /// NUL, or appears twice.
    pub fn new(mut nodes: Vec<Node>) -> Result<Self, FormatError> {
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        check_names("tree", &nodes)?;
        Ok(Tree { nodes })
    }

    /// The nodes, sorted by name.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Finds a node by name.
    pub fn get(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }

    /// The JSON blob plaintext.
    pub fn encode(&self) -> Vec<u8> {
        let nodes = self
            .nodes
            .iter()
            .map(|n| {
                let (name, name_hex) = to_text_or_hex(&n.name);
                let m = n.meta;
                let mut raw = RawNode {
                    name,
                    name_hex,
                    kind: String::new(),
                    mode: m.mode,
                    uid: m.uid,
                    gid: m.gid,
                    mtime_ns: m.mtime_ns,
                    ctime_ns: m.ctime_ns,
                    inode: m.inode,
                    device: m.device,
                    links: m.links,
                    size: None,
                    content: None,
                    subtree: None,
                    target: None,
                    target_hex: None,
                };
                match &n.kind {
                    NodeKind::File { size, content } => {
                        raw.kind = "file".into();
                        raw.size = Some(*size);
                        raw.content = Some(content.clone());
                    }
                    NodeKind::Dir { subtree } => {
                        raw.kind = "dir".into();
                        raw.subtree = Some(*subtree);
                    }
                    NodeKind::Symlink { target } => {
                        raw.kind = "symlink".into();
                        (raw.target, raw.target_hex) = to_text_or_hex(target);
                    }
                }
                raw
            })
            .collect();
        serde_json::to_vec(&RawTree { version: 1, nodes })
            .unwrap_or_else(|e| unreachable!("tree serialises: {e}"))
    }

    /// Decodes and validates a tree blob.
    ///
    /// # Errors
    /// [`FormatError`] for anything format §7.2 does not allow.
    pub fn decode(data: &[u8]) -> Result<Self, FormatError> {
        let what = "tree";
        let raw: RawTree = decode_json(what, data)?;
        FormatError::check_version(what, raw.version, 1u32)?;
        let mut nodes = Vec::with_capacity(raw.nodes.len());
        for r in raw.nodes {
            let name = from_text_or_hex(what, "name", r.name, r.name_hex)?;
            if r.mode > 0o7777 {
                return Err(FormatError::range(what, "mode", r.mode.into()));
            }
            let meta = NodeMeta {
                mode: r.mode,
                uid: r.uid,
                gid: r.gid,
                mtime_ns: r.mtime_ns,
                ctime_ns: r.ctime_ns,
                inode: r.inode,
                device: r.device,
                links: r.links,
            };
            let only = |ok: bool| {
                if ok {
                    Ok(())
                } else {
                    Err(FormatError::invalid(
                        what,
                        format!("node of type {} has fields of another type", r.kind),
                    ))
                }
            };
            let kind = match r.kind.as_str() {
                "file" => {
                    only(r.subtree.is_none() && r.target.is_none() && r.target_hex.is_none())?;
                    match (r.size, r.content) {
                        (Some(size), Some(content)) => NodeKind::File { size, content },
                        _ => {
                            return Err(FormatError::invalid(
                                what,
                                "file node needs size and content",
                            ))
                        }
                    }
                }
                "dir" => {
                    only(
                        r.size.is_none()
                            && r.content.is_none()
                            && r.target.is_none()
                            && r.target_hex.is_none(),
                    )?;
                    let subtree = r
                        .subtree
                        .ok_or_else(|| FormatError::invalid(what, "dir node needs subtree"))?;
                    NodeKind::Dir { subtree }
                }
                "symlink" => {
                    only(r.size.is_none() && r.content.is_none() && r.subtree.is_none())?;
                    NodeKind::Symlink {
                        target: from_text_or_hex(what, "target", r.target, r.target_hex)?,
                    }
                }
                other => {
                    return Err(FormatError::invalid(
                        what,
                        format!("unknown node type {other:?}"),
                    ))
                }
            };
            nodes.push(Node { name, meta, kind });
        }
        if nodes.windows(2).any(|w| w[0].name >= w[1].name) {
            return Err(FormatError::invalid(
                what,
                "node names are not sorted and unique",
            ));
        }
        check_names(what, &nodes)?;
        Ok(Tree { nodes })
    }
}

fn check_names(what: &str, nodes: &[Node]) -> Result<(), FormatError> {
    for n in nodes {
        if n.name.is_empty()
            || n.name == b"."
            || n.name == b".."
            || n.name.iter().any(|b| *b == b'/' || *b == 0)
        {
            return Err(FormatError::invalid(
                what,
                format!("invalid node name {:?}", String::from_utf8_lossy(&n.name)),
            ));
        }
    }
    if nodes.windows(2).any(|w| w[0].name == w[1].name) {
        return Err(FormatError::invalid(what, "duplicate node name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_node() -> impl Strategy<Value = Node> {
        let name = proptest::collection::vec(
            any::<u8>().prop_filter("no / or NUL", |b| *b != b'/' && *b != 0),
            1..12,
        )
        .prop_filter("not . or ..", |n| n != b"." && n != b"..");
        let kind = prop_oneof![
            (
                any::<u64>(),
                proptest::collection::vec(proptest::array::uniform32(any::<u8>()), 0..4)
            )
                .prop_map(|(size, c)| NodeKind::File {
                    size,
                    content: c.into_iter().map(ChunkId::from_bytes).collect()
                }),
            proptest::array::uniform32(any::<u8>()).prop_map(|b| NodeKind::Dir {
                subtree: ChunkId::from_bytes(b)
            }),
            proptest::collection::vec(any::<u8>(), 0..20)
                .prop_map(|target| NodeKind::Symlink { target }),
        ];
        (
            name,
            0u32..0o10000,
            any::<u32>(),
            any::<i64>(),
            any::<u64>(),
            kind,
        )
            .prop_map(|(name, mode, uid, t, ino, kind)| Node {
                name,
                meta: NodeMeta {
                    mode,
                    uid,
                    gid: uid / 2,
                    mtime_ns: t,
                    ctime_ns: t / 3,
                    inode: ino,
                    device: 7,
                    links: 1,
                },
                kind,
            })
    }

    proptest! {
        #[test]
        fn round_trip(nodes in proptest::collection::vec(arb_node(), 0..10)) {
            let mut nodes = nodes;
            nodes.sort_by(|a, b| a.name.cmp(&b.name));
            nodes.dedup_by(|a, b| a.name == b.name);
            let t = Tree::new(nodes).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(Tree::decode(&t.encode()).ok(), Some(t));
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Tree::decode(&data);
        }
    }

    #[test]
    fn rejects_what_the_spec_forbids() {
        let ok = r#"{"version":1,"nodes":[{"name":"a","type":"symlink","mode":511,"uid":0,"gid":0,"mtime_ns":0,"ctime_ns":0,"inode":1,"device":1,"links":1,"target":"b"}]}"#;
        assert!(Tree::decode(ok.as_bytes()).is_ok());
        for bad in [
            ok.replace("\"name\":\"a\"", "\"name\":\"a/b\""),
            ok.replace("\"name\":\"a\"", "\"name\":\"..\""),
            ok.replace("\"target\":\"b\"", "\"target\":\"b\",\"size\":3"),
            ok.replace("\"mode\":511", "\"mode\":65535"),
            ok.replace("\"symlink\"", "\"fifo\""),
            ok.replace("\"version\":1", "\"version\":2"),
            ok.replace("\"links\":1", "\"links\":1,\"color\":\"red\""),
            ok.replace("\"name\":\"a\"", "\"name_hex\":\"61\""),
            ok.replace("]}", ",{\"name\":\"a\",\"type\":\"dir\",\"mode\":0,\"uid\":0,\"gid\":0,\"mtime_ns\":0,\"ctime_ns\":0,\"inode\":1,\"device\":1,\"links\":1,\"subtree\":\"00\"}]}"),
        ] {
            assert!(Tree::decode(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn non_utf8_names_survive() {
        let n = Node {
            name: vec![0xff, b'x'],
            meta: NodeMeta::default(),
            kind: NodeKind::Symlink { target: vec![0xfe] },
        };
        let t = Tree::new(vec![n]).unwrap_or_default();
        let json = String::from_utf8(t.encode()).unwrap_or_default();
        assert!(json.contains("\"name_hex\":\"ff78\""), "{json}");
        assert_eq!(Tree::decode(json.as_bytes()).ok(), Some(t));
    }
}
