-- The overview's evaluator panels from daily rollups instead of every score of the range
-- (store.evals.rollup). Per tenant and UTC day of the log's executed_at:
--   evaluation_score_daily: per evaluator how many scores (every version, as the score-over-time
--     chart counts them) and their sum;
--   evaluation_verdict_daily: per evaluator and exact score value, the reviewed tickets whose
--     latest-version score is that value, split by the ticket's verdict (`correct` or other).
--     Keyed on the stored score itself, as review_risk_daily (0021) keys on the risk: the judge
--     calibration summed from it (buckets, ECE, agreement and the ROC AUC) groups and ties
--     scores exactly as the live query does. At most one row per distinct score value and day.
-- evaluation_verdict_monthly holds the same per calendar month, for the whole months of long ranges.
--
-- Kept exact by statement-level triggers, in the transaction of the change:
--   on evaluation_scores (the evaluate job's and a re-run's inserts; an erasure's or retention's
--   deletes): the score counts from the transition tables; for the reviewed tickets among the
--   changed (log, evaluator) pairs, the latest version before the statement (the current rows
--   minus the statement's new ones, plus its old ones) is taken out of the verdict histogram
--   and the latest version now put in;
--   on ticket_review_state (a review, an erasure, retention): each changed ticket's latest score
--   per evaluator leaves with the old verdict and comes back with the new one.
-- Both sides of the join change under different writers, so each trigger first takes a
-- transaction-level advisory lock per bucket of its logs (store.core.locks.EVAL_VERDICT_LOGS,
-- two-key form, 1,024 buckets of hashint8(log_id), in bucket order: deadlock-free between
-- them), then reads the other table with a new snapshot: a review and a score of the same
-- ticket written at the same moment are counted by whichever commits second, never by neither.
CREATE TABLE evaluation_score_daily (
    client_id  text NOT NULL,
    day        date NOT NULL,
    evaluator  text NOT NULL,
    n          bigint NOT NULL,
    score_sum  double precision NOT NULL,
    PRIMARY KEY (client_id, day, evaluator)
);
CREATE TABLE evaluation_verdict_daily (
    client_id  text NOT NULL,
    day        date NOT NULL,
    evaluator  text NOT NULL,
    score      double precision NOT NULL,
    correct    integer NOT NULL,
    other      integer NOT NULL,
    PRIMARY KEY (client_id, day, evaluator, score)
);
CREATE TABLE evaluation_verdict_monthly (
    client_id  text NOT NULL,
    month      date NOT NULL,
    evaluator  text NOT NULL,
    score      double precision NOT NULL,
    correct    integer NOT NULL,
    other      integer NOT NULL,
    PRIMARY KEY (client_id, month, evaluator, score)
);

-- Written only by the triggers (owner's rights); the application role reads.
GRANT SELECT ON evaluation_score_daily, evaluation_verdict_daily, evaluation_verdict_monthly TO flusso_app;
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['evaluation_score_daily', 'evaluation_verdict_daily', 'evaluation_verdict_monthly']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_reads ON %I FOR SELECT'
                       ' USING (client_id = current_setting(''flusso.tenant'', true))', t);
        EXECUTE format('CREATE POLICY provider_reads ON %I FOR SELECT'
                       ' USING (current_setting(''flusso.scope'', true) = ''provider'')', t);
        -- The provider's role (0023): the same rows, planned at the table's real size.
        EXECUTE format('CREATE POLICY provider_role_provider_reads ON %I FOR SELECT TO flusso_provider'
                       ' USING (true)', t);
        EXECUTE format('CREATE POLICY owner_all ON %I TO CURRENT_USER USING (true) WITH CHECK (true)', t);
    END LOOP;
END
$$;

-- One signed change of the verdict histograms: a ticket's latest score (+1 in, -1 out) under its verdict.
CREATE TYPE flusso_verdict_delta AS (sign integer, client_id text, executed_at timestamptz, evaluator text,
                                     score double precision, correct boolean);

-- Adds `deltas` to the verdict histograms, daily and monthly, in key order, and drops the rows
-- it brought to zero. (A function of its own: the triggers' transition tables are visible to the
-- trigger function only, so each trigger collects its deltas and hands them over.)
CREATE FUNCTION flusso_verdict_rollup_add(deltas flusso_verdict_delta[]) RETURNS void LANGUAGE plpgsql
SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    period text;
    tbl text;
    key text;
    changed bigint;
BEGIN
    IF deltas IS NULL THEN
        RETURN;
    END IF;
    FOREACH period IN ARRAY ARRAY['day', 'month'] LOOP
        tbl := CASE period WHEN 'day' THEN 'evaluation_verdict_daily' ELSE 'evaluation_verdict_monthly' END;
        key := CASE period WHEN 'day' THEN '(executed_at AT TIME ZONE ''UTC'')::date'
            ELSE 'date_trunc(''month'', executed_at AT TIME ZONE ''UTC'')::date' END;
        EXECUTE format($q$
            INSERT INTO %I AS r (client_id, %I, evaluator, score, correct, other)
            SELECT client_id, p, evaluator, score, correct, other FROM (
                SELECT client_id, %s AS p, evaluator, score,
                       COALESCE(sum(sign) FILTER (WHERE correct), 0)::int AS correct,
                       COALESCE(sum(sign) FILTER (WHERE NOT correct), 0)::int AS other
                FROM unnest($1) d GROUP BY 1, 2, 3, 4) g
            WHERE correct <> 0 OR other <> 0
            ORDER BY client_id, p, evaluator, score
            ON CONFLICT (client_id, %I, evaluator, score) DO UPDATE SET correct = r.correct + EXCLUDED.correct,
                other = r.other + EXCLUDED.other$q$, tbl, period, key, period) USING deltas;
        GET DIAGNOSTICS changed = ROW_COUNT;
        CONTINUE WHEN changed = 0;
        EXECUTE format($q$
            DELETE FROM %I r USING (SELECT DISTINCT client_id, %s AS p, evaluator FROM unnest($1) d) k
            WHERE r.client_id = k.client_id AND r.%I = k.p AND r.evaluator = k.evaluator
              AND r.correct = 0 AND r.other = 0$q$, tbl, key, period) USING deltas;
    END LOOP;
END
$$;

CREATE FUNCTION flusso_score_rollup() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    changed text := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT 1 AS sign, * FROM new_rows'
        WHEN 'DELETE' THEN 'SELECT -1 AS sign, * FROM old_rows'
        ELSE 'SELECT -1 AS sign, * FROM old_rows UNION ALL SELECT 1, * FROM new_rows' END;
    -- The pairs' rows before the statement: the current ones it did not write, and those it removed.
    before text := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT * FROM now_rows w WHERE NOT EXISTS (SELECT 1 FROM new_rows n WHERE n.id = w.id)'
        WHEN 'DELETE' THEN 'SELECT * FROM now_rows UNION ALL SELECT o.* FROM old_rows o JOIN pairs p'
                           ' USING (client_id, log_id, evaluator)'
        ELSE 'SELECT * FROM now_rows w WHERE NOT EXISTS (SELECT 1 FROM new_rows n WHERE n.id = w.id)'
             ' UNION ALL SELECT o.* FROM old_rows o JOIN pairs p USING (client_id, log_id, evaluator)' END;
    deltas flusso_verdict_delta[];
BEGIN
    EXECUTE format($q$
        INSERT INTO evaluation_score_daily AS r (client_id, day, evaluator, n, score_sum)
        SELECT client_id, day, evaluator, n, score_sum FROM (
            SELECT client_id, (executed_at AT TIME ZONE 'UTC')::date AS day, evaluator, sum(sign)::bigint AS n,
                   sum(sign * score) AS score_sum FROM (%s) d GROUP BY 1, 2, 3) g
        WHERE n <> 0
        ORDER BY client_id, day, evaluator
        ON CONFLICT (client_id, day, evaluator) DO UPDATE SET n = r.n + EXCLUDED.n,
            score_sum = r.score_sum + EXCLUDED.score_sum$q$, changed);
    IF TG_OP <> 'INSERT' THEN
        DELETE FROM evaluation_score_daily r USING (SELECT DISTINCT client_id,
            (executed_at AT TIME ZONE 'UTC')::date AS day, evaluator FROM old_rows) k
            WHERE r.client_id = k.client_id AND r.day = k.day AND r.evaluator = k.evaluator AND r.n = 0;
    END IF;
    EXECUTE format('SELECT pg_advisory_xact_lock(1248813633, b) FROM (SELECT DISTINCT'
                   ' hashint8(log_id) & 1023 AS b FROM (%s) c ORDER BY 1) k', changed);
    EXECUTE format($q$
        WITH pairs AS MATERIALIZED (
            SELECT DISTINCT c.client_id, c.log_id, c.evaluator, r.verdict = 'correct' AS correct
            FROM (%s) c JOIN ticket_review_state r ON r.log_id = c.log_id AND r.client_id = c.client_id),
        now_rows AS MATERIALIZED (
            SELECT s.* FROM evaluation_scores s JOIN pairs p USING (client_id, log_id, evaluator)),
        latest_now AS (SELECT DISTINCT ON (client_id, log_id, evaluator) * FROM now_rows
                       ORDER BY client_id, log_id, evaluator, version DESC),
        latest_before AS (SELECT DISTINCT ON (client_id, log_id, evaluator) * FROM (%s) b
                          ORDER BY client_id, log_id, evaluator, version DESC)
        SELECT array_agg(ROW(sign, client_id, executed_at, evaluator, score, correct)::flusso_verdict_delta) FROM (
            SELECT 1 AS sign, a.client_id, a.executed_at, a.evaluator, a.score, p.correct
            FROM latest_now a JOIN pairs p USING (client_id, log_id, evaluator)
            UNION ALL
            SELECT -1, b.client_id, b.executed_at, b.evaluator, b.score, p.correct
            FROM latest_before b JOIN pairs p USING (client_id, log_id, evaluator)) d$q$, changed, before)
        INTO deltas;
    PERFORM flusso_verdict_rollup_add(deltas);
    RETURN NULL;
END
$$;

CREATE FUNCTION flusso_review_verdict_rollup() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    changed text := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT 1 AS sign, log_id, client_id, verdict FROM new_rows'
        WHEN 'DELETE' THEN 'SELECT -1 AS sign, log_id, client_id, verdict FROM old_rows'
        -- An update that leaves the verdict as it was changes nothing here.
        ELSE 'SELECT -1 AS sign, o.log_id, o.client_id, o.verdict FROM old_rows o JOIN new_rows n USING (log_id)'
             ' WHERE o.verdict IS DISTINCT FROM n.verdict OR o.client_id <> n.client_id'
             ' UNION ALL SELECT 1, n.log_id, n.client_id, n.verdict FROM old_rows o JOIN new_rows n USING (log_id)'
             ' WHERE o.verdict IS DISTINCT FROM n.verdict OR o.client_id <> n.client_id' END;
    deltas flusso_verdict_delta[];
BEGIN
    EXECUTE format('SELECT pg_advisory_xact_lock(1248813633, b) FROM (SELECT DISTINCT'
                   ' hashint8(log_id) & 1023 AS b FROM (%s) c ORDER BY 1) k', changed);
    EXECUTE format($q$
        SELECT array_agg(ROW(c.sign, s.client_id, s.executed_at, s.evaluator, s.score,
                             c.verdict = 'correct')::flusso_verdict_delta)
        FROM (%s) c CROSS JOIN LATERAL (
            SELECT DISTINCT ON (evaluator) client_id, executed_at, evaluator, score FROM evaluation_scores s
            WHERE s.log_id = c.log_id AND s.client_id = c.client_id ORDER BY evaluator, version DESC) s$q$, changed)
        INTO deltas;
    PERFORM flusso_verdict_rollup_add(deltas);
    RETURN NULL;
END
$$;

CREATE FUNCTION flusso_score_rollup_truncate() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_TABLE_NAME = 'evaluation_scores' THEN
        TRUNCATE evaluation_score_daily;
    END IF;
    TRUNCATE evaluation_verdict_daily, evaluation_verdict_monthly;
    RETURN NULL;
END
$$;

-- No score or review may be written between the backfill and the triggers (exact from the start).
LOCK TABLE ticket_review_state, evaluation_scores IN SHARE ROW EXCLUSIVE MODE;

INSERT INTO evaluation_score_daily (client_id, day, evaluator, n, score_sum)
SELECT client_id, (executed_at AT TIME ZONE 'UTC')::date, evaluator, count(*), sum(score)
FROM evaluation_scores GROUP BY 1, 2, 3;
INSERT INTO evaluation_verdict_daily (client_id, day, evaluator, score, correct, other)
SELECT l.client_id, (l.executed_at AT TIME ZONE 'UTC')::date, l.evaluator, l.score,
       count(*) FILTER (WHERE r.verdict = 'correct'), count(*) FILTER (WHERE r.verdict <> 'correct')
FROM (SELECT DISTINCT ON (client_id, log_id, evaluator) client_id, log_id, evaluator, executed_at, score
      FROM evaluation_scores ORDER BY client_id, log_id, evaluator, version DESC) l
JOIN ticket_review_state r ON r.log_id = l.log_id AND r.client_id = l.client_id
GROUP BY 1, 2, 3, 4;
INSERT INTO evaluation_verdict_monthly (client_id, month, evaluator, score, correct, other)
SELECT client_id, date_trunc('month', day)::date, evaluator, score, sum(correct), sum(other)
FROM evaluation_verdict_daily GROUP BY 1, 2, 3, 4;

CREATE TRIGGER score_rollup_insert AFTER INSERT ON evaluation_scores
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION flusso_score_rollup();
CREATE TRIGGER score_rollup_update AFTER UPDATE ON evaluation_scores
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION flusso_score_rollup();
CREATE TRIGGER score_rollup_delete AFTER DELETE ON evaluation_scores
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION flusso_score_rollup();
CREATE TRIGGER score_rollup_truncate AFTER TRUNCATE ON evaluation_scores
    FOR EACH STATEMENT EXECUTE FUNCTION flusso_score_rollup_truncate();
CREATE TRIGGER verdict_rollup_insert AFTER INSERT ON ticket_review_state
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION flusso_review_verdict_rollup();
CREATE TRIGGER verdict_rollup_update AFTER UPDATE ON ticket_review_state
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION flusso_review_verdict_rollup();
CREATE TRIGGER verdict_rollup_delete AFTER DELETE ON ticket_review_state
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION flusso_review_verdict_rollup();
CREATE TRIGGER verdict_rollup_truncate AFTER TRUNCATE ON ticket_review_state
    FOR EACH STATEMENT EXECUTE FUNCTION flusso_score_rollup_truncate();
