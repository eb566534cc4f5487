-- Sample ERP schema (MariaDB/MySQL): what finance and operations work in.
CREATE TABLE customers (
    id             BIGINT AUTO_INCREMENT PRIMARY KEY,
    crm_id         CHAR(36) NOT NULL,
    customer_name  VARCHAR(140) NOT NULL,
    website        VARCHAR(255),
    industry       VARCHAR(100),
    annual_revenue DECIMAL(21,9),
    employees      INT,
    is_active      TINYINT(1) NOT NULL DEFAULT 0,
    remarks        TEXT,
    crm_created_at DATETIME(6),
    outstanding    DECIMAL(21,9) NOT NULL DEFAULT 0,
    UNIQUE KEY uq_customers_crm_id (crm_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE contacts (
    id             BIGINT AUTO_INCREMENT PRIMARY KEY,
    crm_id         CHAR(36) NULL,
    customer_crm_id CHAR(36),
    first_name     VARCHAR(140) NOT NULL,
    last_name      VARCHAR(140) NOT NULL,
    email_id       VARCHAR(255),
    phone          VARCHAR(50),
    designation    VARCHAR(140),
    UNIQUE KEY uq_contacts_crm_id (crm_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE items (
    item_code      VARCHAR(140) PRIMARY KEY,
    item_name      VARCHAR(140) NOT NULL,
    standard_rate  DECIMAL(21,9) NOT NULL DEFAULT 0,
    disabled       TINYINT(1) NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE sales_orders (
    name           VARCHAR(140) PRIMARY KEY,
    customer_crm_id CHAR(36),
    title          VARCHAR(255),
    status         VARCHAR(40) NOT NULL DEFAULT 'Draft',
    grand_total    DECIMAL(21,9) NOT NULL DEFAULT 0,
    delivery_date  DATE,
    crm_id         CHAR(36),
    UNIQUE KEY uq_sales_orders_crm_id (crm_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE sales_order_items (
    name           VARCHAR(140) PRIMARY KEY,
    parent         VARCHAR(140) NOT NULL,
    item_code      VARCHAR(140),
    qty            DECIMAL(21,9) NOT NULL DEFAULT 0,
    rate           DECIMAL(21,9) NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE invoices (
    name           VARCHAR(140) PRIMARY KEY,
    customer_crm_id CHAR(36),
    status         VARCHAR(40) NOT NULL DEFAULT 'Unpaid',
    grand_total    DECIMAL(21,9) NOT NULL DEFAULT 0,
    outstanding_amount DECIMAL(21,9) NOT NULL DEFAULT 0,
    posting_date   DATE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE stock (
    item_code      VARCHAR(140) NOT NULL,
    warehouse      VARCHAR(140) NOT NULL,
    actual_qty     DECIMAL(21,9) NOT NULL DEFAULT 0,
    PRIMARY KEY (item_code, warehouse)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
