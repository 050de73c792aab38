-- The verifiable access log (RFC 9162 Merkle tree): one leaf per access
-- record and per upload acknowledgement, written in the same transaction;
-- hashes of complete subtrees and signed checkpoints, written when a
-- checkpoint is made. Records written before this version are not leaves.

-- idx: the leaf's place in the tree, given after commit by one sequencer
-- at a time under log_sequencer's row lock (as the outbox feed is), so that
-- places follow commit order.
CREATE TABLE log_leaf (
    record_id UUID PRIMARY KEY,
    kind      TEXT NOT NULL,
    hash      BYTEA NOT NULL,
    idx       BIGINT UNIQUE
);
CREATE INDEX log_leaf_unsequenced ON log_leaf (record_id) WHERE idx IS NULL;

CREATE TABLE log_sequencer (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    next BIGINT NOT NULL
);
INSERT INTO log_sequencer (id, next) VALUES (1, 0);

CREATE TABLE log_node (
    level INTEGER NOT NULL,
    idx   BIGINT NOT NULL,
    hash  BYTEA NOT NULL,
    PRIMARY KEY (level, idx)
);

CREATE TABLE log_checkpoint (
    size       BIGINT PRIMARY KEY,
    root       BYTEA NOT NULL,
    note       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
