-- bench/checks floor: the 20 checks of the dk DataSet and of dbt/models/sources.yml in ONE SELECT (one pass).
-- Each column is the number of failing rows (0 = pass), except email_not_null: the NULL emails, 1 row in 7 (1,428,571 of 10M).
-- unique checks are count(id) - count(DISTINCT id): extra rows for duplicated ids (0 iff dbt's unique passes).
SELECT
  count(*) FILTER (WHERE id IS NULL)                                            AS id_not_null,
  count(id) - count(DISTINCT id)                                                AS id_unique,
  count(id) FILTER (WHERE kind = 'purchase')
    - count(DISTINCT id) FILTER (WHERE kind = 'purchase')                       AS id_unique_purchases,
  count(*) FILTER (WHERE user_id IS NULL)                                       AS user_id_not_null,
  count(*) FILTER (WHERE kind IS NULL)                                          AS kind_not_null,
  count(*) FILTER (WHERE kind NOT IN ('view','click','purchase','signup','refund')) AS kind_accepted,
  count(*) FILTER (WHERE amount > 500
                     AND kind NOT IN ('view','click','purchase','signup','refund')) AS kind_accepted_big_amounts,
  count(*) FILTER (WHERE amount IS NULL)                                        AS amount_not_null,
  count(*) FILTER (WHERE kind = 'purchase' AND amount IS NULL)                  AS amount_not_null_purchases,
  count(*) FILTER (WHERE created_at IS NULL)                                    AS created_at_not_null,
  count(*) FILTER (WHERE email IS NULL)                                         AS email_not_null,
  count(*) FILTER (WHERE NOT (id > 0))                                          AS expr_id_positive,
  count(*) FILTER (WHERE NOT (user_id BETWEEN 1 AND 100000))                    AS expr_user_id_range,
  count(*) FILTER (WHERE NOT (amount >= 0))                                     AS expr_amount_nonneg,
  count(*) FILTER (WHERE NOT (amount <= 1000))                                  AS expr_amount_max,
  count(*) FILTER (WHERE NOT (round(amount, 2) = amount))                       AS expr_amount_scale,
  count(*) FILTER (WHERE NOT (created_at >= '2024-01-01'))                      AS expr_created_min,
  count(*) FILTER (WHERE NOT (created_at < '2025-01-01'))                       AS expr_created_max,
  count(*) FILTER (WHERE NOT (email IS NULL OR email LIKE '%@example.com'))     AS expr_email_domain,
  count(*) FILTER (WHERE NOT (length(kind) BETWEEN 4 AND 8))                    AS expr_kind_length
FROM bench.events;
