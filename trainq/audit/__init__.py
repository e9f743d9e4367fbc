"""The audit trail: every state-changing call, who made it and what it answered."""
