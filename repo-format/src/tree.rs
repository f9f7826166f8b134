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
        /// Its chunks, in order, or the content lists that name them.
        content: FileContent,
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
    /// A named pipe.
    Fifo,
    /// A Unix-domain socket's file.
    Socket,
    /// A character device file.
    CharDevice {
        /// The device number's major part.
        major: u32,
        /// Its minor part.
        minor: u32,
    },
    /// A block device file.
    BlockDevice {
        /// The device number's major part.
        major: u32,
        /// Its minor part.
        minor: u32,
    },
}

/// Where a file's chunk ids are (format §7.2, §7.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileContent {
    /// In the tree: the chunks, in order.
    Chunks(Vec<ChunkId>),
    /// In content list blobs (kind 3): these lists' ids, concatenated in
    /// order, are the chunks. Never empty.
    Lists(Vec<ChunkId>),
}

impl FileContent {
    /// The ids the node itself holds: chunks, or lists.
    pub fn ids(&self) -> &[ChunkId] {
        match self {
            FileContent::Chunks(ids) | FileContent::Lists(ids) => ids,
        }
    }
}

impl Default for FileContent {
    fn default() -> Self {
        FileContent::Chunks(Vec::new())
    }
}

impl NodeKind {
    /// The node's `type` in the format.
    pub fn type_name(&self) -> &'static str {
        match self {
            NodeKind::File { .. } => "file",
            NodeKind::Dir { .. } => "dir",
            NodeKind::Symlink { .. } => "symlink",
            NodeKind::Fifo => "fifo",
            NodeKind::Socket => "socket",
            NodeKind::CharDevice { .. } => "chardev",
            NodeKind::BlockDevice { .. } => "blockdev",
        }
    }
}

/// One extended attribute (format §7.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xattr {
    /// Its name with the namespace (`user.x`, `security.capability`).
    pub name: Vec<u8>,
    /// Its value, as the kernel gives it.
    pub value: Vec<u8>,
}

/// Longest extended attribute name, in bytes.
pub const MAX_XATTR_NAME: usize = 255;
/// Longest extended attribute value, in bytes.
pub const MAX_XATTR_VALUE: usize = 65_536;
/// Most extended attributes of one node.
pub const MAX_XATTRS: usize = 1024;

