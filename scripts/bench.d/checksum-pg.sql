-- Order-independent checksum of the customer table: row count and the sum of the first 60 bits of
-- each row's md5 over a fixed text form. checksum-mariadb.sql gives the same two numbers for the
-- same rows (numeric(12,2) prints with 2 decimals on both; timestamps formatted explicitly; NULL
-- spelt <null>). Uses the search_path, so it works on any schema holding `customer`.
SELECT count(*) || ' ' || coalesce(sum(('x' || substr(md5(concat_ws('|', id, name, email,
        coalesce(phone, '<null>'), coalesce(street, '<null>'), coalesce(city, '<null>'),
        coalesce(postcode, '<null>'), coalesce(country, '<null>'), status, credit_limit,
        to_char(created_at, 'YYYY-MM-DD HH24:MI:SS'), to_char(updated_at, 'YYYY-MM-DD HH24:MI:SS'))),
        1, 15))::bit(60)::bigint), 0)
FROM customer;
