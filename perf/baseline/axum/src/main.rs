//! The axum baseline for perf/run.sh, perf/db.py and perf/services.py:
//! swiftlet's endpoints written the way an axum 0.8 user would write them, on
//! tokio's default multi-thread runtime, with a deadpool-postgres pool and the
//! redis crate for the database endpoints. Listens on SWIFTLET_LISTEN or its
//! first argument; DATABASE_URL and REDIS_URL as for swiftlet.
//!
//! `/ingest` stores each event the usual way: serde_json (chrono for the
//! timestamp), then one `INSERT … ON CONFLICT (event_id) DO NOTHING` per
//! request on a pooled connection, answering 202 after it. `/api/ids` uses
//! the `sonyflake` crate, one generator for the process, as the reference
//! benchmark's Rust entry does.
//!
//! Where a choice changes speed, it takes the one a performance-minded user
//! would (and the one swiftlet makes): statements prepared once per pooled
//! connection, the reads of a multi-row request issued together so they
//! pipeline, and the writes of /updates in one statement.

use std::collections::HashMap;
use std::fmt::Write;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures::future::try_join_all;
use rand::Rng;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
struct Message {
    message: &'static str,
}

#[derive(Deserialize)]
struct LogPayload {
    event_id: String,
    timestamp: chrono::DateTime<chrono::Utc>,
    service: String,
    message: String,
    metadata: HashMap<String, String>,
}

#[cfg(feature = "count-allocations")]
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicU64, Ordering};

    pub static CALLS: AtomicU64 = AtomicU64::new(0);

    pub struct Counting;

    // SAFETY: every method forwards unchanged to `System`, which upholds the
    // `GlobalAlloc` contract; the counter never touches the memory.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            CALLS.fetch_add(1, Ordering::Relaxed);
            // SAFETY: the caller's layout, under the caller's contract.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: `ptr` came from `System` with `layout`.
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            CALLS.fetch_add(1, Ordering::Relaxed);
            // SAFETY: as for `alloc`.
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            CALLS.fetch_add(1, Ordering::Relaxed);
            // SAFETY: `ptr` came from `System` with `layout`.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static ALLOCATOR: Counting = Counting;

    pub async fn count() -> String {
        CALLS.load(Ordering::SeqCst).to_string()
    }
}

#[derive(Serialize)]
struct World {
    id: i32,
    #[serde(rename = "randomNumber")]
    random_number: i32,
}

#[derive(Clone)]
struct AppState {
    pool: Pool,
    redis: Option<redis::aio::ConnectionManager>,
    ids: sonyflake::Sonyflake,
}

struct AppError(StatusCode, String);

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({"errors": {"database": [self.1]}}))).into_response()
    }
}

impl From<deadpool_postgres::PoolError> for AppError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        AppError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    }
}

impl From<tokio_postgres::Error> for AppError {
    fn from(e: tokio_postgres::Error) -> Self {
        AppError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

async fn health() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

async fn plaintext() -> &'static str {
    "Hello, World!"
}

async fn json() -> impl IntoResponse {
    Json(Message { message: "Hello, World!" })
}

async fn ingest(State(state): State<AppState>, Json(event): Json<LogPayload>) -> Result<Response, AppError> {
    let client = state.pool.get().await?;
    let stmt = client
        .prepare_cached(
            "INSERT INTO log_events (event_id, ts, service, message, metadata) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (event_id) DO NOTHING",
        )
        .await?;
    let metadata = tokio_postgres::types::Json(&event.metadata);
    client.execute(&stmt, &[&event.event_id, &event.timestamp, &event.service, &event.message, &metadata]).await?;
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({"status": "queued"}))).into_response())
}

