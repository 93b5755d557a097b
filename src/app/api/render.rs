//! The API's response documents, written field by field into the response's
//! scratch buffer straight from database rows: no intermediate structs, no
//! allocation per field. Shapes follow shared/conduit-api.md §2 exactly:
//! every field always present, `null` written rather than omitted, counts
//! as JSON integers, timestamps as `2016-02-18T03:22:56.637Z`.

use swiftlet_protocol::Rfc3339Millis;

use crate::http::json::{write_bool, write_int, write_opt_str, write_str};
use crate::storage::postgres::Row;
use crate::storage::PgError;

/// `"user":{...}` from a `(id, username, email, bio, image)` row.
pub fn user(out: &mut Vec<u8>, row: &Row<'_>, token: &str) -> Result<(), PgError> {
    out.extend_from_slice(b"{\"user\":{\"email\":");
    write_str(out, row.text(2)?);
    out.extend_from_slice(b",\"token\":");
    write_str(out, token);
    out.extend_from_slice(b",\"username\":");
    write_str(out, row.text(1)?);
    out.extend_from_slice(b",\"bio\":");
    write_opt_str(out, row.opt_text(3)?);
    out.extend_from_slice(b",\"image\":");
    write_opt_str(out, row.opt_text(4)?);
    out.extend_from_slice(b"}}");
    Ok(())
}

/// A profile object from four columns starting at `at`: username, bio, image, following.
fn profile_object(out: &mut Vec<u8>, row: &Row<'_>, at: usize) -> Result<(), PgError> {
    out.extend_from_slice(b"{\"username\":");
    write_str(out, row.text(at)?);
    out.extend_from_slice(b",\"bio\":");
    write_opt_str(out, row.opt_text(at + 1)?);
    out.extend_from_slice(b",\"image\":");
    write_opt_str(out, row.opt_text(at + 2)?);
    out.extend_from_slice(b",\"following\":");
    write_bool(out, row.bool(at + 3)?);
    out.push(b'}');
    Ok(())
}

/// `{"profile":{...}}` from a `(id, username, bio, image, following)` row.
pub fn profile(out: &mut Vec<u8>, row: &Row<'_>) -> Result<(), PgError> {
    out.extend_from_slice(b"{\"profile\":");
    profile_object(out, row, 1)?;
    out.push(b'}');
    Ok(())
}

fn timestamp(out: &mut Vec<u8>, micros: i64) {
    out.push(b'"');
    out.extend_from_slice(Rfc3339Millis::from_unix_micros(micros).as_str().as_bytes());
    out.push(b'"');
}

/// An article object from a row laid out as `api::sql::article_columns!`;
/// list entries leave out the body (§2.4).
pub fn article_object(out: &mut Vec<u8>, row: &Row<'_>, with_body: bool) -> Result<(), PgError> {
    out.extend_from_slice(b"{\"slug\":");
    write_str(out, row.text(2)?);
    out.extend_from_slice(b",\"title\":");
    write_str(out, row.text(3)?);
    out.extend_from_slice(b",\"description\":");
    write_str(out, row.text(4)?);
    if with_body {
        out.extend_from_slice(b",\"body\":");
        write_str(out, row.text(5)?);
    }
    out.extend_from_slice(b",\"tagList\":[");
    for (i, tag) in row.text_array(6)?.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, tag);
    }
    out.extend_from_slice(b"],\"createdAt\":");
    timestamp(out, row.timestamp_micros(7)?);
    out.extend_from_slice(b",\"updatedAt\":");
    timestamp(out, row.timestamp_micros(8)?);
    out.extend_from_slice(b",\"favorited\":");
    write_bool(out, row.bool(13)?);
    out.extend_from_slice(b",\"favoritesCount\":");
    write_int(out, row.int4(9)?.into());
    out.extend_from_slice(b",\"author\":{\"username\":");
    write_str(out, row.text(10)?);
    out.extend_from_slice(b",\"bio\":");
    write_opt_str(out, row.opt_text(11)?);
    out.extend_from_slice(b",\"image\":");
    write_opt_str(out, row.opt_text(12)?);
    out.extend_from_slice(b",\"following\":");
    write_bool(out, row.bool(14)?);
    out.extend_from_slice(b"}}");
    Ok(())
}

/// `{"article":{...}}`.
pub fn article(out: &mut Vec<u8>, row: &Row<'_>) -> Result<(), PgError> {
    out.extend_from_slice(b"{\"article\":");
    article_object(out, row, true)?;
    out.push(b'}');
    Ok(())
}

