-- +goose Up
-- block_items holds a running foreach's items one row each, written once
-- when the foreach starts, so that opening a lane reads its own item: read
-- from the foreach's input, every lane opened would unpack the whole list,
-- and a list of n items would cost n² to run. A row is deleted as its lane
-- opens, and what is left of a foreach that ends early when it ends; the
-- foreach's input keeps the list as it was.
CREATE TABLE block_items (
    block_id uuid    NOT NULL REFERENCES step_executions (id) ON DELETE CASCADE,
    idx      integer NOT NULL,
    item     jsonb   NOT NULL,
    PRIMARY KEY (block_id, idx)
);

-- +goose Down
DROP TABLE block_items;
