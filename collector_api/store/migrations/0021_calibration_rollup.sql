-- The overview's calibration panel from daily rollups instead of every reviewed ticket of the
-- range (store.reviews.calibration). Two tables, per tenant and UTC day of the log's executed_at:
--   review_calibration_daily: per confidence bucket (LEAST(floor(confidence * 10), 9), for a
--     confidence in [0, 1]) the reviewed tickets, the sum of their confidence, how many `correct`;
--   review_risk_daily: per exact hallucination_risk value (not NaN) how many reviewed tickets at
--     that value are flagged `hallucination` and how many are not. Keyed on the stored value
--     itself, not a rounded bin: the AUC summed from it groups and ties tickets exactly as the
--     live query does (same equality, same order), so it is the same number. Its size is at most
--     the number of distinct risk values per tenant and day (1,001 when the agent reports risk
--     to three decimals, as it does; never more rows than reviewed tickets).
--
-- review_risk_monthly holds the same per calendar month, for the whole months of long ranges.
--
-- Kept exact by statement-level triggers on ticket_review_state, in the transaction that changes
-- it: a review (insert, or a changed verdict or flags), an erasure's or retention's delete, a
-- partition drop. The transition tables hold exactly the row versions the statement wrote (for
-- an update: the locked latest version it replaced), so concurrent reviews never lose or
-- double-count an increment: the rollup rows are updated with `n = n + delta` under their row
-- locks, in key order (bucket table, daily then monthly risk table): deadlock-free between writers.
CREATE TABLE review_calibration_daily (
    client_id  text NOT NULL,
    day        date NOT NULL,
    bucket     smallint NOT NULL,
    n          integer NOT NULL,
    conf_sum   double precision NOT NULL,
    correct    integer NOT NULL,
    PRIMARY KEY (client_id, day, bucket)
);
CREATE TABLE review_risk_daily (
    client_id  text NOT NULL,
    day        date NOT NULL,
    risk       double precision NOT NULL,
    flagged    integer NOT NULL,
    unflagged  integer NOT NULL,
    PRIMARY KEY (client_id, day, risk)
);

-- The same histogram per calendar month (its first day): a long range reads its whole months
-- here (at most ~1,000 values per tenant and month) instead of ~30 days of daily rows each.
CREATE TABLE review_risk_monthly (
    client_id  text NOT NULL,
    month      date NOT NULL,
    risk       double precision NOT NULL,
    flagged    integer NOT NULL,
    unflagged  integer NOT NULL,
    PRIMARY KEY (client_id, month, risk)
);

