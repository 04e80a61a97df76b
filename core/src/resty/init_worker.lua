        -- halo resty: load the code, run it in a zero-delay timer (where
        -- the whole non-request API works), then exit gracefully. An
        -- uncaught error prints "ERROR: " and its traceback, exit code 1.
        local exit, stderr = os.exit, io.stderr

        local function fail(err)
            stderr:write("ERROR: ", tostring(err), "\n")
            return exit(1)
        end

        local function load_chunk(path, name)
            local f, err = io.open(path, "r")
            if not f then
                return fail(err)
            end
            local code = f:read("*a")
            f:close()
            local chunk, err = loadstring(code, name)
            if not chunk then
                return fail(err)
            end
            return chunk
        end

        local graceful_exit = require("ngx.process").signal_graceful_exit

--[[ the loader ]]
        local function run()
            for i = 1, #chunks do
                chunks[i]()
            end
        end

        local ok, err = ngx.timer.at(0, function()
            local ok, err = xpcall(run, function(e)
                -- Level 3: past this handler and error() itself.
                return fail(debug.traceback(e, 3))
            end)
            if not ok then
                return fail(err)
            end
            graceful_exit()
        end)
        if not ok then
            fail(err)
        end
