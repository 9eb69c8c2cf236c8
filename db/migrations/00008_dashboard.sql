-- +goose Up
-- The dashboard: what its pages read cheaply, and the notification that
-- keeps them live.

-- The events page shows which waits each recent event resumed.
CREATE INDEX waits_event_id_idx ON waits (event_id) WHERE event_id IS NOT NULL;

-- A run whose status changes says so on the channel durable_runs, the
-- payload its id, when its transaction commits: the dashboard's pages
-- listen there (LISTEN/NOTIFY) and show the change without polling.
-- Only a change of status notifies (a run's few transitions, not each of
-- its steps), and PostgreSQL folds a transaction's identical payloads.
-- +goose StatementBegin
CREATE FUNCTION runs_notify_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('durable_runs', NEW.id::text);
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER runs_status_notify
    AFTER UPDATE OF status ON runs
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION runs_notify_status();

-- +goose Down
DROP TRIGGER runs_status_notify ON runs;
DROP FUNCTION runs_notify_status();
DROP INDEX waits_event_id_idx;