-- Written only by the triggers (owner's rights); the application role reads.
GRANT SELECT ON review_calibration_daily, review_risk_daily, review_risk_monthly TO flusso_app;
ALTER TABLE review_calibration_daily ENABLE ROW LEVEL SECURITY;
ALTER TABLE review_calibration_daily FORCE ROW LEVEL SECURITY;
ALTER TABLE review_risk_daily ENABLE ROW LEVEL SECURITY;
ALTER TABLE review_risk_daily FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_reads ON review_calibration_daily FOR SELECT
    USING (client_id = current_setting('flusso.tenant', true));
CREATE POLICY provider_reads ON review_calibration_daily FOR SELECT
    USING (current_setting('flusso.scope', true) = 'provider');
CREATE POLICY owner_all ON review_calibration_daily TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY tenant_reads ON review_risk_daily FOR SELECT
    USING (client_id = current_setting('flusso.tenant', true));
CREATE POLICY provider_reads ON review_risk_daily FOR SELECT
    USING (current_setting('flusso.scope', true) = 'provider');
CREATE POLICY owner_all ON review_risk_daily TO CURRENT_USER USING (true) WITH CHECK (true);
ALTER TABLE review_risk_monthly ENABLE ROW LEVEL SECURITY;
ALTER TABLE review_risk_monthly FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_reads ON review_risk_monthly FOR SELECT
    USING (client_id = current_setting('flusso.tenant', true));
CREATE POLICY provider_reads ON review_risk_monthly FOR SELECT
    USING (current_setting('flusso.scope', true) = 'provider');
CREATE POLICY owner_all ON review_risk_monthly TO CURRENT_USER USING (true) WITH CHECK (true);

-- One function for the three events: the statement's changed rows with a sign (+1 new, -1 old),
-- summed per rollup key; keys whose delta is zero are left alone; rows emptied by a delete go.
CREATE FUNCTION flusso_calibration_rollup() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    src text := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT 1 AS sign, * FROM new_rows'
        WHEN 'DELETE' THEN 'SELECT -1 AS sign, * FROM old_rows'
        ELSE 'SELECT -1 AS sign, * FROM old_rows UNION ALL SELECT 1, * FROM new_rows' END;
    period text;
BEGIN
    EXECUTE format($q$
        INSERT INTO review_calibration_daily AS r (client_id, day, bucket, n, conf_sum, correct)
        SELECT client_id, day, bucket, n, conf_sum, correct FROM (
            SELECT client_id, (executed_at AT TIME ZONE 'UTC')::date AS day,
                   LEAST(floor(overall_confidence * 10), 9)::int AS bucket, sum(sign)::int AS n,
                   sum(sign * overall_confidence) AS conf_sum,
                   COALESCE(sum(sign) FILTER (WHERE verdict = 'correct'), 0)::int AS correct
            FROM (%s) d WHERE overall_confidence BETWEEN 0 AND 1 GROUP BY 1, 2, 3) g
        WHERE n <> 0 OR correct <> 0 OR conf_sum <> 0
        ORDER BY client_id, day, bucket
        ON CONFLICT (client_id, day, bucket) DO UPDATE SET n = r.n + EXCLUDED.n,
            conf_sum = r.conf_sum + EXCLUDED.conf_sum, correct = r.correct + EXCLUDED.correct$q$, src);
    FOREACH period IN ARRAY ARRAY['daily', 'monthly'] LOOP
        EXECUTE format($q$
            INSERT INTO %I AS r (client_id, %I, risk, flagged, unflagged)
            SELECT client_id, p, risk, flagged, unflagged FROM (
                SELECT client_id, %s AS p, hallucination_risk AS risk,
                       COALESCE(sum(sign) FILTER (WHERE 'hallucination' = ANY (flags)), 0)::int AS flagged,
                       COALESCE(sum(sign) FILTER (WHERE NOT 'hallucination' = ANY (flags)), 0)::int AS unflagged
                FROM (%s) d WHERE hallucination_risk IS NOT NULL AND hallucination_risk = hallucination_risk
                GROUP BY 1, 2, 3) g
            WHERE flagged <> 0 OR unflagged <> 0
            ORDER BY client_id, p, risk
            ON CONFLICT (client_id, %I, risk) DO UPDATE SET flagged = r.flagged + EXCLUDED.flagged,
                unflagged = r.unflagged + EXCLUDED.unflagged$q$,
            'review_risk_' || period, CASE period WHEN 'daily' THEN 'day' ELSE 'month' END,
            CASE period WHEN 'daily' THEN '(executed_at AT TIME ZONE ''UTC'')::date'
                ELSE 'date_trunc(''month'', executed_at AT TIME ZONE ''UTC'')::date' END,
            src, CASE period WHEN 'daily' THEN 'day' ELSE 'month' END);
    END LOOP;
    IF TG_OP = 'DELETE' THEN
        DELETE FROM review_calibration_daily r USING (SELECT DISTINCT client_id,
            (executed_at AT TIME ZONE 'UTC')::date AS day FROM old_rows) k
            WHERE r.client_id = k.client_id AND r.day = k.day AND r.n = 0;
        DELETE FROM review_risk_daily r USING (SELECT DISTINCT client_id,
            (executed_at AT TIME ZONE 'UTC')::date AS day FROM old_rows) k
            WHERE r.client_id = k.client_id AND r.day = k.day AND r.flagged = 0 AND r.unflagged = 0;
        DELETE FROM review_risk_monthly r USING (SELECT DISTINCT client_id,
            date_trunc('month', executed_at AT TIME ZONE 'UTC')::date AS month FROM old_rows) k
            WHERE r.client_id = k.client_id AND r.month = k.month AND r.flagged = 0 AND r.unflagged = 0;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION flusso_calibration_rollup_truncate() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    TRUNCATE review_calibration_daily, review_risk_daily, review_risk_monthly;
    RETURN NULL;
END
$$;

-- No review may be written between the backfill and the triggers (exact from the start).
LOCK TABLE ticket_review_state IN SHARE ROW EXCLUSIVE MODE;

INSERT INTO review_calibration_daily (client_id, day, bucket, n, conf_sum, correct)
SELECT client_id, (executed_at AT TIME ZONE 'UTC')::date, LEAST(floor(overall_confidence * 10), 9)::int,
       count(*), sum(overall_confidence), count(*) FILTER (WHERE verdict = 'correct')
FROM ticket_review_state WHERE overall_confidence BETWEEN 0 AND 1 GROUP BY 1, 2, 3;
INSERT INTO review_risk_daily (client_id, day, risk, flagged, unflagged)
SELECT client_id, (executed_at AT TIME ZONE 'UTC')::date, hallucination_risk,
       count(*) FILTER (WHERE 'hallucination' = ANY (flags)), count(*) FILTER (WHERE NOT 'hallucination' = ANY (flags))
FROM ticket_review_state WHERE hallucination_risk IS NOT NULL AND hallucination_risk = hallucination_risk
GROUP BY 1, 2, 3;
INSERT INTO review_risk_monthly (client_id, month, risk, flagged, unflagged)
SELECT client_id, month, risk, sum(flagged), sum(unflagged) FROM (
    SELECT client_id, date_trunc('month', day)::date AS month, risk, flagged, unflagged FROM review_risk_daily) d
GROUP BY 1, 2, 3;

CREATE TRIGGER calibration_rollup_insert AFTER INSERT ON ticket_review_state
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION flusso_calibration_rollup();
CREATE TRIGGER calibration_rollup_update AFTER UPDATE ON ticket_review_state
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION flusso_calibration_rollup();
CREATE TRIGGER calibration_rollup_delete AFTER DELETE ON ticket_review_state
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION flusso_calibration_rollup();
CREATE TRIGGER calibration_rollup_truncate AFTER TRUNCATE ON ticket_review_state
    FOR EACH STATEMENT EXECUTE FUNCTION flusso_calibration_rollup_truncate();
