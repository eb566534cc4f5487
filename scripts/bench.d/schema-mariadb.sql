-- The benchmark's customer table, MariaDB side (same columns as schema-pg.sql; PG timestamp
-- without time zone = MariaDB DATETIME, no zone conversion, whole seconds).
CREATE TABLE customer (
    id           bigint PRIMARY KEY,
    name         varchar(120) NOT NULL,
    email        varchar(120) NOT NULL,
    phone        varchar(40),
    street       varchar(200),
    city         varchar(80),
    postcode     varchar(20),
    country      varchar(60),
    status       varchar(20) NOT NULL,
    credit_limit decimal(12,2) NOT NULL,
    created_at   datetime NOT NULL,
    updated_at   datetime NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
