//! One pipelined connection: batches encoded into its output buffer, a
//! waiter per batch, and the delivery of each answer to its waiter.

use crate::storage::statements::Statement;
use bytes::{Buf, BytesMut};
use postgres_protocol::message::backend::Message;
use postgres_types::ToSql;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;
use std::time::Duration;
use tokio::sync::{oneshot, Notify};

use super::error::{classify, error_fields, PgError};
use super::pool::PgStats;
use super::row::BatchRows;
use super::{BINARY, MAX_IN_FLIGHT, MAX_REPLY_BYTES};
use crate::storage::link::{self, ReplyFloor};

/// Encodes the queries of one batch: one or more transactions, each ended
/// by a Sync.
pub struct Batch<'b> {
    pub(super) out: &'b mut BytesMut,
    pub(super) queries: usize,
    /// Syncs written: the transactions, and the ReadyForQuery messages the
    /// batch's answer ends with.
    pub(super) syncs: usize,
    /// Queries added since the last Sync.
    pub(super) open: usize,
    /// Whether a Sync ended a transaction with no query in it.
    pub(super) empty: bool,
}

/// The fewest bytes PostgreSQL answers a transaction of one or more queries
/// with: its ReadyForQuery (6), after either a BindComplete (5) and the
/// first query's CommandComplete (at least 9: the shortest tag, "SET", is 4
/// bytes with its NUL), or an ErrorResponse, which always carries the
/// severity, SQLSTATE and message fields (at least 21). So 6 + 14.
const TRANSACTION_FLOOR: u64 = 20;
/// A transaction with no query is answered with its ReadyForQuery alone.
const EMPTY_TRANSACTION_FLOOR: u64 = 6;

/// Execute of the unnamed portal, every row: tag, length 9, the empty
/// portal name, row limit 0. The same bytes for every query, so written as
/// they are.
const EXECUTE_ALL: &[u8] = b"E\0\0\0\x09\0\0\0\0\0";
/// Sync: tag and length 4.
const SYNC: &[u8] = b"S\0\0\0\x04";

/// Writes a Bind of `statement` to the unnamed portal, every parameter and
/// result column in binary. Written by hand, not by `frontend::bind`,
/// because that one scans each name for a NUL and goes through a closure and
/// an iterator per parameter: 9 % of a `/queries` request's instructions.
/// Statement names need no scan: they are constants, and a name with a NUL
/// would already have failed its Parse when the connection prepared it.
/// On error `out` may hold part of the message; the caller truncates.
fn encode_bind(statement: &Statement, params: &[&(dyn ToSql + Sync)], out: &mut BytesMut) -> Result<(), PgError> {
    let start = out.len();
    // Tag, length (filled in below), the unnamed portal's empty name.
    out.extend_from_slice(&[b'B', 0, 0, 0, 0, 0]);
    out.extend_from_slice(statement.name.as_bytes());
    // The name's NUL, then one format code for every parameter, binary, and
    // the parameter count: a statement's declared count, a handful.
    let [hi, lo] = (params.len() as i16).to_be_bytes();
    let [bh, bl] = BINARY.to_be_bytes();
    out.extend_from_slice(&[0, 0, 1, bh, bl, hi, lo]);
    for (value, ty) in params.iter().zip(statement.params) {
        let at = out.len();
        out.extend_from_slice(&[0; 4]); // the value's length, filled in below
        let written = value
            .to_sql_checked(ty, out)
            .map_err(|e| PgError::Failed(format!("{}: cannot encode a parameter: {e}", statement.name)))?;
        let len = match written {
            postgres_types::IsNull::Yes => -1,
            postgres_types::IsNull::No => i32::try_from(out.len() - at - 4)
                .map_err(|_| PgError::Failed(format!("{}: a parameter over 2 GiB", statement.name)))?,
        };
        out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }
    // One format code for every result column, binary.
    out.extend_from_slice(&[0, 1, bh, bl]);
    let len = i32::try_from(out.len() - start - 1)
        .map_err(|_| PgError::Failed(format!("{}: a Bind over 2 GiB", statement.name)))?;
    out[start + 1..start + 5].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Transactions per window of the reply-size hint (see [`ReplySizes`]).
const HINT_WINDOW: u32 = 64;

/// What recent replies suggest a transaction's reply will be: the smallest
/// of the last complete window, lowered at once by any smaller reply since.
/// So a workload of one kind (the benchmark's) is hinted at its real size,
/// and a mixed one at its smallest. A wrong hint costs the socket loop at
/// most `link::HINT_WAIT` (see `storage::link`).
#[derive(Debug, Default)]
pub(super) struct ReplySizes {
    typical: Cell<u64>,
    window_min: Cell<u64>,
    window_len: Cell<u32>,
}

impl ReplySizes {
    fn learn(&self, bytes: u64) {
        self.typical.set(self.typical.get().min(bytes));
        let window_min = if self.window_len.get() == 0 { bytes } else { self.window_min.get().min(bytes) };
        self.window_min.set(window_min);
        self.window_len.set(self.window_len.get() + 1);
        if self.window_len.get() == HINT_WINDOW {
            self.typical.set(window_min);
            self.window_len.set(0);
        }
    }
}

impl Batch<'_> {
    /// Adds one execution of a prepared statement. The parameters must match
    /// the statement's declared types.
    pub fn query(&mut self, statement: &Statement, params: &[&(dyn ToSql + Sync)]) -> Result<(), PgError> {
        if params.len() != statement.params.len() {
            return Err(PgError::Failed(format!(
                "{}: {} parameters for {}",
                statement.name,
                params.len(),
                statement.params.len()
            )));
        }
        encode_bind(statement, params, self.out)?;
        self.out.extend_from_slice(EXECUTE_ALL);
        self.queries += 1;
        self.open += 1;
        Ok(())
    }

    /// Ends a transaction: the queries since the last Sync commit together
    /// and see one snapshot. Queries meant to stand alone (the benchmark's,
    /// whose rules count one transaction per query) each get their own; a
    /// read that must be consistent across queries shares one. Still one
    /// write and one wait for the whole batch.
    pub fn sync(&mut self) {
        self.out.extend_from_slice(SYNC);
        self.syncs += 1;
        self.empty |= self.open == 0;
        self.open = 0;
    }

    /// A floor on the reply bytes of each of the batch's transactions.
    fn transaction_floor(&self) -> u64 {
        if self.empty {
            EMPTY_TRANSACTION_FLOOR
        } else {
            TRANSACTION_FLOOR
        }
    }
}

