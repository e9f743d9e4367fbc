"""Durable writes on a replicated Redis: WAIT until replicas hold what the primary took.

Replication is asynchronous: a write the primary acknowledged can vanish in a failover.
Where that must not happen (a new job; an admission), the writer asks the primary how
many replicas hold every write it took so far, and acts only on the answer.
"""

from __future__ import annotations

import time

import redis

from trainq.store.keys import Keys

# Withdraws a job that was created but not confirmed on enough replicas: deletes its
# record and index entries while it is still pending (in its pending group, KEYS[2];
# without one, a FIFO job not yet sent: whenever it exists). 'absent': no such job (the
# failover lost it); 'taken': the scheduler admitted it already, which it does only once
# replicas hold it (it stays); 'withdrawn'. KEYS: record, group (or ''), all, queued,
# owner's all, owner's queued; ARGV[1]: the job id.
WITHDRAW_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'absent' end
if KEYS[2] ~= '' and not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 'taken' end
redis.call('DEL', KEYS[1])
for i = 2, #KEYS do
  if KEYS[i] ~= '' then redis.call('ZREM', KEYS[i], ARGV[1]) end
end
return 'withdrawn'
"""


def confirm_writes(
    client: redis.Redis, keys: Keys, replicas: int, wait_s: float, holding: str | None = None
) -> int:
    """How many replicas hold every write the primary took until now (up to
    ``replicas``), waiting at most ``wait_s`` for them: a mark is written, then WAIT on
    the same connection covers it and, replication being one ordered stream, all
    writes before it, whichever client made them. With ``holding`` (a key), 0 unless
    the primary that answers holds it: a call retried on a new primary after a
    failover confirms only what that primary has."""
    with client.pipeline(transaction=False) as pipe:
        pipe.exists(holding or keys.replication_mark)
        pipe.set(keys.replication_mark, f"{time.time():.6f}", ex=60)
        pipe.wait(replicas, max(1, round(wait_s * 1000)))
        held, _, acked = pipe.execute()
    return int(acked) if held or holding is None else 0
