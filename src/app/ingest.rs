//! `POST /ingest` (one JSON event) and `POST /ingest/batch` (NDJSON, one event
//! per line): parse, append to the worker's ingest queue, and answer 202 when
//! the acknowledgement mode allows (see [`crate::ingest`]).
//!
//! A batch request takes every good line and reports the others by line
//! number; it is answered once every batch holding its lines committed
//! (durable mode). If the queue stays full part-way through, the whole
//! request gets 503: the lines already queued may be stored, and a retry of
//! the whole request stores each of them once (event_id is unique).

use swiftlet_protocol::Status;

use crate::app::core::Core;
use crate::http::error::AppError;
use crate::http::json::write_int;
use crate::http::request::Request;
use crate::http::response::{Response, JSON};
use crate::ingest::event::with_payload;
use crate::ingest::Receipt;

/// Rejected lines listed in a batch answer; the count covers the rest.
const MAX_LISTED_REJECTIONS: usize = 100;

pub async fn ingest(core: &Core, req: &mut Request<'_>, res: &mut Response<'_>) -> Result<(), AppError> {
    core.ingest.room().await?;
    let receipt = with_payload(req.body, |event| core.ingest.append(event))?;
    receipt.confirmed().await?;
    res.send_static(Status::ACCEPTED, JSON, br#"{"status":"queued"}"#);
    Ok(())
}

pub async fn ingest_batch(core: &Core, req: &mut Request<'_>, res: &mut Response<'_>) -> Result<(), AppError> {
    let mut accepted = 0u64;
    let mut rejected: Vec<(usize, AppError)> = Vec::new();
    let mut rejected_count = 0u64;
    let mut receipts: Vec<Receipt> = Vec::new();
    for (index, line) in req.body.split_mut(|&b| b == b'\n').enumerate() {
        let line = trim_ascii_whitespace(line);
        if line.is_empty() {
            continue;
        }
        core.ingest.room().await?;
        match with_payload(line, |event| core.ingest.append(event)) {
            Ok(receipt) => {
                accepted += 1;
                if receipts.last().is_none_or(|last| !last.same_batch(&receipt)) {
                    receipts.push(receipt);
                }
            }
            Err(AppError::IngestBusy) => return Err(AppError::IngestBusy),
            Err(e) => {
                rejected_count += 1;
                if rejected.len() < MAX_LISTED_REJECTIONS {
                    rejected.push((index + 1, e));
                }
            }
        }
    }
    if accepted == 0 && rejected_count == 0 {
        return Err(AppError::InvalidField { field: "body", problem: "holds no events (one JSON object per line)" });
    }
    for receipt in receipts {
        receipt.confirmed().await?;
    }
    let status = if accepted > 0 { Status::ACCEPTED } else { Status::UNPROCESSABLE_ENTITY };
    res.send_with(status, JSON, |out| {
        out.extend_from_slice(b"{\"accepted\":");
        write_int(out, accepted as i64);
        out.extend_from_slice(b",\"rejected_count\":");
        write_int(out, rejected_count as i64);
        out.extend_from_slice(b",\"rejected\":[");
        for (i, (line, error)) in rejected.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"line\":");
            write_int(out, *line as i64);
            out.push(b',');
            error.write_errors_member(out);
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
    });
    Ok(())
}

/// The line without leading and trailing ASCII whitespace (a CRLF line's `\r` included).
fn trim_ascii_whitespace(line: &mut [u8]) -> &mut [u8] {
    let start = line.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(line.len());
    let end = line.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |i| i + 1);
    &mut line[start..end]
}
