//! `multipart/form-data` (RFC 7578 over RFC 2046 §5.1), decoded as a stream:
//! the caller feeds whatever bytes it has and gets events back, so a part of
//! any size passes through without being held whole.
//!
//! The caller keeps a buffer, calls [`MultipartDecoder::decode`] on it, drops
//! the `consumed` bytes from its front and acts on the event; on `NeedMore` it
//! reads more and calls again with everything it kept. Part data is handed out
//! as slices of that buffer.
//!
//! Invariants: data handed out never contains any part of a delimiter (the
//! last `delimiter.len() - 1` bytes are held back until the next read shows
//! whether they begin one); a part's headers are bounded by `max_head`.

/// What the decoder found at the front of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A part begins. Values are raw bytes of its Content-Disposition
    /// parameters and Content-Type header (quotes removed, not decoded).
    Part { name: &'a [u8], filename: Option<&'a [u8]>, content_type: Option<&'a [u8]> },
    /// Some of the current part's content.
    Data(&'a [u8]),
    /// The current part ended.
    PartEnd,
    /// The closing delimiter: the body is complete (anything after is ignored).
    Done,
    /// Nothing can be decided without more bytes.
    NeedMore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultipartError {
    /// The Content-Type has no usable boundary parameter.
    NoBoundary,
    /// The body does not follow the multipart syntax.
    Malformed,
    /// A part's header block is larger than allowed.
    PartHeadTooLarge,
    /// A part lacks `Content-Disposition: form-data; name=…`.
    NoName,
    /// The body ended before the closing delimiter.
    Truncated,
}

impl MultipartError {
    pub fn message(self) -> &'static str {
        match self {
            MultipartError::NoBoundary => "multipart/form-data needs a boundary parameter",
            MultipartError::Malformed => "is not valid multipart/form-data",
            MultipartError::PartHeadTooLarge => "a multipart part's headers are too large",
            MultipartError::NoName => "a multipart part has no form-data name",
            MultipartError::Truncated => "multipart body ended before its closing boundary",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first delimiter.
    Preamble,
    /// Just after a delimiter: `--` (the end) or a line break follows.
    AfterDelimiter,
    /// Reading a part's header block.
    Head,
    /// Inside a part's content.
    Body,
    Done,
}

pub struct MultipartDecoder {
    /// `\r\n--` + boundary: what ends a part's content.
    delimiter: Vec<u8>,
    state: State,
    max_head: usize,
    /// No byte of the body has been consumed yet: only here may the first
    /// delimiter come without the CRLF before it.
    at_body_start: bool,
}

/// The boundary parameter of a `multipart/form-data` Content-Type value, if
/// that is what the value is.
pub fn form_data_boundary(content_type: &[u8]) -> Option<Result<&[u8], MultipartError>> {
    let mut params = content_type.split(|&b| b == b';');
    let essence = trim(params.next()?);
    if !essence.eq_ignore_ascii_case(b"multipart/form-data") {
        return None;
    }
    for param in params {
        let param = trim(param);
        if param.len() > 9 && param[..9].eq_ignore_ascii_case(b"boundary=") {
            let value = unquote(&param[9..]);
            // RFC 2046 §5.1.1: 1 to 70 characters.
            if value.is_empty() || value.len() > 70 {
                return Some(Err(MultipartError::NoBoundary));
            }
            return Some(Ok(value));
        }
    }
    Some(Err(MultipartError::NoBoundary))
}

impl MultipartDecoder {
    pub fn new(boundary: &[u8], max_head: usize) -> MultipartDecoder {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary);
        MultipartDecoder { delimiter, state: State::Preamble, max_head, at_body_start: true }
    }

    /// Decodes the next event from the front of `buf`; returns it and how many
    /// bytes of `buf` it used. `eof` says no more bytes will come.
    pub fn decode<'a>(&mut self, buf: &'a [u8], eof: bool) -> Result<(Event<'a>, usize), MultipartError> {
        let need_more = |eof: bool| if eof { Err(MultipartError::Truncated) } else { Ok((Event::NeedMore, 0)) };
        match self.state {
            State::Done => Ok((Event::Done, 0)),
            State::Preamble => {
                // The first delimiter may start the body, without the CRLF before it.
                let dash_boundary = &self.delimiter[2..];
                if self.at_body_start {
                    if buf.len() < dash_boundary.len() && dash_boundary.starts_with(buf) && !eof {
                        return Ok((Event::NeedMore, 0));
                    }
                    if buf.starts_with(dash_boundary) {
                        self.at_body_start = false;
                        self.state = State::AfterDelimiter;
                        return self.chain(buf, dash_boundary.len(), eof);
                    }
                }
                match find(buf, &self.delimiter) {
                    Some(at) => {
                        self.at_body_start = false;
                        self.state = State::AfterDelimiter;
                        self.chain(buf, at + self.delimiter.len(), eof)
                    }
                    None if eof => Err(MultipartError::Truncated),
                    // Drop preamble bytes that cannot begin the delimiter.
                    None => {
                        let drop = buf.len().saturating_sub(self.delimiter.len() - 1);
                        if drop > 0 {
                            self.at_body_start = false;
                        }
                        Ok((Event::NeedMore, drop))
                    }
                }
            }
            State::AfterDelimiter => {
                if buf.len() < 2 {
                    return need_more(eof);
                }
                if &buf[..2] == b"--" {
                    self.state = State::Done;
                    return Ok((Event::Done, 2));
                }
                // Transport padding (spaces, tabs) may precede the line break.
                // Bounded like a header block, and refused the same way
                // however much of it has arrived.
                let pad = buf.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
                if pad > self.max_head {
                    return Err(MultipartError::Malformed);
                }
                if pad + 2 > buf.len() {
                    return need_more(eof);
                }
                if &buf[pad..pad + 2] != b"\r\n" {
                    return Err(MultipartError::Malformed);
                }
                self.state = State::Head;
                self.chain(buf, pad + 2, eof)
            }
            State::Head => {
                // The block ends at its first empty line. A part with no
                // headers at all starts with it (checked first: a later
                // CRLF CRLF would otherwise be taken for the end, and the
                // answer would depend on how much had arrived).
                let end = if buf.starts_with(b"\r\n") {
                    Some(2)
                } else {
                    find(&buf[..buf.len().min(self.max_head + 4)], b"\r\n\r\n").map(|e| e + 4)
                };
                let Some(end) = end else {
                    if buf.len() >= self.max_head + 4 {
                        return Err(MultipartError::PartHeadTooLarge);
                    }
                    return need_more(eof);
                };
                let event = part_head(&buf[..end])?;
                self.state = State::Body;
                Ok((event, end))
            }
            State::Body => match find(buf, &self.delimiter) {
                Some(0) => {
                    self.state = State::AfterDelimiter;
                    Ok((Event::PartEnd, self.delimiter.len()))
                }
                Some(at) => Ok((Event::Data(&buf[..at]), at)),
                None => {
                    let safe = buf.len().saturating_sub(self.delimiter.len() - 1);
                    if safe > 0 {
                        Ok((Event::Data(&buf[..safe]), safe))
                    } else {
                        need_more(eof)
                    }
                }
            },
        }
    }

    /// After consuming `used` bytes that produced no event, goes on with the rest.
    fn chain<'a>(&mut self, buf: &'a [u8], used: usize, eof: bool) -> Result<(Event<'a>, usize), MultipartError> {
        let (event, n) = self.decode(&buf[used..], eof)?;
        Ok((event, used + n))
    }
}

