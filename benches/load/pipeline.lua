-- wrk script: send PIPELINE (default 16) requests per write on each connection.
-- wrk counts the requests in this buffer once at start-up and then waits for that many
-- responses before writing the next batch, so "N requests" in its summary counts responses,
-- and each latency sample covers a whole batch (first byte written -> last response read).
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
