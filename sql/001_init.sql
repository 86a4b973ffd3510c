-- 001_init: the ingest tables (DESIGN.md "Contracts") and the batch writer.
--
-- Every request to a callback path is a `deliveries` row; every distinct
-- msgId a `trade_events` row holding the whole envelope as jsonb (numbers
-- stay exact); every order a message names a `trade_event_orders` row and one
-- coalesced `reconcile_jobs` row.  `orders` and `order_changes` are filled by
-- the reconciler.

CREATE TABLE deliveries (
    id              bigserial PRIMARY KEY,
    received_at     timestamptz NOT NULL,
    request_id      text,
    app             text,                 -- NULL when no app owns the path
    method          text,
    path            text,
    remote_addr     text,
    http_status     integer NOT NULL,
    signature_ok    boolean,              -- NULL when the check never ran
    signature_field text,
    msg_id          bigint,               -- NULL when unknown
    duplicate       boolean,              -- msgId already recorded before
    error           text,                 -- NULL when fine
    body_bytes      bigint,
    body            bytea                 -- rejected requests only, truncated
);
CREATE INDEX deliveries_received_at ON deliveries (received_at);
CREATE INDEX deliveries_msg_id ON deliveries (msg_id) WHERE msg_id IS NOT NULL;

CREATE TABLE trade_events (
    msg_id         bigint PRIMARY KEY,
    type           text NOT NULL,
    order_id       bigint,                -- the first order named, NULL when none
    current_status text,                  -- as the message said it
    gmt_born       timestamptz,
    msg_send_time  timestamptz,
    user_info      text,
    topic_group    text,
    topic_name     text,
    app            text NOT NULL,
    received_at    timestamptz NOT NULL,
    payload        jsonb NOT NULL         -- the whole envelope
);
CREATE INDEX trade_events_order_id ON trade_events (order_id);
CREATE INDEX trade_events_type ON trade_events (type);

CREATE TABLE trade_event_orders (
    msg_id   bigint NOT NULL REFERENCES trade_events (msg_id),
    order_id bigint NOT NULL,
    position integer NOT NULL,
    PRIMARY KEY (msg_id, order_id)
);
CREATE INDEX trade_event_orders_order_id ON trade_event_orders (order_id);

CREATE TABLE orders (
    order_id      bigint PRIMARY KEY,
    app           text NOT NULL,          -- whose credentials fetch it
    status        text,
    modify_time   timestamptz,
    record        jsonb,
    reconciled_at timestamptz
);

-- One row per order waiting to be (re)fetched.  `generation` counts the
-- requests: a fetch that started before a newer request does not retire it.
CREATE TABLE reconcile_jobs (
    order_id     bigint PRIMARY KEY,
    app          text NOT NULL,           -- whose credentials fetch it
    state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'dead')),
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text,
    due_at       timestamptz NOT NULL DEFAULT now(),
    generation   bigint NOT NULL DEFAULT 1,
    requested_at timestamptz NOT NULL DEFAULT now(),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reconcile_jobs_due ON reconcile_jobs (due_at) WHERE state = 'pending';