pub(super) struct Waiter {
    pub(super) tx: oneshot::Sender<Result<BatchRows, PgError>>,
    /// ReadyForQuery messages still to come for this batch (one per Sync).
    pub(super) syncs: usize,
    /// The floor counted for each of its transactions in the link's [`ReplyFloor`].
    pub(super) floor: u64,
    /// The hint counted for each of its transactions there.
    pub(super) hint: u64,
}

/// What the driver is collecting for the front waiter.
#[derive(Default)]
pub(super) struct Collecting {
    pub(super) rows: BatchRows,
    pub(super) error: Option<PgError>,
    /// Row bytes collected for this batch so far.
    pub(super) bytes: usize,
    /// Rows in the batch answered before this one: the first row reserves
    /// room for as many, so a reply of a dozen rows grows its list once, not
    /// three times (the list's growth was 5 % of a `/fortunes` request's
    /// instructions).
    pub(super) rows_before: usize,
    /// Queries in the batch answered before this one, for the same reason:
    /// twenty queries' ends grew their list five times (4 % of a `/queries`
    /// request).
    pub(super) queries_before: usize,
}

/// One live connection.
///
/// A batch that times out with no batch at all answered on the connection
/// since it was queued means the server is hung or gone without a word (a
/// failover behind a silent network): the connection is replaced at once,
/// rather than costing every later call its whole timeout until TCP
/// keepalive notices.
pub struct PgPipeline {
    pub(super) up: Cell<bool>,
    /// Transactions answered (ReadyForQuery) on this connection.
    pub(super) answered: Cell<u64>,
    /// A batch timed out with none answered since it was queued: replace this connection.
    pub(super) stalled: Notify,
    pub(super) out: RefCell<BytesMut>,
    pub(super) waiters: RefCell<VecDeque<Waiter>>,
    pub(super) queued: Notify,
    pub(super) room: Notify,
    pub(super) timeout: Duration,
    pub(super) stats: Rc<PgStats>,
    /// The reply bytes still to come, at the least, for the socket loop's read floor.
    pub(super) floor: ReplyFloor,
    /// Recent reply sizes, for the floor's hint.
    pub(super) sizes: ReplySizes,
}

