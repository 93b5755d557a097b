//! Reading a batch's answer: the rows of each query, decoded from
//! PostgreSQL's binary format by position.

use bytes::{Bytes, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_types::ToSql;

use super::error::PgError;

/// The rows of one batch, query by query. Rows borrow the connection's read
/// buffer (reference-counted), so nothing is copied out of it.
#[derive(Debug, Default)]
pub struct BatchRows {
    /// Each row is a DataRow message's body as it came: a column count
    /// (int16), then per column a length (int32, -1 for NULL) and its bytes.
    /// Nothing checks a body when it arrives; [`Row`] checks the bounds of
    /// each column it reads (a reply's rows are read once, mostly a column
    /// or two of each, so walking them there costs no second pass).
    pub(super) rows: Vec<Bytes>,
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
        self.rows[start..self.ends[i]].iter().map(|body| Row(body))
    }
}

/// One result row, columns in binary format.
pub struct Row<'r>(&'r [u8]);

impl<'r> Row<'r> {
    fn column(&self, index: usize) -> Result<&'r [u8], PgError> {
        self.nullable(index)?.ok_or_else(|| PgError::Failed(format!("column {index} is NULL")))
    }

    /// The raw bytes of a column, `None` when it is NULL. Walks the lengths
    /// before it; a body that ends early or counts fewer columns is an error
    /// (PostgreSQL never sends one; a broken one must not panic).
    fn nullable(&self, index: usize) -> Result<Option<&'r [u8]>, PgError> {
        let body = self.0;
        let count = match body.get(..2) {
            Some(&[a, b]) => u16::from_be_bytes([a, b]) as usize,
            _ => return Err(missing(index)),
        };
        if index >= count {
            return Err(missing(index));
        }
        // Each column: its length (int32, -1 for NULL), then that many bytes.
        let length_at = |at: usize| match body.get(at..at.saturating_add(4)) {
            Some(&[a, b, c, d]) => Ok(i32::from_be_bytes([a, b, c, d])),
            _ => Err(missing(index)),
        };
        let mut at: usize = 2;
        for _ in 0..index {
            at = at.saturating_add(4 + length_at(at)?.max(0) as usize);
        }
        let len = length_at(at)?;
        if len < 0 {
            return Ok(None);
        }
        let start = at + 4;
        body.get(start..start.saturating_add(len as usize)).map(Some).ok_or_else(|| missing(index))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A DataRow body: the count, then each column (`None` for NULL).
    fn body(columns: &[Option<&[u8]>]) -> Vec<u8> {
        let mut out = (columns.len() as u16).to_be_bytes().to_vec();
        for c in columns {
            match c {
                Some(bytes) => {
                    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                    out.extend_from_slice(bytes);
                }
                None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        out
    }

    #[test]
    fn reads_columns_by_position_past_nulls() {
        let b = body(&[Some(&7i32.to_be_bytes()), None, Some(b"fortune"), Some(b"")]);
        let row = Row(&b);
        assert_eq!(row.int4(0).unwrap(), 7);
        assert_eq!(row.nullable(1).unwrap(), None);
        assert!(row.text(1).is_err(), "NULL is not a value");
        assert_eq!(row.text(2).unwrap(), "fortune");
        assert_eq!(row.opt_text(3).unwrap(), Some(""));
        assert!(row.nullable(4).is_err(), "past the column count");
    }

    #[test]
    fn a_broken_body_is_an_error_at_every_cut() {
        let b = body(&[Some(&7i32.to_be_bytes()), Some(b"fortune")]);
        for cut in 0..b.len() {
            let row = Row(&b[..cut]);
            assert!(row.text(1).is_err(), "cut {cut}");
        }
        let mut lying = b.clone();
        lying[2..6].copy_from_slice(&i32::MAX.to_be_bytes()); // a length past the end
        assert!(Row(&lying).int4(0).is_err());
        assert!(Row(&lying).text(1).is_err());
    }
}
