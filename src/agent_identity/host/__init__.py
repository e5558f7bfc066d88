"""The OpenClaw-shaped host contract: hooks, ``/identity`` commands, tools, gateway methods."""
