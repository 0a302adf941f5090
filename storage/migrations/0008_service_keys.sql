-- Secrets every replica shares: the key that signs page tokens, so that a
-- token a client changed is refused before any of it reaches a query.
-- gen_random_uuid() draws from the server's strong random source; two of
-- them make 244 random bits.
CREATE TABLE service_keys (
    name        text        PRIMARY KEY,
    key         bytea       NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now()
);

INSERT INTO service_keys (name, key)
VALUES ('page_tokens', decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));
