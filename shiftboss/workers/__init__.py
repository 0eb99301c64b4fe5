"""Workers as the operator sees them: who they are (auth) and what they offer (registry)."""
