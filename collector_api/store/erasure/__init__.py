"""Erasure and per-tenant retention: the table list (targets), the erasure's steps (run), the
retention job's deletes (retention) and the erasure log's reads (reads). SQL + psycopg only."""