/// `{"articles":[...],"articlesCount":n}`.
pub fn article_list<'r>(out: &mut Vec<u8>, rows: impl Iterator<Item = Row<'r>>, count: i64) -> Result<(), PgError> {
    out.extend_from_slice(b"{\"articles\":[");
    for (i, row) in rows.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        article_object(out, &row, false)?;
    }
    out.extend_from_slice(b"],\"articlesCount\":");
    write_int(out, count);
    out.push(b'}');
    Ok(())
}

/// A comment object from a row laid out as the comment statements' (see `api::sql`).
fn comment_object(out: &mut Vec<u8>, row: &Row<'_>) -> Result<(), PgError> {
    out.extend_from_slice(b"{\"id\":");
    write_int(out, row.int8(0)?);
    out.extend_from_slice(b",\"createdAt\":");
    timestamp(out, row.timestamp_micros(1)?);
    out.extend_from_slice(b",\"updatedAt\":");
    timestamp(out, row.timestamp_micros(2)?);
    out.extend_from_slice(b",\"body\":");
    write_str(out, row.text(3)?);
    out.extend_from_slice(b",\"author\":");
    profile_object(out, row, 4)?;
    out.push(b'}');
    Ok(())
}

/// `{"comment":{...}}`.
pub fn comment(out: &mut Vec<u8>, row: &Row<'_>) -> Result<(), PgError> {
    out.extend_from_slice(b"{\"comment\":");
    comment_object(out, row)?;
    out.push(b'}');
    Ok(())
}

/// `{"comments":[...]}`.
pub fn comments<'r>(out: &mut Vec<u8>, rows: impl Iterator<Item = Row<'r>>) -> Result<(), PgError> {
    out.extend_from_slice(b"{\"comments\":[");
    for (i, row) in rows.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        comment_object(out, &row)?;
    }
    out.extend_from_slice(b"]}");
    Ok(())
}

/// `{"tags":[...]}`.
pub fn tags<'r>(out: &mut Vec<u8>, rows: impl Iterator<Item = Row<'r>>) -> Result<(), PgError> {
    out.extend_from_slice(b"{\"tags\":[");
    for (i, row) in rows.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, row.text(0)?);
    }
    out.extend_from_slice(b"]}");
    Ok(())
}

/// A video object from a row laid out as `api::sql::video_columns!`. The id
/// is a string: time-ordered ids exceed what a JSON number carries exactly
/// in JavaScript (2^53).
fn video_object(out: &mut Vec<u8>, row: &Row<'_>) -> Result<(), PgError> {
    let id = row.int8(0)?;
    out.extend_from_slice(b"{\"id\":\"");
    out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
    out.extend_from_slice(b"\",\"title\":");
    write_str(out, row.text(1)?);
    out.extend_from_slice(b",\"size\":");
    write_int(out, row.int8(2)?);
    out.extend_from_slice(b",\"contentType\":");
    write_str(out, row.text(3)?);
    out.extend_from_slice(b",\"contentUrl\":\"/api/videos/");
    out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
    out.extend_from_slice(b"/content\",\"createdAt\":");
    timestamp(out, row.timestamp_micros(4)?);
    out.extend_from_slice(b",\"author\":");
    profile_object(out, row, 5)?;
    out.push(b'}');
    Ok(())
}

/// `{"video":{...}}`.
pub fn video(out: &mut Vec<u8>, row: &Row<'_>) -> Result<(), PgError> {
    out.extend_from_slice(b"{\"video\":");
    video_object(out, row)?;
    out.push(b'}');
    Ok(())
}

/// `{"videos":[...],"nextCursor":"<id>"|null}`: the cursor is the last id of
/// a full page (the next page starts below it), null on the last page.
pub fn video_list<'r>(out: &mut Vec<u8>, rows: impl Iterator<Item = Row<'r>>, limit: i64) -> Result<(), PgError> {
    out.extend_from_slice(b"{\"videos\":[");
    let mut last = None;
    let mut n = 0;
    for row in rows {
        if n > 0 {
            out.push(b',');
        }
        video_object(out, &row)?;
        last = Some(row.int8(0)?);
        n += 1;
    }
    out.extend_from_slice(b"],\"nextCursor\":");
    match last {
        Some(id) if n == limit => {
            out.push(b'"');
            out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
            out.push(b'"');
        }
        _ => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
    Ok(())
}
