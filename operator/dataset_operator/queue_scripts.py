"""The queue's atomic steps, as Lua scripts Redis runs whole.

Every script that writes is fenced: KEYS[1] is the fence and ARGV[1] the caller's leader epoch. A
call with an epoch below the fence is refused (STALE_FENCE) before it changes anything; a call with
a higher one moves the fence up to it, so a fence lost with Redis's data comes back with the current
leader's first write. PROGRESS and FIELD_OF_EACH only read, so they are not fenced. Chunk-hash field
names and chunk states come from the contract (ChunkField, ChunkState), so the scripts, the worker
and the Python side can never disagree on them. The scripts touch chunk hashes they derive from
chunk ids: Redis must not run in cluster mode.
"""

from __future__ import annotations

from string import Template

from chunk_worker.contract import ChunkField, ChunkState

STALE_FENCE = "STALE_FENCE"

_PRELUDE = """
local fence = tonumber(redis.call('GET', KEYS[1]) or '0')
local epoch = tonumber(ARGV[1])
if epoch < fence then return redis.error_reply('$stale epoch ' .. epoch .. ' < fence ' .. fence) end
if epoch > fence then redis.call('SET', KEYS[1], epoch) end
"""

_FIELDS = {"stale": STALE_FENCE, "state": ChunkField.STATE, "attempt": ChunkField.ATTEMPT,
           "admitted_at": ChunkField.ADMITTED_AT, "finished_at": ChunkField.FINISHED_AT,
           "message": ChunkField.MESSAGE, "fence": ChunkField.FENCE, "counter": ChunkField.counter(""),
           **{state.name.lower(): state.value for state in ChunkState}}
"""What the scripts write as `$name`: the chunk hash's field names and its states, from the contract."""


def _fenced(body: str) -> str:
    return Template(_PRELUDE + body).substitute(_FIELDS)


FENCE = _fenced("return tonumber(redis.call('GET', KEYS[1]))")
"""Raises the fence to the epoch (a new term's first step); answers the fence."""

CLAIM = _fenced("""
local queue, admitted, waiting, promoted = KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local n, now, deadline, scan, prefix = tonumber(ARGV[2]), ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
local only_listed = ARGV[7] == '1'
local caps = {}
for i = 8, #ARGV, 2 do caps[ARGV[i]] = tonumber(ARGV[i + 1]) end
local claimed = {}
local offset = 0
while #claimed < n and offset < scan do
  local batch = redis.call('ZRANGE', queue, offset, offset + 199)
  if #batch == 0 then break end
  for _, id in ipairs(batch) do
    local uid = string.match(id, '^(.*)-%d+$$') or id
    local cap = caps[uid]
    if (cap == nil and not only_listed) or (cap ~= nil and cap > 0) then
      if cap ~= nil then caps[uid] = cap - 1 end
      claimed[#claimed + 1] = id
      if #claimed >= n then break end
    end
  end
  offset = offset + 200
end
local result = {}
for _, id in ipairs(claimed) do
  local uid = string.match(id, '^(.*)-%d+$$') or id
  redis.call('ZREM', queue, id)
  redis.call('ZADD', waiting, now, uid)
  redis.call('HDEL', promoted, uid)
  redis.call('ZADD', admitted, deadline, id)
  redis.call('HSET', prefix .. id, '$state', '$admitted', '$admitted_at', now, '$fence', epoch)
  result[#result + 1] = id
  result[#result + 1] = redis.call('HINCRBY', prefix .. id, '$attempt', 1)
end
return result
""")
"""KEYS: fence, queue, admitted, waiting, promoted. ARGV: epoch, n, now, admission deadline, scan limit,
chunk key prefix, only listed (1: chunks of jobs without a pair are skipped), then (job uid, slots
left) pairs (0 = suspended or at its cap). Pops up to n chunks from the top; a claim restarts its
job's wait and ends its promotion. Answers (chunk id, attempt) pairs."""

SETTLE = _fenced("""
local chunk, job, finished = KEYS[2], KEYS[3], KEYS[4]
local state = redis.call('HGET', chunk, '$state')
if state == '$succeeded' or state == '$failed' then return 0 end
redis.call('HSET', chunk, '$state', ARGV[2], '$finished_at', ARGV[5])
for i = 6, #ARGV do
  local value = tonumber(redis.call('HGET', chunk, '$counter' .. ARGV[i]) or '0')
  if value ~= 0 then redis.call('HINCRBY', job, ARGV[i], value) end
end
redis.call('SADD', finished, ARGV[4])
for k = 5, 8 do redis.call('ZREM', KEYS[k], ARGV[3]) end
return 1
""")
"""KEYS: fence, chunk hash, job hash, job done-or-failed set, admitted, delayed, queue, running.
ARGV: epoch, final state, chunk id, index, now, counter names... Adds the chunk's final counters to
the job exactly once, however often it is called."""

RETRY_LATER = _fenced("""
local chunk = KEYS[2]
local state = redis.call('HGET', chunk, '$state')
if state == '$succeeded' or state == '$failed' or state == '$queued' then return 0 end
redis.call('HSET', chunk, '$state', '$queued', '$message', ARGV[4])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('ZREM', KEYS[5], ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[2])
return 1
""")
"""KEYS: fence, chunk hash, admitted, delayed, running. ARGV: epoch, chunk id, retry at, message."""

RELEASE = _fenced("""
if redis.call('ZREM', KEYS[3], ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[2], '$state', '$queued')
redis.call('HINCRBY', KEYS[2], '$attempt', -1)
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[5], 'NX', ARGV[4], ARGV[5])
return 1
""")
"""KEYS: fence, chunk hash, admitted, queue, waiting. ARGV: epoch, chunk id, score, now, job uid. An
admitted chunk whose Job could not be created goes back without losing an attempt."""

PROGRESS = """
local out = {}
for i = 1, #KEYS, 3 do
  out[#out + 1] = {redis.call('HMGET', KEYS[i], unpack(ARGV)), redis.call('SCARD', KEYS[i + 1]),
                   redis.call('SCARD', KEYS[i + 2])}
end
return out
"""
"""KEYS: (job hash, done set, failed set) of each job. ARGV: the job hash's fields to read. Answers
(fields, done count, failed count) per job: one command for a batch of jobs, where a pipeline of three
per job spent most of a 10,000-job status pass packing and parsing them in redis-py."""

FIELD_OF_EACH = """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('HGET', key, ARGV[1]) end
return out
"""
"""KEYS: hashes. ARGV: one field. Answers that field of each hash (nil where absent), in one command."""
