-- Content mode of a tenant's /v1/traces logs: 'hash' (the default) makes each of the ticket's
-- texts (flusso.ticket.subject, description, body, messages) one token; 'scrub' keeps them with
-- every personal value inside replaced by its token (otel_bridge.policy). The bridge's clients
-- choose theirs with configure(content=...).
ALTER TABLE tenants ADD COLUMN content_mode text NOT NULL DEFAULT 'hash'
    CHECK (content_mode IN ('hash', 'scrub'));
