-- The verifiable access log (RFC 9162 Merkle tree): one leaf per access
-- record and per upload acknowledgement, written in the same transaction;
-- hashes of complete subtrees and signed checkpoints, written when a
-- checkpoint is made. Records written before this version are not leaves.

-- idx: the leaf's place in the tree, given by the one writer as it inserts.
CREATE TABLE log_leaf (
    idx       INTEGER PRIMARY KEY,
    kind      TEXT NOT NULL,
    record_id TEXT NOT NULL,
    hash      BLOB NOT NULL
) STRICT;

CREATE TABLE log_node (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) STRICT, WITHOUT ROWID;

CREATE TABLE log_checkpoint (
    size       INTEGER PRIMARY KEY,
    root       BLOB NOT NULL,
    note       TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