async fn next_id(State(state): State<AppState>) -> Result<Response, AppError> {
    let id = state.ids.next_id().map_err(|e| AppError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok(Json(serde_json::json!({"id": id.to_u64().to_string()})).into_response())
}

const WORLD_BY_ID: &str = "SELECT id, randomnumber FROM world WHERE id = $1";

fn random_id() -> i32 {
    rand::rng().random_range(1..=10_000)
}

/// The benchmark's rule: missing or not a number is 1, clamped to 1..=500.
fn count(params: &HashMap<String, String>, name: &str) -> usize {
    params.get(name).and_then(|v| v.parse::<i64>().ok()).unwrap_or(1).clamp(1, 500) as usize
}

async fn read_worlds(client: &deadpool_postgres::Client, ids: &[i32]) -> Result<Vec<World>, AppError> {
    let stmt = client.prepare_cached(WORLD_BY_ID).await?;
    let stmt = &stmt;
    let rows = try_join_all(ids.iter().map(|id| async move { client.query_one(stmt, &[id]).await })).await?;
    Ok(rows.iter().map(|r| World { id: r.get(0), random_number: r.get(1) }).collect())
}

async fn db(State(state): State<AppState>) -> Result<Json<World>, AppError> {
    let client = state.pool.get().await?;
    let stmt = client.prepare_cached(WORLD_BY_ID).await?;
    let row = client.query_one(&stmt, &[&random_id()]).await?;
    Ok(Json(World { id: row.get(0), random_number: row.get(1) }))
}

async fn queries(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Vec<World>>, AppError> {
    let ids: Vec<i32> = (0..count(&params, "queries")).map(|_| random_id()).collect();
    let client = state.pool.get().await?;
    Ok(Json(read_worlds(&client, &ids).await?))
}

async fn updates(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Vec<World>>, AppError> {
    let ids: Vec<i32> = (0..count(&params, "queries")).map(|_| random_id()).collect();
    let client = state.pool.get().await?;
    let mut worlds = read_worlds(&client, &ids).await?;
    let mut new_numbers: HashMap<i32, i32> = HashMap::new();
    for w in &mut worlds {
        w.random_number = *new_numbers.entry(w.id).or_insert_with(random_id);
    }
    let mut changes: Vec<(i32, i32)> = new_numbers.into_iter().collect();
    changes.sort();
    let (ids, numbers): (Vec<i32>, Vec<i32>) = changes.into_iter().unzip();
    let stmt = client
        .prepare_cached(
            "UPDATE world SET randomnumber = u.r FROM unnest($1::int4[], $2::int4[]) AS u(id, r) WHERE world.id = u.id",
        )
        .await?;
    client.execute(&stmt, &[&ids, &numbers]).await?;
    Ok(Json(worlds))
}

async fn fortunes(State(state): State<AppState>) -> Result<Response, AppError> {
    let client = state.pool.get().await?;
    let stmt = client.prepare_cached("SELECT id, message FROM fortune").await?;
    let rows = client.query(&stmt, &[]).await?;
    let mut fortunes: Vec<(i32, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    fortunes.push((0, "Additional fortune added at request time.".to_string()));
    fortunes.sort_by(|a, b| a.1.cmp(&b.1));
    let mut html = String::from(
        "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table><tr><th>id</th><th>message</th></tr>",
    );
    for (id, message) in &fortunes {
        let _ = write!(html, "<tr><td>{id}</td><td>{}</td></tr>", escape(message));
    }
    html.push_str("</table></body></html>");
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response())
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

async fn cached_queries(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Vec<World>>, AppError> {
    let ids: Vec<i32> = (0..count(&params, "count")).map(|_| random_id()).collect();
    let keys: Vec<String> = ids.iter().map(|id| format!("axum:world:{id}")).collect();
    let cached: Vec<Option<i32>> = match state.redis.clone() {
        Some(mut redis) => redis.mget(&keys).await.unwrap_or_else(|_| vec![None; ids.len()]),
        None => vec![None; ids.len()],
    };
    let missing: Vec<i32> = ids.iter().zip(&cached).filter(|(_, c)| c.is_none()).map(|(id, _)| *id).collect();
    let mut fetched = Vec::new();
    if !missing.is_empty() {
        let client = state.pool.get().await?;
        fetched = read_worlds(&client, &missing).await?;
        if let Some(mut redis) = state.redis.clone() {
            let mut pipe = redis::pipe();
            for w in &fetched {
                pipe.set_ex(format!("axum:world:{}", w.id), w.random_number, 60).ignore();
            }
            let _: Result<(), _> = pipe.query_async(&mut redis).await;
        }
    }
    let mut fetched = fetched.into_iter();
    let worlds = ids
        .iter()
        .zip(cached)
        .map(|(&id, c)| match c {
            Some(random_number) => World { id, random_number },
            None => fetched.next().expect("one row per miss"),
        })
        .collect();
    Ok(Json(worlds))
}

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("SWIFTLET_LISTEN").ok())
        .unwrap_or_else(|| "127.0.0.1:8081".to_string());
    let database_url =
        std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/swiftlet".into());
    let pg_config: tokio_postgres::Config = database_url.parse().expect("DATABASE_URL");
    let manager = Manager::from_config(
        pg_config,
        tokio_postgres::NoTls,
        ManagerConfig { recycling_method: RecyclingMethod::Fast },
    );
    let pool = Pool::builder(manager).build().expect("pool");
    let redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let redis = match redis::Client::open(redis_url) {
        Ok(client) => redis::aio::ConnectionManager::new(client).await.ok(),
        Err(_) => None,
    };
    let ids = sonyflake::Sonyflake::builder().machine_id(&|| Ok(1)).finalize().expect("sonyflake");
    let state = AppState { pool, redis, ids };
    let app = Router::new()
        .route("/health", get(health))
        .route("/plaintext", get(plaintext))
        .route("/json", get(json))
        .route("/ingest", post(ingest))
        .route("/db", get(db))
        .route("/queries", get(queries))
        .route("/updates", get(updates))
        .route("/fortunes", get(fortunes))
        .route("/cached-queries", get(cached_queries))
        .route("/api/ids", get(next_id));
    #[cfg(feature = "count-allocations")]
    let app = app.route("/__allocations", get(counting::count));
    let app = app.with_state(state);
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    println!("listening addr={}", listener.local_addr().expect("addr"));
    axum::serve(listener, app).await.expect("serve");
}
