-- Cheap progress probe (no hashing): polled often; checksum-pg.sql confirms once it matches.
SELECT count(*) || ' ' || coalesce(sum(credit_limit), 0) || ' ' || coalesce(to_char(max(updated_at), 'YYYY-MM-DD HH24:MI:SS'), '-')
FROM customer;
