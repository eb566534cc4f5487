-- Same two numbers as checksum-pg.sql for the same rows (see there).
SELECT concat(count(*), ' ', coalesce(sum(cast(conv(substr(md5(concat_ws('|', id, name, email,
        coalesce(phone, '<null>'), coalesce(street, '<null>'), coalesce(city, '<null>'),
        coalesce(postcode, '<null>'), coalesce(country, '<null>'), status, credit_limit,
        date_format(created_at, '%Y-%m-%d %H:%i:%s'), date_format(updated_at, '%Y-%m-%d %H:%i:%s'))),
        1, 15), 16, 10) AS unsigned)), 0))
FROM customer;
