//! The axum baseline for perf/run.sh: swiftlet's endpoints written the way an
//! axum 0.8 user would write them, on tokio's default multi-thread runtime,
//! with serde_json for /ingest. Listens on SWIFTLET_LISTEN or its first argument.

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
struct Message {
    message: &'static str,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct LogPayload {
    event_id: String,
    timestamp: serde_json::Value,
    service: String,
    message: String,
    metadata: HashMap<String, String>,
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

async fn ingest(Json(_event): Json<LogPayload>) -> impl IntoResponse {
    (StatusCode::ACCEPTED, Json(serde_json::json!({"status": "queued"})))
}

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("SWIFTLET_LISTEN").ok())
        .unwrap_or_else(|| "127.0.0.1:8081".to_string());
    let app = Router::new()
        .route("/health", get(health))
        .route("/plaintext", get(plaintext))
        .route("/json", get(json))
        .route("/ingest", post(ingest));
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    println!("listening addr={}", listener.local_addr().expect("addr"));
    axum::serve(listener, app).await.expect("serve");
}
