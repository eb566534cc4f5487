-- Cheap progress probe, same output as probe-pg.sql for the same rows.
SELECT concat(count(*), ' ', coalesce(sum(credit_limit), 0), ' ', coalesce(date_format(max(updated_at), '%Y-%m-%d %H:%i:%s'), '-'))
FROM customer;