/// Parses a part's header block (ending in the blank line).
fn part_head(block: &[u8]) -> Result<Event<'_>, MultipartError> {
    let mut name = None;
    let mut filename = None;
    let mut content_type = None;
    for line in block.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let colon = line.iter().position(|&b| b == b':').ok_or(MultipartError::Malformed)?;
        let (field, value) = (trim(&line[..colon]), trim(&line[colon + 1..]));
        if field.eq_ignore_ascii_case(b"content-disposition") {
            let mut params = value.split(|&b| b == b';');
            if !params.next().is_some_and(|d| trim(d).eq_ignore_ascii_case(b"form-data")) {
                return Err(MultipartError::NoName);
            }
            for param in params {
                let param = trim(param);
                let eq = param.iter().position(|&b| b == b'=').unwrap_or(param.len());
                let (key, raw) = (trim(&param[..eq]), param.get(eq + 1..).map(trim).unwrap_or(b""));
                if key.eq_ignore_ascii_case(b"name") {
                    name = Some(unquote(raw));
                } else if key.eq_ignore_ascii_case(b"filename") {
                    filename = Some(unquote(raw));
                }
            }
        } else if field.eq_ignore_ascii_case(b"content-type") {
            content_type = Some(value);
        }
    }
    let name = name.ok_or(MultipartError::NoName)?;
    Ok(Event::Part { name, filename, content_type })
}

