"""OIDC relying party: discovery, authorize URLs with PKCE, code exchange, id_token checks."""
