-- wrk script: send PIPELINE (default 16) requests per write on each connection.
-- wrk counts the requests in this buffer once at start-up and then waits for that many
-- responses before writing the next batch, so "N requests" in its summary counts responses,
-- and each latency sample covers a whole batch (batch written -> its last response read).
--
-- wrk's printed latency percentiles are NOT usable with this script: before printing,
-- wrk 4.1 adds "coordinated omission" samples spaced by duration / (responses /
-- connections), an interval `PIPELINE` times too small for batches; many land below the
-- recorded minimum, where its percentile walk never looks, so it prints 0.00us or too-low
-- values. (Debian's wrk also cannot hand the raw histogram to Lua: latency[i] returns i.)
-- run.sh therefore reports no p99 for this scenario.
local depth = tonumber(os.getenv("PIPELINE") or "16")

init = function(args)
   local r = {}
   for i = 1, depth do
      r[i] = wrk.format()
   end
   req = table.concat(r)
end

request = function()
   return req
end