impl PgPipeline {
    /// Sends one batch (the queries and Syncs `encode` adds, then a Sync if
    /// queries follow the last one) and waits for all its rows. Without a
    /// `sync` from `encode` the batch is one transaction. Fails at once if the
    /// connection is down.
    pub async fn run(&self, encode: impl FnOnce(&mut Batch<'_>) -> Result<(), PgError>) -> Result<BatchRows, PgError> {
        let exchange = async {
            while self.up.get() && self.waiters.borrow().len() >= MAX_IN_FLIGHT {
                self.room.notified().await;
            }
            if !self.up.get() {
                return Err(PgError::Unavailable);
            }
            let rx = {
                let mut out = self.out.borrow_mut();
                let mark = out.len();
                let mut batch = Batch { out: &mut out, queries: 0, syncs: 0, open: 0, empty: false };
                if let Err(e) = encode(&mut batch) {
                    out.truncate(mark);
                    return Err(e);
                }
                if batch.open > 0 || batch.syncs == 0 {
                    batch.sync();
                }
                let (queries, syncs, floor) = (batch.queries, batch.syncs, batch.transaction_floor());
                self.stats.queries.set(self.stats.queries.get() + queries as u64);
                let hint = self.sizes.typical.get().max(floor);
                link::add(&self.floor.bound.queued, syncs as u64 * floor);
                link::add(&self.floor.hint.queued, syncs as u64 * hint);
                let (tx, rx) = oneshot::channel();
                self.waiters.borrow_mut().push_back(Waiter { tx, syncs, floor, hint });
                rx
            };
            self.queued.notify_one();
            rx.await.unwrap_or(Err(PgError::Unavailable))
        };
        let answered_before = self.answered.get();
        let outcome = tokio::time::timeout(self.timeout, exchange).await.unwrap_or(Err(PgError::TimedOut));
        if matches!(outcome, Err(PgError::TimedOut)) && self.answered.get() == answered_before && self.up.get() {
            self.up.set(false);
            self.stalled.notify_one();
        }
        outcome
    }

    pub(super) fn fail_all(&self) {
        self.up.set(false);
        self.out.borrow_mut().clear();
        for waiter in self.waiters.borrow_mut().drain(..) {
            let _ = waiter.tx.send(Err(PgError::Unavailable));
        }
        self.room.notify_waiters();
    }
}

/// Hands every complete batch result in `rbuf` to its waiter, in order.
///
/// Only errors and notices are parsed into messages; a row is kept as its
/// body, unparsed (parsing it was 4 % of a `/fortunes` request and reading
/// its columns through the parsed form 8 %). The frames whose bodies
/// nobody reads (BindComplete, CommandComplete, ReadyForQuery and the like:
/// three of a query's four) are recognised by their tag and skipped in place,
/// which costs no split of the buffer and no reference count; parsing them
/// was 16 % of a `/queries` request's instructions.
pub(super) fn deliver(link: &PgPipeline, rbuf: &mut BytesMut, collecting: &mut Collecting) -> io::Result<()> {
    let had_room = link.waiters.borrow().len() < MAX_IN_FLIGHT;
    let floor = &link.floor;
    while let Some(&[tag, a, b, c, d]) = rbuf.get(..5) {
        // The length counts itself, not the tag.
        let len = u32::from_be_bytes([a, b, c, d]) as usize;
        if len < 4 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "a message shorter than its length field"));
        }
        let frame = len + 1;
        if rbuf.len() < frame {
            break;
        }
        link::add(&floor.consumed, frame as u64);
        match tag {
            BIND_COMPLETE | PARSE_COMPLETE | NO_DATA | PORTAL_SUSPENDED => rbuf.advance(frame),
            COMMAND_COMPLETE | EMPTY_QUERY_RESPONSE => {
                rbuf.advance(frame);
                let ends = &mut collecting.rows.ends;
                if ends.capacity() == 0 {
                    ends.reserve(collecting.queries_before);
                }
                ends.push(collecting.rows.rows.len());
            }
            READY_FOR_QUERY => {
                rbuf.advance(frame);
                ready_for_query(link, collecting)?;
            }
            DATA_ROW => {
                collecting.bytes += frame - 5;
                if collecting.bytes <= MAX_REPLY_BYTES {
                    let mut row = rbuf.split_to(frame);
                    row.advance(5);
                    let rows = &mut collecting.rows.rows;
                    if rows.capacity() == 0 {
                        rows.reserve(collecting.rows_before);
                    }
                    rows.push(row.freeze());
                } else {
                    rbuf.advance(frame);
                    if collecting.error.is_none() {
                        collecting.error = Some(PgError::ReplyTooLarge);
                        collecting.rows = BatchRows::default();
                    }
                }
            }
            _ => match Message::parse(rbuf)? {
                Some(Message::ErrorResponse(body)) => {
                    let e = error_fields(&body);
                    if link.waiters.borrow().is_empty() {
                        // A FATAL outside any batch (an administrator's shutdown): the end is near.
                        return Err(io::Error::other(e.text));
                    }
                    collecting.error.get_or_insert(classify(&e.code, e.text, e.constraint));
                }
                Some(Message::NoticeResponse(_) | Message::ParameterStatus(_) | Message::NotificationResponse(_)) => {}
                _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "unexpected message from PostgreSQL")),
            },
        }
    }
    if !had_room && link.waiters.borrow().len() < MAX_IN_FLIGHT {
        link.room.notify_waiters();
    }
    Ok(())
}

