"""Durable storage backends: encrypted session files with atomic writes."""