/// A parameter value without its surrounding quotes. Values with a `;` or an
/// escaped quote inside quotes are not split correctly; browsers
/// percent-encode those characters in form-data names (RFC 7578 §4.2).
fn unquote(v: &[u8]) -> &[u8] {
    if v.len() >= 2 && v[0] == b'"' && v[v.len() - 1] == b'"' {
        &v[1..v.len() - 1]
    } else {
        v
    }
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &s[start..end]
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() > haystack.len() {
        return None;
    }
    let first = needle[0];
    let mut from = 0;
    while let Some(i) = haystack[from..=haystack.len() - needle.len()].iter().position(|&b| b == first) {
        let at = from + i;
        if &haystack[at..at + needle.len()] == needle {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a decoder yields for `body` fed in pieces of `step` bytes:
    /// a readable transcript of the events, data concatenated per part.
    fn transcript(body: &[u8], step: usize) -> Result<Vec<String>, MultipartError> {
        let mut decoder = MultipartDecoder::new(b"XyZ", 1024);
        let mut buf = Vec::new();
        let mut fed = 0;
        let mut out: Vec<String> = Vec::new();
        loop {
            let eof = fed == body.len();
            let (event, used) = decoder.decode(&buf, eof)?;
            let text = match event {
                Event::Part { name, filename, content_type } => Some(format!(
                    "part {} {:?} {:?}",
                    String::from_utf8_lossy(name),
                    filename.map(|f| String::from_utf8_lossy(f).into_owned()),
                    content_type.map(|c| String::from_utf8_lossy(c).into_owned())
                )),
                Event::Data(d) => {
                    let d = String::from_utf8_lossy(d).into_owned();
                    match out.last_mut() {
                        Some(last) if last.starts_with("data ") => {
                            last.push_str(&d);
                            None
                        }
                        _ => Some(format!("data {d}")),
                    }
                }
                Event::PartEnd => Some("end".to_string()),
                Event::Done => {
                    out.push("done".to_string());
                    return Ok(out);
                }
                Event::NeedMore => {
                    assert!(!eof);
                    let next = (fed + step).min(body.len());
                    buf.drain(..used);
                    buf.extend_from_slice(&body[fed..next]);
                    fed = next;
                    continue;
                }
            };
            out.extend(text);
            buf.drain(..used);
        }
    }

    const FORM: &[u8] = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nMy clip\r\n\
--XyZ  \r\ncontent-disposition: form-data; name=\"file\"; filename=\"a.mp4\"\r\nContent-Type: video/mp4\r\n\r\n\
\x00\x00\x00\x18ftyp\r\n--Xy not yet\r\n--XyZ--\r\nepilogue";

    #[test]
    fn parts_and_data_whatever_the_read_sizes() {
        let want = vec![
            "part title None None",
            "data My clip",
            "end",
            "part file Some(\"a.mp4\") Some(\"video/mp4\")",
            "data \0\0\0\u{18}ftyp\r\n--Xy not yet",
            "end",
            "done",
        ];
        for step in [1, 2, 3, 7, 16, 1000] {
            assert_eq!(transcript(FORM, step).unwrap(), want, "step {step}");
        }
    }

    #[test]
    fn body_may_start_with_the_delimiter() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--XyZ--";
        assert_eq!(transcript(body, 5).unwrap(), vec!["part a None None", "data 1", "end", "done"]);
    }

    #[test]
    fn truncated_and_malformed_bodies_are_errors() {
        assert_eq!(transcript(&FORM[..60], 7), Err(MultipartError::Truncated));
        assert_eq!(
            transcript(b"--XyZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ--", 4),
            Err(MultipartError::NoName)
        );
        assert_eq!(
            transcript(b"--XyZ\r\nContent-Disposition: attachment; name=a\r\n\r\n", 4),
            Err(MultipartError::NoName)
        );
        assert_eq!(transcript(b"--XyZ\r\nno colon here\r\n\r\n", 4), Err(MultipartError::Malformed));
        assert_eq!(transcript(b"--XyZjunk\r\n", 4), Err(MultipartError::Malformed));
        let mut long = b"--XyZ\r\nX-Long: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', 3000));
        assert_eq!(transcript(&long, 100), Err(MultipartError::PartHeadTooLarge));
    }

    #[test]
    fn a_part_without_headers_ends_its_block_at_once_however_the_bytes_arrive() {
        // Found by the fuzzer: read whole, a later CRLF CRLF was taken for
        // the end of this part's (empty) header block.
        let body = b"--XyZ\r\n\r\n\0\0--XyZ\r\n\r\n\0";
        for step in [1, 3, 100] {
            assert_eq!(transcript(body, step), Err(MultipartError::NoName), "step {step}");
        }
    }

    #[test]
    fn only_the_very_start_may_omit_the_crlf_before_the_first_delimiter() {
        // Found by the fuzzer: after some preamble had been dropped, a
        // "--XyZ" inside the preamble was taken for the first delimiter.
        let body = b"preamble preamble --XyZjunk and more";
        for step in [1, 2, 5, 100] {
            assert_eq!(transcript(body, step), Err(MultipartError::Truncated), "step {step}");
        }
    }

    #[test]
    fn boundary_from_content_type() {
        assert_eq!(form_data_boundary(b"multipart/form-data; boundary=abc"), Some(Ok(&b"abc"[..])));
        assert_eq!(form_data_boundary(b"Multipart/Form-Data;charset=x; BOUNDARY=\"a b\""), Some(Ok(&b"a b"[..])));
        assert_eq!(form_data_boundary(b"multipart/form-data"), Some(Err(MultipartError::NoBoundary)));
        assert_eq!(form_data_boundary(b"video/mp4"), None);
    }
}
