"""The job list's name filter: jobs whose name contains a text, ignoring case.

No index can answer "contains", so a filtered page walks the status/owner index newest
first and reads each record's name. One request examines at most
:data:`NAME_SCAN_MAX` records, so its cost has a bound however rare the name is: a
page may then hold fewer than ``limit`` jobs (none, even) while its ``next_cursor``,
the last record examined, continues the walk.

In Redis the walk is one Lua script (:data:`SCAN_LUA`): the records never leave the
server unless they match, and the page is one consistent read. The in-memory twin
(:func:`scan_page`) walks the same way and stops at the same record. Case is folded
for ASCII letters only, as Lua's ``string.lower`` does, so both stores agree on
every needle (job names are ASCII).
"""

from __future__ import annotations

import string
from collections.abc import Iterable

from trainq.jobs.record import JobRecord
from trainq.store.paging import encode_cursor
from trainq.store.protocols import JobPage

# What the API and the CLI accept as the text: part of a job name (JobSpec's Name), so
# no longer than a name and in a name's characters. The stores take any text.
NAME_TEXT_PATTERN = r"^[A-Za-z0-9_.\-]+$"
NAME_TEXT_MAX_LENGTH = 128
# The most records one filtered page examines: the bound of one request's work. Reading
# a record into Lua costs about 2 µs (1 KB), matching its name 1-2 µs, so about 4 ms
# of Redis' time; 12 ms at worst, when every record must be decoded (each holds the
# needle in another "name" member, such as an env var).
NAME_SCAN_MAX = 1000
# Index entries read (and records fetched) per round inside the script.
_BATCH = 256

_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def folded(text: str) -> str:
    """``text`` with its ASCII letters lowercased (and nothing else changed)."""
    return text.translate(_ASCII_LOWER)


def name_contains(name: str | None, needle: str) -> bool:
    """Whether the job name ``name`` holds ``needle``, ignoring ASCII case."""
    return name is not None and folded(needle) in folded(name)


def scan_page(
    candidates: Iterable[JobRecord], needle: str, limit: int, scan_max: int = NAME_SCAN_MAX
) -> JobPage:
    """The page of ``candidates`` (newest first, after the cursor) whose names hold
    ``needle``, examining at most ``scan_max`` of them: what :data:`SCAN_LUA` does."""
    found: list[JobRecord] = []
    for examined, record in enumerate(candidates, start=1):
        if name_contains(record.spec.name, needle):
            found.append(record)
            if len(found) > limit:
                page = found[:limit]
                return JobPage(page, encode_cursor(page[-1].created_at, page[-1].id))
        if examined >= scan_max:
            return JobPage(found, encode_cursor(record.created_at, record.id))
    return JobPage(found, None)


# KEYS[1]: the index (job ids scored by creation time). ARGV: [1] the highest score
# ("+inf", or the cursor's), [2] the cursor's job id ("" without a cursor), [3] the
# needle, ASCII-lowercased, [4] limit, [5] the most records to examine, [6] the
# records' key prefix, [7] index entries per read.
# Returns {how it ended, the last examined entry's score and id, matching records...}:
# "more" (limit + 1 matches: a page and one over), "capped" (scan_max examined) or
# "end" (the index ended).
SCAN_LUA = """
local top, after, needle = ARGV[1], ARGV[2], ARGV[3]
local limit, scan_max, batch = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[7])
local prefix = ARGV[6]
local after_score = after ~= '' and tonumber(top) or nil
-- Byte order, as Redis orders equal scores (Lua's '<' follows the server's locale).
local function below(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local function holds(text)
  return string.find(string.lower(text), needle, 1, true) ~= nil
end
-- Whether the record's spec.name holds the needle. Decoding a record costs more than
-- reading it, so only one with a "name" member whose value holds the needle is decoded.
local function named(raw)
  local from = 1
  while true do
    local at = string.find(raw, '"name"', from, true)
    if not at then return false end
    local value = string.match(raw, '^%s*:%s*"([^"]*)"', at + 6)
    if value and holds(value) then
      local spec = cjson.decode(raw)['spec']
      local name = type(spec) == 'table' and spec['name']
      return type(name) == 'string' and holds(name)
    end
    from = at + 6
  end
end
local out = {'end', '', ''}
local examined, offset = 0, 0
while examined < scan_max do
  local entries = redis.call('ZREVRANGEBYSCORE', KEYS[1], top, '-inf', 'WITHSCORES',
                             'LIMIT', offset, math.min(batch, scan_max - examined))
  if #entries == 0 then return out end
  offset = offset + #entries / 2
  local ids, scores, keys = {}, {}, {}
  for i = 1, #entries, 2 do
    local id, score = entries[i], entries[i + 1]
    -- Entries with the cursor's score up to the cursor's id were on earlier pages.
    if after_score == nil or tonumber(score) < after_score or below(id, after) then
      ids[#ids + 1], scores[#scores + 1], keys[#keys + 1] = id, score, prefix .. id
    end
  end
  if #keys > 0 then
    local raws = redis.call('MGET', unpack(keys))
    for j = 1, #keys do
      examined = examined + 1
      if raws[j] and named(raws[j]) then
        out[#out + 1] = raws[j]
        if #out - 3 > limit then
          out[1] = 'more'
          return out
        end
      end
      out[2], out[3] = scores[j], ids[j]
    end
  end
end
out[1] = 'capped'
return out
"""


def scan_args(
    position: tuple[float, str] | None, needle: str, limit: int, records_prefix: str
) -> list[str | int]:
    """:data:`SCAN_LUA`'s ARGV for a page after ``position`` (None: from the newest)."""
    top = "+inf" if position is None else repr(position[0])
    after = "" if position is None else position[1]
    return [top, after, folded(needle), limit, NAME_SCAN_MAX, records_prefix, _BATCH]


def scanned_page(answer: list[str], limit: int) -> JobPage:
    """The page :data:`SCAN_LUA` answered."""
    ended, last_score, last_id, *raws = answer
    records = [JobRecord.from_json(raw) for raw in raws]
    if ended == "more":
        page = records[:limit]
        return JobPage(page, encode_cursor(page[-1].created_at, page[-1].id))
    if ended == "capped":
        return JobPage(records, encode_cursor(float(last_score), last_id))
    return JobPage(records, None)