/// One entry of a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The name's bytes (any bytes but `/` and NUL).
    pub name: Vec<u8>,
    /// Metadata.
    pub meta: NodeMeta,
    /// Type and type-specific data.
    pub kind: NodeKind,
    /// Extended attributes, sorted by name.
    pub xattrs: Vec<Xattr>,
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
        with = "chunk_hex::vec"
    )]
    content_lists: Option<Vec<ChunkId>>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    major: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    minor: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    xattrs: Option<Vec<RawXattr>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawXattr {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name_hex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value_hex: Option<String>,
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
    /// Builds a tree, sorting the nodes and their extended attributes by
    /// name.
    ///
    /// # Errors
    /// [`FormatError::Invalid`] if a name is empty, `.`, `..`, contains `/` or
    /// NUL, or appears twice, or an attribute name appears twice on a node.
    pub fn new(mut nodes: Vec<Node>) -> Result<Self, FormatError> {
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        for n in &mut nodes {
            n.xattrs.sort_by(|a, b| a.name.cmp(&b.name));
            if n.xattrs.windows(2).any(|w| w[0].name == w[1].name) {
                return Err(FormatError::invalid("tree", "duplicate xattr name"));
            }
        }
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

    /// The nodes, sorted by name, taken out of the tree.
    pub fn into_nodes(self) -> Vec<Node> {
        self.nodes
    }

    /// Takes the node named `name` out of the tree (without copying a
    /// large file's content list).
    pub fn into_node(mut self, name: &[u8]) -> Option<Node> {
        let i = self
            .nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()?;
        Some(self.nodes.swap_remove(i))
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
                    content_lists: None,
                    subtree: None,
                    target: None,
                    target_hex: None,
                    major: None,
                    minor: None,
                    xattrs: (!n.xattrs.is_empty()).then(|| {
                        n.xattrs
                            .iter()
                            .map(|x| {
                                let (name, name_hex) = to_text_or_hex(&x.name);
                                let (value, value_hex) = to_text_or_hex(&x.value);
                                RawXattr {
                                    name,
                                    name_hex,
                                    value,
                                    value_hex,
                                }
                            })
                            .collect()
                    }),
                };
                raw.kind = n.kind.type_name().into();
                match &n.kind {
                    NodeKind::File { size, content } => {
                        raw.size = Some(*size);
                        match content {
                            FileContent::Chunks(ids) => raw.content = Some(ids.clone()),
                            FileContent::Lists(ids) => raw.content_lists = Some(ids.clone()),
                        }
                    }
                    NodeKind::Dir { subtree } => raw.subtree = Some(*subtree),
                    NodeKind::Symlink { target } => {
                        (raw.target, raw.target_hex) = to_text_or_hex(target);
                    }
                    NodeKind::Fifo | NodeKind::Socket => {}
                    NodeKind::CharDevice { major, minor }
                    | NodeKind::BlockDevice { major, minor } => {
                        (raw.major, raw.minor) = (Some(*major), Some(*minor));
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
            // Which type-specific fields the node has: only its own may be.
            let present = [
                ("size", r.size.is_some()),
                ("content", r.content.is_some() || r.content_lists.is_some()),
                ("subtree", r.subtree.is_some()),
                ("target", r.target.is_some() || r.target_hex.is_some()),
                ("major", r.major.is_some() || r.minor.is_some()),
            ];
            let own: &[&str] = match r.kind.as_str() {
                "file" => &["size", "content"],
                "dir" => &["subtree"],
                "symlink" => &["target"],
                "chardev" | "blockdev" => &["major"],
                _ => &[],
            };
            if present.iter().any(|(f, has)| *has && !own.contains(f)) {
                return Err(FormatError::invalid(
                    what,
                    format!("node of type {} has fields of another type", r.kind),
                ));
            }
            let xattrs = decode_xattrs(what, r.xattrs)?;
            let device = |dev: fn(u32, u32) -> NodeKind| match (r.major, r.minor) {
                (Some(major), Some(minor)) => Ok(dev(major, minor)),
                _ => Err(FormatError::invalid(
                    what,
                    "device node needs major and minor",
                )),
            };
            let kind = match r.kind.as_str() {
                "file" => match (r.size, r.content, r.content_lists) {
                    (Some(size), Some(ids), None) => NodeKind::File {
                        size,
                        content: FileContent::Chunks(ids),
                    },
                    (Some(size), None, Some(lists)) if !lists.is_empty() => NodeKind::File {
                        size,
                        content: FileContent::Lists(lists),
                    },
                    _ => {
                        return Err(FormatError::invalid(
                            what,
                            "file node needs size and exactly one of content and non-empty content_lists",
                        ))
                    }
                },
                "dir" => {
                    let subtree = r
                        .subtree
                        .ok_or_else(|| FormatError::invalid(what, "dir node needs subtree"))?;
                    NodeKind::Dir { subtree }
                }
                "symlink" => NodeKind::Symlink {
                    target: from_text_or_hex(what, "target", r.target, r.target_hex)?,
                },
                "fifo" => NodeKind::Fifo,
                "socket" => NodeKind::Socket,
                "chardev" => device(|major, minor| NodeKind::CharDevice { major, minor })?,
                "blockdev" => device(|major, minor| NodeKind::BlockDevice { major, minor })?,
                other => {
                    return Err(FormatError::invalid(
                        what,
                        format!("unknown node type {other:?}"),
                    ))
                }
            };
            nodes.push(Node {
                name,
                meta,
                kind,
                xattrs,
            });
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

/// A node's extended attributes, checked as §7.2 asks.
fn decode_xattrs(what: &str, raw: Option<Vec<RawXattr>>) -> Result<Vec<Xattr>, FormatError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    if raw.is_empty() || raw.len() > MAX_XATTRS {
        return Err(FormatError::invalid(
            what,
            format!("xattrs must hold 1 to {MAX_XATTRS} attributes (absent when none)"),
        ));
    }
    let mut out = Vec::with_capacity(raw.len());
    for x in raw {
        let name = from_text_or_hex(what, "xattr name", x.name, x.name_hex)?;
        let value = from_text_or_hex(what, "xattr value", x.value, x.value_hex)?;
        if name.is_empty() || name.len() > MAX_XATTR_NAME || name.contains(&0) {
            return Err(FormatError::invalid(
                what,
                format!("invalid xattr name {:?}", String::from_utf8_lossy(&name)),
            ));
        }
        if value.len() > MAX_XATTR_VALUE {
            return Err(FormatError::invalid(what, "xattr value over 65,536 bytes"));
        }
        out.push(Xattr { name, value });
    }
    if out.windows(2).any(|w| w[0].name >= w[1].name) {
        return Err(FormatError::invalid(
            what,
            "xattr names are not sorted and unique",
        ));
    }
    Ok(out)
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
                proptest::collection::vec(proptest::array::uniform32(any::<u8>()), 0..4),
                any::<bool>()
            )
                .prop_map(|(size, c, lists)| {
                    let ids: Vec<ChunkId> = c.into_iter().map(ChunkId::from_bytes).collect();
                    NodeKind::File {
                        size,
                        content: if lists && !ids.is_empty() {
                            FileContent::Lists(ids)
                        } else {
                            FileContent::Chunks(ids)
                        },
                    }
                }),
            proptest::array::uniform32(any::<u8>()).prop_map(|b| NodeKind::Dir {
                subtree: ChunkId::from_bytes(b)
            }),
            proptest::collection::vec(any::<u8>(), 0..20)
                .prop_map(|target| NodeKind::Symlink { target }),
            Just(NodeKind::Fifo),
            Just(NodeKind::Socket),
            (any::<u32>(), any::<u32>())
                .prop_map(|(major, minor)| NodeKind::CharDevice { major, minor }),
            (any::<u32>(), any::<u32>())
                .prop_map(|(major, minor)| NodeKind::BlockDevice { major, minor }),
        ];
        let xattrs = proptest::collection::btree_map(
            proptest::collection::vec(1u8..=255, 1..8),
            proptest::collection::vec(any::<u8>(), 0..16),
            0..4,
        )
        .prop_map(|m| {
            m.into_iter()
                .map(|(name, value)| Xattr { name, value })
                .collect::<Vec<_>>()
        });
        (
            name,
            0u32..0o10000,
            any::<u32>(),
            any::<i64>(),
            any::<u64>(),
            kind,
            xattrs,
        )
            .prop_map(|(name, mode, uid, t, ino, kind, xattrs)| Node {
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
                xattrs,
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
            ok.replace("\"symlink\"", "\"pipe\""),
            ok.replace("\"symlink\"", "\"fifo\""),
            ok.replace("\"symlink\"", "\"chardev\"").replace("\"target\":\"b\"", "\"major\":1"),
            ok.replace("\"target\":\"b\"", "\"target\":\"b\",\"major\":1,\"minor\":3"),
            ok.replace("\"links\":1", "\"links\":1,\"xattrs\":[]"),
            ok.replace("\"links\":1", "\"links\":1,\"xattrs\":[{\"name\":\"user.b\",\"value\":\"\"},{\"name\":\"user.a\",\"value\":\"\"}]"),
            ok.replace("\"links\":1", "\"links\":1,\"xattrs\":[{\"name\":\"user.a\",\"value\":\"x\",\"value_hex\":\"ff\"}]"),
            ok.replace("\"links\":1", "\"links\":1,\"xattrs\":[{\"name\":\"\",\"value\":\"x\"}]"),
            ok.replace("\"version\":1", "\"version\":2"),
            ok.replace("\"links\":1", "\"links\":1,\"color\":\"red\""),
            ok.replace("\"name\":\"a\"", "\"name_hex\":\"61\""),
            ok.replace("]}", ",{\"name\":\"a\",\"type\":\"dir\",\"mode\":0,\"uid\":0,\"gid\":0,\"mtime_ns\":0,\"ctime_ns\":0,\"inode\":1,\"device\":1,\"links\":1,\"subtree\":\"00\"}]}"),
        ] {
            assert!(Tree::decode(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    /// A file node holds exactly one of `content` and a non-empty
    /// `content_lists` (§7.2).
    #[test]
    fn a_file_has_content_or_lists() {
        let id = format!("\"{}\"", "ab".repeat(32));
        let file = |fields: &str| {
            format!(
                r#"{{"version":1,"nodes":[{{"name":"a","type":"file","mode":384,"uid":0,"gid":0,"mtime_ns":0,"ctime_ns":0,"inode":1,"device":1,"links":1,"size":9{fields}}}]}}"#
            )
        };
        let decoded = |fields: &str| Tree::decode(file(fields).as_bytes()).map(Tree::into_nodes);
        let kind = |fields: &str| decoded(fields).map(|mut n| n.remove(0).kind);
        let lists = kind(&format!(",\"content_lists\":[{id}]"));
        assert!(
            matches!(lists, Ok(NodeKind::File { content: FileContent::Lists(ref l), .. }) if l.len() == 1),
            "{lists:?}"
        );
        assert!(matches!(
            kind(",\"content\":[]"),
            Ok(NodeKind::File { content: FileContent::Chunks(ref c), .. }) if c.is_empty()
        ));
        for bad in [
            String::new(),
            ",\"content_lists\":[]".to_owned(),
            format!(",\"content\":[],\"content_lists\":[{id}]"),
        ] {
            assert!(decoded(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn non_utf8_names_survive() {
        let n = Node {
            name: vec![0xff, b'x'],
            meta: NodeMeta::default(),
            kind: NodeKind::Symlink { target: vec![0xfe] },
            xattrs: vec![
                Xattr {
                    name: b"user.a".to_vec(),
                    value: b"text".to_vec(),
                },
                Xattr {
                    name: b"system.posix_acl_access".to_vec(),
                    value: vec![2, 0, 0, 0, 0xff],
                },
            ],
        };
        let t = Tree::new(vec![n]).unwrap_or_default();
        let json = String::from_utf8(t.encode()).unwrap_or_default();
        assert!(json.contains("\"name_hex\":\"ff78\""), "{json}");
        assert!(
            json.contains(r#""xattrs":[{"name":"system.posix_acl_access","value_hex":"02000000ff"},{"name":"user.a","value":"text"}]"#),
            "{json}"
        );
        assert_eq!(Tree::decode(json.as_bytes()).ok(), Some(t));
    }
}
