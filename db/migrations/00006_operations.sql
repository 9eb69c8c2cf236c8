-- +goose Up

-- Bulk operations: a cancel or a retry of every run a filter matches,
-- processed by workers in batches. cursor_created_at/cursor_id is the last
-- run processed (runs are taken in (created_at, id) order), so that an
-- operation whose worker was lost resumes after it: a batch's runs and the
-- cursor commit together.
CREATE TABLE operations (
    id                uuid PRIMARY KEY,
    kind              text NOT NULL CHECK (kind IN ('cancel', 'retry')),
    state             text NOT NULL CHECK (state IN ('pending', 'running', 'succeeded', 'cancelled')),
    filter            jsonb NOT NULL,
    reason            text NOT NULL DEFAULT '',
    created_by        text NOT NULL DEFAULT '',
    matched           bigint NOT NULL DEFAULT 0,
    done              bigint NOT NULL DEFAULT 0,
    skipped           bigint NOT NULL DEFAULT 0,
    failed            bigint NOT NULL DEFAULT 0,
    failures          jsonb NOT NULL DEFAULT '[]',
    cursor_created_at timestamptz,
    cursor_id         uuid,
    lease_owner       text,
    lease_until       timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz
);

CREATE INDEX operations_created_idx ON operations (created_at DESC, id DESC);
CREATE INDEX operations_active_idx ON operations (created_at) WHERE state IN ('pending', 'running');

-- +goose Down
DROP TABLE operations;
