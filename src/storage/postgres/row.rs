//! Reading a batch's answer: the rows of each query, decoded from
//! PostgreSQL's binary format by position.

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::DataRowBody;
use postgres_types::ToSql;

use super::error::PgError;

/// The rows of one batch, query by query. Rows borrow the connection's read
/// buffer (reference-counted), so nothing is copied out of it.
#[derive(Debug, Default)]
pub struct BatchRows {
    pub(super) rows: Vec<DataRowBody>,
    /// `ends[i]`: one past the last row of query i.
    pub(super) ends: Vec<usize>,
}

impl BatchRows {
    /// How many queries completed.
    pub fn queries(&self) -> usize {
        self.ends.len()
    }

    /// The rows of query `i`.
    pub fn query(&self, i: usize) -> impl Iterator<Item = Row<'_>> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.rows[start..self.ends[i]].iter().map(Row)
    }
}

/// One result row, columns in binary format.
pub struct Row<'r>(&'r DataRowBody);

impl<'r> Row<'r> {
    fn column(&self, index: usize) -> Result<&'r [u8], PgError> {
        let range = self
            .0
            .ranges()
            .nth(index)
            .ok()
            .flatten()
            .flatten()
            .ok_or_else(|| PgError::Failed(format!("column {index} is missing or NULL")))?;
        Ok(&self.0.buffer()[range])
    }

    /// The raw bytes of a column, `None` when it is NULL.
    fn nullable(&self, index: usize) -> Result<Option<&'r [u8]>, PgError> {
        let range = self.0.ranges().nth(index).ok().flatten().ok_or_else(|| missing(index))?;
        Ok(range.map(|r| &self.0.buffer()[r]))
    }

    pub fn int4(&self, index: usize) -> Result<i32, PgError> {
        Ok(i32::from_be_bytes(fixed(self.column(index)?, index, "int4")?))
    }

    pub fn int8(&self, index: usize) -> Result<i64, PgError> {
        Ok(i64::from_be_bytes(fixed(self.column(index)?, index, "int8")?))
    }

    pub fn bool(&self, index: usize) -> Result<bool, PgError> {
        let [b] = fixed(self.column(index)?, index, "bool")?;
        Ok(b != 0)
    }

    /// A timestamptz as microseconds since the Unix epoch (PostgreSQL sends
    /// microseconds since 2000-01-01).
    pub fn timestamp_micros(&self, index: usize) -> Result<i64, PgError> {
        let pg = i64::from_be_bytes(fixed(self.column(index)?, index, "timestamptz")?);
        Ok(pg.saturating_add(swiftlet_protocol::pgcopy::UNIX_TO_PG_EPOCH_MICROS))
    }

    pub fn text(&self, index: usize) -> Result<&'r str, PgError> {
        utf8(self.column(index)?, index)
    }

    /// A text column's bytes, unchecked: UTF-8, since every session asks for
    /// `client_encoding` UTF8 and PostgreSQL converts and validates text on
    /// the way out. For callers that only compare and copy the bytes.
    pub fn text_bytes(&self, index: usize) -> Result<&'r [u8], PgError> {
        self.column(index)
    }

    pub fn opt_text(&self, index: usize) -> Result<Option<&'r str>, PgError> {
        self.nullable(index)?.map(|b| utf8(b, index)).transpose()
    }

    /// A one-dimensional text[] without NULL elements, as borrowed strings.
    pub fn text_array(&self, index: usize) -> Result<Vec<&'r str>, PgError> {
        let bad = || PgError::Failed(format!("column {index} is not a text[]"));
        let array = postgres_protocol::types::array_from_sql(self.column(index)?).map_err(|_| bad())?;
        let mut values = array.values();
        let mut out = Vec::new();
        while let Some(value) = values.next().map_err(|_| bad())? {
            out.push(utf8(value.ok_or_else(bad)?, index)?);
        }
        Ok(out)
    }
}

/// A timestamptz parameter, given as microseconds since the Unix epoch;
/// `i64::MIN` and `i64::MAX` are PostgreSQL's `-infinity` and `infinity`.
#[derive(Debug, Clone, Copy)]
pub struct Timestamptz(pub i64);

impl ToSql for Timestamptz {
    fn to_sql(
        &self,
        _: &postgres_types::Type,
        out: &mut BytesMut,
    ) -> Result<postgres_types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let pg = match self.0 {
            i64::MIN | i64::MAX => self.0,
            unix => unix.saturating_sub(swiftlet_protocol::pgcopy::UNIX_TO_PG_EPOCH_MICROS),
        };
        out.extend_from_slice(&pg.to_be_bytes());
        Ok(postgres_types::IsNull::No)
    }

    fn accepts(ty: &postgres_types::Type) -> bool {
        *ty == postgres_types::Type::TIMESTAMPTZ
    }

    postgres_types::to_sql_checked!();
}

#[cold]
pub(super) fn missing(index: usize) -> PgError {
    PgError::Failed(format!("column {index} is missing"))
}

pub(super) fn fixed<const N: usize>(bytes: &[u8], index: usize, ty: &str) -> Result<[u8; N], PgError> {
    bytes.try_into().map_err(|_| PgError::Failed(format!("column {index} is not an {ty}")))
}

pub(super) fn utf8(bytes: &[u8], index: usize) -> Result<&str, PgError> {
    std::str::from_utf8(bytes).map_err(|_| PgError::Failed(format!("column {index} is not UTF-8")))
}
