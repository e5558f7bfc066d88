"""Fuzz tests: the HTTP wire, config, commands, tool and gateway params, callbacks and JWTs."""
