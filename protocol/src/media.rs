//! Which video container a file is, by its first bytes ("magic bytes"), not by
//! what the client's Content-Type claims.
//!
//! - MP4 (ISO BMFF, ISO/IEC 14496-12 §4.3): the first box is `ftyp`, so bytes
//!   4..8 are `ftyp`; its major brand (bytes 8..12) must not be QuickTime's
//!   `qt  `, which is a MOV file.
//! - WebM: an EBML header (magic `1A 45 DF A3`) whose DocType element
//!   (ID `42 82`) says `webm`; a Matroska file has the same magic and says
//!   `matroska`, and is refused.

/// A container we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoContainer {
    Mp4,
    WebM,
}

/// The outcome of looking at a file's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniff {
    Video(VideoContainer),
    /// Not enough bytes yet to tell; call again with more.
    NeedMore,
    /// Neither MP4 nor WebM.
    Other,
}

/// How far into a WebM file the DocType is looked for. The EBML header is
/// small (a few dozen bytes); a real one puts DocType well inside this.
pub const SNIFF_BYTES: usize = 64;

const EBML_MAGIC: [u8; 4] = [0x1A, 0x45, 0xDF, 0xA3];
const DOCTYPE_ID: [u8; 2] = [0x42, 0x82];

impl VideoContainer {
    pub fn mime(self) -> &'static str {
        match self {
            VideoContainer::Mp4 => "video/mp4",
            VideoContainer::WebM => "video/webm",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            VideoContainer::Mp4 => "mp4",
            VideoContainer::WebM => "webm",
        }
    }

    /// The container a stored MIME type names (the inverse of [`mime`](Self::mime)).
    pub fn from_mime(mime: &str) -> Option<VideoContainer> {
        match mime {
            "video/mp4" => Some(VideoContainer::Mp4),
            "video/webm" => Some(VideoContainer::WebM),
            _ => None,
        }
    }

    /// Looks at the first bytes of a file. `complete` says that `head` is the
    /// whole file, so a short one is `Other` rather than `NeedMore`.
    pub fn sniff(head: &[u8], complete: bool) -> Sniff {
        let need_more = if complete { Sniff::Other } else { Sniff::NeedMore };
        if head.len() >= 4 && head[..4] == EBML_MAGIC {
            return sniff_webm(head, complete);
        }
        if head.len() < 12 {
            // Could still become either, unless what we have already rules it out.
            let could_be_ebml = EBML_MAGIC.starts_with(&head[..head.len().min(4)]);
            let could_be_ftyp = head.len() <= 4 || b"ftyp".starts_with(&head[4..head.len().min(8)]);
            return if could_be_ebml || could_be_ftyp { need_more } else { Sniff::Other };
        }
        if &head[4..8] == b"ftyp" && &head[8..12] != b"qt  " {
            Sniff::Video(VideoContainer::Mp4)
        } else {
            Sniff::Other
        }
    }
}

fn sniff_webm(head: &[u8], complete: bool) -> Sniff {
    let window = &head[..head.len().min(SNIFF_BYTES)];
    // DocType: ID, a one-byte size (0x80 | n), then n bytes of ASCII.
    if let Some(at) = window.windows(2).position(|w| w == DOCTYPE_ID) {
        let size_at = at + 2;
        if let Some(&size) = window.get(size_at) {
            let n = usize::from(size & 0x7F);
            if size & 0x80 == 0 {
                return Sniff::Other;
            }
            return match window.get(size_at + 1..size_at + 1 + n) {
                Some(doc_type) if doc_type == b"webm" => Sniff::Video(VideoContainer::WebM),
                Some(_) => Sniff::Other,
                None if !complete && head.len() < SNIFF_BYTES => Sniff::NeedMore,
                None => Sniff::Other,
            };
        }
    }
    if complete || head.len() >= SNIFF_BYTES {
        Sniff::Other
    } else {
        Sniff::NeedMore
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal EBML header with this DocType.
    fn ebml(doc_type: &[u8]) -> Vec<u8> {
        let mut v = EBML_MAGIC.to_vec();
        v.push(0x80 | (4 + doc_type.len()) as u8);
        v.extend_from_slice(&[0x42, 0x86, 0x81, 0x01]); // EBMLVersion 1
        v.extend_from_slice(&DOCTYPE_ID);
        v.push(0x80 | doc_type.len() as u8);
        v.extend_from_slice(doc_type);
        v
    }

    #[test]
    fn mp4_by_its_ftyp_box() {
        let mp4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2";
        assert_eq!(VideoContainer::sniff(mp4, false), Sniff::Video(VideoContainer::Mp4));
        assert_eq!(VideoContainer::sniff(b"\x00\x00\x00\x18ftypqt  \x00\x00", false), Sniff::Other);
    }

    #[test]
    fn webm_by_its_doctype_not_matroska() {
        assert_eq!(VideoContainer::sniff(&ebml(b"webm"), false), Sniff::Video(VideoContainer::WebM));
        assert_eq!(VideoContainer::sniff(&ebml(b"matroska"), false), Sniff::Other);
    }

    #[test]
    fn short_prefixes_wait_unless_ruled_out_or_complete() {
        assert_eq!(VideoContainer::sniff(b"", false), Sniff::NeedMore);
        assert_eq!(VideoContainer::sniff(b"\x00\x00\x00\x18ft", false), Sniff::NeedMore);
        assert_eq!(VideoContainer::sniff(b"\x1A\x45", false), Sniff::NeedMore);
        assert_eq!(VideoContainer::sniff(&ebml(b"webm")[..9], false), Sniff::NeedMore);
        assert_eq!(VideoContainer::sniff(b"\x00\x00\x00\x18ft", true), Sniff::Other);
        assert_eq!(VideoContainer::sniff(b"<html>", false), Sniff::Other);
        assert_eq!(VideoContainer::sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", false), Sniff::Other);
    }

    #[test]
    fn mime_round_trip() {
        for c in [VideoContainer::Mp4, VideoContainer::WebM] {
            assert_eq!(VideoContainer::from_mime(c.mime()), Some(c));
        }
    }
}
