-- The benchmark's customer table, PostgreSQL side (same columns as schema-mariadb.sql).
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
    credit_limit numeric(12,2) NOT NULL,
    created_at   timestamp NOT NULL,
    updated_at   timestamp NOT NULL
);
