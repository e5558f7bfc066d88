"""Authorization: CheckPermission decisions, risk rules, LLM risk re-evaluation."""
