-- 003_audit_views: the questions an operator asks, as views.
--
--   SELECT * FROM order_timeline WHERE order_id = 2908059205527363456;
--   SELECT * FROM recent_rejections;            -- the last 24 hours
--   SELECT * FROM stuck_jobs;

-- Everything that happened to an order, in time order: the messages that
-- named it (with the status they claimed), every version fetched from the
-- API, and every status change recorded.
CREATE VIEW order_timeline AS
    SELECT o.order_id, e.received_at AS at, 'message'::text AS kind,
           e.type AS what, e.current_status AS status, e.msg_id AS ref,
           e.gmt_born AS source_time
    FROM trade_event_orders AS o JOIN trade_events AS e USING (msg_id)
  UNION ALL
    SELECT s.order_id, s.fetched_at, 'fetched', s.source, s.status, s.id, s.modify_time
    FROM order_snapshots AS s
  UNION ALL
    SELECT c.order_id, c.changed_at, 'status_changed',
           coalesce(c.old_status, '(new)') || ' -> ' || c.new_status, c.new_status, c.id,
           c.modify_time
    FROM order_changes AS c
  ORDER BY order_id, at, kind;

-- Requests refused in the last 24 hours, newest first, with why.
CREATE VIEW recent_rejections AS
    SELECT id, received_at, app, method, path, remote_addr, http_status, signature_ok,
           error, body_bytes
    FROM deliveries
    WHERE http_status >= 400 AND received_at > now() - interval '24 hours'
    ORDER BY id DESC;

-- Jobs that are dead, or have failed at least once, or wait longer than an
-- hour: what needs a look (and `receiver jobs --retry-dead` once fixed).
CREATE VIEW stuck_jobs AS
    SELECT order_id, app, state, attempts, last_error, due_at, created_at,
           now() - created_at AS waiting
    FROM reconcile_jobs
    WHERE state = 'dead' OR attempts > 0 OR created_at < now() - interval '1 hour'
    ORDER BY state, created_at;