CREATE TABLE order_changes (
    id         bigserial PRIMARY KEY,
    order_id   bigint NOT NULL,
    old_status text,
    new_status text,
    changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_changes_order_id ON order_changes (order_id);

-- receiver_ingest(batch): write one group-commit batch in one statement.
--
-- batch is a JSON array with one object per delivery (see store.c):
--   at (epoch microseconds), rid, app, method, path, remote, status, sig_ok,
--   sig_field, msg_id, error, body (hex), body_bytes, and for accepted
--   pushes ev: {msg_id, type, order_id, status, gmt_born_ms, send_time,
--   user_info, group, name, orders: [ids], payload: <the envelope itself>}.
-- Returns the number of new (not duplicate) events.
CREATE FUNCTION receiver_ingest(batch jsonb) RETURNS integer
LANGUAGE plpgsql AS $fn$
DECLARE
    new_ids bigint[];
BEGIN
    WITH ins AS (
        INSERT INTO trade_events (msg_id, type, order_id, current_status, gmt_born,
                                  msg_send_time, user_info, topic_group, topic_name,
                                  app, received_at, payload)
        SELECT (e->>'msg_id')::bigint, e->>'type', (e->>'order_id')::bigint,
               e->>'status',
               to_timestamp((e->>'gmt_born_ms')::numeric / 1000),
               (e->>'send_time')::timestamptz,
               e->>'user_info', e->>'group', e->>'name',
               d->>'app', to_timestamp((d->>'at')::numeric / 1000000),
               e->'payload'
        FROM jsonb_array_elements(batch) AS d, LATERAL (SELECT d->'ev' AS e) AS x
        WHERE jsonb_typeof(e) = 'object'
        -- In key order, so that receivers inserting the same msgIds (a
        -- retried push landing on two of them) cannot deadlock.
        ORDER BY (e->>'msg_id')::bigint
        ON CONFLICT (msg_id) DO NOTHING
        RETURNING msg_id
    )
    SELECT coalesce(array_agg(msg_id), '{}') INTO new_ids FROM ins;

    IF cardinality(new_ids) > 0 THEN
        INSERT INTO trade_event_orders (msg_id, order_id, position)
        SELECT (e->>'msg_id')::bigint, o.id::bigint, o.pos
        FROM jsonb_array_elements(batch) AS d, LATERAL (SELECT d->'ev' AS e) AS x,
             jsonb_array_elements_text(e->'orders') WITH ORDINALITY AS o(id, pos)
        WHERE jsonb_typeof(e) = 'object' AND (e->>'msg_id')::bigint = ANY (new_ids)
        ON CONFLICT DO NOTHING;

        -- One job per order, however many messages named it; a job that
        -- already waits counts one more request; a dead one comes back.
        -- From the batch itself, not a join: nothing here may read more
        -- than the batch, however large the tables grow.
        INSERT INTO reconcile_jobs AS j (order_id, app)
        SELECT DISTINCT ON (o.id::bigint) o.id::bigint, d->>'app'
        FROM jsonb_array_elements(batch) AS d, LATERAL (SELECT d->'ev' AS e) AS x,
             jsonb_array_elements_text(e->'orders') AS o(id)
        WHERE jsonb_typeof(e) = 'object' AND (e->>'msg_id')::bigint = ANY (new_ids)
        ON CONFLICT (order_id) DO UPDATE
            SET generation = j.generation + 1,
                requested_at = now(),
                state = 'pending',
                attempts = CASE WHEN j.state = 'dead' THEN 0 ELSE j.attempts END,
                due_at = CASE WHEN j.state = 'dead' OR j.attempts = 0 THEN now()
                              ELSE j.due_at END;
        PERFORM pg_notify('reconcile_jobs', '');
    END IF;

    INSERT INTO deliveries (received_at, request_id, app, method, path, remote_addr,
                            http_status, signature_ok, signature_field, msg_id,
                            duplicate, error, body_bytes, body)
    SELECT to_timestamp((d->>'at')::numeric / 1000000), d->>'rid', d->>'app',
           d->>'method', d->>'path', d->>'remote', (d->>'status')::integer,
           (d->>'sig_ok')::boolean, d->>'sig_field', (d->>'msg_id')::bigint,
           -- New only for the first delivery of a msgId this batch inserted.
           CASE WHEN jsonb_typeof(d->'ev') = 'object'
                THEN NOT ((d->>'msg_id')::bigint = ANY (new_ids)
                          AND i = min(i) OVER (PARTITION BY d->>'msg_id')) END,
           d->>'error', (d->>'body_bytes')::bigint, decode(d->>'body', 'hex')
    FROM jsonb_array_elements(batch) WITH ORDINALITY AS t(d, i);

    RETURN cardinality(new_ids);
END
$fn$;
