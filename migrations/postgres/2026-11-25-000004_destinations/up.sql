-- One destination per insurer IK: where to push, and its state. `breaker` is closed (send),
-- open (failing: only probe the health URL) or half_open (probe succeeded: try again).
-- `outage` is the manual "Störung" flag: every error answer is then retryable.
CREATE TABLE destinations (
    ik TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    push_url TEXT,
    health_url TEXT,
    auth_header TEXT,
    breaker TEXT NOT NULL DEFAULT 'closed',
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    probe_at TIMESTAMP,
    outage BOOLEAN NOT NULL DEFAULT FALSE,
    outage_since TIMESTAMP,
    paused BOOLEAN NOT NULL DEFAULT FALSE,
    last_success_at TIMESTAMP,
    last_error TEXT,
    updated_at TIMESTAMP NOT NULL
);
