"""``python -m agent_identity.cli``: the same as the ``agent-identity`` command."""

from agent_identity.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