/// Message tags of the frames [`deliver`] skips without parsing.
const BIND_COMPLETE: u8 = b'2';
const PARSE_COMPLETE: u8 = b'1';
const NO_DATA: u8 = b'n';
const PORTAL_SUSPENDED: u8 = b's';
const COMMAND_COMPLETE: u8 = b'C';
const EMPTY_QUERY_RESPONSE: u8 = b'I';
const READY_FOR_QUERY: u8 = b'Z';
/// A row: kept as its body, read by [`super::row::Row`].
const DATA_ROW: u8 = b'D';

/// A transaction's end: counts it, and when it was the front batch's last,
/// hands that batch's rows (or its first error) to the waiter.
fn ready_for_query(link: &PgPipeline, collecting: &mut Collecting) -> io::Result<()> {
    let floor = &link.floor;
    link.answered.set(link.answered.get() + 1);
    // The whole transaction's reply, this ReadyForQuery included.
    link.sizes.learn(floor.consumed.take());
    let waiter = {
        let mut waiters = link.waiters.borrow_mut();
        let Some(front) = waiters.front_mut() else {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "a result nobody asked for"));
        };
        link::add(&floor.bound.answered, front.floor);
        link::add(&floor.hint.answered, front.hint);
        if front.syncs > 1 {
            // More of this batch's transactions to come: keep collecting.
            front.syncs -= 1;
            return Ok(());
        }
        waiters.pop_front().expect("the front waiter was just seen")
    };
    let done = std::mem::take(collecting);
    collecting.rows_before = done.rows.rows.len();
    collecting.queries_before = done.rows.ends.len();
    // The caller may have timed out and gone; that is fine.
    let _ = waiter.tx.send(match done.error {
        Some(e) => Err(e),
        None => Ok(done.rows),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::message::frontend;
    use postgres_types::Type;

    const STATEMENT: Statement = Statement {
        name: "s7",
        sql: "SELECT $1::int4, $2::text, $3::int4[]",
        params: &[Type::INT4, Type::TEXT, Type::INT4_ARRAY],
    };

    /// What postgres-protocol's own encoder writes for the same Bind.
    fn reference(params: &[&(dyn ToSql + Sync)]) -> BytesMut {
        let mut out = BytesMut::new();
        frontend::bind(
            "",
            STATEMENT.name,
            Some(BINARY),
            params.iter().zip(STATEMENT.params),
            |(value, ty), buf| match value.to_sql_checked(ty, buf)? {
                postgres_types::IsNull::Yes => Ok(postgres_protocol::IsNull::Yes),
                postgres_types::IsNull::No => Ok(postgres_protocol::IsNull::No),
            },
            Some(BINARY),
            &mut out,
        )
        .unwrap_or_else(|_| panic!("the reference encoder failed"));
        out
    }

    #[test]
    fn bind_is_what_postgres_protocol_writes() {
        let none: Option<&str> = None;
        let cases: [[&(dyn ToSql + Sync); 3]; 3] = [
            [&7i32, &"seven", &vec![1i32, 2, 3]],
            [&-1i32, &none, &Vec::<i32>::new()],
            [&i32::MAX, &"ünïcode", &vec![i32::MIN]],
        ];
        for params in cases {
            let mut out = BytesMut::new();
            encode_bind(&STATEMENT, &params, &mut out).unwrap();
            assert_eq!(out, reference(&params));
        }
    }

    #[test]
    fn a_value_of_the_wrong_type_is_refused() {
        let mut out = BytesMut::new();
        let params: [&(dyn ToSql + Sync); 3] = [&"not an int", &"x", &vec![1i32]];
        let e = encode_bind(&STATEMENT, &params, &mut out).unwrap_err();
        assert!(matches!(e, PgError::Failed(ref why) if why.contains("cannot encode")), "{e:?}");
    }

    /// A backend message: tag, length (counting itself), body.
    fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn data_row(columns: &[i32]) -> Vec<u8> {
        let mut body = (columns.len() as i16).to_be_bytes().to_vec();
        for c in columns {
            body.extend_from_slice(&4i32.to_be_bytes());
            body.extend_from_slice(&c.to_be_bytes());
        }
        frame(b'D', &body)
    }

    fn pipeline() -> PgPipeline {
        PgPipeline {
            up: Cell::new(true),
            answered: Cell::new(0),
            stalled: Notify::new(),
            out: RefCell::new(BytesMut::new()),
            waiters: RefCell::new(VecDeque::new()),
            queued: Notify::new(),
            room: Notify::new(),
            timeout: Duration::from_secs(1),
            stats: Rc::default(),
            floor: ReplyFloor::default(),
            sizes: ReplySizes::default(),
        }
    }

    fn wait_for(link: &PgPipeline, syncs: usize) -> oneshot::Receiver<Result<BatchRows, PgError>> {
        let (tx, rx) = oneshot::channel();
        link.waiters.borrow_mut().push_back(Waiter { tx, syncs, floor: TRANSACTION_FLOOR, hint: TRANSACTION_FLOOR });
        rx
    }

    /// Two transactions of one batch: a row, then none; a notice between
    /// them. The reply's sizes, for the floor's bookkeeping.
    fn two_transactions() -> (Vec<u8>, [u64; 2]) {
        let first = [frame(b'2', b""), data_row(&[7, -42]), frame(b'C', b"SELECT 1\0"), frame(b'Z', b"I")].concat();
        let second = [
            frame(b'N', b"SNOTICE\0C00000\0Mhello\0\0"),
            frame(b'2', b""),
            frame(b'C', b"SELECT 0\0"),
            frame(b'Z', b"I"),
        ]
        .concat();
        let sizes = [first.len() as u64, second.len() as u64];
        ([first, second].concat(), sizes)
    }

    #[test]
    fn delivers_a_reply_cut_anywhere() {
        let (reply, sizes) = two_transactions();
        // Every proper prefix: the whole reply is the one cut that may answer.
        for cut in 0..reply.len() {
            let link = pipeline();
            let mut rx = wait_for(&link, 2);
            let mut collecting = Collecting::default();
            let mut rbuf = BytesMut::from(&reply[..cut]);
            deliver(&link, &mut rbuf, &mut collecting).unwrap();
            assert!(rx.try_recv().is_err(), "answered early at cut {cut}");
            rbuf.extend_from_slice(&reply[cut..]);
            deliver(&link, &mut rbuf, &mut collecting).unwrap();

            assert!(rbuf.is_empty(), "cut {cut}: {} bytes left", rbuf.len());
            let rows = rx.try_recv().expect("answered").expect("no error");
            assert_eq!(rows.ends, [1, 1], "cut {cut}");
            let row = rows.query(0).next().unwrap();
            assert_eq!((row.int4(0).unwrap(), row.int4(1).unwrap()), (7, -42));
            assert_eq!(rows.query(1).count(), 0);
            assert_eq!(link.answered.get(), 2);
            assert_eq!(link.floor.consumed.get(), 0, "every byte belongs to an answered transaction");
            assert_eq!(link.sizes.typical.get(), 0, "a window is not complete yet");
            assert_eq!(link.sizes.window_min.get(), sizes[0].min(sizes[1]));
            assert_eq!(link.floor.bound.answered.get(), 2 * TRANSACTION_FLOOR);
            assert!(link.waiters.borrow().is_empty());
        }
    }

    #[test]
    fn an_error_response_fails_the_batch_after_its_end() {
        let reply = [frame(b'E', b"SERROR\0C42P01\0Mno such table\0\0"), frame(b'Z', b"I")].concat();
        let link = pipeline();
        let mut rx = wait_for(&link, 1);
        deliver(&link, &mut BytesMut::from(&reply[..]), &mut Collecting::default()).unwrap();
        assert!(rx.try_recv().unwrap().is_err());
    }

    #[test]
    fn a_broken_frame_ends_the_connection() {
        let link = pipeline();
        let _rx = wait_for(&link, 1);
        let short = [b'2', 0, 0, 0, 3];
        assert!(deliver(&link, &mut BytesMut::from(&short[..]), &mut Collecting::default()).is_err());
        let unexpected = frame(b'3', b""); // CloseComplete: nothing here closes
        assert!(deliver(&link, &mut BytesMut::from(&unexpected[..]), &mut Collecting::default()).is_err());
        let unasked = frame(b'Z', b"I");
        let link = pipeline();
        assert!(deliver(&link, &mut BytesMut::from(&unasked[..]), &mut Collecting::default()).is_err());
    }

    #[test]
    fn execute_and_sync_are_the_protocol_bytes() {
        let mut out = BytesMut::new();
        frontend::execute("", 0, &mut out).unwrap();
        assert_eq!(&out[..], EXECUTE_ALL);
        out.clear();
        frontend::sync(&mut out);
        assert_eq!(&out[..], SYNC);
    }
}
