-- The log store behind POST /ingest and GET /api/logs.
--
-- event_id is the client's idempotency key: a retried event conflicts with
-- its first copy and is dropped (ingest::writer inserts with ON CONFLICT DO
-- NOTHING), so each event is stored once however often it is sent.
-- Reads go newest first by the event's own timestamp, with event_id breaking
-- ties, so (ts, event_id) is the keyset the cursor of GET /api/logs carries.
-- event_id compares bytewise (COLLATE "C"): an id is a key, not prose, and a
-- cursor must sort the same on every server whatever its locale.
CREATE TABLE log_events (
    event_id text COLLATE "C" PRIMARY KEY,
    ts timestamptz NOT NULL,
    service text NOT NULL,
    message text NOT NULL,
    metadata jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

-- One service's events, newest first (GET /api/logs?service=…).
CREATE INDEX log_events_by_service ON log_events (service, ts, event_id);
-- Every service's events, newest first (GET /api/logs).
CREATE INDEX log_events_by_time ON log_events (ts, event_id);
