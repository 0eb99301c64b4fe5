"""Jobs as the operator runs them: the state machine (``machine``, pure), the in-memory
view of queues, leases and timers (``book``, ``queue``, ``leases``), applying transitions
(``transitions``), claims, worker reports and timers, wired by ``dispatcher``; the one
writer of Job status (``store``) and params validation (``params``)."""
