//! The SQL statements of the TechEmpower tests, prepared on every
//! connection like the product API's (see `storage::statements`).

use postgres_types::Type;

use crate::storage::statements::Statement;

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

/// Every statement of the benchmark routes.
pub const ALL: &[&Statement] = &[&WORLD_BY_ID, &FORTUNES, &UPDATE_WORLDS];
