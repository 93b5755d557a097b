//! Support for measuring and fuzzing the server: the counting allocator the
//! allocation tests use, and the properties the fuzz targets check.

pub mod alloc_count;
pub mod fuzzing;
