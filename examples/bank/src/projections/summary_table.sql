CREATE TABLE IF NOT EXISTS {table} (
    account_id     text PRIMARY KEY,
    owner          text NOT NULL,
    account_number text NOT NULL,
    balance        bigint NOT NULL,
    verified       boolean NOT NULL,
    closed         boolean NOT NULL,
    transactions   bigint NOT NULL
)
