-- name: EventLockKey :exec
-- Serialises, per (name, key), the transactions that publish events and the
-- ones that begin waits: whichever comes second sees the other's row, so an
-- event published just before its wait begins is never missed.
SELECT pg_advisory_xact_lock(hashtextextended(length(@name::text)::text || ':' || @name::text || @key::text, 7));

-- name: EventInsert :one
-- Stores an event; an id given already returns no row.
INSERT INTO events (id, dedup_id, name, key, payload)
VALUES (@id, sqlc.narg('dedup_id'), @name, @key, @payload)
ON CONFLICT (dedup_id) WHERE dedup_id IS NOT NULL DO NOTHING
RETURNING *;

-- name: EventGetByDedupID :one
SELECT * FROM events WHERE dedup_id = @dedup_id;

-- name: EventFindRecent :one
-- The earliest event with this name and key received within the last
-- lookback_ms, by the database's clock, that has not resumed the run yet.
SELECT * FROM events
WHERE name = @name AND key = @key
  AND received_at >= now() - sqlc.arg('lookback_ms')::bigint * interval '1 millisecond'
  AND NOT EXISTS (SELECT 1 FROM waits WHERE waits.run_id = @run_id AND waits.event_id = events.id)
ORDER BY received_at, id
LIMIT 1;

-- name: EventDeleteOld :execrows
-- Deletes up to max events older than any look-back window.
DELETE FROM events WHERE id IN (
    SELECT id FROM events
    WHERE received_at < now() - sqlc.arg('keep_ms')::bigint * interval '1 millisecond'
    ORDER BY received_at
    LIMIT @max
);

-- name: EventListRecent :many
-- The events received last, newest first.
SELECT * FROM events ORDER BY received_at DESC, id DESC LIMIT @max;
