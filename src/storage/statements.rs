//! The SQL statements of the TechEmpower tests, and [`all`], every statement
//! the request path runs (these and the product API's, `api::sql`), which
//! each connection prepares once.
//!
//! A statement has a fixed name and declared parameter types, so a request
//! sends only Bind/Execute with the name; PostgreSQL parsed and planned it
//! when the connection opened. Adding a statement here is all it takes to use
//! it from a handler.

use postgres_types::Type;

pub struct Statement {
    /// The prepared statement's name on every connection.
    pub name: &'static str,
    pub sql: &'static str,
    pub params: &'static [Type],
}

/// One World row by id: `(id int4, randomnumber int4)`.
pub const WORLD_BY_ID: Statement =
    Statement { name: "world_by_id", sql: "SELECT id, randomnumber FROM world WHERE id = $1", params: &[Type::INT4] };

/// Every Fortune row: `(id int4, message text)`.
pub const FORTUNES: Statement =
    Statement { name: "fortunes", sql: "SELECT id, message::text FROM fortune", params: &[] };

/// Sets `randomnumber` for many ids in one statement: `$1` ids, `$2` numbers.
pub const UPDATE_WORLDS: Statement = Statement {
    name: "update_worlds",
    sql: "UPDATE world SET randomnumber = u.r FROM unnest($1::int4[], $2::int4[]) AS u(id, r) WHERE world.id = u.id",
    params: &[Type::INT4_ARRAY, Type::INT4_ARRAY],
};

const BENCHMARK: &[&Statement] = &[&WORLD_BY_ID, &FORTUNES, &UPDATE_WORLDS];

/// Every statement a connection prepares.
pub fn all() -> impl Iterator<Item = &'static Statement> {
    BENCHMARK.iter().chain(crate::app::api::sql::ALL).copied()
}
