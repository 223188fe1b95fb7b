-- Reviews name their author's ROLE beside the author: a tenant is shown a provider's review as
-- by "provider reviewer", never with the provider's email (collector_api.contract.review_text).
-- Existing reviews: the role of the user with that email; a user since deleted counts as a
-- provider (the safe side: hidden from tenants); API keys stay 'api_key'.
ALTER TABLE ticket_reviews ADD COLUMN author_role text
    CHECK (author_role IN ('provider', 'client', 'api_key'));
UPDATE ticket_reviews r SET author_role = CASE
    WHEN r.author_kind = 'api_key' THEN 'api_key'
    ELSE coalesce((SELECT u.role FROM users u WHERE u.email = r.author), 'provider') END;
ALTER TABLE ticket_reviews ALTER COLUMN author_role SET NOT NULL;
