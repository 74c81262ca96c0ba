"""HTTP layer: routes, upload parsing, problem+json errors. No tensor work happens here."""
