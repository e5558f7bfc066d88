"""Volcengine control-plane clients: request signing, credentials, Identity and STS."""
