-- Sample CRM schema (PostgreSQL): what sales works in.
CREATE TABLE companies (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name           text NOT NULL,
    domain         text,
    industry       text,
    annual_revenue numeric(18,4),
    employees      integer,
    is_customer    boolean NOT NULL DEFAULT false,
    notes          text,
    last_invoice_status      text,
    last_invoice_outstanding numeric(18,4),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE contacts (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id uuid REFERENCES companies(id),
    first_name text NOT NULL,
    last_name  text NOT NULL,
    email      text,
    phone      text,
    title      text,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE products (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sku        text NOT NULL UNIQUE,
    name       text NOT NULL,
    list_price numeric(18,4),
    in_stock   integer
);

CREATE TABLE opportunities (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id  uuid REFERENCES companies(id),
    title       text NOT NULL,
    stage       text NOT NULL DEFAULT 'prospecting',
    amount      numeric(18,4),
    close_date  date,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE opportunity_lines (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    opportunity_id uuid NOT NULL REFERENCES opportunities(id),
    sku            text NOT NULL,
    quantity       integer NOT NULL,
    unit_price     numeric(18,4) NOT NULL
);

CREATE TABLE product_stock (
    sku        text NOT NULL,
    warehouse  text NOT NULL,
    quantity   numeric(18,4) NOT NULL DEFAULT 0,
    PRIMARY KEY (sku, warehouse)
);
