"""Workers as the operator sees them: who they are (``auth``, ``jwt``, ``ratelimit``),
what they may register (``limits``) and what they offer (``registry``)."""
