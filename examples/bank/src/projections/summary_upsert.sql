INSERT INTO {table} AS t (account_id, owner, account_number, balance, verified, closed, transactions)
SELECT id, coalesce(owner, ''), coalesce(number, ''), delta, verified, closed, moves
FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bool[], $6::bool[], $7::bigint[])
    AS u(id, owner, number, delta, verified, closed, moves)
ON CONFLICT (account_id) DO UPDATE SET
    owner = coalesce(nullif(excluded.owner, ''), t.owner),
    account_number = coalesce(nullif(excluded.account_number, ''), t.account_number),
    balance = t.balance + excluded.balance,
    verified = t.verified OR excluded.verified,
    closed = t.closed OR excluded.closed,
    transactions = t.transactions + excluded.transactions
