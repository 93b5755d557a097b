//! Redis's wire format (RESP2): commands encoded into a caller's buffer and
//! replies decoded from a read buffer, on redis-protocol's codec.
//!
//! A command is an array of bulk strings, which is how every client sends
//! one. Decoding is two-phase like the HTTP side: an incomplete reply is
//! [`Parse::Incomplete`], a normal state; only bytes that can never become a
//! reply are an error, and the connection that sent them cannot be trusted
//! for anything after.

use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::encode::encode_borrowed;
use redis_protocol::resp2::types::BorrowedFrame;

pub use redis_protocol::resp2::types::OwnedFrame as Reply;

use crate::Parse;

/// Commands with at most this many arguments (name included) are framed on
/// the stack; longer ones (a large MGET) take one allocation.
const STACK_ARGS: usize = 8;

/// Bytes that are not a RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RespError(pub String);

impl std::fmt::Display for RespError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed RESP reply: {}", self.0)
    }
}

impl std::error::Error for RespError {}

/// Appends `args` (the command name first) to `out` as one RESP command.
pub fn encode_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    let mut stack: [BorrowedFrame<'_>; STACK_ARGS] = std::array::from_fn(|_| BorrowedFrame::Null);
    let mut heap = Vec::new();
    let frames: &mut [BorrowedFrame<'_>] = if args.len() <= STACK_ARGS {
        &mut stack[..args.len()]
    } else {
        heap.resize(args.len(), BorrowedFrame::Null);
        &mut heap
    };
    for (frame, arg) in frames.iter_mut().zip(args) {
        *frame = BorrowedFrame::BulkString(arg);
    }
    let command = BorrowedFrame::Array(frames);
    let start = out.len();
    out.resize(start + command.encode_len(false), 0);
    // The slice is exactly encode_len long, so the codec cannot run short.
    let written = encode_borrowed(&mut out[start..], &command, false).expect("buffer sized by encode_len");
    out.truncate(start + written);
}

/// Decodes the first reply in `buf`, with the number of bytes it took.
pub fn decode_reply(buf: &[u8]) -> Result<Parse<(Reply, usize)>, RespError> {
    match decode(buf) {
        Ok(Some((reply, used))) => Ok(Parse::Complete((reply, used))),
        Ok(None) => Ok(Parse::Incomplete),
        Err(e) => Err(RespError(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode_command(&mut out, &[b"SET", b"k", b"v", b"EX", b"60"]);
        assert_eq!(out, b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$2\r\nEX\r\n$2\r\n60\r\n");
        // Appends, so many commands share one buffer (that is the pipeline).
        encode_command(&mut out, &[b"GET", b"k"]);
        assert!(out.ends_with(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"));
    }

    #[test]
    fn long_commands_and_binary_arguments() {
        let keys: Vec<Vec<u8>> = (0..20).map(|i| format!("k{i}").into_bytes()).collect();
        let mut args: Vec<&[u8]> = vec![b"MGET"];
        args.extend(keys.iter().map(|k| k.as_slice()));
        let mut out = Vec::new();
        encode_command(&mut out, &args);
        assert!(out.starts_with(b"*21\r\n$4\r\nMGET\r\n$2\r\nk0\r\n"));
        out.clear();
        encode_command(&mut out, &[b"SET", b"a\r\nb", b"\0"]);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$4\r\na\r\nb\r\n$1\r\n\0\r\n");
    }

    #[test]
    fn replies_decode_once_complete() {
        let all = b"$5\r\nhello\r\n:42\r\n$-1\r\n*2\r\n$1\r\na\r\n$-1\r\n-ERR wrong\r\n+OK\r\n";
        for cut in 0..9 {
            assert_eq!(decode_reply(&all[..cut]), Ok(Parse::Incomplete), "cut at {cut}");
        }
        let mut rest = &all[..];
        let mut replies = Vec::new();
        while let Parse::Complete((reply, used)) = decode_reply(rest).unwrap() {
            replies.push(reply);
            rest = &rest[used..];
        }
        assert!(rest.is_empty());
        assert_eq!(
            replies,
            vec![
                Reply::BulkString(b"hello".to_vec()),
                Reply::Integer(42),
                Reply::Null,
                Reply::Array(vec![Reply::BulkString(b"a".to_vec()), Reply::Null]),
                Reply::Error("ERR wrong".into()),
                Reply::SimpleString(b"OK".to_vec()),
            ]
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode_reply(b"?what\r\n").is_err());
    }
}
